// A/B of two TimeStore node settings on a noisy machine: two 3-node clusters run side by side
// (idle but for heartbeats while the other is measured), each warmed up, then short runs at the
// same load alternate A, B, B, A, ... so that a slow or fast minute of the machine falls on both.
// Reported: each side's median writes/s and CPU per write, and the median of the per-pair ratios
// B/A. On the benchmark machines single runs moved by ±25 % from one minute to the next, more
// than most changes worth measuring; interleaved pairs are what makes such a change visible.
//
//   BENCH_A='TIMESTORE_RAFT_ASYNC_FSYNC=1' BENCH_B='TIMESTORE_RAFT_ASYNC_FSYNC=leader' npm run bench:ab
//   BENCH_CLIENTS=16 BENCH_PAIRS=12 BENCH_SECONDS=3 BENCH_A='' BENCH_B='TIMESTORE_COMMIT_NOTICE_DELAY_MS=0' npm run bench:ab
//
// BENCH_A / BENCH_B: space-separated NAME=value settings added to the nodes' environment.
// BENCH_A_REF / BENCH_B_REF: a git commit (or branch, tag) whose code that side runs instead of
// this tree's: it is exported with `git archive`, given this tree's node_modules and built, so a
// change is measured against the code before it:
//   BENCH_A_REF=HEAD~1 npm run bench:ab               # the last commit against the one before
// BENCH_TARGETS=follower writes through a follower (forwarded) instead of to the leader;
// BENCH_TARGETS=all cycles each client's writes over the three members (as bench:cluster's "all").
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runLoad, type LoadResult } from './load.js';
import {
  cpuMsOf,
  repoRoot,
  startSystem,
  stopSystem,
  timestoreCluster,
  type System,
  runBench,
} from './systems.js';

const CLIENTS = Number(process.env.BENCH_CLIENTS ?? 1);
const PAIRS = Number(process.env.BENCH_PAIRS ?? 10);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 3);
const WARMUP_SECONDS = Number(process.env.BENCH_WARMUP_SECONDS ?? 20);
/**
 * 'leader' (default): writes go to the leader; 'follower': to another member, which forwards them;
 * 'all': each client's writes go to the members in turn.
 */
const TARGETS = process.env.BENCH_TARGETS ?? 'leader';

/** `A=1 B=x` → { A: '1', B: 'x' }. */
export function parseSettings(text: string | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const part of (text ?? '').split(/\s+/).filter(Boolean)) {
    const eq = part.indexOf('=');
    if (eq <= 0) throw new Error(`expected NAME=value in "${part}"`);
    out[part.slice(0, eq)] = part.slice(eq + 1);
  }
  return out;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[s.length >> 1]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
}

