// Batched forwarding across real node processes (src/node/raft/forward-batcher.ts): concurrent
// writes through a follower leave in shared /raft/forward requests, each write is acknowledged
// and stored exactly once, and counted once in the follower's timestore_forwarded_writes_total;
// the leader answers a batch command by command, a bad command alone with a 400.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { get, post } from '../helpers/index.js';
import { Cluster } from './harness.js';

const clusters: Cluster[] = [];
after(async () => {
  await Promise.all(clusters.map((c) => c.close()));
});

function sample(text: string, series: string): number {
  const line = text.split('\n').find((l) => l.startsWith(series + ' '));
  return line ? Number(line.slice(series.length + 1)) : 0;
}

const FORWARDS =
  'timestore_http_request_duration_seconds_count{method="POST",route="/raft/forward",status="200"}';
const FORWARDED_OK = 'timestore_forwarded_writes_total{result="ok"}';

test('concurrent writes through a follower share forwards, and each is stored and counted once', async () => {
  const c = await Cluster.start();
  clusters.push(c);
  const leader = await c.leader();
  const [f] = await c.followers();
  const forwardsBefore = sample(await (await get(`${leader.url}/metrics`)).text, FORWARDS);
  const n = 60;
  const rs = await Promise.all(
    Array.from({ length: n }, (_, i) =>
      post(
        `${f!.url}/api/timeseries`,
        { deviceId: `batch-${i % 4}`, timestamp: new Date(1_700_000_000_000 + i).toISOString(), value: i },
        { timeoutMs: 30_000 },
      ),
    ),
  );
  for (const r of rs) assert.equal(r.status, 201, r.text);
  const ids = rs.map((r) => (r.json as { id: string }).id);
  assert.equal(new Set(ids).size, n);
  // Read back on the leader: every write, with its own value.
  for (const [i, id] of ids.entries()) {
    const q = await get(`${leader.url}/api/timeseries/${id}?consistency=leader`);
    assert.equal(q.status, 200, q.text);
    assert.equal(q.json.value, i);
  }
  const count = await get(`${leader.url}/api/timeseries?deviceId=batch-0&limit=100&consistency=leader`);
  assert.equal(count.status, 200, count.text);
  assert.equal(count.json.length, n / 4, 'nothing stored twice');
  const forwards = sample(await (await get(`${leader.url}/metrics`)).text, FORWARDS) - forwardsBefore;
  assert.ok(
    forwards >= 1 && forwards < n,
    `${n} writes took ${forwards} forwards: expected some to share one`,
  );
  assert.equal(sample((await get(`${f!.url}/metrics`)).text, FORWARDED_OK), n, 'counted once per write');
});

test('the leader answers a forwarded batch command by command; a malformed batch is a 400', async () => {
  const c = clusters[0]!;
  const leader = await c.leader();
  const put = (id: string, requestId = randomUUID()) => ({
    requestId,
    ops: [{ op: 'put', point: { id, deviceId: 'fb', ts: 1_700_000_000_000_000, value: 1 } }],
  });
  const a = randomUUID();
  const dup = randomUUID();
  const r = await post(`${leader.url}/raft/forward`, {
    commands: [put(a), put('not-a-uuid'), put(randomUUID(), dup), put(randomUUID(), dup)],
  });
  assert.equal(r.status, 200, r.text);
  const results = r.json.results as Array<Record<string, unknown>>;
  assert.equal(results.length, 4);
  assert.equal(typeof results[0]!.index, 'number');
  assert.equal(results[1]!.status, 400);
  assert.match(String(results[1]!.detail), /ops\.0\.point\.id/);
  // The same request id twice in a batch is one write (the dedup of retried forwards).
  assert.equal(results[2]!.index, results[3]!.index);
  assert.equal((await get(`${leader.url}/api/timeseries/${a}?consistency=leader`)).status, 200);

  for (const body of [{ commands: [] }, { command: put(randomUUID()), commands: [put(randomUUID())] }, {}]) {
    const bad = await post(`${leader.url}/raft/forward`, body);
    assert.equal(bad.status, 400, `${JSON.stringify(body)}: ${bad.text}`);
    assert.match(bad.contentType, /problem\+json/);
  }
  // A follower is not the place for a forward: 421 with the leader's id.
  const [f] = await c.followers();
  const nl = await post(`${f!.url}/raft/forward`, { commands: [put(randomUUID())] });
  assert.equal(nl.status, 421, nl.text);
  assert.equal(nl.json.leaderId, leader.id);
});
