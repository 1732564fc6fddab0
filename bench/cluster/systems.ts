// The two systems the cluster benchmarks drive, as real processes on 127.0.0.1: a 3-node TimeStore
// cluster (the built dist/ program) and a 3-member etcd (Debian etcd-server). Shared by run.ts (the
// side-by-side benchmark) and breakdown.ts (where a TimeStore write's time goes).
import { spawn, type ChildProcess } from 'node:child_process';
import { appendFileSync, readFileSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import { etcdTarget, timestoreTarget, type Target } from './load.js';

export const repoRoot = resolve(fileURLToPath(import.meta.url), '..', '..', '..');

export interface Timeouts {
  electionMs: number;
  heartbeatMs: number;
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const s = createServer();
    s.once('error', rej);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      const p = typeof a === 'object' && a ? a.port : 0;
      s.close(() => res(p));
    });
  });
}

export async function httpJson(url: string, init: RequestInit = {}): Promise<any> {
  const r = await fetch(url, { ...init, signal: AbortSignal.timeout(3_000) });
  return r.json();
}

export async function until<T>(
  fn: () => Promise<T | null | undefined | false>,
  what: string,
  timeoutMs = 60_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch {
      // not yet
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

export interface Member {
  id: string;
  url: string;
  proc: ChildProcess | null;
  start(): void;
}

export interface System {
  name: string;
  members: Member[];
  target(urls: string[]): Target;
  /** The leader's member id, as the members agree. */
  leader(): Promise<Member>;
  ready(m: Member): Promise<boolean>;
}

function spawnLogged(
  cmd: string,
  args: string[],
  logFile: string,
  env: NodeJS.ProcessEnv = process.env,
): ChildProcess {
  const p = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], env });
  const write = (b: Buffer) => appendFileSync(logFile, b);
  p.stdout!.on('data', write);
  p.stderr!.on('data', write);
  return p;
}

/**
 * `env`: the nodes' environment (default: this process's), e.g. TIMESTORE_* settings to compare;
 * `program`: the built CLI to run (default: this tree's dist/cmd/timestore.js; ab.ts builds others).
 */
export async function timestoreCluster(
  dir: string,
  t: Timeouts,
  env: NodeJS.ProcessEnv = process.env,
  program = join(repoRoot, 'dist', 'cmd', 'timestore.js'),
): Promise<System> {
  const ports = [await freePort(), await freePort(), await freePort()];
  const peers = ports.map((p, i) => `n${i + 1}=http://127.0.0.1:${p}`).join(',');
  const members: Member[] = ports.map((port, i) => {
    const id = `n${i + 1}`;
    const m: Member = {
      id,
      url: `http://127.0.0.1:${port}`,
      proc: null,
      start() {
        m.proc = spawnLogged(
          process.execPath,
          [
            // BENCH_NODE_ARGS: extra flags for node itself, e.g. `--cpu-prof --cpu-prof-dir=/tmp/p`.
            ...(process.env.BENCH_NODE_ARGS ?? '').split(' ').filter(Boolean),
            // The built program, as `npm start` and the container image run it (through tsx's
            // loader a node measured ~7 % slower at 16 and 64 clients).
            program,
            'node',
            '--id',
            id,
            '--listen',
            `127.0.0.1:${port}`,
            '--data-dir',
            join(dir, id),
            '--peers',
            peers,
            '--election-timeout-ms',
            String(t.electionMs),
            '--heartbeat-ms',
            String(t.heartbeatMs),
            '--log-level',
            'warn',
          ],
          join(dir, `${id}.log`),
          env,
        );
      },
    };
    return m;
  });
  const sys: System = {
    name: 'TimeStore',
    members,
    target: timestoreTarget,
    async leader() {
      return until(async () => {
        const sts = await Promise.all(
          members.filter((m) => m.proc).map((m) => httpJson(`${m.url}/raft/status`).catch(() => null)),
        );
        const l = sts.find((s) => s?.state === 'Leader');
        return l ? members.find((m) => m.id === l.nodeId) : null;
      }, 'a TimeStore leader');
    },
    async ready(m) {
      const s = await httpJson(`${m.url}/raft/status`);
      return Boolean(s.leaderId);
    },
  };
  return sys;
}

