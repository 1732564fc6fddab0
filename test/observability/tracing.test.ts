import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import { tracingEnabledFromEnv } from '../../src/observability/tracing.js';
import { eventually, otlpReceiver } from './helpers.js';

test('tracing is off unless the standard OTEL_* variables ask for it', () => {
  assert.equal(tracingEnabledFromEnv({}), false);
  assert.equal(tracingEnabledFromEnv({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318' }), true);
  assert.equal(
    tracingEnabledFromEnv({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://collector:4318/v1/traces' }),
    true,
  );
  assert.equal(tracingEnabledFromEnv({ OTEL_TRACES_EXPORTER: 'otlp' }), true);
  assert.equal(
    tracingEnabledFromEnv({ OTEL_TRACES_EXPORTER: 'none', OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318' }),
    false,
  );
  assert.equal(
    tracingEnabledFromEnv({ OTEL_SDK_DISABLED: 'true', OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318' }),
    false,
  );
  assert.equal(tracingEnabledFromEnv({ OTEL_EXPORTER_OTLP_ENDPOINT: '  ' }), false);
});

const fixture = fileURLToPath(new URL('./fixtures/traced-node.ts', import.meta.url));

async function startNode(
  id: string,
  env: Record<string, string>,
): Promise<{ proc: ChildProcess; url: string }> {
  const proc = spawn(process.execPath, ['--import', 'tsx', fixture, id], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const rl = createInterface({ input: proc.stdout! });
  const port = await new Promise<number>((resolve, reject) => {
    proc.once('exit', (code) => reject(new Error(`${id} exited with ${code}`)));
    rl.once('line', (line) => resolve((JSON.parse(line) as { port: number }).port));
  });
  return { proc, url: `http://127.0.0.1:${port}` };
}

function stop(proc: ChildProcess): Promise<void> {
  return new Promise((r) => {
    if (proc.exitCode !== null) return r();
    proc.once('exit', () => r());
    proc.kill('SIGTERM');
  });
}

test("one forwarded write's trace spans two nodes in two processes (OTLP/HTTP JSON export)", async (t) => {
  const rx = await otlpReceiver();
  const common = {
    OTEL_EXPORTER_OTLP_ENDPOINT: rx.url,
    OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
    OTEL_BSP_SCHEDULE_DELAY: '100',
    OTEL_NODE_RESOURCE_DETECTORS: 'none',
  };
  const leader = await startNode('n1', common);
  const follower = await startNode('n2', { ...common, FORWARD_TO: leader.url });
  t.after(async () => {
    await Promise.all([stop(leader.proc), stop(follower.proc)]);
    rx.server.closeAllConnections();
    await new Promise((r) => rx.server.close(r));
  });

  // A client that already has a trace: the write must continue it.
  const clientTrace = '0af7651916cd43dd8448eb211c80319c';
  const res = await fetch(`${follower.url}/api/timeseries`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', traceparent: `00-${clientTrace}-b7ad6b7169203331-01` },
    body: JSON.stringify({ deviceId: 'd1', timestamp: '2026-01-01T00:00:00Z', value: 1 }),
  });
  assert.equal(res.status, 201);
  assert.deepEqual(await res.json(), { index: 7, enabled: true });

  // A snapshot sent from n1 to n2 (a Raft RPC) carries the trace too.
  const snap = await fetch(`${leader.url}/send-snapshot?peer=${encodeURIComponent(follower.url)}`, {
    method: 'POST',
  });
  assert.equal(snap.status, 200);

  for (const n of [leader, follower]) await fetch(`${n.url}/flush`, { method: 'POST' });
  const writeSpans = await eventually(
    async () => {
      const s = rx.spans.filter((x) => x.traceId === clientTrace);
      return s.length >= 6 ? s : undefined;
    },
    `6 spans of trace ${clientTrace}; got ${JSON.stringify(rx.spans.map((s) => [s.instance, s.name, s.traceId]))} from ${rx.requests.join(', ')}`,
  );

  const byName = (instance: string, name: string) => {
    const s = writeSpans.filter((x) => x.instance === instance && x.name === name);
    assert.equal(
      s.length,
      1,
      `one ${name} span on ${instance}: ${JSON.stringify(writeSpans.map((x) => [x.instance, x.name]))}`,
    );
    return s[0]!;
  };
  const fServer = byName('n2', 'POST /api/timeseries');
  const forward = byName('n2', 'timestore.forward');
  const lServer = byName('n1', 'POST /api/timeseries');
  const proposal = byName('n1', 'raft.proposal');
  const replicate = byName('n1', 'raft.replicate');
  const apply = byName('n1', 'raft.apply');

  assert.equal(new Set(writeSpans.map((s) => s.instance)).size, 2, 'the trace spans both nodes');
  // Parent chain: client → follower server → forward (client) → leader server → proposal → replicate/apply
  assert.equal(fServer.parentSpanId, 'b7ad6b7169203331');
  assert.equal(fServer.kind, 2); // SERVER
  assert.equal(forward.parentSpanId, fServer.spanId);
  assert.equal(forward.kind, 3); // CLIENT
  assert.equal(lServer.parentSpanId, forward.spanId);
  assert.equal(proposal.parentSpanId, lServer.spanId);
  assert.equal(replicate.parentSpanId, proposal.spanId);
  assert.equal(apply.parentSpanId, proposal.spanId);
  const route = lServer.attributes?.find((a) => a.key === 'http.route')?.value;
  assert.deepEqual(route, { stringValue: '/api/timeseries' });

  // The snapshot RPC: its own trace, sender span on n1, server + install spans on n2.
  const send = await eventually(
    async () => rx.spans.find((s) => s.name === 'raft.snapshot'),
    'raft.snapshot span',
  );
  assert.equal(send.instance, 'n1');
  const install = await eventually(
    async () => rx.spans.find((s) => s.name === 'raft.snapshot.install'),
    'install span',
  );
  assert.equal(install.instance, 'n2');
  assert.equal(install.traceId, send.traceId);
  const installServer = rx.spans.find((s) => s.spanId === install.parentSpanId)!;
  assert.equal(installServer.name, 'POST /raft/snapshot');
  assert.equal(installServer.parentSpanId, send.spanId);
});

test('with tracing off the node serves normally and exports nothing', async (t) => {
  const rx = await otlpReceiver();
  const env: Record<string, string> = {};
  for (const k of Object.keys(process.env)) if (k.startsWith('OTEL_')) env[k] = '';
  const node = await startNode('n3', env);
  t.after(async () => {
    await stop(node.proc);
    rx.server.closeAllConnections();
    await new Promise((r) => rx.server.close(r));
  });
  const res = await fetch(`${node.url}/api/timeseries`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: '{}',
  });
  assert.equal(res.status, 201);
  assert.deepEqual(await res.json(), { index: 7, enabled: false });
  const f = await fetch(`${node.url}/flush`, { method: 'POST' });
  assert.deepEqual(await f.json(), { enabled: false });
  assert.equal(rx.requests.length, 0);
});
