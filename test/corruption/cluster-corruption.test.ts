// Damaged files of one member of a real 3-node cluster (real processes, real files): the member is
// stopped, a file is damaged, the member is restarted.
//   - data.db: a b-tree page wrecked. The member says so (error log naming the file and where the
//     damaged file was kept), rebuilds data.db from its own snapshot + raft.db, and ends with every
//     acknowledged write.
//   - data.db damaged and the member's snapshot files gone: rebuilt from a peer's snapshot.
//   - raft.db: one byte flipped inside one entry. The member refuses to start, naming the file, the
//     entry and the commands to run; the test runs them and the replaced member ends with every
//     acknowledged write.
//   - the same with TIMESTORE_RAFT_LOG_REPAIR=truncate: the member truncates its log, abstains from
//     elections until it has committed past the lost entries again, and ends with every write.
//   - raft.db-wal ending in a torn frame, data.db-wal cut in the middle of its last frame (writes
//     torn by a crash): SQLite's WAL checksums drop them; the member starts and catches up.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { eventually, get, post } from '../helpers/index.js';
import { Cluster, WriteLoad, missingOn, type ClusterNode } from '../cluster/harness.js';
import { appendTornFrame, flipInside, tearLastWalFrame, wreckLeafPage } from './damage.js';

const clusters: Cluster[] = [];
after(async () => {
  await Promise.all(clusters.map((c) => c.close()));
});

async function ready(n: ClusterNode): Promise<void> {
  await eventually(
    async () => (await get(`${n.url}/readyz`).catch(() => ({ status: 0 }))).status === 200,
    `${n.id} /readyz 200\n${n.output().slice(-3000)}`,
    90_000,
    200,
  );
}

async function assertHasAll(c: Cluster, n: ClusterNode, acked: string[]): Promise<void> {
  await c.converge();
  const missing = await missingOn(n, acked);
  assert.deepEqual(missing, [], `${n.id} lacks ${missing.length} acknowledged writes`);
}

test('data.db of a stopped member damaged: detected on start, kept aside, rebuilt from the local snapshot and raft.db', async () => {
  // Frequent snapshots, so the rebuild goes through the node's own snapshot file and not only the log.
  const c = await Cluster.start({
    env: { TIMESTORE_SNAPSHOT_ENTRIES: '100', TIMESTORE_SNAPSHOT_CATCHUP_ENTRIES: '20' },
  });
  clusters.push(c);
  const load = new WriteLoad(() => c.live(), 4);
  await load.waitAcked(200);
  const [f] = await c.followers();
  await eventually(
    async () => readdirSync(join(f!.dataDir, 'snapshots')).some((x) => /^snap-\d+\.db$/.test(x)),
    `${f!.id} to take a snapshot`,
  );
  await f!.stop();
  const dataDb = join(f!.dataDir, 'data.db');
  assert.equal(existsSync(`${dataDb}-wal`), false, 'a clean stop leaves no -wal: the damage is what is read');
  wreckLeafPage(dataDb, 'points');
  await load.waitAcked(50); // the cluster goes on without it

  await f!.start();
  const line = f!.output().match(/"event":"storage.corrupt".*"movedTo":\["([^"]+)"/);
  assert.ok(line, `no storage.corrupt line naming where data.db went:\n${f!.output().slice(-4000)}`);
  assert.ok(existsSync(line[1]!), `the damaged file is kept at ${line[1]}`);
  assert.match(f!.output(), /data\.db is corrupt; moved it aside/);
  assert.match(f!.output(), /restored the local snapshot/);
  await ready(f!);
  await load.waitAcked(50);
  await load.stop();
  await assertHasAll(c, f!, load.acked());
});

