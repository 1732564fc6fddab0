// A node cut off from the majority acknowledges nothing (the others are SIGSTOPped).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { get } from '../helpers/index.js';
import { Cluster, missingOn, writeOne } from './harness.js';

const clusters: Cluster[] = [];
after(async () => {
  await Promise.all(clusters.map((c) => c.close()));
});

for (const which of ['leader', 'follower'] as const) {
  test(`an isolated ${which} acknowledges no write and serves no linearizable read`, async () => {
    const c = await Cluster.start();
    clusters.push(c);
    const leader = await c.leader();
    const lone = which === 'leader' ? leader : (await c.followers())[0]!;
    const before = await writeOne(lone);
    assert.ok(before.ok, String(before.status));
    const others = c.nodes.filter((n) => n !== lone);
    for (const n of others) n.pause();
    try {
      const outcomes = await Promise.all([writeOne(lone), writeOne(lone), writeOne(lone)]);
      for (const o of outcomes)
        assert.equal(o.ok, false, `isolated ${lone.id} acknowledged a write: ${JSON.stringify(o)}`);
      assert.ok(
        outcomes.some((o) => o.status === 503),
        JSON.stringify(outcomes),
      );
      const r = await get(`${lone.url}/api/timeseries/${before.id}`, { timeoutMs: 60_000 });
      assert.equal(r.status, 503, r.text);
      // Stale local reads are still possible when asked for by name.
      const stale = await get(`${lone.url}/api/timeseries/${before.id}?consistency=none`);
      assert.equal(stale.status, 200, stale.text);
    } finally {
      for (const n of others) n.resume();
    }
    // Healed: the cluster serves writes again, everywhere.
    await c.leader();
    const after = await writeOne(lone);
    assert.ok(after.ok, String(after.status));
    await c.converge(c.nodes);
    for (const n of c.nodes) assert.deepEqual(await missingOn(n, [before.id!, after.id!]), []);
  });
}
