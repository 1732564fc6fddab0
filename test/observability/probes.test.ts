import { test } from 'node:test';
import assert from 'node:assert/strict';
import express from 'express';
import {
  createEventLoopMonitor,
  leaderReadiness,
  liveness,
  probesRouter,
  readiness,
  startupPhase,
  type EventLoopMonitor,
  type NodePhase,
  type ProbeRaftStatus,
  type ProbeState,
} from '../../src/observability/probes.js';
import { listen } from './helpers.js';

const members = { voters: ['n1', 'n2', 'n3'], learners: ['n4'] };
function raft(over: Partial<ProbeRaftStatus> = {}): ProbeRaftStatus {
  return {
    id: 'n2',
    role: 'Follower',
    leaderId: 'n1',
    term: 4,
    commitIndex: 100,
    appliedIndex: 100,
    membership: members,
    leadTransferee: null,
    ...over,
  };
}
function running(over: Partial<ProbeRaftStatus> = {}, extra: Partial<ProbeState> = {}): ProbeState {
  return { phase: 'running', raft: raft(over), ...extra };
}

test('liveness: table', () => {
  const rows: Array<[string, Parameters<typeof liveness>[0], number, boolean, string?]> = [
    ['healthy running node', { phase: 'running' }, 3, true],
    ['sluggish event loop', { phase: 'running' }, 6000, false, 'event-loop-blocked'],
    ['threshold is inclusive', { phase: 'running' }, 5000, true],
    ['replaying the log may block the loop', { phase: 'replaying' }, 60_000, true],
    ['installing a snapshot may block the loop', { phase: 'installing-snapshot' }, 60_000, true],
    ['starting may block the loop', { phase: 'starting' }, 60_000, true],
    ['stopping with a blocked loop', { phase: 'stopping' }, 6000, false, 'event-loop-blocked'],
    ['fatal error restarts', { phase: 'running', fatalError: 'fsync failed: EIO' }, 0, false, 'fatal-error'],
    [
      'fatal error even during startup',
      { phase: 'replaying', fatalError: 'corrupt raft.db' },
      0,
      false,
      'fatal-error',
    ],
  ];
  for (const [name, state, delay, ok, reason] of rows) {
    const r = liveness(state, delay);
    assert.equal(r.ok, ok, name);
    if (!r.ok) assert.equal(r.reason, reason, name);
  }
  assert.equal(
    liveness({ phase: 'running' }, 600, { maxEventLoopDelayMs: 500 }).ok,
    false,
    'configurable threshold',
  );
});

test('liveness never looks at Raft: a node that lost quorum stays alive', () => {
  // No leader, candidate, cut off: liveness takes no Raft input at all, and passes.
  const lostQuorum: ProbeState = running({ role: 'Candidate', leaderId: null, term: 40 });
  assert.equal(liveness(lostQuorum, 1).ok, true);
  assert.equal(readiness(lostQuorum).ok, false);
});

