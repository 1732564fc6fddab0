import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import express from 'express';
import {
  bindRaftStatus,
  bindStorageSizes,
  cachedValue,
  createMetrics,
  metricsRouter,
  requestMetricsMiddleware,
  statStorageSizes,
  type Metrics,
  type RaftStatusView,
} from '../../src/observability/metrics.js';
import { listen, startPrometheus } from './helpers.js';

function leaderStatus(over: Partial<RaftStatusView> = {}): RaftStatusView {
  return {
    id: 'n1',
    role: 'Leader',
    leaderId: 'n1',
    term: 7,
    commitIndex: 120,
    appliedIndex: 118,
    lastIndex: 125,
    firstIndex: 101,
    snapshotIndex: 100,
    membership: { voters: ['n1', 'n2', 'n3'], learners: [] },
    progress: [
      { id: 'n1', match: 125 },
      { id: 'n2', match: 125 },
      { id: 'n3', match: 90 },
    ],
    ...over,
  };
}

/** A metrics set with every metric given a value (so every family appears in the exposition). */
function populated(): {
  metrics: Metrics;
  setStatus(s: RaftStatusView): void;
  raft: ReturnType<typeof bindRaftStatus>;
} {
  const metrics = createMetrics(undefined, { version: '0.1.0' });
  let status = leaderStatus();
  const raft = bindRaftStatus(metrics, () => status);
  bindStorageSizes(metrics, () => ({
    dataDbBytes: 4096,
    dataWalBytes: 512,
    raftDbBytes: 8192,
    raftWalBytes: 1024,
    snapshotBytes: 2048,
    points: 1234,
  }));
  metrics.raft.proposals.inc({ result: 'committed' }, 5);
  metrics.raft.proposals.inc({ result: 'not_leader' });
  metrics.raft.proposalsPending.set(2);
  metrics.raft.appendDuration.observe({ peer: 'n2' }, 0.003);
  metrics.raft.persistDuration.observe(0.002);
  metrics.raft.commitDuration.observe(0.004);
  metrics.raft.applyDuration.observe(0.001);
  metrics.recordSnapshot('take', { seconds: 0.5, bytes: 2048 });
  metrics.recordSnapshot('install', { seconds: 1.5, bytes: 4096 });
  metrics.recordSnapshot('send', { seconds: 1, bytes: 0, ok: false });
  metrics.api.forwardedWrites.inc({ result: 'ok' }, 3);
  metrics.api.forwardedFromOwnCopy.inc(2);
  metrics.api.ingestedPoints.inc({ format: 'json' }, 42);
  metrics.api.rejectedInputs.inc({ reason: 'validation' }, 2);
  metrics.api.requestDuration.observe({ method: 'POST', route: '/api/timeseries', status: '201' }, 0.01);
  return { metrics, raft, setStatus: (s) => (status = s) };
}

function sampleValue(text: string, series: string): number | undefined {
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) continue;
    const i = line.lastIndexOf(' ');
    if (line.slice(0, i) === series) return Number(line.slice(i + 1));
  }
  return undefined;
}

test('exposition passes the real `promtool check metrics`', async () => {
  const { metrics } = populated();
  const text = await metrics.registry.metrics();
  const r = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
  assert.equal(r.error, undefined, 'promtool must be installed (Debian package prometheus)');
  assert.equal(r.status, 0, `promtool check metrics failed:\n${r.stdout}${r.stderr}`);
  assert.equal((r.stdout + r.stderr).trim(), '', 'promtool reports no lint problems');
});

test('every TimeStore metric has the timestore_ prefix, counters end in _total, help is set', async () => {
  const { metrics } = populated();
  const families = await metrics.registry.getMetricsAsJSON();
  const ours = families.filter((f) => f.name.startsWith('timestore_'));
  assert.ok(ours.length >= 30, `expected the full set, got ${ours.length}`);
  for (const f of families) {
    if (!f.name.startsWith('timestore_')) {
      assert.match(
        f.name,
        /^(process_|nodejs_)/,
        `only process defaults may go without the prefix: ${f.name}`,
      );
    }
    if (String(f.type) === 'counter') assert.match(f.name, /_total$/, f.name);
    assert.ok(f.help.length > 0, f.name);
  }
  // process defaults are there
  assert.ok(families.some((f) => f.name === 'process_cpu_user_seconds_total'));
  assert.ok(families.some((f) => f.name === 'nodejs_eventloop_lag_seconds'));
});

