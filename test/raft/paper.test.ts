// Unit tests mapped to the rules of the Raft paper (Ongaro & Ousterhout, Figure 2 and §5) and the
// thesis extensions we implement (PreVote, CheckQuorum, §4 membership, §6.4 ReadIndex). Each test
// drives one RaftNode with hand-made messages, so the rule it checks is the only thing in play.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryStorage, RaftNode } from '../../src/raft/index.js';
import type { Entry, HardState, Message, RaftConfig, Ready } from '../../src/raft/index.js';
import { baseConfig } from './harness.js';

interface Opts {
  peers?: string[];
  /** Terms of log entries 1..n. */
  terms?: number[];
  hs?: Partial<HardState>;
  over?: Partial<RaftConfig>;
}

function mk(id: string, o: Opts = {}): { raft: RaftNode; storage: MemoryStorage } {
  const storage = new MemoryStorage(o.peers ?? ['a', 'b', 'c']);
  const ents: Entry[] = (o.terms ?? []).map((t, i) => ({
    index: i + 1,
    term: t,
    kind: 'normal',
    data: `e${i + 1}`,
  }));
  storage.append(ents);
  const last = ents[ents.length - 1]?.term ?? 0;
  storage.setHardState({ term: last, vote: null, commit: 0, ...o.hs });
  return { raft: new RaftNode(baseConfig(id, storage, o.over)), storage };
}

/** Handle one Ready the way the driver must: persist, then return what would be sent. */
function flush(n: { raft: RaftNode; storage: MemoryStorage }): Ready {
  const rd = n.raft.ready();
  if (rd.snapshot) n.storage.applySnapshot(rd.snapshot);
  n.storage.append(rd.entries);
  if (rd.hardState) n.storage.setHardState(rd.hardState);
  n.raft.advance(rd);
  return rd;
}

function sent(n: { raft: RaftNode; storage: MemoryStorage }): Message[] {
  return n.raft.hasReady() ? flush(n).messages : [];
}

function append(
  from: string,
  to: string,
  term: number,
  prev: [number, number],
  ents: Array<[number, number]>,
  commit = 0,
): Message {
  return {
    type: 'append',
    from,
    to,
    term,
    prevLogIndex: prev[0],
    prevLogTerm: prev[1],
    entries: ents.map(([index, t]) => ({ index, term: t, kind: 'normal', data: `x${index}.${t}` })),
    leaderCommit: commit,
    readCtx: 0,
  };
}

function vote(
  from: string,
  to: string,
  term: number,
  lastIndex: number,
  lastTerm: number,
  preVote = false,
): Message {
  return {
    type: 'vote',
    from,
    to,
    term,
    lastLogIndex: lastIndex,
    lastLogTerm: lastTerm,
    preVote,
    transfer: false,
  };
}

function ack(from: string, to: string, term: number, match: number, readCtx = 0): Message {
  return {
    type: 'appendResponse',
    from,
    to,
    term,
    success: true,
    matchIndex: match,
    conflictIndex: 0,
    conflictTerm: 0,
    readCtx,
  };
}

function logTerms(n: { raft: RaftNode }): number[] {
  const v = n.raft.logView();
  const out: number[] = [];
  for (let i = v.firstIndex; i <= v.lastIndex; i++) out.push(v.term(i)!);
  return out;
}

/** Make `a` leader of a 3-node cluster at term `term` (votes from b) and flush. */
function leader(o: Opts = {}) {
  const n = mk('a', o);
  n.raft.campaign();
  const votes = sent(n).filter((m) => m.type === 'vote');
  const t = votes[0]!.term;
  n.raft.step({ type: 'voteResponse', from: 'b', to: 'a', term: t, voteGranted: true, preVote: false });
  assert.equal(n.raft.status().role, 'Leader');
  return n;
}

