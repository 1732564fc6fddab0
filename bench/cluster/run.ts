// Cluster write benchmark, side by side in one run: our 3-node TimeStore cluster and a 3-member
// etcd (Debian etcd-server; PUT through its JSON gateway /v3/kv/put), driven by the same load tool
// (bench/cluster/load.ts): single-entry writes/s with p50/p99 at 1, 16 and 64 concurrent clients;
// then failover time (leader SIGKILL → first acknowledged write) for both.
//
//   npm run bench:cluster                       # full run, appends to docs/BENCHMARKS.md
//   BENCH_SECONDS=3 BENCH_FAILOVERS=1 BENCH_NO_DOCS=1 npm run bench:cluster
import { spawnSync } from 'node:child_process';
import { appendFileSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { cpus, loadavg, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { runLoad, type LoadResult } from './load.js';
import {
  cpuMsOf,
  etcdCluster,
  failover,
  repoRoot,
  startSystem,
  stopSystem,
  timestoreCluster,
  runBench,
} from './systems.js';
const SECONDS = Number(process.env.BENCH_SECONDS ?? 8);
const FAILOVERS = Number(process.env.BENCH_FAILOVERS ?? 3);
const CLIENTS = (process.env.BENCH_CLIENTS ?? '1,16,64').split(',').map(Number);
const ELECTION_MS = Number(process.env.BENCH_ELECTION_MS ?? 1000);
const HEARTBEAT_MS = Number(process.env.BENCH_HEARTBEAT_MS ?? 100);
/** 'leader': clients send to the leader; 'all': round-robin over the 3 members. */
const TARGETS = (process.env.BENCH_TARGETS ?? 'leader,all').split(',') as Array<'leader' | 'all'>;
/**
 * Seconds of unmeasured load on each system before the first case, once at 16 clients and once at
 * 1: TimeStore runs on a JIT (V8 compiles hot code after it has run a while; measured here, the
 * first seconds of a fresh node cost about 1.4x the CPU per write of a warm one, and a node warmed
 * at 16 clients only still got faster over its first 20 s at 1 client, whose code paths differ:
 * prompt Readies, held commit notices). etcd is compiled ahead of time. A database server runs for
 * days, so both are measured warm, with the same warm-up. 0 measures cold.
 */
const WARMUP_SECONDS = Number(process.env.BENCH_WARMUP_SECONDS ?? 5);
/** Runs of each case per system (orders alternate); the table shows the run with the median rate. */
const REPEATS = Math.max(1, Number(process.env.BENCH_REPEATS ?? 1));
const timeouts = { electionMs: ELECTION_MS, heartbeatMs: HEARTBEAT_MS };

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
  const ts = await timestoreCluster(join(base, 'timestore'), timeouts);
  const et = await etcdCluster(join(base, 'etcd'), timeouts);
  process.on('exit', () => {
    for (const s of [ts, et]) for (const m of s.members) m.proc?.kill('SIGKILL');
  });
  console.log(`starting TimeStore (3 nodes) and etcd ${etcdVersion} (3 members) under ${base}`);
  const loadBefore = loadavg()[0]!;
  await startSystem(ts);
  await startSystem(et);
  if (WARMUP_SECONDS > 0) {
    for (const s of [ts, et]) {
      for (const clients of [16, 1]) {
        const w = await runLoad(s.target([(await s.leader()).url]), clients, WARMUP_SECONDS * 1000, 0);
        console.log(
          `${s.name.padEnd(9)} warm-up: ${WARMUP_SECONDS} s at ${clients} client(s), ${fmt(w.perSecond)} writes/s (not reported)`,
        );
      }
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
    `HTTP/1.1, ${SECONDS} s measured after 1 s of the same load${REPEATS > 1 ? `, ${REPEATS} runs per case (the table shows the run with the median rate)` : ''}; before the first case each system got ${WARMUP_SECONDS} s of unmeasured load at 16 clients and ${WARMUP_SECONDS} s at 1 client (JIT warm-up). TimeStore: \`POST /api/timeseries\` (one entry);`,
    'etcd: `POST /v3/kv/put` (JSON gateway). "leader" = clients send to the leader; "all" = each client sends its writes to the 3 members in turn',
    "(followers forward; a TimeStore follower answers once the write is committed: from its own durable copy and the leader's for a lone write, else from the leader's answer).",
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

runBench(main);
