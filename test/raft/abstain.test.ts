// A voter whose log lost entries it had acknowledged (a damaged raft.db truncated on disk) must not
// help elect a leader that lacks a committed entry. RaftConfig.abstainUntil makes it grant no vote
// and never campaign until its commit index reaches its old last index. The scenario:
//   a leads a, b, c; E is replicated to b only and committed by {a, b}; b then loses E (truncated
//   log); a goes away. Without abstention b votes for c (equally up to date without E) and the new
//   leader overwrites the committed E: the control case shows that loss. With abstention no leader
//   is elected without a, and once a is back E survives everywhere, and b votes again.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryStorage, RaftNode } from '../../src/raft/index.js';
import { TestCluster, baseConfig } from './harness.js';

/** Runs the scenario up to "b lost E, a isolated"; returns the cluster and E's index. */
function lostCommittedEntry(abstain: boolean): { c: TestCluster; indexE: number } {
  const c = new TestCluster(['a', 'b', 'c']);
  c.elect('a');
  c.node('a').raft.propose('x1');
  c.stabilize();
  c.cut.add('a->c');
  const r = c.node('a').raft.propose('E');
  assert.ok(r.ok);
  c.stabilize();
  c.tick(1); // a heartbeat carries the new commit index to b
  const indexE = r.index;
  assert.ok(c.node('a').raft.status().commitIndex >= indexE, 'E is committed by {a, b}');
  assert.equal(c.node('c').storage.lastIndex() < indexE, true, 'c never got E');

  // b restarts with its log truncated before E (what the damaged-raft.db repair does on disk):
  // term and vote kept, commit index lowered to the last entry it still has.
  const old = c.node('b').storage;
  const hs = old.hardStateSnapshot();
  const s = new MemoryStorage(['a', 'b', 'c']);
  s.append(old.entries(1, indexE));
  s.setHardState({ ...hs, commit: Math.min(hs.commit, indexE - 1) });
  const raft = new RaftNode(
    baseConfig('b', s, { ...c.over, applied: 0, ...(abstain ? { abstainUntil: indexE } : {}) }),
  );
  c.nodes.set('b', { id: 'b', raft, storage: s, applied: [], readStates: [], snap: null });
  c.isolate('a');
  return { c, indexE };
}

const leaderAmong = (c: TestCluster, ids: string[]) =>
  ids.find((id) => c.node(id).raft.status().role === 'Leader') ?? null;

test('control: without abstention, the truncated voter elects a leader that overwrites a committed entry', () => {
  const { c, indexE } = lostCommittedEntry(false);
  c.tick(100, ['b', 'c']);
  const l = leaderAmong(c, ['b', 'c']);
  assert.ok(l, 'b and c elect a leader without a');
  const there = c.node(l).storage.entries(indexE, indexE + 1)[0]!;
  assert.notEqual(there.data, 'E', 'the committed entry E is gone from the new leader: the hazard is real');
});

test('abstaining: no leader without a; with a back, E is kept on every node; then b votes again', () => {
  const { c, indexE } = lostCommittedEntry(true);
  for (let i = 0; i < 20; i++) {
    c.tick(10, ['b', 'c']);
    assert.equal(leaderAmong(c, ['b', 'c']), null, 'no leader may be elected through b while it lacks E');
  }
  c.heal();
  // a is the only electable node (c lacks E, b abstains): wait for it to lead in a new term.
  for (
    let i = 0;
    i < 100 && !(leaderAmong(c, ['a', 'b', 'c']) === 'a' && c.node('b').raft.status().commitIndex >= indexE);
    i++
  )
    c.tick(1);
  assert.equal(leaderAmong(c, ['b', 'c']), null);
  const leader = c.node('a').raft.status();
  assert.equal(leader.role, 'Leader');
  c.node('a').raft.propose('after');
  c.stabilize();
  c.tick(2);
  for (const id of ['a', 'b', 'c']) {
    const e = c.node(id).storage.entries(indexE, indexE + 1)[0]!;
    assert.equal(e.data, 'E', `${id} has E at ${indexE}`);
    assert.ok(c.node(id).raft.status().commitIndex >= indexE, `${id} committed past E`);
  }
  // Caught up: b is an ordinary voter again. With a gone, b and c elect a leader, and it has E.
  c.isolate('a');
  c.tick(100, ['b', 'c']);
  const l = leaderAmong(c, ['b', 'c']);
  assert.ok(l, 'b and c can elect a leader again');
  assert.equal(c.node(l).storage.entries(indexE, indexE + 1)[0]!.data, 'E');
});

test('abstaining: a leadership transfer to the truncated voter does not make it campaign', () => {
  const { c } = lostCommittedEntry(true);
  c.heal();
  c.tick(1);
  c.node('b').raft.step({ type: 'timeoutNow', from: 'a', to: 'b', term: c.node('b').raft.status().term });
  c.stabilize();
  assert.notEqual(c.node('b').raft.status().role, 'Candidate');
  assert.notEqual(c.node('b').raft.status().role, 'Leader');
});