describe('Figure 2, all servers', () => {
  test('a message with a higher term makes any server adopt it and become follower', () => {
    const l = leader();
    sent(l);
    l.raft.step(ack('b', 'a', 9, 0));
    const st = l.raft.status();
    assert.equal(st.role, 'Follower');
    assert.equal(st.term, 9);
    assert.equal(st.vote, null);
  });

  test('messages from an older term are ignored (and a stale leader is told the newer term)', () => {
    const f = mk('b', { hs: { term: 5 }, over: { checkQuorum: true } });
    f.raft.step(append('a', 'b', 3, [0, 0], [[1, 3]]));
    const out = sent(f);
    assert.equal(f.raft.status().lastIndex, 0);
    assert.equal(out.length, 1);
    assert.equal(out[0]!.type, 'appendResponse');
    assert.equal(out[0]!.term, 5);
  });
});

describe('§5.2 leader election', () => {
  test('election timeout is randomized in [electionTick, 2*electionTick)', () => {
    for (const [r, expected] of [
      [0, 10],
      [0.5, 15],
      [0.9999, 19],
    ] as const) {
      const n = mk('a', { over: { random: () => r } });
      let ticks = 0;
      while (n.raft.status().role === 'Follower') {
        n.raft.tick();
        ticks++;
      }
      assert.equal(ticks, expected, `random ${r}`);
    }
  });

  test('a candidate increments its term, votes for itself, persists that, then requests votes', () => {
    const n = mk('a', { terms: [1, 1], hs: { term: 1 } });
    n.raft.campaign();
    const rd = flush(n);
    assert.deepEqual(rd.hardState, { term: 2, vote: 'a', commit: 0 });
    const votes = rd.messages.filter((m) => m.type === 'vote');
    assert.deepEqual(
      votes.map((m) => m.to),
      ['b', 'c'],
    );
    assert.ok(
      votes.every((m) => m.type === 'vote' && m.term === 2 && m.lastLogIndex === 2 && m.lastLogTerm === 1),
    );
  });

  test('a majority of votes makes a leader, which appends a no-op entry of its term', () => {
    const l = leader({ terms: [1], hs: { term: 1 } });
    const st = l.raft.status();
    assert.equal(st.term, 2);
    assert.equal(st.lastIndex, 2);
    assert.equal(l.raft.logView().entries(2, 3)[0]!.kind, 'noop');
    const apps = sent(l).filter((m) => m.type === 'append');
    assert.equal(apps.length, 2);
  });

  test('each server votes for at most one candidate per term, and the vote is persisted before the reply', () => {
    const n = mk('c', { hs: { term: 1 } });
    n.raft.step(vote('a', 'c', 2, 0, 0));
    const rd = flush(n);
    assert.deepEqual(rd.hardState, { term: 2, vote: 'a', commit: 0 });
    assert.deepEqual(
      rd.messages.map((m) => m.type === 'voteResponse' && m.voteGranted),
      [true],
    );
    n.raft.step(vote('b', 'c', 2, 0, 0));
    assert.deepEqual(
      sent(n).map((m) => m.type === 'voteResponse' && m.voteGranted),
      [false],
    );
    n.raft.step(vote('a', 'c', 2, 0, 0)); // a retransmission is granted again
    assert.deepEqual(
      sent(n).map((m) => m.type === 'voteResponse' && m.voteGranted),
      [true],
    );
  });

  test('a candidate that hears from a leader of its term becomes follower', () => {
    const n = mk('a');
    n.raft.campaign();
    sent(n);
    n.raft.step(append('b', 'a', 1, [0, 0], []));
    assert.equal(n.raft.status().role, 'Follower');
    assert.equal(n.raft.status().leaderId, 'b');
  });

  test('a vote split (rejections from a majority) sends the candidate back to follower', () => {
    const n = mk('a');
    n.raft.campaign();
    sent(n);
    n.raft.step({ type: 'voteResponse', from: 'b', to: 'a', term: 1, voteGranted: false, preVote: false });
    n.raft.step({ type: 'voteResponse', from: 'c', to: 'a', term: 1, voteGranted: false, preVote: false });
    assert.equal(n.raft.status().role, 'Follower');
  });
});

