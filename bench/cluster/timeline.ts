// Where one write's time goes, hop by hop across the three processes: starts the 3-node cluster
// with TIMESTORE_TIMELINE on (src/observability/timeline.ts), warms it up, runs 1 client against
// the leader (or, with BENCH_TARGETS=all, against a follower), then merges every member's marks
// by log index and prints the median time of each mark after the leader (or the receiving
// follower) got the request. The gaps between consecutive rows are the hand-offs: a row that
// starts late after the previous one finished is a wake-up or a process waiting for a CPU.
//
//   npm run bench:timeline                           # 1 client to the leader, 5 s
//   BENCH_TARGETS=follower npm run bench:timeline    # 1 client to a follower (forwarded writes)
//   TIMESTORE_RAFT_ASYNC_FSYNC=0 npm run bench:timeline   # node settings pass through
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
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

const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const WARMUP_SECONDS = Number(process.env.BENCH_WARMUP_SECONDS ?? 5);
const TARGETS = process.env.BENCH_TARGETS ?? 'leader';

interface Mark {
  t: number;
  tag: string;
  index: number;
}

function readMarks(file: string): Mark[] {
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => {
      const [t, tag, index] = l.split(' ');
      return { t: Number(t), tag: tag!, index: Number(index) };
    });
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.floor((s.length - 1) / 2)]! : NaN;
}

/**
 * Per write (log index i, written by the one client), the time of every mark relative to the
 * request's arrival at `entry` (its `req` mark). Marks without an index (`req`, a follower's
 * `aans`) belong to the next/previous indexed mark of the same process. Pure.
 */
export function offsetsByStage(
  byMember: Map<string, Mark[]>,
  entry: string,
  leader: string,
): Map<string, Map<number, number>> {
  const stages = new Map<string, Map<number, number>>();
  const add = (k: string, v: number, index: number) => {
    let a = stages.get(k);
    if (!a) stages.set(k, (a = new Map()));
    a.set(index, v);
  };
  // Index i's request arrival on the entry node: the `req` just before its `ans` of index i.
  const entryMarks = byMember.get(entry) ?? [];
  const reqAt = new Map<number, number>();
  let lastReq = -1;
  for (const m of entryMarks) {
    if (m.tag === 'req') lastReq = m.t;
    else if (m.tag === 'ans' && lastReq >= 0) {
      reqAt.set(m.index, lastReq);
      lastReq = -1;
    }
  }
  for (const [member, marks] of byMember) {
    const who = member === leader ? 'L' : member === entry ? 'E' : 'F';
    const name = (tag: string) => `${who === 'F' ? member : who}.${tag}`;
    let lastIndexed = -1;
    const seen = new Set<string>();
    const pendingUnindexed: Mark[] = [];
    const pendingFwd: Mark[] = [];
    for (const m of marks) {
      let i = m.index;
      if (m.tag === 'aans' || m.tag === 'fwdsent') i = lastIndexed;
      else if (m.tag === 'req') continue;
      else if (m.tag === 'fwd' || m.tag === 'fwdin' || m.tag === 'fwdhdr') {
        // A forward (entry node) and its arrival (leader) belong to the next indexed mark.
        pendingFwd.push(m);
        continue;
      } else if (m.tag === 'ahdr' || m.tag === 'data') {
        pendingUnindexed.push(m);
        continue;
      } else if (m.tag === 'arecv' && i < 0) continue; // heartbeats and commit notices
      if (i >= 0 && m.tag !== 'cmt' && m.tag !== 'appl') lastIndexed = i;
      if (i >= 0 && pendingFwd.length > 0 && (m.tag === 'prop' || m.tag === 'fwdgot')) {
        const t0f = reqAt.get(i);
        for (const u of pendingFwd)
          if (t0f !== undefined && !seen.has(`${u.tag} ${i}`)) {
            seen.add(`${u.tag} ${i}`);
            add(name(u.tag), u.t - t0f, i);
          }
        pendingFwd.length = 0;
      }
      // `ahdr` (headers of an append parsed) belongs to the next `arecv`; `data` (bytes from a
      // peer) to the next `got-*`.
      if (m.tag === 'arecv' || m.tag.startsWith('got-') || m.tag === 'fwdgot') {
        const want = m.tag === 'arecv' ? 'ahdr' : 'data';
        const u = pendingUnindexed.filter((x) => x.tag === want).pop();
        pendingUnindexed.length = 0;
        const t0u = reqAt.get(i);
        if (u && t0u !== undefined && !seen.has(`${want} ${i}`)) {
          seen.add(`${want} ${i}`);
          const label =
            m.tag === 'arecv' ? 'ahdr' : m.tag === 'fwdgot' ? 'data-fwd' : `data-${m.tag.slice(4)}`;
          add(name(label), u.t - t0u, i);
        }
      }
      const t0 = reqAt.get(i);
      if (t0 === undefined) continue;
      // The first of each: later answers (to heartbeats, commit notices) carry the same index.
      const key = `${m.tag} ${i}`;
      if (seen.has(key)) continue;
      seen.add(key);
      add(name(m.tag), m.t - t0, i);
    }
  }
  return stages;
}

/**
 * The chain one write follows, with the follower whose answer arrived first (the one that made
 * the commit), as medians over writes of each hop: where the time between request and answer goes.
 */
