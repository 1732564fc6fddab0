// Replication across real node processes: writes through a follower, leader crash under load,
// catch-up through a snapshot after the data directory was wiped.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { eventually, get } from '../helpers/index.js';
import { Cluster, WriteLoad, missingOn, writeOne } from './harness.js';

const clusters: Cluster[] = [];
after(async () => {
  await Promise.all(clusters.map((c) => c.close()));
});

test('a write through a follower is acknowledged and readable on every node', async () => {
  const c = await Cluster.start();
  clusters.push(c);
  const [f1, f2] = await c.followers();
  const w = await writeOne(f1!);
  assert.ok(w.ok, `write via follower ${f1!.id} failed: ${w.status}\n${f1!.output().slice(-3000)}`);
  // Linearizable read on the other follower (ReadIndex through the leader) sees it at once.
  const r = await get(`${f2!.url}/api/timeseries/${w.id}`);
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.id, w.id);
  for (const consistency of ['linearizable', 'leader', 'none']) {
    await c.converge();
    for (const n of c.nodes) {
      const q = await get(`${n.url}/api/timeseries/${w.id}?consistency=${consistency}`);
      assert.equal(q.status, 200, `${n.id} ${consistency}: ${q.text}`);
    }
  }
  // Status: the leader lists every member with its match index and lag.
  const leader = await c.leader();
  const st = await leader.status();
  assert.equal(st.members.length, 3);
  for (const m of st.members) assert.equal(typeof m.matchIndex, 'number', JSON.stringify(st));
  // A malformed Raft message is a 4xx problem, not a crash.
  const bad = await fetch(`${f1!.url}/raft/append`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: '{"term":-1}',
  });
  assert.equal(bad.status, 400);
  assert.match(bad.headers.get('content-type') ?? '', /problem\+json/);
  assert.ok(f1!.running);
});

test('SIGKILL of the leader under load: a new leader serves writes; every acknowledged write is on every node', async () => {
  const c = await Cluster.start();
  clusters.push(c);
  const load = new WriteLoad(() => c.live(), 6);
  await load.waitAcked(100);
  const old = await c.leader();
  await old.kill();
  const survivors = c.live();
  const newLeader = await c.leader(survivors);
  assert.notEqual(newLeader.id, old.id);
  await load.waitAcked(100); // the new leader serves writes
  await old.start(); // restart on the same data dir
  await load.waitAcked(50);
  await load.stop();
  await c.converge(c.nodes);
  const acked = load.acked();
  assert.ok(acked.length >= 250);
  for (const n of c.nodes) {
    const missing = await missingOn(n, acked);
    assert.deepEqual(missing, [], `${n.id} lacks ${missing.length} of ${acked.length} acknowledged writes`);
  }
});

test('a node whose data directory was wiped catches up through a snapshot', async () => {
  const c = await Cluster.start({
    env: { TIMESTORE_SNAPSHOT_ENTRIES: '200', TIMESTORE_SNAPSHOT_CATCHUP_ENTRIES: '20' },
  });
  clusters.push(c);
  const load = new WriteLoad(() => c.live(), 4, 0);
  await load.waitAcked(150);
  const victim = (await c.followers())[0]!;
  await victim.kill();
  victim.wipe();
  await load.waitAcked(600);
  // The leader compacted its log past what the wiped node would need.
  const l = await c.leader();
  await eventually(async () => (await l.status()).firstIndex > 10, 'the leader to compact its log');
  await victim.start();
  await load.waitAcked(50);
  await load.stop();
  await c.converge(c.nodes);
  assert.match(victim.output(), /snapshot installed/);
  const st = await victim.status();
  assert.ok(st.snapshotIndex > 0, JSON.stringify(st));
  const missing = await missingOn(victim, load.acked());
  assert.deepEqual(missing, [], `${victim.id} lacks ${missing.length} acknowledged writes`);
});

test('a node whose data.db was lost (raft.db kept) restores its own snapshot and catches up', async () => {
  const c = await Cluster.start({
    env: { TIMESTORE_SNAPSHOT_ENTRIES: '100', TIMESTORE_SNAPSHOT_CATCHUP_ENTRIES: '10' },
  });
  clusters.push(c);
  const load = new WriteLoad(() => c.live(), 4, 0);
  await load.waitAcked(300);
  const victim = (await c.followers())[0]!;
  await eventually(
    async () => (await victim.status()).snapshotIndex > 0,
    `${victim.id} to take a snapshot`,
    60_000,
  );
  await victim.stop();
  for (const f of ['data.db', 'data.db-wal', 'data.db-shm']) rmSync(join(victim.dataDir, f), { force: true });
  await victim.start();
  await load.waitAcked(50);
  await load.stop();
  await c.converge(c.nodes);
  assert.match(victim.output(), /restored the local snapshot/);
  const missing = await missingOn(victim, load.acked());
  assert.deepEqual(missing, [], `${victim.id} lacks ${missing.length} acknowledged writes`);
});