test('readiness: table', () => {
  const rows: Array<[string, ProbeState, boolean, string?]> = [
    ['follower in sync', running(), true],
    ['leader', running({ id: 'n1', role: 'Leader' }), true],
    [
      'single-node cluster',
      running({ id: 'n1', role: 'Leader', leaderId: 'n1', membership: { voters: ['n1'], learners: [] } }),
      true,
    ],
    ['starting', { phase: 'starting', raft: null }, false, 'starting'],
    ['running but no Raft yet', { phase: 'running', raft: null }, false, 'starting'],
    ['replaying the log', { phase: 'replaying', raft: raft() }, false, 'replaying-log'],
    ['installing a snapshot', { phase: 'installing-snapshot', raft: raft() }, false, 'installing-snapshot'],
    ['stopping', { phase: 'stopping', raft: raft() }, false, 'stopping'],
    ['removed from the cluster', running({ id: 'n9' }), false, 'not-a-member'],
    ['learner (allowed by default)', running({ id: 'n4' }), true],
    ['no leader known', running({ leaderId: null }), false, 'no-leader'],
    ['candidate', running({ role: 'Candidate', leaderId: null }), false, 'no-leader'],
    ['lag exactly at the limit', running({ commitIndex: 1100, appliedIndex: 100 }), true],
    ['lag over the limit', running({ commitIndex: 1101, appliedIndex: 100 }), false, 'lagging'],
    [
      "lag against the leader's commit, not our own",
      running({ commitIndex: 100, appliedIndex: 100 }, { leaderCommitIndex: 5000 }),
      false,
      'lagging',
    ],
    [
      'stale leaderCommitIndex below ours is ignored',
      running({ commitIndex: 300, appliedIndex: 300 }, { leaderCommitIndex: 10 }),
      true,
    ],
  ];
  for (const [name, state, ok, reason] of rows) {
    const r = readiness(state);
    assert.equal(r.ok, ok, `${name}: ${r.detail}`);
    if (!r.ok) {
      assert.equal(r.reason, reason, name);
      assert.ok(r.detail.length > 0);
    }
  }
  assert.equal(
    readiness(running({ commitIndex: 110, appliedIndex: 100 }), { maxLagEntries: 5 }).ok,
    false,
    'configurable lag',
  );
  assert.equal(
    readiness(running({ id: 'n4' }), { learnersReady: false }).ok,
    false,
    'learners can be excluded',
  );
  const lag = readiness(running({ commitIndex: 2000, appliedIndex: 100 }));
  assert.ok(!lag.ok && /1900 entries behind/.test(lag.detail), 'detail names the lag');
});

test('startup phase: replaying below the boot commit index, installing while a transfer is live', () => {
  const base = { appliedIndex: 10, replayUntil: 10, snapshot: null, nowMs: 100_000, snapshotIdleMs: 10_000 };
  const table: Array<[string, Parameters<typeof startupPhase>, NodePhase]> = [
    ['caught up', ['running', base], 'running'],
    ['replaying', ['running', { ...base, appliedIndex: 3 }], 'replaying'],
    ['starting passes through', ['starting', { ...base, appliedIndex: 3 }], 'starting'],
    ['stopping passes through', ['stopping', { ...base, appliedIndex: 3 }], 'stopping'],
    [
      'live transfer',
      ['running', { ...base, snapshot: { index: 50, lastActivityMs: 95_000 } }],
      'installing-snapshot',
    ],
    [
      'a live transfer wins over a replay',
      ['running', { ...base, appliedIndex: 3, snapshot: { index: 50, lastActivityMs: 99_000 } }],
      'installing-snapshot',
    ],
    [
      'abandoned transfer (idle too long)',
      ['running', { ...base, snapshot: { index: 50, lastActivityMs: 90_000 } }],
      'running',
    ],
    [
      'installed (applied reached its index)',
      ['running', { ...base, appliedIndex: 50, snapshot: { index: 50, lastActivityMs: 99_000 } }],
      'running',
    ],
  ];
  for (const [name, args, want] of table) assert.equal(startupPhase(...args), want, name);
});

test('leader readiness: table', () => {
  const rows: Array<[string, ProbeState, boolean, string?]> = [
    ['leader', running({ id: 'n1', role: 'Leader' }), true],
    ['follower', running(), false, 'not-leader'],
    [
      'leader handing over',
      running({ id: 'n1', role: 'Leader', leadTransferee: 'n2' }),
      false,
      'transferring-leadership',
    ],
    [
      'leader still replaying',
      { phase: 'replaying', raft: raft({ id: 'n1', role: 'Leader' }) },
      false,
      'replaying-log',
    ],
    [
      'leader removed from config',
      running({ id: 'n1', role: 'Leader', membership: { voters: ['n2', 'n3'], learners: [] } }),
      false,
      'not-a-member',
    ],
  ];
  for (const [name, state, ok, reason] of rows) {
    const r = leaderReadiness(state);
    assert.equal(r.ok, ok, name);
    if (!r.ok) assert.equal(r.reason, reason, name);
  }
});