function printCriticalPath(
  stages: Map<string, Map<number, number>>,
  leader: string,
  followers: string[],
): void {
  const at = (k: string, i: number) => stages.get(k)?.get(i);
  const chain = (f: string) => [
    ['L.prop', 'L.prop'],
    ['L.rdy', 'L.rdy'],
    ['L.sent', 'L.sent'],
    [`${f}.ahdr`, 'F.ahdr'],
    [`${f}.arecv`, 'F.arecv'],
    [`${f}.rdy`, 'F.rdy'],
    [`${f}.txn`, 'F.txn'],
    [`${f}.fsync`, 'F.fsync'],
    [`${f}.rsp`, 'F.rsp'],
    [`${f}.aans`, 'F.aans'],
    [`L.data-${f}`, 'L.data'],
    [`L.got-${f}`, 'L.got'],
    ['L.cmt', 'L.cmt'],
    ['L.appl', 'L.appl'],
    ['L.resumed', 'L.resumed'],
    ['L.ans', 'L.ans'],
  ];
  const steps = new Map<string, number[]>();
  let leaderFsyncLast = 0;
  let writes = 0;
  for (const i of stages.get('L.ans')?.keys() ?? []) {
    const f = followers
      .filter((id) => at(`L.got-${id}`, i) !== undefined)
      .sort((a, b) => at(`L.got-${a}`, i)! - at(`L.got-${b}`, i)!)[0];
    if (!f) continue;
    writes++;
    if ((at('L.fsync', i) ?? 0) > at(`L.got-${f}`, i)!) leaderFsyncLast++;
    let prev = 0;
    let prevName = 'req';
    for (const [k, label] of chain(f)) {
      const t = at(k!, i);
      if (t === undefined) continue;
      const key = `${prevName} → ${label}`;
      let a = steps.get(key);
      if (!a) steps.set(key, (a = []));
      a.push(t - prev);
      prev = t;
      prevName = label!;
    }
  }
  console.log(
    `\ncritical path (F = the follower whose answer came first; medians of each hop, µs), ${writes} writes:`,
  );
  for (const [k, v] of steps) console.log(`  ${k.padEnd(22)} ${median(v).toFixed(0).padStart(6)}`);
  console.log(
    `  the leader's own fsync finished after F's answer arrived in ${((leaderFsyncLast / Math.max(1, writes)) * 100).toFixed(0)} % of writes`,
  );
}

async function main(): Promise<void> {
  const build = spawnSync('npm', ['run', 'build'], { cwd: repoRoot, stdio: 'inherit' });
  if (build.status !== 0) throw new Error(`npm run build failed (exit ${build.status})`);
  const base = mkdtempSync(join(tmpdir(), 'bench-timeline-'));
  const env = { ...process.env, TIMESTORE_TIMELINE: join(base, 'tl-{pid}.txt') };
  const ts = await timestoreCluster(join(base, 'data'), { electionMs: 1000, heartbeatMs: 100 }, env);
  process.on('exit', () => ts.members.forEach((m) => m.proc?.kill('SIGKILL')));
  await startSystem(ts);
  const leader = await ts.leader();
  const entry: Member = TARGETS === 'leader' ? leader : ts.members.find((m) => m !== leader)!;
  if (WARMUP_SECONDS > 0) {
    await runLoad(ts.target([leader.url]), 16, WARMUP_SECONDS * 1000, 0);
    await runLoad(ts.target([entry.url]), 1, WARMUP_SECONDS * 1000, 0);
  }
  // Only the measured window's marks: the files so far are dropped (the nodes append).
  const pids = new Map(ts.members.map((m) => [m.id, m.proc!.pid!]));
  const skip = new Map(
    ts.members.map((m) => [m.id, readMarks(join(base, `tl-${pids.get(m.id)}.txt`)).length]),
  );
  const r = await runLoad(ts.target([entry.url]), 1, SECONDS * 1000, 0);
  await stopSystem(ts);
  const byMember = new Map<string, Mark[]>();
  for (const m of ts.members)
    byMember.set(m.id, readMarks(join(base, `tl-${pids.get(m.id)}.txt`)).slice(skip.get(m.id)));
  const stages = offsetsByStage(byMember, entry.id, leader.id);
  console.log(
    `\n1 client to ${entry === leader ? 'the leader' : 'a follower'} ${entry.id} (leader ${leader.id}), ${SECONDS} s: ` +
      `${r.perSecond.toFixed(0)} writes/s, client p50 ${r.p50.toFixed(3)} ms, p99 ${r.p99.toFixed(3)} ms\n`,
  );
  console.log('median µs after the request arrived (E = the node the client writes to, L = leader):');
  const rows = [...stages.entries()]
    .map(([k, v]) => ({ k, v, med: median([...v.values()]), n: v.size }))
    .filter((r) => r.n >= 10)
    .sort((a, b) => a.med - b.med);
  // "step": the median, over writes that have both marks, of this mark minus the row above.
  console.log(`  ${'mark'.padEnd(14)} ${'median'.padStart(7)} ${'step'.padStart(6)}`);
  rows.forEach((row, i) => {
    const prev = rows[i - 1];
    const steps = prev
      ? [...row.v].filter(([idx]) => prev.v.has(idx)).map(([idx, t]) => t - prev.v.get(idx)!)
      : [];
    const step = steps.length ? median(steps).toFixed(0) : '';
    console.log(`  ${row.k.padEnd(14)} ${row.med.toFixed(0).padStart(7)} ${step.padStart(6)}  (n=${row.n})`);
  });
  printCriticalPath(
    stages,
    leader.id,
    ts.members.map((m) => m.id).filter((id) => id !== leader.id),
  );
  removeRunDir(base);
}

runBench(main);