test('data.db damaged and no local snapshot file to rebuild from: rebuilt from a peer snapshot, every acknowledged write back', async () => {
  const c = await Cluster.start({
    env: { TIMESTORE_SNAPSHOT_ENTRIES: '100', TIMESTORE_SNAPSHOT_CATCHUP_ENTRIES: '20' },
  });
  clusters.push(c);
  const load = new WriteLoad(() => c.live(), 4);
  await load.waitAcked(200);
  const [f] = await c.followers();
  const snaps = join(f!.dataDir, 'snapshots');
  await eventually(
    async () => readdirSync(snaps).some((x) => /^snap-\d+\.db$/.test(x)),
    `${f!.id} to take a snapshot (raft.db compacted)`,
  );
  await f!.stop();
  // As after a snapshot installed from the leader (such files are not kept): nothing local to use.
  for (const x of readdirSync(snaps)) if (/^snap-\d+\.db$/.test(x)) rmSync(join(snaps, x));
  wreckLeafPage(join(f!.dataDir, 'data.db'), 'points');
  await load.waitAcked(150); // the peers snapshot past this node's compaction point meanwhile

  await f!.start();
  assert.match(f!.output(), /data\.db is corrupt; moved it aside/);
  assert.match(f!.output(), /fetching a snapshot from a peer/);
  assert.match(f!.output(), /data\.db rebuilt from n\d's snapshot at index \d+/);
  await ready(f!);
  await load.waitAcked(50);
  await load.stop();
  await assertHasAll(c, f!, load.acked());
});

test('raft.db of a stopped member damaged inside an entry: refuses to start and says how to replace it; replaced, it has every write', async () => {
  const c = await Cluster.start();
  clusters.push(c);
  const load = new WriteLoad(() => c.live(), 4);
  await load.waitAcked(150);
  await load.stop();
  await c.converge();
  const [f] = await c.followers();
  await f!.stop();
  const raftDb = join(f!.dataDir, 'raft.db');
  assert.equal(existsSync(`${raftDb}-wal`), false);
  // Inside the entry that carries one acknowledged write: its id is stored once in raft.db.
  const acked = load.acked();
  const victim = acked[Math.floor(acked.length / 2)]!;
  flipInside(raftDb, victim);

  await assert.rejects(f!.start(), /exited|did not|status/i);
  const out = f!.output();
  assert.notEqual(f!.proc!.exitInfo?.code, 0, 'exits with an error');
  assert.match(
    out,
    new RegExp(
      `raft\\.db ${raftDb.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')} is corrupt in entry \\d+: entry \\d+: checksum mismatch`,
    ),
  );
  assert.match(out, /refuses to start/);
  assert.match(
    out,
    /restart it with TIMESTORE_RAFT_LOG_REPAIR=truncate/,
    'entries only: the repair is offered',
  );
  assert.match(out, /"event":"storage.corrupt","file":"raft.db"/);
  const remove = out.match(/curl -X POST (\S+)\/cluster\/remove/);
  assert.ok(remove, `the message gives the remove command:\n${out.slice(-3000)}`);
  assert.match(out, new RegExp(`--join ${remove[1]!.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}`));

  // The procedure the message gives, step by step.
  const r = await post(`${remove[1]}/cluster/remove`, { id: f!.id }, { timeoutMs: 30_000 });
  assert.equal(r.status, 200, r.text);
  renameSync(f!.dataDir, `${f!.dataDir}.corrupt`);
  assert.ok(readFileSync(join(`${f!.dataDir}.corrupt`, 'raft.db')).length > 0, 'the damaged files are kept');
  f!.extraArgs = ['--join', remove[1]!];
  await f!.start();
  await eventually(
    async () => {
      const st = await (await c.leader(c.live().filter((n) => n !== f))).status();
      return st.members.some((m) => m.id === f!.id && m.voter);
    },
    `${f!.id} to be a voter again`,
    90_000,
    200,
  );
  await assertHasAll(c, f!, acked);
});

test('raft.db damaged inside an entry, TIMESTORE_RAFT_LOG_REPAIR=truncate: truncated, abstains until caught up, has every write', async () => {
  const c = await Cluster.start();
  clusters.push(c);
  const load = new WriteLoad(() => c.live(), 4);
  await load.waitAcked(150);
  const [f] = await c.followers();
  // Writes acknowledged before f stops are on f; the load goes on meanwhile, through the others.
  const acked = load.acked();
  await f!.stop();
  const raftDb = join(f!.dataDir, 'raft.db');
  flipInside(raftDb, acked[Math.floor(acked.length / 2)]!);
  await load.waitAcked(50);

  c.env.TIMESTORE_RAFT_LOG_REPAIR = 'truncate'; // only f restarts with it
  await f!.start();
  const repaired = f!
    .output()
    .match(/raft\.db was damaged from entry (\d+): truncated there \(entries \d+\.\.(\d+) dropped\)/);
  assert.ok(repaired, `no repair line:\n${f!.output().slice(-3000)}`);
  assert.match(f!.output(), /"event":"raft.abstain"/);
  await eventually(
    async () => /caught up past the lost entries: votes and campaigns again/.test(f!.output()),
    `${f!.id} to commit past index ${repaired[2]} and vote again`,
    90_000,
    200,
  );
  await ready(f!);
  await load.waitAcked(50);
  await load.stop();
  await assertHasAll(c, f!, load.acked());
  // An ordinary voter again: the others stopped, it can be elected with one of them.
  const st = await f!.status();
  assert.ok(st.members.some((m) => m.id === f!.id && m.voter));
});

test('torn WAL frames of a killed member (raft.db-wal, data.db-wal): SQLite drops them; the member starts and catches up', async () => {
  const c = await Cluster.start();
  clusters.push(c);
  const load = new WriteLoad(() => c.live(), 4);
  await load.waitAcked(100);
  const [f] = await c.followers();
  await f!.kill(); // SIGKILL: the -wal stays, as after a power cut
  const wal = join(f!.dataDir, 'raft.db-wal');
  assert.ok(existsSync(wal), 'a killed node leaves its -wal');
  const pageSize = readFileSync(wal).readUInt32BE(8); // WAL header: page size at offset 8
  // raft.db: a torn transaction after the last complete one. (Cutting the last complete one
  // instead would take back entries this node fsync'd and acknowledged: not a torn write.)
  const before = readFileSync(wal).length;
  assert.ok(appendTornFrame(wal, pageSize) > before);
  // data.db's -wal: its last transaction itself cut mid-frame. A member's data.db fsyncs only at
  // checkpoints, so losing its last applies is allowed: they are re-applied from raft.db.
  const dataWal = join(f!.dataDir, 'data.db-wal');
  assert.ok(existsSync(dataWal), 'a killed member leaves data.db-wal');
  tearLastWalFrame(dataWal, readFileSync(dataWal).readUInt32BE(8));
  await load.waitAcked(50);

  await f!.start();
  assert.doesNotMatch(f!.output(), /corrupt/i);
  await ready(f!);
  await load.waitAcked(50);
  await load.stop();
  await assertHasAll(c, f!, load.acked());
});
