// Observability on a live cluster: three real `timestore node --peers ...` processes on 127.0.0.1,
// tracing exported to an OTLP/HTTP JSON receiver in this test. One cluster for every case; the
// probe case that SIGSTOPs two nodes runs last. Checked: /metrics passes the real `promtool check
// metrics` and has sensible Raft values; a real Prometheus scraping the three nodes answers with
// the values read directly; every metric the Grafana dashboards query exists on a live node;
// /livez, /readyz and /readyz/leader; a write sent to a follower is one trace across two nodes.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import {
  eventually,
  get,
  post,
  request,
  repoRoot,
  startCluster,
  type NodeProcess,
  type TestCluster,
} from '../helpers/index.js';
import { dashboardQueries, definedSeries, loadDashboard, metricNamesInExpr } from './dashboard-metrics.js';
import { otlpReceiver, startPrometheus, type PrometheusServer, type ReceivedSpan } from './helpers.js';

const ELECTION_MS = 1_000;
const HEARTBEAT_MS = 100;

let cluster: TestCluster;
let rx: Awaited<ReturnType<typeof otlpReceiver>>;

before(async () => {
  rx = await otlpReceiver();
  cluster = await startCluster({
    size: 3,
    args: ['--election-timeout-ms', String(ELECTION_MS), '--heartbeat-ms', String(HEARTBEAT_MS)],
    env: {
      OTEL_EXPORTER_OTLP_ENDPOINT: rx.url,
      OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
      OTEL_BSP_SCHEDULE_DELAY: '200',
      OTEL_NODE_RESOURCE_DETECTORS: 'none',
      // Small snapshots, often: a follower that falls behind gets one.
      TIMESTORE_SNAPSHOT_ENTRIES: '20',
      TIMESTORE_SNAPSHOT_CATCHUP_ENTRIES: '5',
      OTEL_TRACES_EXPORTER: undefined,
      OTEL_SDK_DISABLED: undefined,
    },
    startTimeoutMs: 120_000,
  });
  await stableLeader();
});

after(async () => {
  for (const n of cluster?.nodes ?? []) {
    if (n.proc?.running && n.proc.child.pid) process.kill(n.proc.child.pid, 'SIGCONT');
  }
  await cluster?.kill();
  rx?.server.closeAllConnections();
  await new Promise((r) => rx?.server.close(r));
});

interface RaftStatus {
  role: string;
  leaderId: string | null;
  term: number;
  commitIndex: number;
}

/** Waits until every node agrees on one leader in one term; returns it and the followers. */
async function stableLeader(): Promise<{ leader: NodeProcess; followers: NodeProcess[]; term: number }> {
  return eventually(
    async () => {
      const st = await Promise.all(
        cluster.nodes.map(
          async (n) => (await get<RaftStatus>(`${n.url}/raft/status`, { timeoutMs: 5_000 })).json,
        ),
      );
      const leaderId = st[0]?.leaderId;
      if (!leaderId || !st.every((s) => s.leaderId === leaderId && s.term === st[0]!.term)) return undefined;
      const leader = cluster.byId(leaderId);
      if (st[cluster.nodes.indexOf(leader)]?.role !== 'Leader') return undefined;
      return { leader, followers: cluster.nodes.filter((n) => n !== leader), term: st[0]!.term };
    },
    'one leader known to all three nodes',
    120_000,
    200,
  );
}

async function metricsText(n: NodeProcess): Promise<string> {
  const res = await get(`${n.url}/metrics`, { timeoutMs: 10_000 });
  assert.equal(res.status, 200);
  assert.match(res.contentType, /^text\/plain/);
  return res.text;
}

/** Value of one exposition sample, e.g. sample(text, 'timestore_raft_role{role="Leader"}'). */
function sample(text: string, series: string): number | undefined {
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) continue;
    const i = line.lastIndexOf(' ');
    if (line.slice(0, i) === series) return Number(line.slice(i + 1));
  }
  return undefined;
}