test('Raft gauges come from the status getter at scrape time; peer series only on the leader', async () => {
  const { metrics, setStatus } = populated();
  let text = await metrics.registry.metrics();
  assert.equal(sampleValue(text, 'timestore_raft_term'), 7);
  assert.equal(sampleValue(text, 'timestore_raft_role{role="Leader"}'), 1);
  assert.equal(sampleValue(text, 'timestore_raft_role{role="Follower"}'), 0);
  assert.equal(sampleValue(text, 'timestore_raft_is_leader'), 1);
  assert.equal(sampleValue(text, 'timestore_raft_commit_index'), 120);
  assert.equal(sampleValue(text, 'timestore_raft_applied_index'), 118);
  assert.equal(sampleValue(text, 'timestore_raft_apply_lag_entries'), 2);
  assert.equal(sampleValue(text, 'timestore_raft_log_entries'), 25);
  assert.equal(sampleValue(text, 'timestore_raft_snapshot_index'), 100);
  assert.equal(sampleValue(text, 'timestore_raft_members{kind="voter"}'), 3);
  assert.equal(sampleValue(text, 'timestore_raft_peer_match_index{peer="n3"}'), 90);
  assert.equal(sampleValue(text, 'timestore_raft_peer_lag_entries{peer="n3"}'), 35);
  assert.equal(sampleValue(text, 'timestore_raft_peer_lag_entries{peer="n2"}'), 0);
  assert.equal(
    sampleValue(text, 'timestore_raft_peer_lag_entries{peer="n1"}'),
    undefined,
    'the leader itself is not a peer',
  );
  assert.equal(sampleValue(text, 'timestore_storage_size_bytes{file="raft.db-wal"}'), 1024);
  assert.equal(sampleValue(text, 'timestore_storage_points'), 1234);
  assert.equal(sampleValue(text, 'timestore_raft_snapshots_total{operation="send",result="error"}'), 1);
  assert.equal(sampleValue(text, 'timestore_raft_snapshot_bytes_total{operation="install"}'), 4096);
  assert.equal(sampleValue(text, 'timestore_build_info{version="0.1.0"}'), 1);

  setStatus(leaderStatus({ role: 'Follower', leaderId: 'n2', term: 8, progress: null }));
  text = await metrics.registry.metrics();
  assert.equal(sampleValue(text, 'timestore_raft_term'), 8);
  assert.equal(sampleValue(text, 'timestore_raft_is_leader'), 0);
  assert.equal(sampleValue(text, 'timestore_raft_role{role="Follower"}'), 1);
  assert.equal(
    sampleValue(text, 'timestore_raft_peer_lag_entries{peer="n3"}'),
    undefined,
    'peer series dropped on step-down',
  );
  assert.equal(sampleValue(text, 'timestore_raft_peer_match_index{peer="n2"}'), undefined);
});

test('elections, pre-votes and leader changes are counted from observed transitions', async () => {
  const metrics = createMetrics(undefined, { defaultMetrics: false });
  let s = leaderStatus({ role: 'Follower', leaderId: null, term: 1, progress: null });
  const b = bindRaftStatus(metrics, () => s);
  const seq: Array<Partial<RaftStatusView>> = [
    { role: 'Follower', leaderId: null, term: 1 },
    { role: 'PreCandidate', leaderId: null, term: 1 },
    { role: 'Candidate', leaderId: null, term: 2 }, // election 1
    { role: 'Candidate', leaderId: null, term: 2 }, // same election observed twice
    { role: 'Candidate', leaderId: null, term: 3 }, // election 2 (split vote, new term)
    { role: 'Leader', leaderId: 'n1', term: 3 }, // leader change 1
    { role: 'Leader', leaderId: 'n1', term: 3 },
    { role: 'Follower', leaderId: null, term: 4 },
    { role: 'Follower', leaderId: 'n2', term: 4 }, // leader change 2
    { role: 'Follower', leaderId: 'n2', term: 5 }, // n2 re-elected in a new term: change 3
    { role: 'PreCandidate', leaderId: null, term: 5 }, // pre-vote 2 (no new term: no election)
    { role: 'PreCandidate', leaderId: null, term: 5 }, // the same pre-vote observed twice
    { role: 'Follower', leaderId: 'n2', term: 5 }, // pre-vote lost: n2 is still there
    { role: 'PreCandidate', leaderId: null, term: 5 }, // pre-vote 3
    { role: 'Leader', leaderId: 'n1', term: 6 }, // election 3, won before Candidate was observed; change 4
    { role: 'Follower', leaderId: null, term: 7 }, // a vote request from another node: not our election
  ];
  for (const over of seq) {
    s = leaderStatus({ ...over, progress: null });
    b.observe();
  }
  const text = await metrics.registry.metrics();
  assert.equal(sampleValue(text, 'timestore_raft_elections_total'), 3);
  assert.equal(sampleValue(text, 'timestore_raft_prevotes_total'), 3);
  assert.equal(sampleValue(text, 'timestore_raft_leader_changes_total'), 4);
});