/** Exports `ref` into `dir`, links this tree's node_modules and builds it; the CLI's path. */
function buildRef(ref: string, dir: string): string {
  mkdirSync(dir, { recursive: true });
  const sha = execFileSync('git', ['rev-parse', '--verify', `${ref}^{commit}`], { cwd: repoRoot })
    .toString()
    .trim();
  execFileSync('sh', ['-c', `git archive ${sha} | tar -x -C "${dir}"`], { cwd: repoRoot });
  symlinkSync(join(repoRoot, 'node_modules'), join(dir, 'node_modules'));
  const b = spawnSync(
    process.execPath,
    [join(repoRoot, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.build.json'],
    {
      cwd: dir,
      stdio: 'inherit',
    },
  );
  if (b.status !== 0) throw new Error(`building ${ref} (${sha}) failed (exit ${b.status})`);
  console.log(`built ${ref} (${sha.slice(0, 10)}) in ${dir}`);
  return join(dir, 'dist', 'cmd', 'timestore.js');
}

async function main(): Promise<void> {
  const settings = { A: parseSettings(process.env.BENCH_A), B: parseSettings(process.env.BENCH_B) };
  const build = spawnSync('npm', ['run', 'build'], { cwd: repoRoot, stdio: 'inherit' });
  if (build.status !== 0) throw new Error(`npm run build failed (exit ${build.status})`);
  const base = mkdtempSync(join(tmpdir(), 'bench-ab-'));
  const refs = { A: process.env.BENCH_A_REF, B: process.env.BENCH_B_REF };
  const programs = {
    A: refs.A ? buildRef(refs.A, join(base, 'code-A')) : undefined,
    B: refs.B ? buildRef(refs.B, join(base, 'code-B')) : undefined,
  };
  const sides: Record<'A' | 'B', System> = {
    A: await timestoreCluster(
      join(base, 'A'),
      { electionMs: 1000, heartbeatMs: 100 },
      { ...process.env, ...settings.A },
      programs.A,
    ),
    B: await timestoreCluster(
      join(base, 'B'),
      { electionMs: 1000, heartbeatMs: 100 },
      { ...process.env, ...settings.B },
      programs.B,
    ),
  };
  process.on('exit', () =>
    Object.values(sides).forEach((s) => s.members.forEach((m) => m.proc?.kill('SIGKILL'))),
  );
  for (const s of Object.values(sides)) await startSystem(s);
  const entry = async (s: System): Promise<string[]> => {
    const l = await s.leader();
    if (TARGETS === 'all') return s.members.map((m) => m.url);
    return [TARGETS === 'follower' ? s.members.find((m) => m !== l)!.url : l.url];
  };
  const leaders = { A: await entry(sides.A), B: await entry(sides.B) };
  for (const k of ['A', 'B'] as const) {
    await runLoad(sides[k].target([(await sides[k].leader()).url]), 16, (WARMUP_SECONDS * 1000) / 2, 0);
    await runLoad(sides[k].target(leaders[k]), CLIENTS, (WARMUP_SECONDS * 1000) / 2, 0);
  }
  console.log(
    `A: ${refs.A ?? 'this tree'} ${JSON.stringify(settings.A)}  B: ${refs.B ?? 'this tree'} ${JSON.stringify(settings.B)}  ${CLIENTS} client(s) to the ${TARGETS}, ${PAIRS} pairs of ${SECONDS} s`,
  );
  const runs: Record<'A' | 'B', LoadResult[]> = { A: [], B: [] };
  const ratios: number[] = [];
  for (let i = 0; i < PAIRS; i++) {
    const order = i % 2 === 0 ? (['A', 'B'] as const) : (['B', 'A'] as const);
    const pair: Partial<Record<'A' | 'B', LoadResult>> = {};
    for (const k of order) {
      const r = await runLoad(sides[k].target(leaders[k]), CLIENTS, SECONDS * 1000, 500, () =>
        cpuMsOf(sides[k]),
      );
      pair[k] = r;
      runs[k].push(r);
    }
    ratios.push(pair.B!.perSecond / pair.A!.perSecond);
    console.log(
      `pair ${String(i + 1).padStart(2)}: A ${pair.A!.perSecond.toFixed(0).padStart(5)} w/s (${pair.A!.cpuMsPerWrite!.toFixed(3)} ms CPU)  B ${pair.B!.perSecond.toFixed(0).padStart(5)} w/s (${pair.B!.cpuMsPerWrite!.toFixed(3)} ms CPU)  B/A ${ratios[i]!.toFixed(2)}`,
    );
  }
  for (const k of ['A', 'B'] as const) {
    const rs = runs[k];
    console.log(
      `${k}: median ${median(rs.map((r) => r.perSecond)).toFixed(0)} writes/s, p50 ${median(rs.map((r) => r.p50)).toFixed(2)} ms, CPU ${median(rs.map((r) => r.cpuMsPerWrite ?? NaN)).toFixed(3)} ms/write, failed ${rs.reduce((n, r) => n + r.failed, 0)}`,
    );
  }
  const wins = ratios.filter((r) => r > 1).length;
  console.log(`B/A: median ${median(ratios).toFixed(3)} over ${PAIRS} pairs (B faster in ${wins})`);
  for (const s of Object.values(sides)) await stopSystem(s);
  rmSync(base, { recursive: true, force: true });
}

runBench(main);