function write(n: NodeProcess, value: number, headers: Record<string, string> = {}) {
  return post(
    `${n.url}/api/timeseries`,
    { deviceId: 'obs-live', timestamp: new Date(Date.UTC(2026, 0, 1, 0, 0, value)).toISOString(), value },
    { headers, timeoutMs: 30_000 },
  );
}

test('/metrics of every member passes promtool and carries sensible Raft figures', async () => {
  const { leader, term } = await stableLeader();
  const texts = await Promise.all(cluster.nodes.map(metricsText));
  for (const [i, text] of texts.entries()) {
    const r = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
    assert.equal(r.status, 0, `promtool on ${cluster.nodes[i]!.id}: ${r.stdout}${r.stderr}`);
  }
  // Exactly one leader by the role gauge; the term is the cluster's.
  const leaders = texts.map((t) => sample(t, 'timestore_raft_role{role="Leader"}'));
  assert.deepEqual(
    leaders,
    cluster.nodes.map((n) => (n === leader ? 1 : 0)),
  );
  for (const t of texts) {
    assert.ok(sample(t, 'timestore_raft_term')! >= term && term > 0);
    assert.equal(sample(t, 'timestore_raft_has_leader'), 1);
    assert.equal(sample(t, 'timestore_raft_members{kind="voter"}'), 3);
    assert.ok((sample(t, 'timestore_storage_size_bytes{file="raft.db"}') ?? 0) > 0);
    assert.ok((sample(t, 'timestore_storage_size_bytes{file="data.db"}') ?? 0) > 0);
    assert.equal(sample(t, 'timestore_build_info{version="0.1.0"}'), 1);
  }
  // Raft events are logged at info: every node logged who the leader is.
  for (const n of cluster.nodes) {
    assert.ok(
      logLines(n).some((l) => l.event === 'raft.leader' && l.leaderId === leader.id && l.level === 'info'),
      `${n.id} logged raft.leader ${leader.id}`,
    );
  }
  const lt = texts[cluster.nodes.indexOf(leader)]!;
  assert.equal(sample(lt, 'timestore_raft_is_leader'), 1);
  // Per-peer progress only on the leader, one series per follower.
  for (const f of cluster.nodes.filter((n) => n !== leader)) {
    assert.notEqual(sample(lt, `timestore_raft_peer_match_index{peer="${f.id}"}`), undefined);
    // AppendEntries round trips (heartbeats included) are timed per peer.
    assert.ok((sample(lt, `timestore_raft_append_duration_seconds_count{peer="${f.id}"}`) ?? 0) > 0);
  }

  // Writes move the commit index on the leader.
  const before = sample(lt, 'timestore_raft_commit_index')!;
  assert.ok(before > 0);
  for (let i = 0; i < 3; i++) assert.equal((await write(leader, i)).status, 201);
  const after = sample(await metricsText(leader), 'timestore_raft_commit_index')!;
  assert.ok(after >= before + 3, `commit index ${before} -> ${after}`);
  // Puts are acknowledged at commit and applied with the next batch (a few ms later).
  const lt2 = await eventually(
    async () => {
      const t = await metricsText(leader);
      return (sample(t, 'timestore_raft_applied_index') ?? 0) >= before + 3 ? t : null;
    },
    `the leader to apply up to ${before + 3}`,
  );
  assert.ok((sample(lt2, 'timestore_ingested_points_total{format="json"}') ?? 0) >= 3);
  // The loop's own timings (fed by the driver's observer): proposals, commit, persist, apply.
  assert.ok(
    (sample(lt2, 'timestore_raft_proposals_total{result="committed"}') ?? 0) >= 3,
    'committed proposals',
  );
  assert.ok((sample(lt2, 'timestore_raft_commit_duration_seconds_count') ?? 0) >= 3, 'commit durations');
  assert.ok((sample(lt2, 'timestore_raft_persist_duration_seconds_count') ?? 0) >= 1, 'persist durations');
  assert.ok((sample(lt2, 'timestore_raft_apply_duration_seconds_count') ?? 0) >= 1, 'apply durations');
  assert.equal(sample(lt2, 'timestore_raft_proposals_pending'), 0);
  // Every follower applies them too (the scrape reads the live status).
  await eventually(
    async () => {
      for (const f of cluster.nodes) {
        if ((sample(await metricsText(f), 'timestore_raft_applied_index') ?? 0) < before + 3) return false;
      }
      return true;
    },
    'followers applied the writes',
    60_000,
  );
});

