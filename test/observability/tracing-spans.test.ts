// In-process checks of the span helpers, exported through the real SDK to an OTLP/HTTP JSON receiver.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  activeTraceId,
  extractTraceContext,
  injectTraceHeaders,
  snapshotTakeSpan,
  startProposalSpan,
  startTracing,
  withSpan,
  type TracingHandle,
} from '../../src/observability/tracing.js';
import { context, trace } from '@opentelemetry/api';

interface Span {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  status?: { code?: number; message?: string };
  events?: Array<{ name: string }>;
  attributes?: Array<{ key: string; value: { intValue?: string | number; stringValue?: string } }>;
}
const spans: Span[] = [];
const server = createServer((req, res) => {
  let body = '';
  req.on('data', (c) => (body += String(c)));
  req.on('end', () => {
    const j = JSON.parse(body) as { resourceSpans: Array<{ scopeSpans: Array<{ spans: Span[] }> }> };
    for (const rs of j.resourceSpans) for (const ss of rs.scopeSpans) spans.push(...ss.spans);
    res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
  });
});
let tracing: TracingHandle;

before(async () => {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  process.env.OTEL_EXPORTER_OTLP_ENDPOINT = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  process.env.OTEL_EXPORTER_OTLP_PROTOCOL = 'http/json';
  process.env.OTEL_NODE_RESOURCE_DETECTORS = 'none';
  tracing = await startTracing({ serviceInstanceId: 'unit' });
});
after(async () => {
  await tracing.shutdown();
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
});

const named = (name: string) => spans.filter((s) => s.name === name);

test('inject / extract round-trip the W3C traceparent', async () => {
  assert.equal(tracing.enabled, true);
  await withSpan('outer', {}, async () => {
    const headers = injectTraceHeaders({ 'content-type': 'application/json' });
    assert.match(headers.traceparent ?? '', /^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
    const id = activeTraceId();
    assert.equal(headers.traceparent!.split('-')[1], id);
    const ctx = extractTraceContext({ TraceParent: headers.traceparent });
    assert.equal(trace.getSpanContext(ctx)?.traceId, id, 'header names are case-insensitive');
  });
  assert.equal(activeTraceId(), undefined, 'no span outside');
});

test('withSpan nests, records exceptions and rethrows', async () => {
  await assert.rejects(
    withSpan('parent', {}, () =>
      withSpan('failing', { attributes: { 'timestore.x': 1 } }, async () => {
        throw new Error('disk full');
      }),
    ),
    /disk full/,
  );
  await tracing.flush();
  const failing = named('failing')[0]!;
  const parent = named('parent')[0]!;
  assert.equal(failing.parentSpanId, parent.spanId);
  assert.equal(failing.status?.code, 2); // ERROR
  assert.equal(failing.status?.message, 'disk full');
  assert.ok(failing.events?.some((e) => e.name === 'exception'));
});

test('proposal spans: replicate and apply under the proposal, failures marked, methods idempotent', async () => {
  const root = trace.getTracer('t').startSpan('request');
  const ctx = trace.setSpan(context.active(), root);
  const ok = startProposalSpan({ 'timestore.points': 3 }, ctx);
  ok.proposed(42, 5);
  ok.committed();
  ok.committed();
  ok.applied();
  ok.applied();
  ok.fail(new Error('late')); // after applied: ignored
  const bad = startProposalSpan({}, ctx);
  bad.proposed(43);
  bad.fail(new Error('NotLeader'));
  root.end();
  await snapshotTakeSpan(40, () => 'done');
  await tracing.flush();

  const proposals = named('raft.proposal');
  assert.equal(proposals.length, 2);
  const good = proposals.find((p) =>
    p.attributes?.some((a) => a.key === 'timestore.raft.index' && Number(a.value.intValue) === 42),
  )!;
  const failed = proposals.find((p) => p !== good)!;
  assert.notEqual(good.status?.code, 2);
  assert.equal(failed.status?.code, 2);
  assert.equal(named('raft.replicate').filter((s) => s.parentSpanId === good.spanId).length, 1);
  assert.equal(named('raft.apply').filter((s) => s.parentSpanId === good.spanId).length, 1);
  assert.equal(
    named('raft.apply').filter((s) => s.parentSpanId === failed.spanId).length,
    0,
    'never committed',
  );
  const failedReplicate = named('raft.replicate').find((s) => s.parentSpanId === failed.spanId)!;
  assert.equal(failedReplicate.status?.code, 2);
  assert.equal(named('raft.snapshot.take').length, 1);
});