describe('§5.4.1 election restriction', () => {
  const cases: Array<[string, number, number, boolean]> = [
    ['higher last term, shorter log', 1, 3, true],
    ['same last term, longer log', 4, 2, true],
    ['same last term, same length', 3, 2, true],
    ['same last term, shorter log', 2, 2, false],
    ['lower last term, longer log', 9, 1, false],
  ];
  for (const [name, lastIndex, lastTerm, granted] of cases) {
    test(`vote ${granted ? 'granted' : 'refused'}: candidate with ${name}`, () => {
      const n = mk('c', { terms: [1, 2, 2], hs: { term: 2 } });
      n.raft.step(vote('a', 'c', 3, lastIndex, lastTerm));
      const out = sent(n);
      assert.deepEqual(
        out.map((m) => m.type === 'voteResponse' && m.voteGranted),
        [granted],
      );
    });
  }
});

describe('§5.3 log replication (AppendEntries receiver)', () => {
  test('rejects when the log has no entry at prevLogIndex, hinting where its log ends', () => {
    const f = mk('b', { terms: [1, 1] });
    f.raft.step(append('a', 'b', 1, [5, 1], [[6, 1]]));
    const [r] = sent(f);
    assert.ok(r && r.type === 'appendResponse');
    assert.equal(r.success, false);
    assert.equal(r.matchIndex, 5); // the rejected prevLogIndex
    assert.equal(r.conflictIndex, 3);
    assert.equal(r.conflictTerm, 0);
  });

  test('rejects on a term mismatch at prevLogIndex, hinting the first index of the conflicting term', () => {
    const f = mk('b', { terms: [1, 2, 2, 2], hs: { term: 3 } });
    f.raft.step(append('a', 'b', 3, [4, 3], []));
    const [r] = sent(f);
    assert.ok(r && r.type === 'appendResponse');
    assert.equal(r.success, false);
    assert.equal(r.conflictTerm, 2);
    assert.equal(r.conflictIndex, 2);
  });

  test('deletes a conflicting entry and all that follow it, then appends', () => {
    const f = mk('b', { terms: [1, 1, 2, 2], hs: { term: 3 } });
    f.raft.step(append('a', 'b', 3, [2, 1], [[3, 3]]));
    assert.deepEqual(logTerms(f), [1, 1, 3]);
    const rd = flush(f);
    assert.deepEqual(
      rd.entries.map((e) => [e.index, e.term]),
      [[3, 3]],
    );
    assert.deepEqual(f.storage.lastIndex(), 3);
  });

  test('does not truncate on an append whose entries it already has (a stale or duplicated append)', () => {
    const f = mk('b', { terms: [1, 1, 1, 1, 1], hs: { term: 1 } });
    f.raft.step(
      append(
        'a',
        'b',
        1,
        [1, 1],
        [
          [2, 1],
          [3, 1],
        ],
      ),
    );
    assert.deepEqual(logTerms(f), [1, 1, 1, 1, 1]);
    const [r] = sent(f);
    assert.ok(r && r.type === 'appendResponse' && r.success);
  });

  test('commit index = min(leaderCommit, index of last new entry)', () => {
    const f = mk('b', { terms: [1, 1, 1, 1, 1], hs: { term: 1 } });
    // the entries beyond the append are not known to match the leader: commit stops at 3
    f.raft.step(
      append(
        'a',
        'b',
        1,
        [1, 1],
        [
          [2, 1],
          [3, 1],
        ],
        5,
      ),
    );
    assert.equal(f.raft.status().commitIndex, 3);
    f.raft.step(append('a', 'b', 1, [3, 1], [[4, 1]], 2));
    assert.equal(f.raft.status().commitIndex, 3, 'commit never goes back');
    f.raft.step(append('a', 'b', 1, [4, 1], [[5, 1]], 9));
    assert.equal(f.raft.status().commitIndex, 5);
  });

  test('committed entries reach the state machine only after the Ready that persists them', () => {
    const f = mk('b', { hs: { term: 1 } });
    f.raft.step(append('a', 'b', 1, [0, 0], [[1, 1]], 1));
    const rd = f.raft.ready();
    assert.deepEqual(
      rd.entries.map((e) => e.index),
      [1],
    );
    assert.deepEqual(rd.hardState?.commit, 1);
    assert.deepEqual(
      rd.committedEntries.map((e) => e.index),
      [1],
    );
  });
});