test('a bad request is counted by reason; a write to a follower is counted as forwarded', async () => {
  const { followers } = await stableLeader();
  const f = followers[0]!;
  const bad = await request('POST', `${f.url}/api/timeseries`, {
    body: '{"deviceId": ',
    headers: { 'content-type': 'application/json' },
  });
  assert.equal(bad.status, 400);
  const invalid = await post(`${f.url}/api/timeseries`, { deviceId: '', value: 'x' });
  assert.equal(invalid.status, 400);
  const res = await write(f, 10);
  assert.equal(res.status, 201, res.text);
  const t = await metricsText(f);
  assert.equal(sample(t, 'timestore_rejected_inputs_total{reason="malformed_json"}'), 1);
  assert.equal(sample(t, 'timestore_rejected_inputs_total{reason="validation"}'), 1);
  assert.ok((sample(t, 'timestore_forwarded_writes_total{result="ok"}') ?? 0) >= 1);
  // A lone forwarded write in a cluster of three: acknowledged from the follower's own copy.
  assert.ok((sample(t, 'timestore_forwarded_writes_own_copy_total') ?? 0) >= 1);
  assert.ok((sample(t, 'timestore_ingested_points_total{format="json"}') ?? 0) >= 1);
  assert.ok(
    (sample(
      t,
      'timestore_http_request_duration_seconds_count{method="POST",route="/api/timeseries",status="201"}',
    ) ?? 0) >= 1,
  );
});

test('a real Prometheus scraping the three nodes answers with the values seen directly', async (t) => {
  const prom: PrometheusServer = await startPrometheus(
    cluster.nodes.map((n) => `${n.host}:${n.port}`),
    { job: 'timestore' },
  );
  t.after(() => prom.stop());
  const { leader } = await stableLeader();
  // All three targets scraped.
  await eventually(
    async () => (await prom.query('up{job="timestore"} == 1')).length === 3,
    'three targets up',
    60_000,
    250,
  );
  const leaders = await prom.queryEventually('timestore_raft_is_leader == 1');
  assert.equal(leaders.length, 1);
  assert.equal(leaders[0]!.metric.instance, `${leader.host}:${leader.port}`);
  const direct = await metricsText(leader);
  const term = await prom.queryEventually(`timestore_raft_term{instance="${leader.host}:${leader.port}"}`);
  assert.equal(Number(term[0]!.value[1]), sample(direct, 'timestore_raft_term'));
  // Values that do not move while nothing is written: equal once the next scrape has happened.
  for (const series of ['timestore_raft_commit_index', 'timestore_ingested_points_total']) {
    await eventually(
      async () => {
        const seen = await Promise.all(cluster.nodes.map(metricsText));
        const q = await prom.query(`sum by (instance) (${series})`);
        return cluster.nodes.every((n, i) => {
          // A labelled counter has no series on a node that never counted (no points ingested).
          const want = sample(seen[i]!, series) ?? sumOf(seen[i]!, series);
          const got = q.find((r) => r.metric.instance === `${n.host}:${n.port}`);
          return got === undefined ? want === undefined : Number(got.value[1]) === want;
        });
      },
      `Prometheus agrees on ${series}`,
      60_000,
      500,
    );
  }
  const voters = await prom.queryEventually('max(timestore_raft_members{kind="voter"})');
  assert.equal(Number(voters[0]!.value[1]), 3);
});

