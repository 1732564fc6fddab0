// The cluster harness itself: a write load a failed test never stopped is stopped when the
// cluster closes, so the test file ends instead of hanging.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Cluster, WriteLoad } from './harness.js';

test('Cluster.close stops write loads left running', async () => {
  const load = new WriteLoad(() => [], 2);
  assert.equal(load.isRunning, true);
  await new Cluster().close();
  assert.equal(load.isRunning, false);
});
