// Cluster write benchmark, side by side in one run: our 3-node TimeStore cluster and a 3-member
// etcd (Debian etcd-server; PUT through its JSON gateway /v3/kv/put), driven by the same load tool
// (bench/cluster/load.ts): single-entry writes/s with p50/p99 at 1, 16 and 64 concurrent clients;
// then failover time (leader SIGKILL → first acknowledged write) for both.
//
//   npm run bench:cluster                       # full run, appends to docs/BENCHMARKS.md
//   BENCH_SECONDS=3 BENCH_FAILOVERS=1 BENCH_NO_DOCS=1 npm run bench:cluster
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { appendFileSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { cpus, loadavg, tmpdir, totalmem } from 'node:os';
import { join, resolve } from 'node:path';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import { etcdTarget, runLoad, timestoreTarget, type LoadResult, type Target } from './load.js';

const repoRoot = resolve(fileURLToPath(import.meta.url), '..', '..', '..');
const SECONDS = Number(process.env.BENCH_SECONDS ?? 8);
const FAILOVERS = Number(process.env.BENCH_FAILOVERS ?? 3);
const CLIENTS = (process.env.BENCH_CLIENTS ?? '1,16,64').split(',').map(Number);
const ELECTION_MS = Number(process.env.BENCH_ELECTION_MS ?? 1000);
const HEARTBEAT_MS = Number(process.env.BENCH_HEARTBEAT_MS ?? 100);
/** 'leader': clients send to the leader; 'all': round-robin over the 3 members. */
const TARGETS = (process.env.BENCH_TARGETS ?? 'leader,all').split(',') as Array<'leader' | 'all'>;
/**
 * Seconds of unmeasured 16-client load on each system before the first case: TimeStore runs on a JIT
 * (V8 compiles hot code after it has run a while; measured here, the first seconds of a fresh node
 * cost about 1.4x the CPU per write of a warm one), etcd is compiled ahead of time. A database server
 * runs for days, so both are measured warm. 0 measures cold.
 */
const WARMUP_SECONDS = Number(process.env.BENCH_WARMUP_SECONDS ?? 5);
/** Runs of each case per system (orders alternate); the table shows the run with the median rate. */
const REPEATS = Math.max(1, Number(process.env.BENCH_REPEATS ?? 1));

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function freePort(): Promise<number> {
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

async function httpJson(url: string, init: RequestInit = {}): Promise<any> {
  const r = await fetch(url, { ...init, signal: AbortSignal.timeout(3_000) });
  return r.json();
}

async function until<T>(
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

// ------------------------------------------------------------------ the two systems

interface Member {
  id: string;
  url: string;
  proc: ChildProcess | null;
  start(): void;
}

interface System {
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

async function timestoreCluster(dir: string): Promise<System> {
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
            // The built program, as `npm start` and the container image run it (through tsx's
            // loader a node measured ~7 % slower at 16 and 64 clients).
            join(repoRoot, 'dist', 'cmd', 'timestore.js'),
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
            String(ELECTION_MS),
            '--heartbeat-ms',
            String(HEARTBEAT_MS),
            '--log-level',
            'warn',
          ],
          join(dir, `${id}.log`),
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

async function etcdCluster(dir: string): Promise<System> {
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
            String(HEARTBEAT_MS),
            '--election-timeout',
            String(ELECTION_MS),
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

async function startSystem(s: System): Promise<void> {
  for (const m of s.members) m.start();
  await until(
    async () => (await Promise.all(s.members.map((m) => s.ready(m).catch(() => false)))).every(Boolean),
    `${s.name} to start`,
    120_000,
  );
  await s.leader();
}

async function stopSystem(s: System): Promise<void> {
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
function cpuMsOf(s: System): number {
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
async function failover(s: System): Promise<number> {
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

// ------------------------------------------------------------------ main

function fmt(n: number, digits = 0): string {
  return Number.isFinite(n)
    ? n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits })
    : 'n/a';
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.floor((s.length - 1) / 2)]! : NaN;
}

async function main(): Promise<void> {
  if (spawnSync('etcd', ['--version']).status !== 0)
    throw new Error('etcd not found (apt-get install etcd-server)');
  const etcdVersion =
    /etcd Version: (\S+)/.exec(spawnSync('etcd', ['--version']).stdout.toString())?.[1] ?? '?';
  console.log('building dist/ (npm run build)');
  const build = spawnSync('npm', ['run', 'build'], { cwd: repoRoot, stdio: 'inherit' });
  if (build.status !== 0) throw new Error(`npm run build failed (exit ${build.status})`);
  const base = mkdtempSync(join(tmpdir(), 'bench-cluster-'));
  const ts = await timestoreCluster(join(base, 'timestore'));
  const et = await etcdCluster(join(base, 'etcd'));
  process.on('exit', () => {
    for (const s of [ts, et]) for (const m of s.members) m.proc?.kill('SIGKILL');
  });
  console.log(`starting TimeStore (3 nodes) and etcd ${etcdVersion} (3 members) under ${base}`);
  const loadBefore = loadavg()[0]!;
  await startSystem(ts);
  await startSystem(et);
  if (WARMUP_SECONDS > 0) {
    for (const s of [ts, et]) {
      const w = await runLoad(s.target([(await s.leader()).url]), 16, WARMUP_SECONDS * 1000, 0);
      console.log(
        `${s.name.padEnd(9)} warm-up: ${WARMUP_SECONDS} s at 16 clients, ${fmt(w.perSecond)} writes/s (not reported)`,
      );
    }
  }

  const rows: Array<{
    targets: string;
    clients: number;
    ts: LoadResult;
    et: LoadResult;
    failed: { ts: number; et: number };
  }> = [];
  for (const targets of TARGETS) {
    for (const clients of CLIENTS) {
      const runs: Record<string, LoadResult[]> = { TimeStore: [], etcd: [] };
      for (let rep = 0; rep < REPEATS; rep++) {
        // Alternate the order so background noise does not always favour one system.
        const order = (clients + rep) % 2 === 0 ? [ts, et] : [et, ts];
        for (const s of order) {
          const urls = targets === 'leader' ? [(await s.leader()).url] : s.members.map((m) => m.url);
          const r = await runLoad(s.target(urls), clients, SECONDS * 1000, 1_000, () => cpuMsOf(s));
          runs[s.name]!.push(r);
          console.log(
            `${s.name.padEnd(9)} targets=${targets.padEnd(6)} clients=${String(clients).padStart(2)}  ${fmt(r.perSecond).padStart(6)} writes/s  p50 ${fmt(r.p50, 2)} ms  p99 ${fmt(r.p99, 2)} ms  failed ${r.failed}  CPU ${fmt(r.cpuMsPerWrite ?? NaN, 3)} ms/write`,
          );
        }
      }
      const mid = (rs: LoadResult[]) =>
        [...rs].sort((a, b) => a.perSecond - b.perSecond)[(rs.length - 1) >> 1]!;
      rows.push({
        targets,
        clients,
        ts: mid(runs.TimeStore!),
        et: mid(runs.etcd!),
        failed: {
          ts: runs.TimeStore!.reduce((n, r) => n + r.failed, 0),
          et: runs.etcd!.reduce((n, r) => n + r.failed, 0),
        },
      });
    }
  }

  const fo: Record<string, number[]> = { TimeStore: [], etcd: [] };
  for (let i = 0; i < FAILOVERS; i++) {
    for (const s of i % 2 === 0 ? [ts, et] : [et, ts]) {
      const ms = await failover(s);
      fo[s.name]!.push(ms);
      console.log(
        `${s.name.padEnd(9)} failover #${i + 1}: ${fmt(ms)} ms from leader SIGKILL to the first acknowledged write`,
      );
    }
  }
  const loadAfter = loadavg()[0]!;
  await stopSystem(ts);
  await stopSystem(et);
  rmSync(base, { recursive: true, force: true });

  if (process.env.BENCH_NO_DOCS === '1') return;
  const cpu = cpus();
  const machine = `${cpu.length} × ${cpu[0]?.model.trim() ?? 'cpu'}, ${fmt(totalmem() / 2 ** 30, 1)} GiB RAM, Node ${process.version}, etcd ${etcdVersion}`;
  const lines = [
    '',
    `### Run ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC (\`npm run bench:cluster\`)`,
    '',
    `Run ${new Date().toISOString()} on ${machine}; \`npm run bench:cluster\` (bench/cluster/run.ts).`,
    `1-minute load average ${fmt(loadBefore, 1)} at the start, ${fmt(loadAfter, 1)} at the end (the machine is shared).`,
    `Both systems: 3 members on 127.0.0.1 in the same run, election timeout ${ELECTION_MS} ms, heartbeat ${HEARTBEAT_MS} ms,`,
    "fsync on every commit (TimeStore: one fsync of raft.db's WAL per Ready with new entries or a new term/vote, on the thread pool, before anything that depends on it; data.db of a Raft member synchronous=NORMAL; etcd: default WAL fsync).",
    `Load: the same tool for both (bench/cluster/load.ts): N clients, each one single-entry write at a time over keep-alive`,
    `HTTP/1.1, ${SECONDS} s measured after 1 s of the same load${REPEATS > 1 ? `, ${REPEATS} runs per case (the table shows the run with the median rate)` : ''}; before the first case each system got ${WARMUP_SECONDS} s of unmeasured load at 16 clients (JIT warm-up). TimeStore: \`POST /api/timeseries\` (one entry);`,
    'etcd: `POST /v3/kv/put` (JSON gateway). "leader" = clients send to the leader; "all" = round-robin over the 3 members',
    '(followers forward; a TimeStore follower answers once the write is applied locally).',
    '',
    '| targets | clients | TimeStore writes/s | p50 ms | p99 ms | CPU ms/write | etcd writes/s | p50 ms | p99 ms | CPU ms/write | TimeStore / etcd |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
    ...rows.map(
      (r) =>
        `| ${r.targets} | ${r.clients} | ${fmt(r.ts.perSecond)} | ${fmt(r.ts.p50, 2)} | ${fmt(r.ts.p99, 2)} | ${fmt(r.ts.cpuMsPerWrite ?? NaN, 3)} | ${fmt(r.et.perSecond)} | ${fmt(r.et.p50, 2)} | ${fmt(r.et.p99, 2)} | ${fmt(r.et.cpuMsPerWrite ?? NaN, 3)} | ${fmt(r.ts.perSecond / r.et.perSecond, 2)}× |`,
    ),
    '',
    'CPU ms/write: user + system CPU time of the three member processes during the measured window, per acknowledged write (from /proc; the load tool not included).',
    '',
    `Failover (leader SIGKILL → first write acknowledged by a surviving member; writes sent open-loop every 10 ms to the two survivors), ${FAILOVERS} runs each:`,
    '',
    '| system | runs (ms) | median ms |',
    '|---|---|---:|',
    `| TimeStore | ${fo.TimeStore!.map((x) => fmt(x)).join(', ')} | ${fmt(median(fo.TimeStore!))} |`,
    `| etcd | ${fo.etcd!.map((x) => fmt(x)).join(', ')} | ${fmt(median(fo.etcd!))} |`,
    '',
    `Failed writes during the throughput runs: TimeStore ${rows.reduce((n, r) => n + r.failed.ts, 0)}, etcd ${rows.reduce((n, r) => n + r.failed.et, 0)}.`,
    '',
  ];
  const docs = join(repoRoot, 'docs', 'BENCHMARKS.md');
  if (!existsSync(docs) || !readFileSync(docs, 'utf8').startsWith('#'))
    appendFileSync(docs, '# Benchmarks\n');
  appendFileSync(docs, lines.join('\n'));
  console.log(`results appended to ${docs}`);
}

main().then(
  () => process.exit(0),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);