describe('§5.3 log replication (leader)', () => {
  test('fast backtracking: a divergent follower is repaired in a few round trips, not one per entry', () => {
    // leader: terms 1 1 1 4 4 5 5 6 6 6 ; follower: 1 1 1 2 2 2 3 3 3 3 3 (Figure 7 (f)-like)
    const l = leader({ terms: [1, 1, 1, 4, 4, 5, 5, 6, 6, 6], hs: { term: 6 } });
    const f = mk('b', { terms: [1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3], hs: { term: 3 } });
    let rounds = 0;
    let toF = sent(l).filter((m) => m.to === 'b');
    while (toF.length > 0 && rounds < 20) {
      rounds++;
      for (const m of toF) f.raft.step(m);
      for (const m of sent(f)) l.raft.step(m);
      toF = sent(l).filter((m) => m.to === 'b' && m.type === 'append' && m.entries.length > 0);
      if (l.raft.status().progress!.find((p) => p.id === 'b')!.match === l.raft.status().lastIndex) break;
    }
    assert.deepEqual(logTerms(f), logTerms(l));
    assert.ok(rounds <= 4, `took ${rounds} round trips`);
  });

  test('§5.4.2: an entry of a previous term is not committed by counting replicas', () => {
    // a has [1@1, 2@2]; it wins term 3 and appends its no-op at 3
    const l = leader({ terms: [1, 2], hs: { term: 2 } });
    sent(l);
    l.raft.step(ack('b', 'a', 3, 2)); // b has entry 2 (term 2): a majority, but not of this term
    assert.equal(l.raft.status().commitIndex, 0);
    l.raft.step(ack('b', 'a', 3, 3)); // the no-op reaches a majority: 1..3 commit together
    assert.equal(l.raft.status().commitIndex, 3);
  });

  test('propose on a non-leader fails with NotLeader naming the known leader', () => {
    const f = mk('b', { hs: { term: 1 } });
    assert.deepEqual(f.raft.propose('x'), { ok: false, error: { code: 'NotLeader', leaderId: null } });
    f.raft.step(append('a', 'b', 1, [0, 0], []));
    assert.deepEqual(f.raft.propose('x'), { ok: false, error: { code: 'NotLeader', leaderId: 'a' } });
  });

  test('probe state sends one append at a time until the follower answers', () => {
    const l = leader();
    const first = sent(l).filter((m) => m.to === 'b' && m.type === 'append');
    assert.equal(first.length, 1);
    l.raft.propose('x');
    l.raft.propose('y');
    assert.equal(
      sent(l).filter((m) => m.to === 'b' && m.type === 'append').length,
      0,
      'paused while the probe is outstanding',
    );
    l.raft.step(ack('b', 'a', 1, 1));
    const st = l.raft.status().progress!.find((p) => p.id === 'b')!;
    assert.equal(st.state, 'replicate');
    const next = sent(l).filter((m) => m.to === 'b' && m.type === 'append');
    assert.equal(next.length, 1);
    assert.equal(next[0]!.type === 'append' && next[0]!.entries.length, 2);
  });
});

