// A cross-process timeline of the write path, for benchmarks only (TIMESTORE_TIMELINE=<file>).
//
// Why: histograms give each stage's mean on one node, but a write at one client is a chain of
// hand-offs between three processes (client → leader → followers → leader → client), and the time
// that matters is often *between* the stages (a wake-up, a loop turn, a process waiting for a CPU).
// Every process stamps the same monotonic clock (CLOCK_MONOTONIC, shared by all processes of a
// machine), so the marks of all members can be merged into one sequence per log index
// (bench/cluster/timeline.ts does that).
//
// The marks (tag, on which node, what just happened):
//   req, resumed, ans   fast-write.ts: a write's body read; its write resolved; its answer written
//   prop                driver: a command proposed (its index)
//   rdy, sent           driver: a Ready with new entries; a leader's appends written (before fsync)
//   txn, fsync          driver: raft.db's transaction written; fsync'd
//   rsp                 driver: an append's answer handed to its HTTP request (follower)
//   cmt, appl           driver: a Ready with committed entries; those applied to data.db
//   data, got-<peer>    leader: bytes from a peer arrived; an append's answer parsed (match index)
//   ahdr, arecv, aans   follower: an append's headers; its body parsed; its answer written
//   fwd, fwdgot         follower: a write forwarded to the leader; the leader's answer parsed
//   fwdhdr, fwdin, fwdans, fwdsent  leader: a forward's headers; handleForward; its proposal
//                       answered; the answer written
//
// Off (the default) a mark is one branch on a constant. On, a mark appends three numbers to an
// array; the file is written at exit (or every few seconds), never on the path being measured.
import { appendFileSync, writeFileSync } from 'node:fs';

// `{pid}` in the path becomes this process's id: one file per member from one setting.
const file = (process.env.TIMESTORE_TIMELINE ?? '').replace('{pid}', String(process.pid));

/** Whether marks are recorded (TIMESTORE_TIMELINE is set). */
export const timelineOn = file !== '';

const tags: string[] = [];
const tagIds = new Map<string, number>();
let buf: number[] = [];

/**
 * Records `tag` for log index `index` (or -1 when there is none) at the current monotonic time
 * in microseconds. Callers check `timelineOn` first, so the disabled cost is one branch.
 */
export function mark(tag: string, index: number): void {
  let id = tagIds.get(tag);
  if (id === undefined) {
    id = tags.length;
    tags.push(tag);
    tagIds.set(tag, id);
  }
  buf.push(id, index, Number(process.hrtime.bigint() / 1000n));
}

function flush(): void {
  if (buf.length === 0) return;
  const lines: string[] = [];
  for (let i = 0; i < buf.length; i += 3) lines.push(`${buf[i + 2]} ${tags[buf[i]!]} ${buf[i + 1]}`);
  buf = [];
  appendFileSync(file, lines.join('\n') + '\n');
}

if (timelineOn) {
  writeFileSync(file, '');
  setInterval(flush, 2_000).unref();
  process.on('exit', flush);
}
