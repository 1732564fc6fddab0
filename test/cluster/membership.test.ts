// Membership and graceful leadership hand-over across real node processes.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { eventually, get, post, waitForExit } from '../helpers/index.js';
import { Cluster, WriteLoad, missingOn, writeOne } from './harness.js';

const clusters: Cluster[] = [];
after(async () => {
  await Promise.all(clusters.map((c) => c.close()));
});

test('a 4th node joins as a learner, is promoted once caught up, serves writes, and is removed again', async () => {
  const c = await Cluster.start();
  clusters.push(c);
  const load = new WriteLoad(() => c.live(), 2);
  await load.waitAcked(50);
  const [follower] = await c.followers();
  // --join through a follower: the request is passed on to the leader.
  // A long grace so its `removed` state can be read before it exits on its own.
  const n4 = await c.addNode('n4', ['--join', follower!.url, '--removed-grace-ms', '5000']);
  await n4.start();
  const leader = await c.leader(c.live().filter((n) => n !== n4));
  await eventually(
    async () => (await leader.status()).members.some((m) => m.id === 'n4' && m.voter),
    'n4 to be promoted to voter',
    90_000,
  );
  await load.waitAcked(20);
  const w = await writeOne(n4);
  assert.ok(w.ok, `write via n4: ${w.status}\n${n4.output().slice(-3000)}`);
  await c.converge(c.nodes);
  const acked = load.acked().concat(w.id!);
  assert.deepEqual(await missingOn(n4, acked), []);

  // Remove it (asking any member), then it is gone from the leader's membership.
  const r = await post(`${follower!.url}/cluster/remove`, { id: 'n4' }, { timeoutMs: 30_000 });
  assert.equal(r.status, 200, r.text);
  const l2 = await c.leader(c.nodes.filter((n) => n !== n4));
  await eventually(
    async () => !(await l2.status()).members.some((m) => m.id === 'n4'),
    'n4 to be removed',
    60_000,
  );
  // n4 learns it was removed (a member answers its next Raft request with 410 `removed`), stops
  // taking part, says so, and exits cleanly after its grace period, like a removed etcd member.
  await n4.proc!.waitForOutput(/removed from the cluster; exiting after the grace period/, 60_000);
  const st = await n4.status();
  assert.ok(st.removed, `n4 /raft/status: ${JSON.stringify(st)}`);
  const ready = await get<{ reason?: string }>(`${n4.url}/readyz`);
  assert.equal(ready.status, 503);
  assert.equal(ready.json.reason, 'removed', ready.text);
  const w4 = await writeOne(n4);
  assert.ok(!w4.ok && w4.status === 503, `a write to a removed node: ${w4.status}`);
  const exit = await waitForExit(n4.proc!, 60_000);
  assert.deepEqual(exit, { code: 0, signal: null }, n4.output().slice(-3000));
  assert.match(n4.output(), /shutdown complete/);
  await load.waitAcked(20); // the 3 remaining voters still commit
  await load.stop();
  // Bad membership input is a 4xx problem.
  const bad = await post(`${l2.url}/cluster/join`, { id: '', url: 'nope' });
  assert.equal(bad.status, 400);
});

test('with --on-removed stay a removed node stays up, and joins back with its data when added again', async () => {
  const c = await Cluster.start();
  clusters.push(c);
  const leader0 = await c.leader();
  const n4 = await c.addNode('n4', ['--join', leader0.url, '--on-removed', 'stay']);
  await n4.start();
  await eventually(
    async () => (await leader0.status()).members.some((m) => m.id === 'n4' && m.voter),
    'n4 to be promoted to voter',
    90_000,
  );
  const before = await writeOne(n4);
  assert.ok(before.ok, `write via n4: ${before.status}`);

  const r = await post(`${leader0.url}/cluster/remove`, { id: 'n4' }, { timeoutMs: 30_000 });
  assert.equal(r.status, 200, r.text);
  await n4.proc!.waitForOutput(/staying up as --on-removed stay asks/, 60_000);
  assert.equal((await get<{ reason?: string }>(`${n4.url}/readyz`)).json.reason, 'removed');

  // Added back (same id, same data): it takes part again and serves writes.
  const leader = await c.leader(c.nodes.filter((n) => n !== n4));
  const j = await post(`${leader.url}/cluster/join`, { id: 'n4', url: n4.url }, { timeoutMs: 30_000 });
  assert.equal(j.status, 200, j.text);
  await n4.proc!.waitForOutput(/this node was added back to the cluster/, 60_000);
  await eventually(async () => (await n4.status()).removed === null, 'n4 to report removed: null', 30_000);
  const after = await writeOne(n4);
  assert.ok(after.ok, `write via n4 after rejoining: ${after.status}\n${n4.output().slice(-2000)}`);
  await c.converge(c.nodes);
  assert.deepEqual(await missingOn(n4, [before.id!, after.id!]), []);
  assert.equal(n4.running, true);
});

test('SIGTERM of the leader under load hands leadership over with no failed writes', async () => {
  const c = await Cluster.start();
  clusters.push(c);
  const leader = await c.leader();
  const followers = c.live().filter((n) => n !== leader);
  // Clients write through the followers (the leader's own port goes away when it exits).
  const load = new WriteLoad(() => followers, 6);
  await load.waitAcked(100);
  await leader.stop('SIGTERM');
  assert.match(leader.output(), /leadership transferred/);
  const newLeader = await c.leader(followers);
  assert.notEqual(newLeader.id, leader.id);
  await load.waitAcked(100);
  await load.stop();
  assert.deepEqual(load.failed(), [], `failed writes: ${JSON.stringify(load.failed().slice(0, 5))}`);
  await leader.start();
  await c.converge(c.nodes);
  assert.deepEqual(await missingOn(leader, load.acked()), []);
});

test('POST /cluster/transfer-leadership moves leadership to the named voter', async () => {
  const c = await Cluster.start();
  clusters.push(c);
  const [target] = await c.followers();
  const r = await post(
    `${target!.url}/cluster/transfer-leadership`,
    { to: target!.id },
    { timeoutMs: 30_000 },
  );
  assert.equal(r.status, 200, r.text);
  const l = await c.leader();
  assert.equal(l.id, target!.id);
});
