import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import express from 'express';
import {
  bindRaftStatus,
  bindStorageSizes,
  createMetrics,
  metricsRouter,
  requestMetricsMiddleware,
} from '../../src/observability/metrics.js';
import {
  dashboardQueries,
  definedSeries,
  loadDashboard,
  matcherLabels,
  metricNamesInExpr,
} from './dashboard-metrics.js';
import { listen, startPrometheus } from './helpers.js';

const dashboardPath = fileURLToPath(new URL('../../deploy/grafana/timestore-overview.json', import.meta.url));
// Labels Prometheus attaches to every scraped series (target labels), not defined by the node.
const TARGET_LABELS = new Set(['job', 'instance', 'pod', 'namespace', 'container', 'service', 'endpoint']);

test('metric name extraction from PromQL', () => {
  assert.deepEqual(
    metricNamesInExpr(
      'histogram_quantile(0.99, sum by (le, route) (rate(a_bucket{job=~"$job", route!="x{y}"}[$__rate_interval])))',
    ),
    ['a_bucket'],
  );
  assert.deepEqual(metricNamesInExpr('scalar(max(b{job=~"$job"})) - c{job=~"$job"} offset 5m'), ['b', 'c']);
  assert.deepEqual(metricNamesInExpr('count(d == 0) or vector(0)'), ['d']);
  assert.deepEqual(metricNamesInExpr('sum(rate(e_total[1m])) * 1e3 / on (pod) group_left (x) f'), [
    'e_total',
    'f',
  ]);
  assert.deepEqual(matcherLabels('a{job=~"$job", route!="u"} + b{file="x"}'), [
    { metric: 'a', label: 'job' },
    { metric: 'a', label: 'route' },
    { metric: 'b', label: 'file' },
  ]);
});

test('the overview dashboard has the panels the issue asks for', () => {
  const d = loadDashboard(dashboardPath) as { uid?: string; panels: Array<{ title: string }> };
  assert.equal(d.uid, 'timestore-overview');
  const titles = d.panels.map((p) => p.title).join(' | ');
  for (const t of [
    /Leader over time/,
    /Term over time/,
    /Per-pod lag/,
    /Write rate/,
    /Query rate/,
    /p50 \/ p99/,
    /Ingest points/,
    /Storage growth/,
    /Elections/,
  ]) {
    assert.match(titles, t);
  }
});

test('every metric a panel queries is defined by createMetrics, with the labels it filters on', async () => {
  const metrics = createMetrics();
  const exposition = await metrics.registry.metrics();
  const defined = definedSeries(exposition);
  const queries = dashboardQueries(loadDashboard(dashboardPath));
  assert.ok(queries.length >= 25, `found ${queries.length} queries`);
  const used = new Set<string>();
  for (const { panel, expr } of queries) {
    const names = metricNamesInExpr(expr);
    assert.ok(names.length > 0, `${panel}: no metric in ${expr}`);
    for (const n of names) {
      assert.ok(defined.has(n), `${panel}: ${n} is not defined by createMetrics (expr: ${expr})`);
      assert.match(n, /^timestore_/, `${panel}: ${n}`);
      used.add(n);
    }
    for (const { metric, label } of matcherLabels(expr)) {
      if (TARGET_LABELS.has(label)) continue;
      const family = metric.replace(/_(bucket|sum|count)$/, '');
      const m = metrics.registry.getSingleMetric(family) ?? metrics.registry.getSingleMetric(metric);
      const labelNames = [
        ...((m as unknown as { labelNames?: string[] })?.labelNames ?? []),
        ...(metric.endsWith('_bucket') ? ['le'] : []),
      ];
      assert.ok(labelNames.includes(label), `${panel}: ${metric} has no label ${label}`);
    }
  }
  // Sanity: the extraction really sees the dashboard's metrics.
  for (const n of [
    'timestore_raft_is_leader',
    'timestore_raft_term',
    'timestore_http_request_duration_seconds_bucket',
    'timestore_storage_size_bytes',
  ]) {
    assert.ok(used.has(n), n);
  }
});

test('every dashboard query is valid PromQL and evaluates on a real Prometheus', async (t) => {
  const metrics = createMetrics();
  let status = {
    id: 'n1',
    role: 'Leader',
    leaderId: 'n1',
    term: 3,
    commitIndex: 10,
    appliedIndex: 10,
    lastIndex: 10,
    firstIndex: 1,
    membership: { voters: ['n1', 'n2'], learners: [] },
    progress: [{ id: 'n2', match: 8 }],
  };
  bindRaftStatus(metrics, () => status);
  bindStorageSizes(metrics, () => ({ dataDbBytes: 100, raftDbBytes: 50, points: 10 }));
  const app = express();
  app.use(requestMetricsMiddleware(metrics));
  app.use(metricsRouter(metrics));
  app.post('/api/timeseries', (_req, res) => {
    metrics.api.ingestedPoints.inc({ format: 'json' });
    res.status(201).end();
  });
  const target = await listen(app);
  const prom = await startPrometheus([`127.0.0.1:${target.port}`], { pod: 'timestore-0' });
  t.after(async () => {
    await prom.stop();
    await target.close();
  });
  await prom.queryEventually('timestore_raft_term');
  await fetch(`${target.url}/api/timeseries`, { method: 'POST' });
  status = { ...status, term: 4 };

  const queries = dashboardQueries(loadDashboard(dashboardPath));
  const grafanaVars = (e: string) =>
    e
      .replace(/\$__rate_interval/g, '1m')
      .replace(/\$__range/g, '1h')
      .replace(/\$job/g, '.*');
  for (const { panel, expr } of queries) {
    await assert.doesNotReject(prom.query(grafanaVars(expr)), `${panel}: ${expr}`);
  }
  // A couple of panels return what they are meant to.
  const leader = await prom.queryEventually(
    grafanaVars('max by (pod) (timestore_raft_is_leader{job=~"$job"}) == 1'),
  );
  assert.equal(leader[0]!.metric.pod, 'timestore-0');
  const lag = await prom.queryEventually(
    grafanaVars('max by (peer) (timestore_raft_peer_lag_entries{job=~"$job"})'),
  );
  assert.deepEqual([lag[0]!.metric.peer, lag[0]!.value[1]], ['n2', '2']);
});
