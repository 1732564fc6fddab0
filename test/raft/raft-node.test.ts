// Basic behaviour of RaftNode driven through the synchronous TestCluster.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryStorage, RaftNode } from '../../src/raft/index.js';
import { TestCluster, baseConfig } from './harness.js';

test('a single node elects itself and commits its no-op', () => {
  const c = new TestCluster(['a']);
  const a = c.elect('a');
  const st = a.raft.status();
  assert.equal(st.role, 'Leader');
  assert.equal(st.term, 1);
  assert.equal(st.commitIndex, 1);
  assert.equal(a.applied[0]?.kind, 'noop');
  const r = a.raft.propose('x');
  assert.deepEqual(r, { ok: true, index: 2, term: 1 });
  c.stabilize();
  assert.deepEqual(c.data('a'), ['x']);
});

test('three nodes elect a leader by ticking and replicate proposals', () => {
  const c = new TestCluster(['a', 'b', 'c']);
  c.tick(30);
  const l = c.leader();
  assert.ok(l);
  for (let i = 0; i < 5; i++) assert.equal(l.raft.propose(`v${i}`).ok, true);
  c.stabilize();
  for (const id of ['a', 'b', 'c']) assert.deepEqual(c.data(id), ['v0', 'v1', 'v2', 'v3', 'v4']);
});

test('propose on a follower fails with NotLeader naming the leader', () => {
  const c = new TestCluster(['a', 'b', 'c']);
  c.elect('a');
  const r = c.node('b').raft.propose('x');
  assert.deepEqual(r, { ok: false, error: { code: 'NotLeader', leaderId: 'a' } });
  const ri = c.node('b').raft.readIndex('r1');
  assert.deepEqual(ri, { ok: false, error: { code: 'NotLeader', leaderId: 'a' } });
});

test('many proposals between two ready() calls go out as one append per follower', () => {
  const c = new TestCluster(['a', 'b', 'c']);
  const a = c.elect('a');
  c.sent = [];
  for (let i = 0; i < 50; i++) a.raft.propose(`p${i}`);
  const rd = a.raft.ready();
  const appends = rd.messages.filter((m) => m.type === 'append');
  assert.equal(appends.length, 2);
  for (const m of appends) assert.equal(m.type === 'append' && m.entries.length, 50);
  assert.equal(rd.entries.length, 50);
  c.node('a').storage.append(rd.entries);
  a.raft.advance(rd);
  c.queue.push(...rd.messages);
  c.stabilize();
  assert.equal(c.data('c').length, 50);
});

test('maxSizePerMsg bounds entries per append, and the inflight window bounds messages', () => {
  const c = new TestCluster(['a', 'b'], { maxSizePerMsg: 10, maxInflightMsgs: 3 });
  const a = c.elect('a');
  c.cut.add('b->a'); // acks never come back: the window fills
  for (let i = 0; i < 20; i++) a.raft.propose('0123456789'); // 10 bytes each
  c.drain();
  const appends = c.queue.filter((m) => m.type === 'append' && m.entries.length > 0);
  assert.equal(appends.length, 3);
  for (const m of appends) assert.equal(m.type === 'append' && m.entries.length, 1);
});

test('maxInflightBytes bounds bytes in flight', () => {
  const c = new TestCluster(['a', 'b'], { maxSizePerMsg: 10, maxInflightMsgs: 100, maxInflightBytes: 25 });
  const a = c.elect('a');
  for (let i = 0; i < 20; i++) a.raft.propose('0123456789');
  c.drain();
  const appends = c.queue.filter((m) => m.type === 'append' && m.entries.length > 0);
  assert.equal(appends.length, 3); // 10 + 10 < 25, third reaches 30 >= 25
});

test('readIndex: answered after a quorum heartbeat round, at the commit index', () => {
  const c = new TestCluster(['a', 'b', 'c']);
  const a = c.elect('a');
  a.raft.propose('x');
  c.stabilize();
  assert.deepEqual(a.raft.readIndex('q1'), { ok: true });
  c.drain();
  assert.equal(a.readStates.length, 0, 'not before the heartbeat round');
  const hb = c.queue.filter((m) => m.type === 'append');
  assert.ok(hb.every((m) => m.type === 'append' && m.readCtx > 0));
  c.stabilize();
  assert.deepEqual(a.readStates, [{ requestId: 'q1', index: a.raft.status().commitIndex }]);
});

