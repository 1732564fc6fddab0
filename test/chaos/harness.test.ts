// The chaos harness tested end to end against a fake single node (fake-node.ts), so that the harness
// is known to work independently of the real node: process control, clients, the history, and that
// the checkers catch planted bugs (lost acknowledged writes; stale reads).
import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { runCampaign, type CampaignOptions } from './campaign.js';
import { closeAgent } from './http-client.js';

const script = fileURLToPath(new URL('./fake-node.ts', import.meta.url));
const base = (bug: string, seed: number): CampaignOptions => ({
  nodes: 1,
  durationMs: 10_000,
  seed,
  script,
  env: { FAKE_NODE_BUG: bug },
  faultKinds: ['kill', 'pause'],
  nemesis: { holdMs: [300, 1000], recoverMs: [300, 1000] },
  workload: { appendClients: 2, registerClients: 3, thinkMs: [0, 10] },
});

after(() => closeAgent());

describe('chaos harness on a fake node', { timeout: 180_000 }, () => {
  test('a correct node passes: nothing lost, linearizable, faults were injected', async () => {
    const r = await runCampaign(base('', 1));
    assert.equal(r.valid, true, r.problems.join('\n'));
    assert.ok(r.appends && r.appends.acknowledged > 0);
    assert.equal(r.appends.lost, 0);
    assert.equal(r.registers.result, 'ok');
    assert.ok(r.registers.operations > 0);
    assert.ok(Object.values(r.faults).reduce((a, b) => a + b, 0) > 0);
  });

  test('acknowledging before fsync is caught as lost writes after SIGKILL', async () => {
    const r = await runCampaign({ ...base('ack-before-fsync', 2), faultKinds: ['kill'] });
    assert.equal(r.valid, false);
    assert.ok(r.appends && r.appends.lost > 0, JSON.stringify(r.appends));
  });

  test('stale reads are caught by the linearizability checker', async () => {
    const r = await runCampaign({ ...base('stale-reads', 3), faultKinds: ['pause'] });
    assert.equal(r.valid, false);
    assert.equal(r.registers.result, 'illegal');
    assert.ok(r.registers.violations > 0);
  });
});
