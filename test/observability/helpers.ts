// Shared helpers of the observability tests: an express server on 127.0.0.1 with an ephemeral port.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createServer as netServer } from 'node:net';
import type { Express } from 'express';

export async function listen(
  app: Express,
): Promise<{ server: Server; url: string; port: number; close(): Promise<void> }> {
  const server = await new Promise<Server>((resolve, reject) => {
    const s = app.listen(0, '127.0.0.1', (err?: Error) => (err ? reject(err) : resolve(s)));
  });
  const addr = server.address();
  if (!addr || typeof addr === 'string') throw new Error('no address');
  return {
    server,
    port: addr.port,
    url: `http://127.0.0.1:${addr.port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** A TCP port that was free a moment ago (for binaries that cannot report an ephemeral port). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = netServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      const port = a && typeof a !== 'string' ? a.port : 0;
      s.close(() => resolve(port));
    });
  });
}

/** Polls `fn` until it returns a non-undefined value; gives up after `attempts` tries. */
export async function eventually<T>(
  fn: () => Promise<T | undefined>,
  what: string,
  attempts = 300,
  everyMs = 100,
): Promise<T> {
  let last: unknown;
  for (let i = 0; i < attempts; i++) {
    try {
      const v = await fn();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    await new Promise((r) => setTimeout(r, everyMs));
  }
  throw new Error(`gave up waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`);
}

export interface PrometheusServer {
  url: string;
  /** Instant query; throws on a non-success status (e.g. a PromQL syntax error). */
  query(q: string): Promise<Array<{ metric: Record<string, string>; value: [number, string] }>>;
  /** Polls until the query returns at least one series. */
  queryEventually(q: string): Promise<Array<{ metric: Record<string, string>; value: [number, string] }>>;
  stop(): Promise<void>;
}

/**
 * Starts the real `prometheus` binary (Debian package prometheus) with a temporary config and TSDB
 * directory, scraping `targets` (host:port) every second with the given extra target labels.
 */
export async function startPrometheus(
  targets: string[],
  labels: Record<string, string> = {},
): Promise<PrometheusServer> {
  const { spawn } = await import('node:child_process');
  const { mkdtempSync, rmSync, writeFileSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const dir = mkdtempSync(join(tmpdir(), 'ts-prom-'));
  const port = await freePort();
  const labelYaml = Object.entries(labels)
    .map(([k, v]) => `${k}: ${JSON.stringify(v)}`)
    .join(', ');
  writeFileSync(
    join(dir, 'prometheus.yml'),
    [
      'global:',
      '  scrape_interval: 1s',
      '  evaluation_interval: 1s',
      'scrape_configs:',
      '  - job_name: timestore',
      '    static_configs:',
      `      - targets: [${targets.map((t) => `'${t}'`).join(', ')}]`,
      `        labels: { ${labelYaml} }`,
      '',
    ].join('\n'),
  );
  const proc = spawn(
    'prometheus',
    [
      `--config.file=${join(dir, 'prometheus.yml')}`,
      `--storage.tsdb.path=${join(dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${port}`,
      '--log.level=warn',
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  proc.stderr?.on('data', (d) => (stderr += String(d)));
  const url = `http://127.0.0.1:${port}`;
  type Result = Array<{ metric: Record<string, string>; value: [number, string] }>;
  const query = async (q: string): Promise<Result> => {
    if (proc.exitCode !== null)
      throw new Error(`prometheus exited (${proc.exitCode}): ${stderr.slice(-1000)}`);
    const res = await fetch(`${url}/api/v1/query?query=${encodeURIComponent(q)}`);
    const body = (await res.json()) as {
      status: string;
      error?: string;
      data: { resultType: string; result: unknown };
    };
    if (body.status !== 'success') throw new Error(`query ${q} failed: ${body.error}`);
    if (body.data.resultType === 'scalar')
      return [{ metric: {}, value: body.data.result as [number, string] }];
    return body.data.result as Result;
  };
  return {
    url,
    query,
    queryEventually: (q) =>
      eventually(async () => {
        if (proc.exitCode !== null)
          throw new Error(`prometheus exited (${proc.exitCode}): ${stderr.slice(-1000)}`);
        const r = await query(q).catch((err: Error) => {
          if (/ECONNREFUSED|fetch failed/.test(String(err.cause ?? err.message))) return [] as Result;
          throw err;
        });
        return r.length > 0 ? r : undefined;
      }, `Prometheus result for ${q}`),
    stop: async () => {
      if (proc.exitCode === null) {
        const exited = new Promise((r) => proc.once('exit', r));
        proc.kill('SIGTERM');
        await exited;
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind: number;
  attributes?: Array<{ key: string; value: Record<string, unknown> }>;
}
export interface ReceivedSpan extends OtlpSpan {
  instance: string;
}

/** A minimal OTLP/HTTP JSON receiver: POST /v1/traces (ExportTraceServiceRequest). */
export async function otlpReceiver(): Promise<{
  url: string;
  spans: ReceivedSpan[];
  server: Server;
  requests: string[];
}> {
  const spans: ReceivedSpan[] = [];
  const requests: string[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      requests.push(`${req.method} ${req.url} ${req.headers['content-type']}`);
      if (
        req.method !== 'POST' ||
        req.url !== '/v1/traces' ||
        !String(req.headers['content-type']).startsWith('application/json')
      ) {
        res.writeHead(415).end();
        return;
      }
      const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as {
        resourceSpans: Array<{
          resource: { attributes: Array<{ key: string; value: { stringValue?: string } }> };
          scopeSpans: Array<{ spans: OtlpSpan[] }>;
        }>;
      };
      for (const rs of body.resourceSpans) {
        const instance =
          rs.resource.attributes.find((a) => a.key === 'service.instance.id')?.value.stringValue ?? '?';
        for (const ss of rs.scopeSpans) for (const s of ss.spans) spans.push({ ...s, instance });
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, spans, server, requests };
}