/** The JSON log lines a node printed so far. */
function logLines(n: NodeProcess): Array<Record<string, unknown>> {
  const out: Array<Record<string, unknown>> = [];
  for (const line of n.output().split('\n')) {
    if (!line.startsWith('{')) continue;
    try {
      out.push(JSON.parse(line) as Record<string, unknown>);
    } catch {
      // a partial line
    }
  }
  return out;
}

/** Sum of every sample of a labelled family (e.g. a counter with a label). */
function sumOf(text: string, name: string): number | undefined {
  let s: number | undefined;
  for (const line of text.split('\n')) {
    if (line.startsWith(`${name}{`) || line.startsWith(`${name} `))
      s = (s ?? 0) + Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return s;
}

test('every metric a Grafana panel queries exists on a live node', async () => {
  const { leader, followers } = await stableLeader();
  const dir = join(repoRoot, 'deploy', 'grafana');
  const files = readdirSync(dir).filter((f) => f.endsWith('.json'));
  assert.ok(files.length > 0);
  for (const n of [leader, ...followers]) {
    const defined = definedSeries(await metricsText(n));
    for (const f of files) {
      for (const q of dashboardQueries(loadDashboard(join(dir, f)))) {
        for (const name of metricNamesInExpr(q.expr)) {
          assert.ok(defined.has(name), `${f} panel "${q.panel}" queries ${name}, not on ${n.id}'s /metrics`);
        }
      }
    }
  }
});

test('a write sent to a follower is one trace whose spans come from two nodes', async () => {
  const { leader, followers } = await stableLeader();
  const f = followers[0]!;
  const traceId = '4bf92f3577b34da6a3ce929d0e0e4736';
  const res = await write(f, 20, { traceparent: `00-${traceId}-00f067aa0ba902b7-01` });
  assert.equal(res.status, 201, res.text);
  const spans = await eventually(
    async () => {
      const s = rx.spans.filter((x) => x.traceId === traceId);
      const fwd = s.find((x) => x.instance === f.id && x.name === 'timestore.forward');
      const server = fwd && s.find((x) => x.instance === leader.id && x.parentSpanId === fwd.spanId);
      return server ? s : undefined;
    },
    `spans of trace ${traceId} from ${f.id} and ${leader.id}`,
    60_000,
    200,
  );
  const one = (instance: string, name: string): ReceivedSpan => {
    const s = spans.filter((x) => x.instance === instance && x.name === name);
    assert.equal(
      s.length,
      1,
      `${name} on ${instance}: ${JSON.stringify(spans.map((x) => [x.instance, x.name]))}`,
    );
    return s[0]!;
  };
  const fServer = one(f.id, 'POST /api/timeseries');
  const forward = one(f.id, 'timestore.forward');
  const lServer = one(leader.id, 'POST /raft/forward');
  assert.equal(fServer.parentSpanId, '00f067aa0ba902b7');
  assert.equal(fServer.kind, 2); // SERVER
  assert.equal(forward.parentSpanId, fServer.spanId);
  assert.equal(forward.kind, 3); // CLIENT
  assert.equal(lServer.parentSpanId, forward.spanId);
  assert.equal(lServer.kind, 2);
  // Inside Raft on the leader: proposal → replicate (to commit) → apply, under the forward request.
  const proposal = await eventually(
    async () =>
      rx.spans.find((x) => x.traceId === traceId && x.instance === leader.id && x.name === 'raft.proposal'),
    `raft.proposal span on ${leader.id}`,
    30_000,
    200,
  );
  assert.equal(proposal.parentSpanId, lServer.spanId);
  for (const name of ['raft.replicate', 'raft.apply']) {
    const child = await eventually(
      async () =>
        rx.spans.find((x) => x.traceId === traceId && x.name === name && x.parentSpanId === proposal.spanId),
      `${name} span under raft.proposal`,
      30_000,
      200,
    );
    assert.equal(child.instance, leader.id);
  }
  assert.deepEqual(
    new Set(rx.spans.filter((x) => x.traceId === traceId).map((s) => s.instance)),
    new Set([f.id, leader.id]),
  );
  // The request log lines of both nodes carry the trace id (and a request id).
  for (const [n, route] of [
    [f, '/api/timeseries'],
    [leader, '/raft/forward'],
  ] as const) {
    const line = await eventually(
      async () => logLines(n).find((l) => l.msg === 'request' && l.traceId === traceId && l.route === route),
      `${n.id} request log line of trace ${traceId}`,
      30_000,
    );
    assert.equal(line.level, 'info');
    assert.equal(line.nodeId, n.id);
    assert.equal(typeof line.reqId, 'string');
    assert.equal(line.status, route === '/api/timeseries' ? 201 : 200);
  }
  // Heartbeats, probes and scrapes are not traced (they would drown the writes).
  const noisy = rx.spans.filter((s) =>
    /^(POST \/raft\/append|GET \/metrics|GET \/livez|GET \/readyz)/.test(s.name),
  );
  assert.deepEqual(
    noisy.map((s) => s.name),
    [],
  );
});

test('a follower behind the compacted log gets a snapshot: counted, logged and traced', async () => {
  const { leader, followers } = await stableLeader();
  const lagging = followers[1]!;
  const behind = (await get<{ appliedIndex: number }>(`${lagging.url}/raft/status`)).json.appliedIndex;
  const pid = lagging.proc.child.pid!;
  process.kill(pid, 'SIGSTOP');
  try {
    // Appends already on the wire sit in the stopped process's socket buffers and would catch it up
    // on SIGCONT: wait until the leader gave up on them (RPC timeout: 2 election timeouts), then write.
    await new Promise((r) => setTimeout(r, ELECTION_MS * 4));
    const sent = (await get<{ lastIndex: number }>(`${leader.url}/raft/status`)).json.lastIndex;
    for (let i = 0; i < 6; i++) {
      const rs = await Promise.all(Array.from({ length: 10 }, (_, j) => write(leader, 100 + i * 10 + j)));
      for (const r of rs) assert.equal(r.status, 201, r.text);
    }
    await eventually(
      async () =>
        (await get<{ firstIndex: number }>(`${leader.url}/raft/status`)).json.firstIndex >
        Math.max(behind, sent) + 1,
      "the leader's log compacted past the stopped follower",
      60_000,
    );
  } finally {
    process.kill(pid, 'SIGCONT');
  }
  // Sent by the leader, or by a new one if leadership moved meanwhile (a loaded machine).
  const { sender, m } = await eventually(
    async () => {
      for (const n of cluster.nodes.filter((x) => x !== lagging)) {
        const t = await metricsText(n);
        if ((sample(t, 'timestore_raft_snapshots_total{operation="send",result="ok"}') ?? 0) >= 1)
          return { sender: n, m: t };
      }
      return undefined;
    },
    `a snapshot sent to ${lagging.id} (${leader.id} was the leader)`,
    120_000,
    250,
  ).catch((err: Error) => {
    const lines = cluster.nodes.flatMap((n) =>
      logLines(n)
        .filter((l) => /snapshot|state changed|leader/i.test(`${String(l.msg)} ${String(l.event)}`))
        .map((l) => `${n.id} ${JSON.stringify(l)}`),
    );
    throw new Error(`${err.message}\n${lines.slice(-60).join('\n')}`);
  });
  assert.ok((sample(m, 'timestore_raft_snapshot_bytes_total{operation="send"}') ?? 0) > 0);
  assert.ok((sample(m, 'timestore_raft_snapshot_duration_seconds_count{operation="send"}') ?? 0) >= 1);
  assert.ok((sample(m, 'timestore_raft_snapshot_index') ?? 0) > behind);
  // The sender compacted its log, so it took a snapshot; the follower installed the one it got.
  assert.ok(
    (sample(m, 'timestore_raft_snapshots_total{operation="take",result="ok"}') ?? 0) >= 1,
    'take counted',
  );
  assert.ok(
    logLines(sender).some((l) => l.event === 'raft.snapshot.take'),
    `${sender.id} logged raft.snapshot.take`,
  );
  await eventually(
    async () =>
      (sample(
        await metricsText(lagging),
        'timestore_raft_snapshots_total{operation="install",result="ok"}',
      ) ?? 0) >= 1,
    `${lagging.id} counted the install`,
    120_000,
    250,
  );
  assert.ok(
    logLines(sender).some((l) => l.event === 'raft.snapshot.send' && l.peer === lagging.id),
    `${sender.id} logged raft.snapshot.send`,
  );
  // The follower's install request continues the sender's trace.
  await eventually(
    async () =>
      rx.spans.some(
        (send) =>
          send.name === 'raft.snapshot.send' &&
          send.instance === sender.id &&
          rx.spans.some(
            (s) =>
              s.instance === lagging.id &&
              s.name === 'POST /raft/snapshot/install' &&
              s.parentSpanId === send.spanId &&
              s.traceId === send.traceId,
          ),
      ),
    'raft.snapshot.send span with the follower install span under it',
    60_000,
    250,
  );
  // And the follower caught up.
  const leaderCommit = (await get<{ commitIndex: number }>(`${sender.url}/raft/status`)).json.commitIndex;
  await eventually(
    async () =>
      (await get<{ appliedIndex: number }>(`${lagging.url}/raft/status`)).json.appliedIndex >= leaderCommit,
    `${lagging.id} caught up`,
    120_000,
    250,
  );
});

test('probes: ready members, leader-only readiness, liveness kept while quorum is lost', async () => {
  const { leader, followers } = await stableLeader();
  for (const n of cluster.nodes) {
    const r = await get(`${n.url}/readyz`);
    assert.equal(r.status, 200, `${n.id} /readyz: ${r.text}`);
    const l = await get(`${n.url}/readyz/leader`);
    assert.equal(l.status, n === leader ? 200 : 503, `${n.id} /readyz/leader: ${l.text}`);
    if (n !== leader) assert.equal((l.json as { reason: string }).reason, 'not-leader');
    const live = await get(`${n.url}/livez`);
    assert.equal(live.status, 200);
    assert.equal((live.json as { nodeId: string }).nodeId, n.id);
  }

  // Freeze both peers of one follower: it loses its leader, readiness fails, liveness does not.
  const [survivor, ...frozen] = [followers[0]!, leader, followers[1]!];
  for (const n of frozen) process.kill(n.proc.child.pid!, 'SIGSTOP');
  const livez: number[] = [];
  try {
    const notReady = await eventually(
      async () => {
        const live = await get(`${survivor.url}/livez`, { timeoutMs: 10_000 });
        livez.push(live.status);
        const r = await get(`${survivor.url}/readyz`, { timeoutMs: 10_000 });
        return r.status === 503 ? r : undefined;
      },
      `${survivor.id} /readyz turning 503 with its peers stopped`,
      60_000,
      200,
    );
    assert.match(notReady.contentType, /application\/problem\+json/);
    assert.equal((notReady.json as { reason: string }).reason, 'no-leader');
    assert.ok(livez.length > 0 && livez.every((st) => st === 200), `/livez answers: ${livez.join(' ')}`);
    const m = await metricsText(survivor);
    assert.equal(sample(m, 'timestore_raft_has_leader'), 0);
    // Still alive, several probes later.
    for (let i = 0; i < 5; i++) {
      assert.equal((await get(`${survivor.url}/livez`, { timeoutMs: 10_000 })).status, 200);
      await new Promise((r) => setTimeout(r, 200));
    }
  } finally {
    for (const n of frozen) process.kill(n.proc.child.pid!, 'SIGCONT');
  }
  // And ready again once the peers are back.
  await eventually(
    async () => (await get(`${survivor.url}/readyz`)).status === 200,
    `${survivor.id} ready again`,
    120_000,
    250,
  );
});
