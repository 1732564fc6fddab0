// Pure parts of "a removed node retires": which peers a node answers 410 `removed`, and the
// readiness verdict of a removed node. The live behaviour is in membership.test.ts.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { RemovedPeers } from '../../src/node/raft/removal.js';
import { readiness } from '../../src/observability/probes.js';

test('a removed peer is remembered until it is added again; our own removal is reported', () => {
  const r = new RemovedPeers('n1');
  assert.equal(r.applied({ type: 'remove', nodeId: 'n4' }), false);
  assert.equal(r.has('n4'), true);
  // Re-added under the same id (a pod that came back): a member again, no 410 for it.
  r.applied({ type: 'addLearner', nodeId: 'n4', context: 'http://h4' });
  assert.equal(r.has('n4'), false);
  assert.equal(r.applied({ type: 'remove', nodeId: 'n1' }), true);
  assert.equal(r.has('n1'), false, 'a node never answers itself');
});

test('a removed node is not ready, whatever its phase and Raft state say', () => {
  const raft = {
    id: 'n4',
    role: 'Follower',
    leaderId: 'n1',
    term: 3,
    commitIndex: 10,
    appliedIndex: 10,
    membership: { voters: ['n1', 'n2', 'n3', 'n4'], learners: [] },
  };
  assert.equal(readiness({ phase: 'running', raft }).ok, true);
  const r = readiness({ phase: 'stopping', raft, removed: 'node n4 was removed' });
  assert.deepEqual(r, { ok: false, reason: 'removed', detail: 'node n4 was removed' });
});
