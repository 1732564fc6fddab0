// Compile-time check (npm run typecheck) that the project's contracts fit the structural views the
// observability modules take, so a change in src/raft/types.ts that breaks the wiring fails here.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Status } from '../../src/raft/types.js';
import type { RaftStatusView } from '../../src/observability/metrics.js';
import type { ProbeRaftStatus } from '../../src/observability/probes.js';
import type { RaftLogView } from '../../src/observability/logger.js';

function views(s: Status): [RaftStatusView, ProbeRaftStatus, RaftLogView] {
  return [{ ...s, firstIndex: 1, snapshotIndex: 0 }, s, s];
}

test('a Raft Status is accepted by metrics, probes and the Raft event logger', () => {
  const s: Status = {
    id: 'n1',
    role: 'Leader',
    leaderId: 'n1',
    term: 2,
    vote: 'n1',
    commitIndex: 5,
    appliedIndex: 5,
    lastIndex: 5,
    membership: { voters: ['n1'], learners: [] },
    progress: [{ id: 'n1', match: 5, next: 6, state: 'replicate', learner: false, recentActive: true }],
    leadTransferee: null,
  };
  const [m, p, l] = views(s);
  assert.equal(m.term, 2);
  assert.equal(p.role, 'Leader');
  assert.equal(l.leaderId, 'n1');
});