test('readIndex waits for the leader to commit an entry of its own term', () => {
  const c = new TestCluster(['a', 'b', 'c']);
  const a = c.elect('a');
  c.isolate('b');
  c.isolate('c');
  // a is leader but cannot commit anything new; a fresh election on b...
  c.heal();
  c.isolate('a');
  const b = c.elect('b');
  // b's no-op cannot reach a quorum while c is cut off from it.
  c.cut.add('b->c');
  c.stabilize();
  b.raft.readIndex('r');
  c.stabilize();
  assert.equal(b.readStates.length, 0);
  assert.notEqual(a.raft.status().role, 'Follower'); // a still thinks it leads (old term)
  c.heal();
  c.tick(1, ['b']);
  c.stabilize();
  assert.equal(b.readStates.length, 1);
  assert.equal(b.readStates[0]!.index, b.raft.status().commitIndex);
});

test('lease reads are answered at once but require checkQuorum', () => {
  assert.throws(
    () => new RaftNode(baseConfig('a', new MemoryStorage(['a']), { readOnly: 'lease', checkQuorum: false })),
  );
  const c = new TestCluster(['a', 'b', 'c'], { readOnly: 'lease', checkQuorum: true });
  const a = c.elect('a');
  c.tick(1, ['a']); // one acknowledged heartbeat round starts the lease
  a.raft.readIndex('q');
  c.drain();
  assert.equal(a.readStates.length, 1);
  // without acknowledgements for an election timeout, the lease lapses and reads need a round
  c.isolate('a');
  c.tick(9, ['a']);
  a.raft.readIndex('q2');
  c.drain();
  assert.equal(a.readStates.length, 1);
});

test('leadership transfer via timeoutNow', () => {
  const c = new TestCluster(['a', 'b', 'c'], { preVote: true, checkQuorum: true });
  c.elect('a');
  const t0 = c.node('a').raft.status().term;
  assert.deepEqual(c.node('a').raft.transferLeadership('c'), { ok: true });
  c.stabilize();
  assert.equal(c.leader()?.id, 'c');
  assert.equal(c.node('c').raft.status().term, t0 + 1);
  assert.ok(c.sent.some((m) => m.type === 'timeoutNow' && m.to === 'c'));
});

test('proposals are refused while a transfer is in progress', () => {
  const c = new TestCluster(['a', 'b', 'c']);
  const a = c.elect('a');
  c.isolate('b');
  a.raft.transferLeadership('b');
  const r = a.raft.propose('x');
  assert.deepEqual(r, { ok: false, error: { code: 'TransferInProgress', leaderId: 'b' } });
  c.tick(10, ['a']); // the transfer times out after an election timeout
  assert.equal(a.raft.propose('y').ok, true);
});

test('membership: add a learner, promote it, remove a voter', () => {
  const c = new TestCluster(['a', 'b', 'c']);
  const a = c.elect('a');
  // A joining node starts from the cluster's current membership (as the join handshake reports it).
  c.add('d', new MemoryStorage(['a', 'b', 'c'], ['d']));
  const r1 = a.raft.proposeConfChange({ type: 'addLearner', nodeId: 'd', context: 'http://d' });
  assert.equal(r1.ok, true);
  // one change at a time
  const r2 = a.raft.proposeConfChange({ type: 'addLearner', nodeId: 'e' });
  assert.deepEqual(r2, { ok: false, error: { code: 'ConfChangeInProgress' } });
  c.stabilize();
  c.tick(2);
  assert.deepEqual(a.raft.status().membership, { voters: ['a', 'b', 'c'], learners: ['d'] });
  assert.deepEqual(c.node('d').raft.status().membership, { voters: ['a', 'b', 'c'], learners: ['d'] });
  assert.equal(a.raft.proposeConfChange({ type: 'promote', nodeId: 'd' }).ok, true);
  c.stabilize();
  assert.deepEqual(a.raft.status().membership.voters, ['a', 'b', 'c', 'd']);
  assert.equal(a.raft.proposeConfChange({ type: 'remove', nodeId: 'b' }).ok, true);
  c.stabilize();
  assert.deepEqual(a.raft.status().membership.voters, ['a', 'c', 'd']);
  a.raft.propose('after');
  c.stabilize();
  assert.deepEqual(c.data('d'), ['after']);
});

test('a removed leader steps down once its removal commits', () => {
  const c = new TestCluster(['a', 'b', 'c']);
  const a = c.elect('a');
  assert.equal(a.raft.proposeConfChange({ type: 'remove', nodeId: 'a' }).ok, true);
  c.stabilize();
  assert.equal(a.raft.status().role, 'Follower');
  c.tick(30, ['b', 'c']);
  const l = c.leader();
  assert.ok(l && l.id !== 'a');
  assert.deepEqual(l.raft.status().membership.voters, ['b', 'c']);
});

