// Basic behaviour of RaftNode driven through the synchronous TestCluster.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryStorage, RaftNode, type RaftBugs } from '../../src/raft/index.js';
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

test('learnDurableOnLeader: commits a durable entry with the leader as the second of three, nothing else', () => {
  const storage = new MemoryStorage(['a', 'b', 'c']);
  const b = new RaftNode(baseConfig('b', storage));
  const e = (index: number, term: number, data: string) => ({ index, term, kind: 'normal' as const, data });
  const append = (entries: ReturnType<typeof e>[], prevLogIndex: number, prevLogTerm: number) =>
    b.step({
      type: 'append',
      from: 'a',
      to: 'b',
      term: 2,
      prevLogIndex,
      prevLogTerm,
      entries,
      leaderCommit: 0,
      readCtx: 0,
    });
  append([e(1, 1, 'old'), e(2, 2, 'x')], 0, 0);
  // Received, not persisted yet: b's own copy does not count.
  assert.equal(b.learnDurableOnLeader('a', 2, 2), false, 'not persisted here yet');
  const rd = b.ready();
  storage.append(rd.entries);
  b.advance(rd);
  append([e(3, 2, 'y')], 2, 2); // in the log, not persisted
  assert.equal(b.learnDurableOnLeader('a', 3, 2), false, 'index 3 is not persisted here');
  assert.equal(b.learnDurableOnLeader('a', 2, 1), false, 'another term at index 2');
  assert.equal(b.learnDurableOnLeader('b', 2, 2), false, 'b is not the leader');
  assert.equal(b.status().commitIndex, 0);
  assert.equal(b.learnDurableOnLeader('a', 2, 2), true);
  assert.equal(b.status().commitIndex, 2);
  assert.deepEqual(
    b.ready().committedEntries.map((x) => x.data),
    ['old', 'x'],
  );
  assert.equal(b.learnDurableOnLeader('a', 1, 1), true, 'already committed with that term');
  assert.equal(b.learnDurableOnLeader('a', 1, 2), false, 'committed, but another term');
});

test('learnDurableOnLeader: not in a later term than the entry, not with five voters, not on a learner', () => {
  const persisted = (id: string, voters: string[], learners: string[], term: number) => {
    const storage = new MemoryStorage(voters, learners);
    const n = new RaftNode(baseConfig(id, storage));
    n.step({
      type: 'append',
      from: 'a',
      to: id,
      term,
      prevLogIndex: 0,
      prevLogTerm: 0,
      entries: [{ index: 1, term: 2, kind: 'normal', data: 'x' }],
      leaderCommit: 0,
      readCtx: 0,
    });
    const rd = n.ready();
    storage.append(rd.entries);
    n.advance(rd);
    return n;
  };
  // The entry (1, 2) reached b from a leader of term 3 (re-replicated): its copy and the leader's
  // may both be older than an entry of term 3 elsewhere (thesis figure 3.7).
  assert.equal(persisted('b', ['a', 'b', 'c'], [], 3).learnDurableOnLeader('a', 1, 2), false);
  assert.equal(persisted('b', ['a', 'b', 'c'], [], 2).learnDurableOnLeader('a', 1, 2), true);
  assert.equal(persisted('b', ['a', 'b', 'c', 'd', 'e'], [], 2).learnDurableOnLeader('a', 1, 2), false);
  assert.equal(persisted('b', ['a', 'b'], [], 2).learnDurableOnLeader('a', 1, 2), true, 'two voters: both');
  assert.equal(persisted('d', ['a', 'b', 'c'], ['d'], 2).learnDurableOnLeader('a', 1, 2), false, 'a learner');
});

