// A write acknowledged by a node is visible to a `consistency=none` read on that same node right
// after the acknowledgement, on the leader and on a follower that forwarded it. Writes of puts are
// acknowledged at commit and applied to data.db in batches (src/node/raft/driver.ts); a local read
// applies what is committed first (RaftDriver.applyCommitted). Without that, most reads below
// would run before the batch and miss the write they follow.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { get, post } from '../helpers/index.js';
import { Cluster } from './harness.js';

const clusters: Cluster[] = [];
after(async () => {
  await Promise.all(clusters.map((c) => c.close()));
});

test('a consistency=none read on the node that acknowledged a write sees it, on the leader and on a follower', async () => {
  const c = await Cluster.start();
  clusters.push(c);
  const leader = await c.leader();
  const [follower] = await c.followers();
  for (const node of [leader, follower!]) {
    for (let i = 0; i < 40; i++) {
      const w = await post(`${node.url}/api/timeseries`, {
        deviceId: `ryw-${node.id}`,
        timestamp: new Date(1_700_000_000_000 + i).toISOString(),
        value: i,
      });
      assert.equal(w.status, 201, w.text);
      const id = (w.json as { id: string }).id;
      const r = await get(`${node.url}/api/timeseries/${id}?consistency=none`);
      assert.equal(r.status, 200, `write ${i} through ${node.id}, read back there at once: ${r.text}`);
      assert.equal(r.json.value, i);
    }
  }
});

// A follower acknowledges a forwarded put once its own copy and the leader's are durable
// (RaftNode.learnDurableOnLeader), possibly before the leader has counted that follower's answer.
// A linearizable read on any node must still see it: the leader reads from the highest entry it
// announced durable, not only from its commit index (RaftNode.readFloor). The simulator's planted
// bug readFloorIgnoresDurable shows the check that fails without it; here the real processes.
test('a write acknowledged by a follower is seen by a linearizable read begun after it, on every node', async () => {
  const c = await Cluster.start();
  clusters.push(c);
  const leader = await c.leader();
  const followers = await c.followers();
  const [writer, other] = followers as [(typeof followers)[number], (typeof followers)[number]];
  for (let i = 0; i < 60; i++) {
    const w = await post(`${writer.url}/api/timeseries`, {
      deviceId: 'lin-follower',
      timestamp: new Date(1_700_000_000_000 + i).toISOString(),
      value: i,
    });
    assert.equal(w.status, 201, w.text);
    const id = (w.json as { id: string }).id;
    const reader = [leader, other][i % 2]!;
    const r = await get(`${reader.url}/api/timeseries/${id}?consistency=linearizable`);
    assert.equal(r.status, 200, `write ${i} through ${writer.id}, read on ${reader.id}: ${r.text}`);
    assert.equal(r.json.value, i);
  }
});
