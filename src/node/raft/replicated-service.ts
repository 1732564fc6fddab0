// The replicated TimeStoreService: writes are proposed on the leader (followers forward them, with
// the request id, so a retried forward is applied once); a write resolves once it is committed and
// applied locally. Reads: linearizable (ReadIndex; a follower asks the leader for the read index),
// leader (as fresh as the leader's commit index), none (local state as it is).
// While there is no leader, callers wait a bounded time and then get ServiceUnavailableError (503).
import { fastPathsEnabled } from '../http-server.js';
import { mark, timelineOn } from '../../observability/timeline.js';
import { startProposalSpan } from '../../observability/tracing.js';
import { checkCommand } from '../../storage/data/index.js';
import { randomUUID } from 'node:crypto';
import type { DataStore } from '../../storage/data-store.js';
import type { Command } from '../../tsdb/model.js';
import { uuidv7 } from '../../tsdb/uuidv7.js';
import { Cancellation, cancelError, type CancelSignal } from '../cancellation.js';
import {
  ServiceUnavailableError,
  type Consistency,
  type TimeStoreService,
  type WriteResult,
} from '../service.js';
import { ProposalFailedError, ProposalOverwrittenError, type RaftDriver } from './driver.js';
import { ForwardBatcher } from './forward-batcher.js';
import { JsonText, PeerError } from './transport.js';

export interface ReplicatedServiceOptions {
  /** Longest a write or read waits for a leader / commit before 503. */
  requestTimeoutMs?: number;
  /** Called by close() after in-flight requests drained (stops the driver, closes raft.db). */
  onClose?: () => void | Promise<void>;
  /**
   * Forwards go on the transport's pipelined connection (default: fastPathsEnabled()); false
   * sends them through undici, whose requests get a span and a traceparent (tracing on).
   */
  pipelinedForwards?: boolean;
  /** Forwards on the wire to the leader at once (forward-batcher.ts; default 4). */
  forwardsInFlight?: number;
  /**
   * When this node asks the leader to answer its forwards (forwardRequestSchema's `ack`): "durable"
   * (default, with answers at commit) or "committed" (TIMESTORE_FORWARD_ACK=committed; as before,
   * for A/B measurements and as a way back).
   */
  forwardAck?: 'durable' | 'committed';
}

/**
 * The leader's answer to a forwarded write: the write's result and its entry's term; `durable`
 * when the entry is known durable on the leader but not yet committed (an `ack: "durable"` forward).
 */
export type ForwardResult = WriteResult & { term: number; durable?: true };

const DURABLE_ACK = { ack: 'durable' };
// Only a forward of one command asks to be answered once durable: under load (batches of many)
// the earlier answer sent the next forward sooner with fewer commands, more rounds for the same
// writes (bench:ab, 16 clients through a follower: 0.90x with every forward asking, 1.06x so).
const DURABLE_ACK_MAX_COMMANDS = 1;

/** A forward's outcome once its answer is in: the result, or what to tell the retry loop. */
type ForwardOutcome = { result: WriteResult } | { retry: string };

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

export class ReplicatedService implements TimeStoreService {
  readonly timeoutMs: number;
  private closed = false;
  /** Forwarded writes by request id: a retried forward joins (or returns) the first attempt. */
  private forwarded = new Map<string, { at: number; result: Promise<ForwardResult> }>();

  /** Writes this follower sends to the leader, batched while one is on the wire (forward-batcher.ts). */
  private readonly forwarder: ForwardBatcher;

  constructor(
    readonly driver: RaftDriver,
    private readonly opts: ReplicatedServiceOptions = {},
  ) {
    this.timeoutMs = opts.requestTimeoutMs ?? 10_000;
    const pipelined = opts.pipelinedForwards ?? fastPathsEnabled();
    this.forwarder = new ForwardBatcher(
      (leader, body, commands, timeoutMs) =>
        pipelined
          ? driver.transport.forward(leader, body, commands, timeoutMs)
          : driver.transport.request(
              { id: leader },
              'POST',
              // The count is for the sender's own metrics (observability.ts); the leader reads the body.
              commands === 1 ? '/raft/forward' : `/raft/forward?commands=${commands}`,
              new JsonText(body),
              { timeoutMs },
            ),
      {
        ...(opts.forwardsInFlight ? { maxInFlight: opts.forwardsInFlight } : {}),
        // Answered when durable on the leader only where this node answers at commit anyway.
        ...((opts.forwardAck ?? 'durable') === 'durable' && driver.answersAtCommit
          ? { fields: (n: number) => (n <= DURABLE_ACK_MAX_COMMANDS ? DURABLE_ACK : undefined) }
          : {}),
      },
    );
    this.stopping = new Promise<void>((r) => (this.markStopping = r));
  }

