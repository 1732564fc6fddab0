// raft.db: the Raft Storage on a real SQLite file, including reopening after close.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { openRaftLog } from '../../src/storage/raft-log/index.js';
import { CompactedError, type Entry } from '../../src/raft/types.js';

function tmp(): string {
  const d = mkdtempSync(join(tmpdir(), 'raftlog-'));
  process.once('exit', () => rmSync(d, { recursive: true, force: true }));
  return d;
}

const e = (index: number, term: number, data = `d${index}`): Entry => ({ index, term, kind: 'normal', data });

test('persist entries + hard state, reopen, read back', () => {
  const path = join(tmp(), 'raft.db');
  let s = openRaftLog(path);
  assert.equal(s.isEmpty(), true);
  assert.equal(s.firstIndex(), 1);
  assert.equal(s.lastIndex(), 0);
  assert.equal(s.term(0), 0);
  s.persist({ entries: [e(1, 1), e(2, 1), e(3, 2)], hardState: { term: 2, vote: 'n1', commit: 2 } });
  assert.equal(s.lastIndex(), 3);
  assert.deepEqual(
    s.entries(1, 4).map((x) => x.index),
    [1, 2, 3],
  );
  s.close();
  s = openRaftLog(path);
  assert.deepEqual(s.initialState().hardState, { term: 2, vote: 'n1', commit: 2 });
  assert.equal(s.lastIndex(), 3);
  assert.equal(s.term(3), 2);
  assert.deepEqual(s.entries(2, 10), [e(2, 1), e(3, 2)]);
  // maxBytes: always at least one entry
  assert.equal(s.entries(1, 4, 1).length, 1);
  s.close();
});

test('conflicting suffix is replaced', () => {
  const path = join(tmp(), 'raft.db');
  let s = openRaftLog(path);
  s.persist({ entries: [e(1, 1), e(2, 1), e(3, 1), e(4, 1)] });
  s.persist({ entries: [e(3, 2, 'new3')] });
  assert.equal(s.lastIndex(), 3);
  assert.equal(s.term(3), 2);
  assert.equal(s.entries(3, 4)[0]!.data, 'new3');
  assert.throws(() => s.persist({ entries: [e(6, 2)] }), /gap/);
  s.close();
  s = openRaftLog(path);
  assert.equal(s.lastIndex(), 3);
  assert.equal(s.entries(3, 4)[0]!.data, 'new3');
  s.close();
});

test('bootstrap writes the founding voters as config entries; membership derives from the log', () => {
  const path = join(tmp(), 'raft.db');
  let s = openRaftLog(path);
  s.bootstrap([
    { id: 'n1', url: 'http://a' },
    { id: 'n2', url: 'http://b' },
  ]);
  assert.throws(() => s.bootstrap([{ id: 'n1', url: 'x' }]));
  s.persist({
    entries: [
      {
        index: 3,
        term: 2,
        kind: 'config',
        data: JSON.stringify({ type: 'addLearner', nodeId: 'n3', context: 'http://c' }),
      },
    ],
  });
  s.close();
  s = openRaftLog(path);
  assert.equal(s.isEmpty(), false);
  const st = s.initialState();
  assert.deepEqual(st.membership, { voters: ['n1', 'n2'], learners: ['n3'] });
  assert.equal(st.hardState.commit, 2);
  assert.deepEqual(s.membershipAt(2).membership, { voters: ['n1', 'n2'], learners: [] });
  assert.equal(s.membershipAt(3).contexts.n3, 'http://c');
  s.close();
});

test('compaction keeps snapshot meta and trailing entries; survives reopen', () => {
  const path = join(tmp(), 'raft.db');
  let s = openRaftLog(path);
  const ents: Entry[] = [];
  for (let i = 1; i <= 100; i++) ents.push(e(i, i <= 50 ? 1 : 2));
  s.persist({ entries: ents, hardState: { term: 2, vote: null, commit: 100 } });
  const view = s.membershipAt(80);
  s.compact({ index: 80, term: 2, ...view }, 70);
  assert.equal(s.firstIndex(), 71);
  assert.equal(s.term(70), 2);
  assert.equal(s.term(80), 2);
  assert.throws(() => s.term(69), CompactedError);
  assert.throws(() => s.entries(60, 72), CompactedError);
  assert.equal(s.entries(71, 200).length, 30);
  s.close();
  s = openRaftLog(path);
  assert.equal(s.firstIndex(), 71);
  assert.equal(s.snapshotMeta().index, 80);
  assert.equal(s.lastIndex(), 100);
  assert.equal(s.entryCount(), 30);
  s.close();
});

test('installing a snapshot from the leader drops a conflicting log', () => {
  const path = join(tmp(), 'raft.db');
  let s = openRaftLog(path);
  s.persist({ entries: [e(1, 1), e(2, 1), e(3, 1)] });
  const membership = { voters: ['n1', 'n2', 'n3'], learners: [] };
  s.persist({
    snapshot: { index: 500, term: 7, membership, contexts: { n1: 'u1' } },
    hardState: { term: 7, vote: null, commit: 500 },
  });
  assert.equal(s.firstIndex(), 501);
  assert.equal(s.lastIndex(), 500);
  assert.equal(s.term(500), 7);
  s.persist({ entries: [e(501, 7)] });
  s.close();
  s = openRaftLog(path);
  assert.equal(s.firstIndex(), 501);
  assert.equal(s.lastIndex(), 501);
  assert.deepEqual(s.initialState().membership, membership);
  assert.equal(s.membershipAt(501).contexts.n1, 'u1');
  s.close();
});
