// Forwarded writes, batched per leader. A follower sends a write it cannot propose itself to the
// leader (POST /raft/forward). One request per write made every forwarded write cost an HTTP round
// trip of its own on both sides (on the benchmark machine at 16 clients spread over the members:
// 3x the CPU per write of the same load sent to the leader, docs/BENCHMARKS.md). Here a write
// that finds nothing in flight leaves at once, as `{"command": ...}` (the single form): a lone
// writer waits for nothing. Writes that find a forward in flight are gathered: those of one loop
// turn leave together once it ends, `{"commands": [...]}`, if fewer than `maxInFlight` (4)
// forwards are on the wire, else with the next one to leave when an answer comes. The leader
// proposes a batch in one turn (one Raft Ready: one fsync, one append per follower) and answers it
// command by command. Measured with bench:ab at 16 clients: each client's writes over the three
// members 1.15x (5 of 6 pairs) against one forward in flight, CPU per write 0.74 -> 0.62 ms (a
// follower with few writers had each wait for a whole round trip); all 16 through one follower
// 1.00x; 64 clients over all members 1.01x. Without gathering the turn's writes, four in flight
// had cost 0.92x through one follower (each of the first writes of a burst left alone).
//
// Each caller gets the outcome of its own command as {status, body}, as a single forward would
// have answered it (200 with {index, points}, or the problem), so the service's retry rules
// (replicated-service.ts) apply unchanged. A whole-batch failure (421 not the leader, no answer)
// is every command's outcome. A caller that gives up (its signal aborts) is dropped from the queue
// if its command has not left yet; once sent, the leader may still commit it (as with an aborted
// single request), and a retry with the same request id is deduplicated there.
import type { NodeId } from '../../raft/types.js';
import { MAX_FORWARD_BATCH } from '../../tsdb/schemas.js';
import type { CancelSignal } from '../cancellation.js';

export interface ForwardOutcome {
  status: number;
  body: unknown;
}

/** Sends one forward request (body already JSON) to `leader`; rejects when there is no answer. */
export type SendForward = (
  leader: NodeId,
  body: string,
  commands: number,
  timeoutMs: number,
) => Promise<ForwardOutcome>;

export interface ForwardBatcherOptions {
  /** Forwards on the wire per leader at once (default 4). */
  maxInFlight?: number;
  /** Most commands in one forward (default MAX_FORWARD_BATCH, the leader's limit). */
  maxCommands?: number;
  /** Most bytes of commands in one forward (default 4 MiB; a larger command still goes, alone). */
  maxBytes?: number;
  /** Further fields of a forward's body by its number of commands (e.g. `{ack: "durable"}`). */
  fields?: (commands: number) => Record<string, unknown> | undefined;
}

interface Waiter {
  text: string;
  timeoutMs: number;
  settled: boolean;
  resolve(o: ForwardOutcome): void;
  reject(err: unknown): void;
  cleanup(): void;
}

interface LeaderQueue {
  waiting: Waiter[];
  inFlight: number;
  /** A pump is due at the end of this loop turn (see forward()). */
  deferred: boolean;
}

export class ForwardBatcher {
  private readonly queues = new Map<NodeId, LeaderQueue>();
  private readonly maxInFlight: number;
  private readonly maxCommands: number;
  private readonly maxBytes: number;

  constructor(
    private readonly send: SendForward,
    opts: ForwardBatcherOptions = {},
  ) {
    this.maxInFlight = Math.max(1, opts.maxInFlight ?? 4);
    this.maxCommands = Math.min(MAX_FORWARD_BATCH, Math.max(1, opts.maxCommands ?? MAX_FORWARD_BATCH));
    this.maxBytes = Math.max(1, opts.maxBytes ?? 4 * 1024 * 1024);
    this.fields = opts.fields;
  }

  private readonly fields: ForwardBatcherOptions['fields'];

  /** `fields` for a batch of n, as JSON members each after a comma. */
  private tail(n: number): string {
    const f = this.fields?.(n);
    if (!f) return '';
    let s = '';
    for (const [k, v] of Object.entries(f)) s += `,${JSON.stringify(k)}:${JSON.stringify(v)}`;
    return s;
  }

