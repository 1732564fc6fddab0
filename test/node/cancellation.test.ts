// Cancellation (src/node/cancellation.ts) behaves as AbortController does for what writes use:
// the same scenario is run against both, so a difference shows up as a failed comparison.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Cancellation, cancelError, type CancelSignal } from '../../src/node/cancellation.js';

function scenario(make: () => { signal: CancelSignal; abort(reason?: unknown): void }): string[] {
  const seen: string[] = [];
  const c = make();
  const a = () => seen.push('a');
  const b = () => seen.push('b');
  const removed = () => seen.push('removed');
  c.signal.addEventListener('abort', a, { once: true });
  c.signal.addEventListener('abort', removed, { once: true });
  c.signal.addEventListener('abort', b, { once: true });
  c.signal.removeEventListener('abort', removed);
  seen.push(`aborted before: ${c.signal.aborted}`);
  c.abort(new Error('first'));
  c.abort(new Error('second'));
  c.signal.addEventListener('abort', () => seen.push('late'), { once: true });
  seen.push(`aborted after: ${c.signal.aborted}`);
  seen.push(`error: ${cancelError(c.signal).message}`);
  return seen;
}

test('Cancellation fires each listener once, in order, and keeps the first reason, like AbortController', () => {
  const ours = scenario(() => new Cancellation());
  const node = scenario(() => new AbortController());
  assert.deepEqual(ours, node);
  assert.deepEqual(ours, ['aborted before: false', 'a', 'b', 'aborted after: true', 'error: first']);
});

test('cancelError: a reason that is not an Error gives a generic one', () => {
  const c = new Cancellation();
  c.abort('just a string');
  assert.equal(cancelError(c).message, 'aborted');
});