test('event-loop monitor reports a blocked loop', async () => {
  const m = createEventLoopMonitor(10);
  try {
    await new Promise((r) => setTimeout(r, 50));
    m.p99DelayMs(); // reset the window
    await new Promise((r) => setTimeout(r, 30));
    const until = performance.now() + 200;
    while (performance.now() < until) {
      /* block the loop */
    }
    await new Promise((r) => setTimeout(r, 30));
    const blocked = m.p99DelayMs();
    assert.ok(blocked >= 150, `expected the 200 ms block to show, got ${blocked}`);
    assert.ok(m.p99DelayMs() < blocked, 'the window resets after a read');
  } finally {
    m.stop();
  }
});

test('probes router: /livez, /readyz, /readyz/leader with problem+json', async () => {
  let state: ProbeState = { phase: 'replaying', raft: null };
  let delay = 0;
  const eventLoop: EventLoopMonitor = { p99DelayMs: () => delay, stop() {} };
  const app = express();
  app.use(
    probesRouter(() => state, { eventLoop, maxLagEntries: 10, info: { nodeId: 'n2', version: '1.2.3' } }),
  );
  const srv = await listen(app);
  const get = async (p: string) => {
    const res = await fetch(srv.url + p);
    return {
      status: res.status,
      type: res.headers.get('content-type') ?? '',
      body: (await res.json()) as Record<string, unknown>,
    };
  };
  try {
    // Startup allowance: alive even with a blocked loop, not ready.
    delay = 30_000;
    assert.equal((await get('/livez')).status, 200);
    let r = await get('/readyz');
    assert.equal(r.status, 503);
    assert.match(r.type, /^application\/problem\+json/);
    assert.equal(r.body.reason, 'replaying-log');
    assert.equal(r.body.status, 503);
    assert.equal(r.body.title, 'Service unavailable');
    assert.equal(r.body.type, 'urn:timestore:problem:unavailable');
    assert.equal(typeof r.body.detail, 'string');

    delay = 0;
    assert.deepEqual(
      (await get('/livez')).body,
      { status: 'ok', nodeId: 'n2', version: '1.2.3' },
      "the API's Livez shape",
    );
    state = running();
    r = await get('/readyz');
    assert.equal(r.status, 200);
    assert.equal(r.body.nodeId, 'n2');
    assert.match(String(r.body.detail), /follower in term 4, leader n1/);
    const post = await fetch(`${srv.url}/readyz`, { method: 'POST' });
    assert.equal(post.status, 405);
    assert.equal(post.headers.get('allow'), 'GET, HEAD');
    await post.text();
    r = await get('/readyz/leader');
    assert.equal(r.status, 503);
    assert.equal(r.body.reason, 'not-leader');

    state = running({ id: 'n1', role: 'Leader' });
    assert.equal((await get('/readyz/leader')).status, 200);

    state = running({ role: 'Candidate', leaderId: null }); // quorum lost
    assert.equal((await get('/livez')).status, 200, 'losing quorum must not fail liveness');
    assert.equal((await get('/readyz')).body.reason, 'no-leader');

    state = running({ commitIndex: 100, appliedIndex: 50 });
    assert.equal((await get('/readyz')).body.reason, 'lagging', 'router passes options through');

    delay = 30_000;
    r = await get('/livez');
    assert.equal(r.status, 503);
    assert.equal(r.body.reason, 'event-loop-blocked');
  } finally {
    await srv.close();
  }
});

test('probes router: a throwing status getter fails readiness, not liveness', async () => {
  const app = express();
  const router = probesRouter(() => {
    throw new Error('raft not started');
  });
  app.use(router);
  const srv = await listen(app);
  try {
    assert.equal((await fetch(`${srv.url}/livez`)).status, 200);
    const r = await fetch(`${srv.url}/readyz`);
    assert.equal(r.status, 503);
    assert.match(((await r.json()) as { detail: string }).detail, /raft not started/);
  } finally {
    router.stop();
    await srv.close();
  }
});