test('a conf change is refused until the leader has committed an entry of its term', () => {
  const c = new TestCluster(['x', 'y', 'z']);
  c.elect('x');
  c.isolate('x');
  const y = c.node('y');
  y.raft.campaign();
  c.round(); // vote request to z
  c.round(); // z's grant: y leads, its no-op is queued
  assert.equal(y.raft.status().role, 'Leader');
  c.cut.add('y->z');
  c.stabilize();
  assert.deepEqual(y.raft.proposeConfChange({ type: 'addLearner', nodeId: 'q' }), {
    ok: false,
    error: { code: 'ConfChangeInProgress' },
  });
  c.cut.delete('y->z');
  c.tick(1, ['y']);
  assert.equal(y.raft.proposeConfChange({ type: 'addLearner', nodeId: 'q' }).ok, true);
});

test('a follower behind the compacted log gets a snapshot message and catches up', () => {
  const c = new TestCluster(['a', 'b', 'c']);
  const a = c.elect('a');
  c.isolate('c');
  for (let i = 0; i < 10; i++) a.raft.propose(`v${i}`);
  c.stabilize();
  const meta = c.compact('a');
  assert.equal(meta.index, 11);
  c.heal();
  c.tick(2);
  assert.ok(c.sent.some((m) => m.type === 'snapshot' && m.to === 'c' && m.snapshot.index === 11));
  assert.equal(c.node('c').storage.snapshotMeta().index, 11);
  assert.equal(c.node('c').raft.status().appliedIndex, 11);
  a.raft.propose('after');
  c.stabilize();
  assert.equal(c.node('c').raft.status().commitIndex, 12);
  assert.equal(c.node('c').applied[c.node('c').applied.length - 1]?.data, 'after');
  const cs = c
    .node('a')
    .raft.status()
    .progress!.find((p) => p.id === 'c')!;
  assert.equal(cs.state, 'replicate');
});

test('restart from MemoryStorage keeps term, vote, log and re-delivers unapplied entries', () => {
  const c = new TestCluster(['a', 'b', 'c']);
  const a = c.elect('a');
  a.raft.propose('x');
  c.stabilize();
  const b = c.node('b');
  const st = b.raft.status();
  const restarted = new RaftNode(baseConfig('b', b.storage.clone(), { applied: 1 }));
  const rst = restarted.status();
  assert.equal(rst.term, st.term);
  assert.equal(rst.commitIndex, st.commitIndex);
  assert.equal(rst.lastIndex, st.lastIndex);
  const rd = restarted.ready();
  assert.deepEqual(
    rd.committedEntries.map((e) => e.data),
    ['x'],
  );
});

test('a learner is promoted only once it has caught up', () => {
  const c = new TestCluster(['a', 'b', 'c']);
  const a = c.elect('a');
  c.add('d', new MemoryStorage(['a', 'b', 'c'], ['d']));
  c.isolate('d');
  assert.equal(a.raft.proposeConfChange({ type: 'addLearner', nodeId: 'd' }).ok, true);
  c.stabilize();
  const r = a.raft.proposeConfChange({ type: 'promote', nodeId: 'd' });
  assert.equal(r.ok, false);
  assert.equal(!r.ok && r.error.code, 'Rejected');
  c.heal();
  c.tick(3);
  assert.equal(a.raft.proposeConfChange({ type: 'promote', nodeId: 'd' }).ok, true);
});

test('invalid membership changes are rejected with a reason', () => {
  const c = new TestCluster(['a']);
  const a = c.elect('a');
  for (const cc of [
    { type: 'remove', nodeId: 'a' },
    { type: 'addVoter', nodeId: 'a' },
    { type: 'promote', nodeId: 'zz' },
    { type: 'remove', nodeId: 'zz' },
  ] as const) {
    const r = a.raft.proposeConfChange(cc);
    assert.equal(!r.ok && r.error.code, 'Rejected', JSON.stringify(cc));
  }
});

test('a leader with a pending transfer hands over when the target catches up', () => {
  const c = new TestCluster(['a', 'b', 'c']);
  const a = c.elect('a');
  c.isolate('c');
  for (let i = 0; i < 5; i++) a.raft.propose(`v${i}`);
  c.stabilize();
  a.raft.transferLeadership('c');
  assert.equal(
    c.queue.some((m) => m.type === 'timeoutNow'),
    false,
  );
  c.heal();
  c.tick(1, ['a']);
  assert.equal(c.leader()?.id, 'c');
  assert.deepEqual(c.data('c'), ['v0', 'v1', 'v2', 'v3', 'v4']);
});