test('a failing status getter does not break the scrape', async () => {
  const metrics = createMetrics(undefined, { defaultMetrics: false });
  bindRaftStatus(metrics, () => {
    throw new Error('node stopped');
  });
  const text = await metrics.registry.metrics();
  assert.match(text, /timestore_raft_term 0/);
});

test('statStorageSizes reads the conventional files of a data dir', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ts-sizes-'));
  try {
    writeFileSync(join(dir, 'data.db'), Buffer.alloc(100));
    writeFileSync(join(dir, 'raft.db'), Buffer.alloc(30));
    writeFileSync(join(dir, 'raft.db-wal'), Buffer.alloc(7));
    mkdirSync(join(dir, 'snapshots'));
    writeFileSync(join(dir, 'snapshots', 'a'), Buffer.alloc(5));
    writeFileSync(join(dir, 'snapshots', 'b'), Buffer.alloc(6));
    assert.deepEqual(statStorageSizes(dir), {
      dataDbBytes: 100,
      dataWalBytes: undefined,
      raftDbBytes: 30,
      raftWalBytes: 7,
      snapshotBytes: 11,
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('request middleware labels by route template (bounded cardinality) and status', async () => {
  const metrics = createMetrics(undefined, { defaultMetrics: false });
  const app = express();
  app.use(requestMetricsMiddleware(metrics));
  app.use(metricsRouter(metrics));
  app.get('/api/timeseries/device/:deviceId', (req, res) => {
    res.json({ device: req.params.deviceId });
  });
  const api = express.Router();
  api.post('/timeseries', (_req, res) => {
    res.status(400).json({ error: 'bad' });
  });
  app.use('/api', api);
  const srv = await listen(app);
  try {
    for (const d of ['a', 'b', 'c'])
      assert.equal((await fetch(`${srv.url}/api/timeseries/device/${d}`)).status, 200);
    assert.equal((await fetch(`${srv.url}/api/timeseries`, { method: 'POST' })).status, 400);
    assert.equal((await fetch(`${srv.url}/no/such/${Math.random()}`)).status, 404);
    const res = await fetch(`${srv.url}/metrics`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
    const text = await res.text();
    assert.equal(
      sampleValue(
        text,
        'timestore_http_request_duration_seconds_count{method="GET",route="/api/timeseries/device/:deviceId",status="200"}',
      ),
      3,
    );
    assert.equal(
      sampleValue(
        text,
        'timestore_http_request_duration_seconds_count{method="POST",route="/api/timeseries",status="400"}',
      ),
      1,
    );
    assert.equal(
      sampleValue(
        text,
        'timestore_http_request_duration_seconds_count{method="GET",route="unmatched",status="404"}',
      ),
      1,
    );
    assert.doesNotMatch(text, /route="\/api\/timeseries\/device\/a"/);
  } finally {
    await srv.close();
  }
});

test('a real Prometheus server scrapes /metrics and returns the values through its query API', async (t) => {
  const { metrics } = populated();
  const app = express();
  app.use(metricsRouter(metrics));
  const target = await listen(app);
  const prom = await startPrometheus([`127.0.0.1:${target.port}`], { pod: 'timestore-0' });
  t.after(async () => {
    await prom.stop();
    await target.close();
  });
  const value = async (q: string) => (await prom.queryEventually(q))[0]!.value[1];

  const term = await prom.queryEventually('timestore_raft_term');
  assert.equal(term[0]!.value[1], '7');
  assert.equal(term[0]!.metric.pod, 'timestore-0');
  assert.equal(term[0]!.metric.job, 'timestore');
  assert.equal(await value('timestore_raft_peer_lag_entries{peer="n3"}'), '35');
  assert.equal(await value('timestore_storage_size_bytes{file="data.db"}'), '4096');
  assert.equal(await value('timestore_ingested_points_total{format="json"}'), '42');
  assert.equal(await value('timestore_raft_is_leader'), '1');
  assert.ok(
    Number(
      await value('histogram_quantile(0.99, sum by (le) (timestore_http_request_duration_seconds_bucket))'),
    ) > 0,
  );
  assert.equal(await value('up{job="timestore"}'), '1');
});

test('cachedValue recomputes an expensive getter at most once per ttl', () => {
  let t = 0;
  let calls = 0;
  const get = cachedValue(
    () => ++calls,
    1000,
    () => t,
  );
  assert.equal(get(), 1);
  t = 999;
  assert.equal(get(), 1);
  t = 1000;
  assert.equal(get(), 2);
  assert.equal(calls, 2);
});