export async function etcdCluster(dir: string, t: Timeouts): Promise<System> {
  const ports: number[] = [];
  for (let i = 0; i < 6; i++) ports.push(await freePort());
  const names = ['e1', 'e2', 'e3'];
  const peerUrl = (i: number) => `http://127.0.0.1:${ports[3 + i]}`;
  const initial = names.map((n, i) => `${n}=${peerUrl(i)}`).join(',');
  const started = new Set<string>();
  const members: Member[] = names.map((id, i) => {
    const m: Member = {
      id,
      url: `http://127.0.0.1:${ports[i]}`,
      proc: null,
      start() {
        const first = !started.has(id);
        started.add(id);
        m.proc = spawnLogged(
          'etcd',
          [
            '--name',
            id,
            '--data-dir',
            join(dir, id),
            '--listen-client-urls',
            m.url,
            '--advertise-client-urls',
            m.url,
            '--listen-peer-urls',
            peerUrl(i),
            '--initial-advertise-peer-urls',
            peerUrl(i),
            '--initial-cluster',
            initial,
            '--initial-cluster-state',
            first ? 'new' : 'existing',
            '--initial-cluster-token',
            'bench',
            '--heartbeat-interval',
            String(t.heartbeatMs),
            '--election-timeout',
            String(t.electionMs),
            '--log-level',
            'error',
            '--logger',
            'zap',
          ],
          join(dir, `${id}.log`),
        );
      },
    };
    return m;
  });
  const sys: System = {
    name: 'etcd',
    members,
    target: etcdTarget,
    async leader() {
      return until(async () => {
        for (const m of members.filter((x) => x.proc && x.proc.exitCode === null)) {
          const s = await httpJson(`${m.url}/v3/maintenance/status`, { method: 'POST', body: '{}' }).catch(
            () => null,
          );
          if (!s?.leader) continue;
          const own = String(s.header?.member_id);
          if (String(s.leader) === own) return m;
        }
        return null;
      }, 'an etcd leader');
    },
    async ready(m) {
      const s = await httpJson(`${m.url}/v3/maintenance/status`, { method: 'POST', body: '{}' });
      return Boolean(s.leader && s.leader !== '0');
    },
  };
  return sys;
}

export async function startSystem(s: System): Promise<void> {
  for (const m of s.members) m.start();
  await until(
    async () => (await Promise.all(s.members.map((m) => s.ready(m).catch(() => false)))).every(Boolean),
    `${s.name} to start`,
    120_000,
  );
  await s.leader();
}

export async function stopSystem(s: System): Promise<void> {
  await Promise.all(
    s.members.map(
      (m) =>
        new Promise<void>((res) => {
          if (!m.proc || m.proc.exitCode !== null || m.proc.signalCode !== null) return res();
          m.proc.once('exit', () => res());
          m.proc.kill('SIGKILL');
        }),
    ),
  );
}

/**
 * CPU time (user + system, ms) used so far by the system's member processes, from /proc: unlike
 * wall-clock rates it hardly depends on what else runs on the machine. NaN where /proc is missing.
 */
export function cpuMsOf(s: System): number {
  let total = 0;
  for (const m of s.members) {
    if (!m.proc?.pid) continue;
    try {
      // Fields after "(comm)": utime and stime are the 12th and 13th, in clock ticks (100 Hz).
      const f = readFileSync(`/proc/${m.proc.pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
      total += (Number(f[11]) + Number(f[12])) * 10;
    } catch {
      return NaN;
    }
  }
  return total;
}

// ------------------------------------------------------------------ failover

/**
 * Kill the leader; time from SIGKILL to the first write acknowledged after it. Writes are sent
 * open-loop (a new one every 10 ms, alternating between the survivors, each with its own timeout),
 * so a request that hangs while there is no leader does not hide a later one that succeeds.
 */
export async function failover(s: System): Promise<number> {
  const leader = await s.leader();
  const others = s.members.filter((m) => m !== leader);
  const target = s.target(others.map((m) => m.url));
  let ackAfterKill = 0;
  let killedAt = 0;
  let stop = false;
  let seq = 0;
  const inflight = new Set<Promise<void>>();
  const one = async (m: Member) => {
    const t0 = performance.now();
    try {
      const r = await fetch(m.url + target.path, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: target.body(1_000_000 + seq++),
        signal: AbortSignal.timeout(20_000),
      });
      await r.text();
      if (r.ok && killedAt > 0 && t0 >= killedAt && !ackAfterKill) ackAfterKill = performance.now();
    } catch {
      // not acknowledged
    }
  };
  const driver = (async () => {
    for (let k = 0; !stop; k++) {
      const p = one(others[k % others.length]!);
      inflight.add(p);
      void p.finally(() => inflight.delete(p));
      await sleep(10);
    }
  })();
  await sleep(1_000);
  killedAt = performance.now();
  leader.proc!.kill('SIGKILL');
  await until(async () => ackAfterKill > 0, `${s.name}: a write after the leader was killed`, 60_000);
  stop = true;
  await driver;
  await Promise.all([...inflight]);
  await new Promise<void>((r) =>
    leader.proc!.exitCode !== null || leader.proc!.signalCode !== null
      ? r()
      : leader.proc!.once('exit', () => r()),
  );
  // Restart the killed member and let it catch up.
  leader.start();
  await until(() => s.ready(leader), `${s.name}: ${leader.id} back`, 120_000);
  await sleep(1_000);
  return ackAfterKill - killedAt;
}

/** Runs a benchmark's main and exits: 0 when it finished, 1 (error printed) when it threw. */
export function runBench(main: () => Promise<void>): void {
  main().then(
    () => process.exit(0),
    (err: unknown) => {
      console.error(err);
      process.exit(1);
    },
  );
}

/** Removes a run's directory, or with BENCH_KEEP=1 keeps it (data, the nodes' logs) and says where. */
export function removeRunDir(dir: string): void {
  if (process.env.BENCH_KEEP === '1') console.log(`\nkept ${dir}`);
  else rmSync(dir, { recursive: true, force: true });
}