test('maxCommittedSizePerReady splits a long backlog of committed entries across Readies', () => {
  const c = new TestCluster(['a'], { maxCommittedSizePerReady: 10 });
  const a = c.elect('a');
  for (let i = 0; i < 6; i++) a.raft.propose('01234');
  const sizes: number[] = [];
  while (a.raft.hasReady()) {
    const rd = a.raft.ready();
    a.storage.append(rd.entries);
    if (rd.hardState) a.storage.setHardState(rd.hardState);
    if (rd.committedEntries.length > 0) sizes.push(rd.committedEntries.length);
    a.raft.advance(rd);
  }
  assert.deepEqual(sizes, [2, 2, 2]);
});

test('after a restart, truncating an uncommitted config entry undoes it (base is the snapshot membership)', () => {
  const storage = new MemoryStorage(['a', 'b', 'c']);
  storage.append([
    { index: 1, term: 1, kind: 'noop', data: '' },
    { index: 2, term: 1, kind: 'config', data: JSON.stringify({ type: 'addVoter', nodeId: 'd' }) },
  ]);
  storage.setHardState({ term: 1, vote: null, commit: 1 });
  // A storage (like raft.db) whose initialState() reports the membership at its last index.
  const latest = Object.assign(Object.create(storage) as MemoryStorage, {
    initialState: () => ({
      hardState: storage.initialState().hardState,
      membership: { voters: ['a', 'b', 'c', 'd'], learners: [] },
    }),
  });
  const b = new RaftNode(baseConfig('b', latest));
  assert.deepEqual(b.status().membership.voters, ['a', 'b', 'c', 'd']);
  b.step({
    type: 'append',
    from: 'c',
    to: 'b',
    term: 2,
    prevLogIndex: 1,
    prevLogTerm: 1,
    entries: [{ index: 2, term: 2, kind: 'noop', data: '' }],
    leaderCommit: 1,
    readCtx: 0,
  });
  assert.deepEqual(b.status().membership.voters, ['a', 'b', 'c']);
});

test('reordered appends cost a bounded number of resends, and the window shrinks on each rewind', () => {
  const c = new TestCluster(['a', 'b'], { maxSizePerMsg: 1, maxInflightMsgs: 16 });
  const a = c.elect('a');
  for (let i = 0; i < 64; i++) a.raft.propose(`v${i}`);
  let delivered = 0;
  for (let round = 0; round < 200 && c.data('b').length < 64; round++) {
    c.drain();
    const q = c.queue.reverse(); // the worst reordering: every batch arrives back to front
    c.queue = [];
    delivered += q.length;
    for (const m of q) c.deliver(m);
    if (round % 3 === 0) a.raft.tick();
  }
  assert.equal(c.data('b').length, 64);
  assert.ok(delivered < 64 * 16, `delivered ${delivered} messages`);
});

test('PreVote: a node partitioned away does not disrupt the leader when it comes back', () => {
  const c = new TestCluster(['a', 'b', 'c'], { preVote: true, checkQuorum: true });
  c.tick(30);
  const l = c.leader()!;
  const term = l.raft.status().term;
  const other = ['a', 'b', 'c'].find((id) => id !== l.id)!;
  c.isolate(other);
  c.tick(100);
  assert.equal(c.node(other).raft.status().term, term, 'pre-elections failed without bumping the term');
  c.heal();
  c.tick(20);
  assert.equal(c.leader()?.id, l.id);
  assert.equal(l.raft.status().term, term);
});

test('learnCommitted: a follower commits up to an index only when its entry there has the term', () => {
  const storage = new MemoryStorage(['a', 'b', 'c']);
  const b = new RaftNode(baseConfig('b', storage));
  const e = (index: number, term: number, data: string) => ({ index, term, kind: 'normal' as const, data });
  b.step({
    type: 'append',
    from: 'a',
    to: 'b',
    term: 2,
    prevLogIndex: 0,
    prevLogTerm: 0,
    entries: [e(1, 1, 'old'), e(2, 2, 'x'), e(3, 2, 'y')],
    leaderCommit: 0,
    readCtx: 0,
  });
  const rd = b.ready();
  storage.append(rd.entries);
  b.advance(rd);
  assert.equal(b.status().commitIndex, 0);
  assert.equal(b.learnCommitted(2, 1), false, 'another term at index 2: not the committed entry');
  assert.equal(b.learnCommitted(4, 2), false, 'beyond the log');
  assert.equal(b.learnCommitted(0, 0), false);
  assert.equal(b.status().commitIndex, 0);
  assert.equal(b.learnCommitted(2, 2), true);
  assert.equal(b.status().commitIndex, 2);
  assert.equal(b.hasReady(), true);
  assert.deepEqual(
    b.ready().committedEntries.map((x) => x.data),
    ['old', 'x'],
  );
  assert.equal(b.learnCommitted(1, 1), false, 'at or below the commit index: nothing to learn');
});
