// Unit tests of the peer transport pieces that need no processes: merging queued appends,
// the wire format, and resumable, checksummed snapshot reception.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Entry, Message } from '../../src/raft/types.js';
import { mergeAppends } from '../../src/node/raft/transport.js';
import { SnapshotReceiver } from '../../src/node/raft/snapshot-receiver.js';
import {
  appendFromWire,
  appendRequestSchema,
  appendToWire,
  voteRequestSchema,
  WireError,
} from '../../src/node/raft/wire.js';

type Append = Extract<Message, { type: 'append' }>;
const ent = (index: number, term = 2): Entry => ({ index, term, kind: 'normal', data: `{"i":${index}}` });
const app = (prev: number, n: number, commit: number, readCtx = 0, term = 2): Append => ({
  type: 'append',
  from: 'n1',
  to: 'n2',
  term,
  prevLogIndex: prev,
  prevLogTerm: 2,
  entries: Array.from({ length: n }, (_, i) => ent(prev + 1 + i)),
  leaderCommit: commit,
  readCtx,
});

test('contiguous appends merge into one; heartbeats fold in; max commit and readCtx', () => {
  const out = mergeAppends([app(10, 2, 9), app(12, 3, 11, 4), app(11, 0, 12, 5), app(15, 1, 12)]);
  assert.equal(out.length, 1);
  assert.equal(out[0]!.prevLogIndex, 10);
  assert.deepEqual(
    out[0]!.entries.map((e) => e.index),
    [11, 12, 13, 14, 15, 16],
  );
  assert.equal(out[0]!.leaderCommit, 12);
  assert.equal(out[0]!.readCtx, 5);
});

test('a heartbeat followed by an append becomes the append; a rewind or a new term starts a new request', () => {
  const hb = app(5, 0, 7, 3);
  const out = mergeAppends([hb, app(8, 2, 8), app(6, 1, 8), app(7, 1, 8, 0, 3)]);
  assert.equal(out.length, 3);
  assert.equal(out[0]!.prevLogIndex, 8);
  assert.equal(out[0]!.readCtx, 3);
  assert.equal(out[0]!.leaderCommit, 8);
  assert.equal(out[1]!.prevLogIndex, 6);
  assert.equal(out[2]!.term, 3);
  // The input messages are not modified.
  assert.equal(hb.entries.length, 0);
});

test('wire format keeps the original field names and rejects inconsistent entries', () => {
  const w = appendToWire(app(3, 2, 4));
  assert.deepEqual(Object.keys(w).slice(0, 6), [
    'term',
    'leaderId',
    'prevLogIndex',
    'prevLogTerm',
    'entries',
    'leaderCommit',
  ]);
  assert.deepEqual(Object.keys(w.entries[0]!).slice(0, 2), ['term', 'command']);
  const back = appendFromWire(appendRequestSchema.parse(JSON.parse(JSON.stringify(w))), 'n2');
  assert.deepEqual(back.entries, app(3, 2, 4).entries);
  // The original minimal shape is accepted (kind defaults to normal, index from position).
  const minimal = appendFromWire(
    appendRequestSchema.parse({
      term: 1,
      leaderId: 'a',
      prevLogIndex: 0,
      prevLogTerm: 0,
      entries: [{ term: 1, command: '{}' }],
      leaderCommit: 0,
    }),
    'b',
  );
  assert.equal(minimal.entries[0]!.index, 1);
  assert.throws(
    () =>
      appendFromWire(
        appendRequestSchema.parse({ ...w, entries: [{ term: 2, command: 'x', index: 99 }] }),
        'n2',
      ),
    WireError,
  );
  assert.equal(
    voteRequestSchema.safeParse({ term: 1, candidateId: 'a', lastLogIndex: -1, lastLogTerm: 0 }).success,
    false,
  );
});

test('snapshot reception resumes at the received offset and verifies checksums', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'snaprecv-'));
  try {
    const r = new SnapshotReceiver(dir);
    const data = Buffer.from('x'.repeat(1000) + 'y'.repeat(500));
    const sha = createHash('sha256').update(data).digest('hex');
    const h = (b: Buffer) => createHash('sha256').update(b).digest('hex');
    assert.deepEqual(await r.status('n1', 7, data.length, sha), { offset: 0 });
    const c1 = data.subarray(0, 600);
    assert.deepEqual(await r.chunk('n1', 7, data.length, sha, 0, c1, h(c1)), { offset: 600 });
    // A corrupted chunk is refused; a chunk at the wrong offset gets the current offset back.
    const c2 = data.subarray(600);
    await assert.rejects(r.chunk('n1', 7, data.length, sha, 600, c2, h(c1)), WireError);
    assert.deepEqual(await r.chunk('n1', 7, data.length, sha, 0, c1, h(c1)), { offset: 600, conflict: true });
    // "Restart" of the transfer: status tells the sender where to resume.
    assert.deepEqual(await r.status('n1', 7, data.length, sha), { offset: 600 });
    await assert.rejects(r.complete('n1', 7, data.length, sha), WireError); // incomplete
    assert.deepEqual(await r.status('n1', 7, data.length, sha), { offset: 0 }); // dropped
    await r.chunk('n1', 7, data.length, sha, 0, c1, h(c1));
    await r.chunk('n1', 7, data.length, sha, 600, c2, h(c2));
    const path = await r.complete('n1', 7, data.length, sha);
    assert.deepEqual(readFileSync(path), data);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