  /**
   * The node begins to shut down (before its HTTP server closes). A write forwarded through this
   * node that the leader has acknowledged is then answered without waiting for this node's own
   * apply: that wait is for reading the write back here, and this node is going away; its peer
   * connections are being closed, so the commit notice it waits for may never arrive (the write
   * would hang until its timeout and hold the shutdown up).
   */
  beginShutdown(): void {
    this.markStopping();
  }

  private active = 0;

  /** Resolves once the node began shutting down (beginShutdown). */
  private readonly stopping: Promise<void>;
  private markStopping: () => void = () => {};

  private closing: Promise<void> | null = null;

  /** Stop taking requests, let in-flight ones finish (bounded), then stop the Raft loop. Idempotent. */
  close(drainTimeoutMs = 5_000): Promise<void> {
    return (this.closing ??= (async () => {
      this.closed = true;
      await this.drain(drainTimeoutMs);
      await this.opts.onClose?.();
    })());
  }

  /** Writes and reads in progress. */
  inFlight(): number {
    return this.active;
  }

  /** Resolves when no write or read is in progress (or after timeoutMs). */
  async drain(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.active > 0 && Date.now() < deadline) await sleep(20);
  }

  private ensureIds(command: Command): Command {
    let changed = false;
    const ops = command.ops.map((op) => {
      if (op.op === 'put' && !op.point.id) {
        changed = true;
        return { ...op, point: { ...op.point, id: uuidv7() } };
      }
      return op;
    });
    const requestId = command.requestId ?? randomUUID();
    return changed || requestId !== command.requestId ? { ...command, requestId, ops } : command;
  }

  /** A removed node serves no reads or writes: it would forward to, or wait on, a cluster it left. */
  private refuseIfRemoved(): void {
    if (this.driver.removed)
      throw new ServiceUnavailableError(
        'this node was removed from the cluster; send requests to a member (see /raft/status of one)',
        1,
      );
  }

  async write(command: Command, opts: { signal?: CancelSignal } = {}): Promise<WriteResult> {
    if (this.closed) throw new ServiceUnavailableError('the node is shutting down', 1);
    this.refuseIfRemoved();
    this.active++;
    try {
      return await this.writeInner(command, opts);
    } finally {
      this.active--;
    }
  }

  private async writeInner(command: Command, opts: { signal?: CancelSignal }): Promise<WriteResult> {
    const cmd = this.ensureIds(command);
    // A command the engine would reject must never reach the log: it would be committed, applied
    // as a no-op everywhere, and answered as a failure only after a quorum round.
    checkCommand(cmd);
    const deadline = Date.now() + this.timeoutMs;
    let lastError = 'no leader';
    for (let attempt = 0; ; attempt++) {
      if (opts.signal?.aborted) throw cancelError(opts.signal);
      const remaining = deadline - Date.now();
      if (remaining <= 0 || this.driver.isStopped) break;
      const d = this.driver;
      if (d.role === 'Leader') {
        try {
          const { index, result } = await d.propose(cmd, remaining, proposalTrace(cmd));
          return { index, points: result?.points ?? [] };
        } catch (err) {
          if (!(err instanceof ProposalFailedError) || !err.retryable) throw err;
          lastError = err.message;
        }
      } else if (d.leaderId) {
        const leader = d.leaderId;
        // Give up on this leader when it changes (a stopped or partitioned leader would otherwise
        // hold the request until the deadline); the retry goes to the new leader.
        const ac = new Cancellation();
        const offChange = d.onChange(() => {
          if (d.leaderId !== leader) ac.abort(new Error(`leader changed from ${leader}`));
        });
        const onAbort = () => ac.abort(opts.signal?.reason);
        opts.signal?.addEventListener('abort', onAbort, { once: true });
        try {
          if (timelineOn) mark('fwd', -1);
          const res = await this.forwarder.forward(leader, cmd, { timeoutMs: remaining, signal: ac.signal });
          if (res.status === 200) {
            const body = res.body as Partial<ForwardResult> & WriteResult;
            if (timelineOn) mark('fwdgot', body.index);
            if (body.durable === true && typeof body.term === 'number') {
              const out = await this.awaitDurableForward(leader, body as ForwardResult, deadline);
              if ('result' in out) return out.result;
              lastError = out.retry;
              continue;
            }
            // The answer says the entry is committed (older leaders do not send the term). If this
            // node's log has it, it is committed here now: answered at once, like a leader
            // answering at commit, and applied with the next batch (a local read applies it
            // first: applyCommitted). Otherwise wait until it is applied here, so that a client
            // reading from this node sees its write.
            const here = typeof body.term === 'number' && d.learnCommitted(body.index, body.term);
            if (here && d.answersAtCommit) return { index: body.index, points: body.points };
            await Promise.race([
              d.waitApplied(body.index, Math.max(1, deadline - Date.now())),
              this.stopping,
            ]);
            return { index: body.index, points: body.points };
          }
          const detail = (res.body as { detail?: string })?.detail ?? `HTTP ${res.status}`;
          if (res.status >= 400 && res.status < 500 && res.status !== 421) {
            // The leader rejected the command itself (bad input): no retry.
            throw new ServiceUnavailableError(`the leader rejected the write: ${detail}`, 1);
          }
          lastError = `leader ${leader}: ${detail}`;
        } catch (err) {
          if (err instanceof ServiceUnavailableError) throw err;
          if (opts.signal?.aborted) throw cancelError(opts.signal);
          if (err instanceof ProposalFailedError) {
            // Committed on the leader but not applied here in time.
            lastError = err.message;
            break;
          }
          lastError = err instanceof PeerError ? err.message : String((err as Error)?.message ?? err);
        } finally {
          offChange();
          opts.signal?.removeEventListener('abort', onAbort);
        }
      }
      // No leader (or it just failed): wait for a change, then retry.
      await Promise.race([
        d.waitChange(Math.min(200, Math.max(1, deadline - Date.now()))),
        sleep(attempt < 3 ? 10 : 50),
      ]);
    }
    throw new ServiceUnavailableError(`write not acknowledged within ${this.timeoutMs} ms: ${lastError}`, 1);
  }

  /**
   * The leader answered a forward once the entry was durable in its own log: the write is
   * acknowledged once this node knows it committed (RaftDriver.awaitForwarded; at once when this
   * node's own copy is durable too, in a cluster of three). If another entry took its index (its
   * leader lost it), it is forwarded again: the entry is known not to be in the log, so the retry
   * cannot apply it twice.
   */
  private async awaitDurableForward(
    leader: string,
    body: ForwardResult,
    deadline: number,
  ): Promise<ForwardOutcome> {
    const result = { index: body.index, points: body.points, deleted: [] };
    let outcome: 'committed' | 'stopping';
    try {
      outcome = await Promise.race([
        this.driver
          .awaitForwarded(leader, body.index, body.term, result, Math.max(1, deadline - Date.now()))
          .then(() => 'committed' as const),
        // Unlike an answer at commit, this one does not acknowledge the write yet: a node going
        // away must not wait for a commit it may never hear of, and cannot answer success.
        this.stopping.then(() => 'stopping' as const),
      ]);
    } catch (err) {
      if (err instanceof ProposalOverwrittenError) return { retry: `leader ${leader}: ${err.message}` };
      throw err;
    }
    if (outcome === 'stopping')
      throw new ServiceUnavailableError(
        `the node is shutting down; write ${body.index} was durable on the leader, not known committed`,
        1,
      );
    return { result: { index: body.index, points: body.points } };
  }

  /** The leader's side of a forwarded write: deduplicated by request id. */
  handleForward(command: Command, ack?: 'committed' | 'durable'): Promise<ForwardResult> {
    if (timelineOn) mark('fwdin', -1);
    checkCommand(command);
    const now = Date.now();
    const id = command.requestId;
    if (id) {
      const prev = this.forwarded.get(id);
      if (prev) return prev.result;
    }
    // The answer carries the entry's term: the forwarding follower commits the entry from it
    // (RaftDriver.learnCommitted) and needs no commit notice.
    const result = (async (): Promise<ForwardResult> => {
      const { index, term, result, durable } = await this.driver.propose(
        command,
        this.timeoutMs,
        proposalTrace(command),
        { answerWhenDurable: ack === 'durable' },
      );
      if (timelineOn) mark('fwdans', index);
      if (!durable) return { index, term, points: result?.points ?? [] };
      // Answered before its commit: should the entry be lost after all (this leader deposed
      // before a quorum had it), a retry must propose it again, not get this answer.
      if (id) durable.committed.catch(() => this.forwarded.delete(id));
      return { index, term, points: result?.points ?? [], durable: true as const };
    })();
    if (id) {
      this.forwarded.set(id, { at: now, result });
      // Forget failed attempts at once (a retry must propose again) and old ones after a while.
      result.catch(() => this.forwarded.delete(id));
      if (this.forwarded.size > 10_000) {
        for (const [k, v] of this.forwarded) {
          if (now - v.at < 60_000 && this.forwarded.size <= 10_000) break;
          this.forwarded.delete(k);
        }
      }
    }
    return result;
  }

  async read<T>(
    consistency: Consistency,
    fn: (store: DataStore) => T,
    opts: { signal?: AbortSignal } = {},
  ): Promise<T> {
    if (this.closed) throw new ServiceUnavailableError('the node is shutting down', 1);
    this.refuseIfRemoved();
    this.active++;
    try {
      return await this.readInner(consistency, fn, opts);
    } finally {
      this.active--;
    }
  }

  private async readInner<T>(
    consistency: Consistency,
    fn: (store: DataStore) => T,
    opts: { signal?: AbortSignal },
  ): Promise<T> {
    const d = this.driver;
    if (consistency === 'none') {
      // What this node answered at commit but holds for a batched apply: applied first, so a
      // client reads back what it wrote here.
      d.applyCommitted();
      return fn(d.data);
    }
    const deadline = Date.now() + this.timeoutMs;
    let lastError = 'no leader';
    for (let attempt = 0; ; attempt++) {
      if (opts.signal?.aborted) throw cancelError(opts.signal);
      const remaining = deadline - Date.now();
      if (remaining <= 0 || d.isStopped) break;
      // Only reaching the read point is retried; errors of fn itself (a bad cursor, say) are the
      // caller's and must surface as they are, not as a 503 after the deadline.
      let fresh = false;
      try {
        let index: number | null = null;
        if (d.role === 'Leader') {
          index = consistency === 'linearizable' ? await d.readIndex() : d.status().commitIndex;
        } else if (d.leaderId) {
          const path = consistency === 'linearizable' ? '/raft/read-index' : '/raft/commit-index';
          const res = await d.transport.request(
            { id: d.leaderId },
            'POST',
            path,
            {},
            { timeoutMs: remaining },
          );
          if (res.status === 200) index = Number((res.body as { index: number }).index);
          else lastError = `leader ${d.leaderId}: HTTP ${res.status}`;
        }
        if (index !== null && Number.isFinite(index)) {
          await d.waitApplied(index, Math.max(1, deadline - Date.now()));
          fresh = true;
        }
      } catch (err) {
        lastError = String((err as Error)?.message ?? err);
      }
      if (fresh) return fn(d.data);
      await Promise.race([
        d.waitChange(Math.min(200, Math.max(1, deadline - Date.now()))),
        sleep(attempt < 3 ? 10 : 50),
      ]);
    }
    throw new ServiceUnavailableError(
      `${consistency} read not possible within ${this.timeoutMs} ms: ${lastError}`,
      1,
    );
  }

  /** Leader side of /raft/read-index. */
  async handleReadIndex(): Promise<number> {
    if (this.driver.role !== 'Leader')
      throw new ProposalFailedError('not the leader', true, this.driver.leaderId);
    const index = await this.driver.readIndex();
    // The asking follower serves its read once it applied this far: it must not wait for a held
    // commit notice.
    this.driver.flushCommitNotices();
    return index;
  }
}

/** A raft.proposal span (→ raft.replicate → raft.apply) under the writer's request span. */
function proposalTrace(command: Command) {
  return startProposalSpan({
    'timestore.request_id': command.requestId ?? '',
    'timestore.ops': command.ops.length,
  });
}