describe('thesis §9.6 PreVote and §6.2 CheckQuorum', () => {
  test('PreVote: a node that cannot win does not bump its term', () => {
    const n = mk('a', { hs: { term: 1 }, over: { preVote: true } });
    n.raft.campaign();
    const rd = flush(n);
    assert.equal(rd.hardState, null);
    assert.equal(n.raft.status().role, 'PreCandidate');
    assert.ok(rd.messages.every((m) => m.type === 'vote' && m.preVote && m.term === 2));
    n.raft.step({ type: 'voteResponse', from: 'b', to: 'a', term: 1, voteGranted: false, preVote: true });
    n.raft.step({ type: 'voteResponse', from: 'c', to: 'a', term: 1, voteGranted: false, preVote: true });
    assert.equal(n.raft.status().term, 1);
    assert.equal(n.raft.status().role, 'Follower');
  });

  test('PreVote: winning the pre-election starts a real one', () => {
    const n = mk('a', { hs: { term: 1 }, over: { preVote: true } });
    n.raft.campaign();
    sent(n);
    n.raft.step({ type: 'voteResponse', from: 'b', to: 'a', term: 2, voteGranted: true, preVote: true });
    assert.equal(n.raft.status().role, 'Candidate');
    assert.equal(n.raft.status().term, 2);
  });

  test('CheckQuorum: a leader that hears from no quorum for an election timeout steps down', () => {
    const l = leader({ over: { checkQuorum: true } });
    sent(l);
    for (let i = 0; i < 9; i++) l.raft.tick();
    l.raft.step(ack('b', 'a', 1, 1)); // b answers within the first timeout: a keeps leading
    l.raft.tick();
    assert.equal(l.raft.status().role, 'Leader');
    for (let i = 0; i < 10; i++) l.raft.tick(); // nobody answers during the next one
    assert.equal(l.raft.status().role, 'Follower');
  });

  test('CheckQuorum: a follower that hears from its leader ignores vote requests (leader lease)', () => {
    const f = mk('c', { hs: { term: 1 }, over: { checkQuorum: true } });
    f.raft.step(append('a', 'c', 1, [0, 0], []));
    sent(f);
    f.raft.step(vote('b', 'c', 2, 5, 1));
    assert.equal(f.raft.status().term, 1);
    assert.deepEqual(sent(f), []);
    // a transfer (after TimeoutNow) overrides the lease
    f.raft.step({ ...vote('b', 'c', 2, 5, 1), transfer: true } as Message);
    assert.equal(f.raft.status().term, 2);
  });
});

describe('thesis §4 membership and §6.4 reads', () => {
  test('a config entry takes effect when appended, and is undone if truncated', () => {
    const f = mk('b', { hs: { term: 1 } });
    const cc: Message = {
      ...append('a', 'b', 1, [0, 0], []),
      entries: [
        { index: 1, term: 1, kind: 'config', data: JSON.stringify({ type: 'addLearner', nodeId: 'd' }) },
      ],
    } as Message;
    f.raft.step(cc);
    assert.deepEqual(f.raft.status().membership.learners, ['d']);
    f.raft.step(append('c', 'b', 2, [0, 0], [[1, 2]]));
    assert.deepEqual(f.raft.status().membership.learners, []);
  });

  test('learners replicate but never campaign and are not counted for commit', () => {
    const n = mk('d', { peers: ['a', 'b', 'c'] });
    for (let i = 0; i < 100; i++) n.raft.tick();
    assert.equal(n.raft.status().role, 'Follower');
    assert.deepEqual(sent(n), []);
  });

  test('ReadIndex is held until the leader commits an entry of its term, then confirmed by a quorum round', () => {
    const l = leader({ terms: [1], hs: { term: 1 } });
    sent(l);
    l.raft.readIndex('r1');
    assert.deepEqual(flush(l).readStates, []);
    l.raft.step(ack('b', 'a', 2, 2)); // no-op committed: the read starts its round
    const hb = sent(l).filter((m) => m.type === 'append' && m.readCtx > 0);
    assert.ok(hb.length >= 2);
    const ctx = (hb[0] as Extract<Message, { type: 'append' }>).readCtx;
    l.raft.step(ack('c', 'a', 2, 2, ctx));
    assert.deepEqual(flush(l).readStates, [{ requestId: 'r1', index: 2 }]);
  });
});
