// The integration-test helpers themselves (other suites build clusters on them).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { cliArgs, get, spawnProcess, startCluster, startNodeProcess, waitForHttp } from '../helpers/index.js';

describe('test helpers', () => {
  it('startCluster starts nodes with a shared --peers and stops them', async () => {
    // One member: the only cluster this build can run before the Raft service lands.
    const c = await startCluster({ size: 1 });
    try {
      assert.match(c.peers, /^n1=http:\/\/127\.0\.0\.1:\d+$/);
      assert.equal((await get(`${c.byId('n1').url}/livez`)).status, 200);
    } finally {
      await c.stop();
    }
    assert.equal(c.nodes[0]!.proc.running, false);
  });

  it('a node that fails to start is reported with its output', async () => {
    await assert.rejects(
      startNodeProcess({ args: ['--heartbeat-ms', 'soon'] }),
      /heartbeat-ms[\s\S]*exited|exited[\s\S]*heartbeat-ms/,
    );
  });

  it('waitForHttp fails fast when the process exits, and shows its output', async () => {
    const p = spawnProcess({ args: cliArgs('node', '--listen', 'bad'), name: 'bad-node' });
    await assert.rejects(
      waitForHttp('http://127.0.0.1:9/livez', { process: p, timeoutMs: 60_000 }),
      /bad-node[\s\S]*--listen/,
    );
  });
});
