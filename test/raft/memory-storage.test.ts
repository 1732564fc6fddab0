// MemoryStorage semantics (they are the reference for any durable Storage), checked by example and
// against a trivial model with fast-check.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { CompactedError, MemoryStorage } from '../../src/raft/index.js';
import type { Entry } from '../../src/raft/index.js';

const e = (index: number, term: number, data = `d${index}`): Entry => ({ index, term, kind: 'normal', data });

test('append replaces an existing index and everything after it', () => {
  const s = new MemoryStorage(['a']);
  s.append([e(1, 1), e(2, 1), e(3, 1)]);
  s.append([e(2, 2)]);
  assert.equal(s.lastIndex(), 2);
  assert.equal(s.term(2), 2);
  assert.throws(() => s.append([e(5, 2)]), /missing log entry/);
});

test('compact keeps the term of the last compacted entry; older indexes throw CompactedError', () => {
  const s = new MemoryStorage(['a']);
  s.append([e(1, 1), e(2, 1), e(3, 2)]);
  s.createSnapshot(2, { voters: ['a'], learners: [] });
  s.compact(2);
  assert.equal(s.firstIndex(), 3);
  assert.equal(s.term(2), 1);
  assert.throws(() => s.term(1), CompactedError);
  assert.throws(() => s.entries(2, 4), CompactedError);
  assert.deepEqual(
    s.entries(3, 4).map((x) => x.index),
    [3],
  );
  assert.equal(s.snapshotMeta().index, 2);
  assert.equal(s.snapshotMeta().term, 1);
});

test('entries honours maxBytes but always returns at least one entry', () => {
  const s = new MemoryStorage(['a']);
  s.append([e(1, 1, 'xxxx'), e(2, 1, 'yyyy'), e(3, 1, 'zzzz')]);
  assert.equal(s.entries(1, 4, 1).length, 1);
  assert.equal(s.entries(1, 4, 8).length, 2);
  assert.equal(s.entries(1, 4).length, 3);
});

test('applySnapshot replaces the log and ignores older snapshots', () => {
  const s = new MemoryStorage(['a']);
  s.append([e(1, 1), e(2, 1)]);
  const meta = {
    index: 10,
    term: 3,
    membership: { voters: ['a', 'b'], learners: [] },
    contexts: { b: 'http://b' },
  };
  assert.equal(s.applySnapshot(meta), true);
  assert.equal(s.firstIndex(), 11);
  assert.equal(s.lastIndex(), 10);
  assert.equal(s.term(10), 3);
  assert.deepEqual(s.initialState().membership, meta.membership);
  assert.equal(s.applySnapshot({ ...meta, index: 5 }), false);
});

test('property: MemoryStorage agrees with a plain array model under appends and compactions', () => {
  type Op = { kind: 'append'; at: number; terms: number[] } | { kind: 'compact'; at: number };
  const op = fc.oneof(
    fc.record({
      kind: fc.constant('append' as const),
      at: fc.nat(30),
      terms: fc.array(fc.integer({ min: 1, max: 5 }), { minLength: 1, maxLength: 6 }),
    }),
    fc.record({ kind: fc.constant('compact' as const), at: fc.nat(30) }),
  );
  fc.assert(
    fc.property(fc.array(op, { maxLength: 40 }), (ops: Op[]) => {
      const s = new MemoryStorage(['a']);
      let model: number[] = []; // model[i] = term of index i + 1
      let compacted = 0;
      for (const o of ops) {
        if (o.kind === 'append') {
          const first = Math.min(o.at + 1, model.length + 1);
          if (first <= compacted) continue;
          const ents = o.terms.map((t, k) => e(first + k, t));
          s.append(ents);
          model = model.slice(0, first - 1).concat(o.terms);
        } else {
          const at = Math.min(o.at, model.length);
          if (at <= compacted) continue;
          s.compact(at);
          compacted = at;
        }
        assert.equal(s.lastIndex(), model.length);
        assert.equal(s.firstIndex(), compacted + 1);
        for (let i = compacted + 1; i <= model.length; i++) assert.equal(s.term(i), model[i - 1]);
      }
    }),
    { seed: 42, numRuns: 300 },
  );
});
