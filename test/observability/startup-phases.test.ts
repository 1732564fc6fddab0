// The startup allowance on real processes: a node that replays its Raft log into data.db, or
// receives and installs a snapshot from the leader, says so on /readyz (503, reason
// `replaying-log` / `installing-snapshot`) while /livez keeps passing, and becomes ready once it
// has caught up with everything it should have. The replay is made long by losing data.db (what a
// restore from an old volume snapshot or a machine crash does) and applying one entry per
// event-loop turn (TIMESTORE_APPLY_CHUNK_ENTRIES=1); the snapshot transfer by 4 KiB chunks
// (TIMESTORE_SNAPSHOT_CHUNK_BYTES). No timing is asserted: only what the probes answered, in order.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import {
  eventually,
  freePort,
  get,
  NodeProcess,
  post,
  startCluster,
  tempDir,
  type TestCluster,
} from '../helpers/index.js';

const DAY = '2026-12-01';
const BATCHES = 300;
const PER_BATCH = 50;

async function writeBatches(url: string, device: string, batches: number): Promise<void> {
  for (let b = 0; b < batches; b++) {
    const entries = Array.from({ length: PER_BATCH }, (_, i) => ({
      deviceId: device,
      timestamp: new Date(Date.parse(`${DAY}T00:00:00Z`) + (b * PER_BATCH + i) * 1000).toISOString(),
      value: b * PER_BATCH + i,
      // Some bulk, so that data.db (and so the snapshot) is a few hundred KiB.
      attributes: { note: 'x'.repeat(40) },
    }));
    const r = await post(`${url}/api/timeseries`, entries);
    assert.equal(r.status, 201, `batch ${b}: ${r.text}`);
  }
}

/** Points of `device` the node has applied locally (consistency=none: no leader needed). */
async function localCount(url: string, device: string): Promise<number> {
  const r = await get<Array<{ count: number }>>(
    `${url}/api/timeseries/device/${device}?aggregate=count&interval=1d&consistency=none&from=${DAY}T00:00:00Z&to=2026-12-02T00:00:00Z`,
  );
  assert.equal(r.status, 200, r.text);
  return r.json.reduce((a, b) => a + b.count, 0);
}

interface ProbeLog {
  /** Distinct /readyz answers in the order first seen: 'ok' or the 503 reason. */
  readyz: string[];
  livezFailures: string[];
}

/**
 * Polls /readyz and /livez as fast as they answer (connection errors: not up yet) until /readyz is
 * 200 and `done` holds (e.g. every point is there: a follower may be ready before the leader has
 * even decided to send it a snapshot, when it trails by fewer than maxLagEntries entries).
 */
async function watchProbes(
  node: NodeProcess,
  done: () => Promise<boolean> = async () => true,
  timeoutMs = 120_000,
): Promise<ProbeLog> {
  const log: ProbeLog = { readyz: [], livezFailures: [] };
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (!node.proc.running) assert.fail(`node exited while starting.\n${node.describe()}`);
    if (Date.now() > deadline)
      assert.fail(
        `/readyz not 200 within ${timeoutMs} ms; seen ${log.readyz.join(' → ')}\n${node.describe()}`,
      );
    try {
      const [ready, live] = await Promise.all([get(`${node.url}/readyz`), get(`${node.url}/livez`)]);
      const seen = ready.status === 200 ? 'ok' : String(ready.json?.reason ?? ready.status);
      if (log.readyz.at(-1) !== seen) log.readyz.push(seen);
      if (live.status !== 200) log.livezFailures.push(live.text);
      if (ready.status === 200 && (await done())) return log;
    } catch {
      await new Promise((r) => setTimeout(r, 5)); // not listening yet
    }
  }
}

