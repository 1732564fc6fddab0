// The load tool shared by the cluster benchmark (TimeStore and etcd alike): N concurrent clients,
// each sending one request at a time (single-entry writes) over keep-alive connections for a fixed
// duration; reports writes/s and latency percentiles. Only 2xx answers count as acknowledged.
import { Pool } from 'undici';

export interface Target {
  /** Base URLs; each client sends its requests to them in turn. */
  urls: string[];
  path: string;
  /** Body of request number i (unique per request). */
  body: (i: number) => string;
}

export interface LoadResult {
  clients: number;
  durationMs: number;
  ok: number;
  failed: number;
  perSecond: number;
  /** CPU time (user + system) the measured window cost the system's processes, per acknowledged write. */
  cpuMsPerWrite?: number;
  p50: number;
  p99: number;
  errors: Record<string, number>;
}

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i]!;
}

export async function runLoad(
  target: Target,
  clients: number,
  durationMs: number,
  warmupMs = 500,
  /** CPU time (ms) used so far by the processes under test; sampled at the window's start and end. */
  cpuMs?: () => number,
): Promise<LoadResult> {
  const pools = target.urls.map(
    (u) => new Pool(u, { connections: clients, pipelining: 1, keepAliveTimeout: 30_000 }),
  );
  let seq = 0;
  const lat: number[] = [];
  let ok = 0;
  let failed = 0;
  const errors: Record<string, number> = {};
  const start = performance.now();
  const measureFrom = start + warmupMs;
  const end = measureFrom + durationMs;
  async function client(c: number): Promise<void> {
    // Each client takes the targets in turn, starting at its own: with several targets every
    // client's writes are spread over all of them, so one client means the same mix of leader
    // and followers for every system (it used to send everything to the first target, a leader
    // for one system and a follower for another).
    let turn = c;
    while (performance.now() < end) {
      const pool = pools[turn++ % pools.length]!;
      const t0 = performance.now();
      let good = false;
      let why = '';
      try {
        const res = await pool.request({
          method: 'POST',
          path: target.path,
          headers: { 'content-type': 'application/json' },
          body: target.body(seq++),
          headersTimeout: 30_000,
          bodyTimeout: 30_000,
        });
        await res.body.text();
        good = res.statusCode >= 200 && res.statusCode < 300;
        if (!good) why = `HTTP ${res.statusCode}`;
      } catch (err) {
        why = (err as Error).message;
      }
      const t1 = performance.now();
      if (t0 < measureFrom) continue;
      if (t1 > end && !good) continue;
      if (good) {
        ok++;
        lat.push(t1 - t0);
      } else {
        failed++;
        errors[why] = (errors[why] ?? 0) + 1;
      }
    }
  }
  let cpuStart = NaN;
  let cpuEnd = NaN;
  const timers = cpuMs
    ? [
        setTimeout(() => (cpuStart = cpuMs()), warmupMs),
        setTimeout(() => (cpuEnd = cpuMs()), warmupMs + durationMs),
      ]
    : [];
  await Promise.all(Array.from({ length: clients }, (_, c) => client(c)));
  timers.forEach(clearTimeout);
  // The last answer may come in just before the end timer fires.
  if (cpuMs && Number.isNaN(cpuEnd)) cpuEnd = cpuMs();
  await Promise.all(pools.map((p) => p.close()));
  lat.sort((a, b) => a - b);
  return {
    clients,
    durationMs,
    ok,
    failed,
    perSecond: ok / (durationMs / 1000),
    ...(cpuMs && ok > 0 ? { cpuMsPerWrite: (cpuEnd - cpuStart) / ok } : {}),
    p50: percentile(lat, 50),
    p99: percentile(lat, 99),
    errors,
  };
}

export function timestoreTarget(urls: string[]): Target {
  return {
    urls,
    path: '/api/timeseries',
    body: (i) =>
      JSON.stringify({
        deviceId: `dev-${i % 64}`,
        timestamp: new Date(1_700_000_000_000 + i).toISOString(),
        value: i,
      }),
  };
}

export function etcdTarget(urls: string[]): Target {
  const b64 = (s: string) => Buffer.from(s).toString('base64');
  return {
    urls,
    path: '/v3/kv/put',
    body: (i) => JSON.stringify({ key: b64(`/bench/dev-${i % 64}/${i}`), value: b64(String(i)) }),
  };
}

// CLI: node --import tsx bench/cluster/load.ts <url,...> <clients> <seconds>
if (import.meta.url === `file://${process.argv[1]}`) {
  const [urls = 'http://127.0.0.1:5001', clients = '16', secs = '5'] = process.argv.slice(2);
  const r = await runLoad(timestoreTarget(urls.split(',')), Number(clients), Number(secs) * 1000);
  console.log(JSON.stringify(r));
}
