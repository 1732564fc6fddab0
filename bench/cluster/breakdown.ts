// Where a TimeStore write's time goes: starts the 3-node cluster (as run.ts does), warms it up,
// runs N clients against the leader, and prints, per node, the CPU per write and every latency
// histogram of /metrics that moved in the measured window (count per write, mean). The leader's
// commit duration against the clients' p50, a follower's persist against the leader's append
// round trip: that is the critical path of one write, stage by stage. Nothing is written to docs/.
//
//   npm run bench:breakdown                      # 1 client, 8 s
//   BENCH_CLIENTS=16 BENCH_SECONDS=5 npm run bench:breakdown
//   TIMESTORE_COMMIT_NOTICE_DELAY_MS=0 npm run bench:breakdown   # node settings pass through
//   BENCH_TARGETS=all BENCH_KEEP=1 npm run bench:breakdown        # via followers too; keep the logs
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runLoad } from './load.js';
import {
  repoRoot,
  startSystem,
  stopSystem,
  timestoreCluster,
  type Member,
  runBench,
  removeRunDir,
} from './systems.js';

const CLIENTS = Number(process.env.BENCH_CLIENTS ?? 1);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 8);
const WARMUP_SECONDS = Number(process.env.BENCH_WARMUP_SECONDS ?? 5);
/** 'leader' (default): clients send to the leader; 'all': round-robin over the 3 members. */
const TARGETS = process.env.BENCH_TARGETS ?? 'leader';

/** Every histogram's `_sum` and `_count` series of a Prometheus text exposition, by series name. */
export function histogramTotals(text: string): Map<string, { sum: number; count: number }> {
  const out = new Map<string, { sum: number; count: number }>();
  for (const line of text.split('\n')) {
    const m = /^(\w+)_(sum|count)(\{[^}]*\})? (\S+)$/.exec(line);
    if (!m) continue;
    const key = m[1]! + (m[3] ?? '');
    const v = out.get(key) ?? { sum: 0, count: 0 };
    v[m[2] as 'sum' | 'count'] = Number(m[4]);
    out.set(key, v);
  }
  return out;
}

function cpuMs(m: Member): number {
  const f = readFileSync(`/proc/${m.proc!.pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(f[11]) + Number(f[12])) * 10;
}

async function scrape(m: Member) {
  const text = await (await fetch(`${m.url}/metrics`)).text();
  return { hist: histogramTotals(text), cpu: cpuMs(m) };
}

async function main(): Promise<void> {
  const build = spawnSync('npm', ['run', 'build'], { cwd: repoRoot, stdio: 'inherit' });
  if (build.status !== 0) throw new Error(`npm run build failed (exit ${build.status})`);
  const base = mkdtempSync(join(tmpdir(), 'bench-breakdown-'));
  const ts = await timestoreCluster(base, { electionMs: 1000, heartbeatMs: 100 });
  process.on('exit', () => ts.members.forEach((m) => m.proc?.kill('SIGKILL')));
  await startSystem(ts);
  const leader = await ts.leader();
  if (WARMUP_SECONDS > 0) await runLoad(ts.target([leader.url]), 16, WARMUP_SECONDS * 1000, 0);
  const before = await Promise.all(ts.members.map(scrape));
  const urls = TARGETS === 'all' ? ts.members.map((m) => m.url) : [leader.url];
  const r = await runLoad(ts.target(urls), CLIENTS, SECONDS * 1000, 0);
  const after = await Promise.all(ts.members.map(scrape));
  const writes = r.ok;
  console.log(
    `\n${CLIENTS} client(s) to ${TARGETS === 'all' ? 'all members' : 'the leader'} (leader ${leader.id}) for ${SECONDS} s: ${writes} writes, ${r.perSecond.toFixed(0)} writes/s, p50 ${r.p50.toFixed(2)} ms, p99 ${r.p99.toFixed(2)} ms, failed ${r.failed}\n`,
  );
  ts.members.forEach((m, i) => {
    const b = before[i]!;
    const a = after[i]!;
    const role = m === leader ? 'leader' : 'follower';
    console.log(`${m.id} (${role}): CPU ${((a.cpu - b.cpu) / writes).toFixed(3)} ms/write`);
    for (const [key, v] of a.hist) {
      const dc = v.count - (b.hist.get(key)?.count ?? 0);
      if (dc <= 0) continue;
      const ds = v.sum - (b.hist.get(key)?.sum ?? 0);
      console.log(
        `  ${key.padEnd(90)} ${(dc / writes).toFixed(2).padStart(6)}/write  mean ${((ds / dc) * 1000).toFixed(3).padStart(8)} ms`,
      );
    }
  });
  await stopSystem(ts);
  // BENCH_KEEP=1 keeps the data directories and the nodes' logs (n1.log, ...) for a look.
  removeRunDir(base);
}

runBench(main);