test('a node replaying its Raft log reports replaying-log on /readyz, stays live, then serves everything', async () => {
  const port = await freePort();
  const dataDir = tempDir('timestore-replay-');
  const node = new NodeProcess({
    id: 'r1',
    port,
    dataDir,
    args: ['--peers', `r1=http://127.0.0.1:${port}`, '--election-timeout-ms', '300', '--heartbeat-ms', '50'],
    // No snapshot: the whole log is replayed.
    env: { TIMESTORE_SNAPSHOT_ENTRIES: '1000000', TIMESTORE_APPLY_CHUNK_ENTRIES: '1' },
    readyPath: '/readyz',
  });
  await node.start();
  try {
    await writeBatches(node.url, 'replay-1', BATCHES);
    await node.stop();
    // data.db lost: raft.db still has every committed entry, so the node rebuilds data.db from it.
    for (const f of ['data.db', 'data.db-wal', 'data.db-shm']) rmSync(join(dataDir, f), { force: true });
    const restarted = new NodeProcess({
      id: 'r1',
      port,
      dataDir,
      args: [
        '--peers',
        `r1=http://127.0.0.1:${port}`,
        '--election-timeout-ms',
        '300',
        '--heartbeat-ms',
        '50',
      ],
      env: { TIMESTORE_SNAPSHOT_ENTRIES: '1000000', TIMESTORE_APPLY_CHUNK_ENTRIES: '1' },
      readyPath: null,
    });
    await restarted.start();
    try {
      const seen = await watchProbes(restarted);
      assert.ok(
        seen.readyz.includes('replaying-log'),
        `expected /readyz to report replaying-log during the replay; saw ${seen.readyz.join(' → ')}`,
      );
      assert.equal(seen.readyz.at(-1), 'ok');
      assert.ok(
        seen.readyz.indexOf('replaying-log') < seen.readyz.lastIndexOf('ok'),
        'ready only after the replay',
      );
      assert.deepEqual(seen.livezFailures, [], '/livez passes during the replay (startup allowance)');
      assert.equal(await localCount(restarted.url, 'replay-1'), BATCHES * PER_BATCH);
      assert.match(restarted.output(), /replaying the Raft log into data\.db/);
      assert.match(restarted.output(), /Raft log replay finished/);
      const ms = /"entries":(\d+),"ms":(\d+),"msg":"Raft log replay finished"/.exec(restarted.output());
      console.log(
        `# replay of ${ms?.[1]} entries took ${ms?.[2]} ms; /readyz said ${seen.readyz.join(' → ')}`,
      );
    } finally {
      await restarted.stop();
    }
  } finally {
    if (node.proc.running) await node.stop();
  }
});

test('a follower receiving a snapshot reports installing-snapshot on /readyz, stays live, then has the data', async () => {
  const args = ['--election-timeout-ms', '600', '--heartbeat-ms', '60'];
  const env = {
    TIMESTORE_SNAPSHOT_ENTRIES: '20',
    TIMESTORE_SNAPSHOT_CATCHUP_ENTRIES: '5',
    TIMESTORE_SNAPSHOT_CHUNK_BYTES: '4096',
  };
  const cluster: TestCluster = await startCluster({ size: 3, args, env, readyPath: '/readyz' });
  let restarted: NodeProcess | undefined;
  try {
    const leaderId = await eventually(
      async () =>
        (await get<{ leaderId: string | null }>(`${cluster.nodes[0]!.url}/raft/status`)).json.leaderId,
      'a leader',
    );
    const follower = cluster.nodes.find((n) => n.id !== leaderId)!;
    const leader = cluster.byId(leaderId);
    await follower.stop();
    // Far past the follower's log and the leader's compaction point: only a snapshot can catch it up.
    await writeBatches(leader.url, 'snap-1', BATCHES);
    // The same node again (port, data dir), not waited for: its probes are polled from the first answer.
    restarted = new NodeProcess({
      id: follower.id,
      port: follower.port,
      dataDir: follower.dataDir,
      args: ['--peers', cluster.peers, ...args],
      env,
      readyPath: null,
    });
    await restarted.start();
    const node = restarted;
    const seen = await watchProbes(
      node,
      async () => (await localCount(node.url, 'snap-1')) === BATCHES * PER_BATCH,
    );
    assert.ok(
      seen.readyz.includes('installing-snapshot'),
      `expected /readyz to report installing-snapshot while the snapshot streams in; saw ${seen.readyz.join(' → ')}\n${restarted.describe()}`,
    );
    assert.equal(seen.readyz.at(-1), 'ok');
    assert.deepEqual(seen.livezFailures, [], '/livez passes during the transfer (startup allowance)');
    assert.match(restarted.output(), /snapshot installed into data\.db/);
    console.log(`# snapshot: /readyz said ${seen.readyz.join(' → ')}`);
  } finally {
    if (restarted?.proc?.running) await restarted.stop();
    await cluster.stop();
  }
});