  /** Forward one command (any JSON value the leader's schema accepts) to `leader`. */
  forward(
    leader: NodeId,
    command: unknown,
    opts: { timeoutMs: number; signal?: CancelSignal },
  ): Promise<ForwardOutcome> {
    const { signal } = opts;
    if (signal?.aborted) return Promise.reject(signal.reason);
    const text = JSON.stringify(command);
    let q = this.queues.get(leader);
    if (!q) {
      q = { waiting: [], inFlight: 0, deferred: false };
      this.queues.set(leader, q);
    }
    const queue = q;
    return new Promise<ForwardOutcome>((resolve, reject) => {
      const onAbort = () => {
        const i = queue.waiting.indexOf(w);
        if (i >= 0) queue.waiting.splice(i, 1);
        settle(() => reject(signal!.reason));
      };
      const settle = (f: () => void) => {
        if (w.settled) return;
        w.settled = true;
        w.cleanup();
        f();
      };
      const w: Waiter = {
        text,
        timeoutMs: opts.timeoutMs,
        settled: false,
        resolve: (o) => settle(() => resolve(o)),
        reject: (e) => settle(() => reject(e)),
        cleanup: () => signal?.removeEventListener('abort', onAbort),
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      queue.waiting.push(w);
      // Nothing on the wire: this write leaves at once (a lone writer waits for nothing). Else the
      // writes of this loop turn are gathered and leave together once it ends (one forward, not
      // one each while there is room in flight).
      if (queue.inFlight === 0) this.pump(leader, queue);
      else if (!queue.deferred && queue.inFlight < this.maxInFlight) {
        queue.deferred = true;
        setImmediate(() => {
          queue.deferred = false;
          this.pump(leader, queue);
        });
      }
    });
  }

  /** Commands waiting to leave, over all leaders (tests, status). */
  get queued(): number {
    let n = 0;
    for (const q of this.queues.values()) n += q.waiting.length;
    return n;
  }

  private pump(leader: NodeId, q: LeaderQueue): void {
    while (q.inFlight < this.maxInFlight && q.waiting.length > 0) {
      const batch: Waiter[] = [q.waiting.shift()!];
      let bytes = batch[0]!.text.length;
      while (
        q.waiting.length > 0 &&
        batch.length < this.maxCommands &&
        bytes + q.waiting[0]!.text.length <= this.maxBytes
      ) {
        const w = q.waiting.shift()!;
        bytes += w.text.length;
        batch.push(w);
      }
      q.inFlight++;
      const body =
        batch.length === 1
          ? `{"command":${batch[0]!.text}${this.tail(1)}}`
          : `{"commands":[${batch.map((w) => w.text).join(',')}]${this.tail(batch.length)}}`;
      const timeoutMs = Math.max(...batch.map((w) => w.timeoutMs));
      this.send(leader, body, batch.length, timeoutMs)
        .then(
          (out) => dispatch(batch, out),
          (err: unknown) => batch.forEach((w) => w.reject(err)),
        )
        .finally(() => {
          q.inFlight--;
          if (q.inFlight === 0 && q.waiting.length === 0) this.queues.delete(leader);
          else this.pump(leader, q);
        });
    }
  }
}

/** Each command's outcome from the leader's answer to its batch. Pure. */
export function dispatch(batch: Array<Pick<Waiter, 'resolve'>>, out: ForwardOutcome): void {
  if (batch.length === 1) return batch[0]!.resolve(out);
  const results = (out.body as { results?: unknown } | null)?.results;
  if (out.status !== 200 || !Array.isArray(results) || results.length !== batch.length) {
    // The batch as a whole failed (or the answer does not fit it): every command's outcome.
    const status = out.status === 200 ? 502 : out.status;
    const body =
      out.status === 200
        ? { detail: `the leader answered a batch of ${batch.length} with ${describe(results)}` }
        : out.body;
    return batch.forEach((w) => w.resolve({ status, body }));
  }
  batch.forEach((w, i) => {
    const r = results[i] as { status?: unknown; index?: unknown } | null;
    if (r && typeof r === 'object' && typeof r.index === 'number') w.resolve({ status: 200, body: r });
    else {
      const status = typeof r?.status === 'number' && r.status >= 400 ? r.status : 502;
      w.resolve({ status, body: r });
    }
  });
}

function describe(results: unknown): string {
  return Array.isArray(results) ? `${results.length} results` : 'no results';
}