test('readIndex: a read waits for the entries the leader announced durable, not only committed ones', () => {
  const c = new TestCluster(['a', 'b', 'c']);
  const a = c.elect('a');
  c.cut.add('a->b');
  c.cut.add('a->c'); // the entries reach no follower: durable on the leader only
  a.raft.propose('x');
  a.raft.propose('y');
  c.stabilize();
  const st = a.raft.status();
  assert.equal(st.lastIndex, st.commitIndex + 2);
  // Nothing announced: a read is served at the commit index, as before.
  a.raft.readIndex('r1');
  // Entry x was answered to a forwarding follower as durable: reads from now on wait for it.
  const x = st.commitIndex + 1;
  a.raft.announceDurable(x);
  a.raft.readIndex('r2');
  c.cut.clear();
  c.tick(3);
  c.stabilize();
  const at = (id: string) => c.node('a').readStates.find((r) => r.requestId === id)?.index;
  assert.equal(at('r1'), st.commitIndex);
  assert.equal(at('r2'), x);
});

// Thesis figure 3.7, with a durable hint: an old entry that reaches a majority only through a
// later leader is not committed. A follower that counted its copy anyway acknowledges a write
// that the next leader does not have.
function figure37(bugs: RaftBugs): { committedAtB: boolean; nextLeader: string; itsTermAt2: number } {
  const c = new TestCluster(['a', 'b', 'c'], { maxSizePerMsg: 1, maxInflightMsgs: 1, bugs });
  const a = c.node('a');
  const b = c.node('b');
  c.elect('a'); // term 1, its no-op at 1 everywhere
  c.isolate('a');
  a.raft.propose('x'); // (2, 1): durable on a only
  c.stabilize();
  // c campaigns in term 2: b votes for it, a hears of the term and steps down; c's no-op (2, 2)
  // reaches nobody.
  c.heal();
  for (const link of ['a->b', 'b->a', 'a->c']) c.cut.add(link);
  c.node('c').raft.campaign();
  for (let i = 0; i < 10 && c.node('c').raft.status().role !== 'Leader'; i++) c.round();
  assert.equal(c.node('c').raft.status().role, 'Leader');
  c.isolate('c');
  c.stabilize();
  // a leads term 3 with b's vote and replicates (2, 1) to b, but not yet its no-op (3, 3).
  c.heal();
  c.isolate('c');
  a.raft.campaign();
  for (let i = 0; i < 20 && b.storage.lastIndex() < 2; i++) {
    c.drain();
    c.queue = c.queue.map((m) =>
      m.type === 'append' && m.from === 'a' ? { ...m, entries: m.entries.filter((e) => e.index <= 2) } : m,
    );
    const q = c.queue;
    c.queue = [];
    for (const m of q) c.deliver(m);
  }
  assert.equal(a.raft.status().role, 'Leader');
  assert.deepEqual([b.storage.lastIndex(), b.storage.term(2), b.raft.status().term], [2, 1, 3]);
  // b had forwarded x to a, which answered once (2, 1) was durable there.
  const committedAtB = b.raft.learnDurableOnLeader('a', 2, 1);
  // a goes away. c, whose last entry (2, 2) is newer than b's (2, 1), wins b's vote.
  c.heal();
  c.isolate('a');
  b.raft.campaign(); // b loses (c's log is newer), and c hears of the term
  c.stabilize();
  c.node('c').raft.campaign();
  c.stabilize();
  const l = c.leader()!;
  return { committedAtB, nextLeader: l.id, itsTermAt2: l.storage.term(2) };
}

test('learnDurableOnLeader: a copy received in a later term does not count (figure 3.7)', () => {
  // b does not acknowledge x, and the next leader, c, overwrites it with its own (2, 2).
  assert.deepEqual(figure37({}), { committedAtB: false, nextLeader: 'c', itsTermAt2: 2 });
  // The same run with the term check left out: b acknowledges x, which the next leader lacks.
  assert.deepEqual(figure37({ learnDurableInLaterTerm: true }), {
    committedAtB: true,
    nextLeader: 'c',
    itsTermAt2: 2,
  });
});
