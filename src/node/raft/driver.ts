// The Raft driver loop of one node: tick timer, step incoming messages, and for every Ready:
//   1. install a received snapshot into data.db (atomic restore), then
//   2. persist snapshot meta + entries + hard state to raft.db in ONE transaction (one fsync),
//   3. only then send messages (responses to pending HTTP requests are returned on those requests),
//   4. apply committed entries to data.db (one transaction that also records the applied index),
//   5. hand out read states, advance.
// Everything runs on the event loop, synchronously per Ready: proposals and messages that arrive
// while a Ready is being handled share the next one (group commit: one fsync for all of them).
// Log compaction: when the log grows past a threshold, data.db is snapshotted online
// (DataStore.snapshotTo) and raft.db is compacted up to the snapshot.
import { InvalidCommandError, putResult } from '../../storage/data/index.js';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import type { DataStore, ApplyResult } from '../../storage/data-store.js';
import type { RaftLogStore } from '../../storage/raft-log/index.js';
import { parseConfChange } from '../../storage/raft-log/index.js';
import type {
  ConfChange,
  Entry,
  Message,
  NodeId,
  ProposalError,
  RaftConfig,
  RaftNodeApi,
  Ready,
  Role,
  SnapshotMeta,
  Status,
} from '../../raft/types.js';
import type { Command } from '../../tsdb/model.js';
import { MemberRemovedError, RemovedPeers, type RemovedInfo } from './removal.js';
import {
  fileSha256,
  silentLogger,
  type Logger,
  type RaftRpcHandler,
  type SnapshotSource,
} from './transport.js';
import { RaftTransport } from './transport.js';
import { SnapshotReceiver } from './snapshot-receiver.js';
import { failpoint, plantedBug } from '../failpoints.js';
import { mark, timelineOn } from '../../observability/timeline.js';

export class ProposalFailedError extends Error {
  constructor(
    message: string,
    readonly retryable: boolean,
    readonly leaderId: NodeId | null = null,
  ) {
    super(message);
    this.name = 'ProposalFailedError';
  }
}

/**
 * Another entry landed at a proposal's index: the proposal is known not to be in the log, so it
 * may be proposed (or forwarded) again without being applied twice.
 */
export class ProposalOverwrittenError extends ProposalFailedError {
  constructor() {
    super('proposal was overwritten by a new leader', true);
  }
}

/**
 * Written before a snapshot replaces data.db and removed once raft.db records it: a crash in
 * between is finished on the next start (recoverPendingSnapshot). data-recovery.ts writes it too.
 */
export function pendingSnapshotMarker(dataDir: string): string {
  return join(dataDir, 'pending-snapshot.json');
}

export function describeProposalError(e: ProposalError): string {
  switch (e.code) {
    case 'NotLeader':
      return `not the leader (leader: ${e.leaderId ?? 'unknown'})`;
    case 'ConfChangeInProgress':
      return 'a membership change is in progress';
    case 'TransferInProgress':
      return 'leadership transfer in progress';
    case 'Rejected':
      return e.reason;
  }
}

/**
 * Instrumentation of the loop (metrics, logs, spans). Every method is optional; an observer that
 * throws is ignored, so instrumentation can never stop the loop.
 */
export interface DriverObserver {
  /** A proposal's outcome and its time from propose() until applied here (what a writer waits). */
  proposal?(result: 'committed' | 'not_leader' | 'timeout' | 'failed', seconds: number): void;
  /** raft.db persist (one transaction, one fsync) of a Ready with entries or hard state. */
  persisted?(seconds: number, entries: number): void;
  /** One applyBatch into data.db. */
  applied?(seconds: number, entries: number): void;
  /** One AppendEntries request to a peer answered, after this long. */
  appendRoundTrip?(peer: NodeId, seconds: number): void;
  /** A forward to the leader sent by RaftTransport.forward() was answered (ok: 200) or failed. */
  forwarded?(ok: boolean, writes: number): void;
  /** A forwarded write was found committed from this node's durable copy and the leader's. */
  committedFromOwnCopy?(): void;
  snapshot?(
    op: 'take' | 'install',
    info: { index: number; bytes: number; seconds: number; ok: boolean },
  ): void;
}

export interface DriverOptions {
  id: NodeId;
  /** Sent to peers on every request (--cluster-secret). */
  clusterSecret?: string;
  dataDir: string;
  raftLog: RaftLogStore;
  data: DataStore;
  createNode: (config: RaftConfig) => RaftNodeApi;
  electionTimeoutMs: number;
  heartbeatMs: number;
  /** Known member URLs from the command line (--peers), used until the log says otherwise. */
  addressHints?: Record<NodeId, string>;
  /** Take a snapshot and compact raft.db when this many applied entries are past the last snapshot. */
  snapshotThreshold?: number;
  /** Entries kept in raft.db below the snapshot index, so slightly lagging followers need no snapshot. */
  snapshotCatchUpEntries?: number;
  maxSizePerMsg?: number;
  maxInflightMsgs?: number;
  /** Let a leader send appends while it fsyncs (default true; TIMESTORE_RAFT_PARALLEL_PERSIST=0 turns it off). */
  parallelLeaderPersist?: boolean;
  logger?: Logger;
  rpcTimeoutMs?: number;
  observer?: DriverObserver;
  /** Most entries applied to data.db per event-loop turn, so a long log replay lets probes answer (default 5000). */
  applyChunkEntries?: number;
  /** Bytes per snapshot chunk sent to a follower (default 1 MiB). */
  snapshotChunkBytes?: number;
  /**
   * Longest a leader holds a commit notice to fold it into the next append (default 5 ms; 0 sends
   * each at once). Bounds how far behind a follower's local (`consistency=none`) reads may be.
   */
  commitNoticeDelayMs?: number;
  /**
   * Longest a node holds committed entries nobody waits for (on a follower, or answered at commit
   * on the leader), to apply them in one data.db transaction (default 5 ms; 0 applies each Ready's
   * at once). A write or read that waits for them, and a local read, are served without it.
   */
  applyDelayMs?: number;
}

/** A trace of one proposal (src/observability/tracing.ts startProposalSpan fits it). */
export interface ProposalTrace {
  proposed(index: number, term?: number): void;
  committed(): void;
  applied(): void;
  fail(err: unknown): void;
}

interface ProposalWaiter {
  term: number;
  /**
   * The apply's answer when it is known without data.db (putResult): the leader then answers at
   * commit, before the apply (see answerAtCommit). Null: answered once applied.
   */
  atCommit: ApplyResult | null;
  trace?: ProposalTrace | undefined;
  resolve: (r: { index: number; result: ApplyResult | null }) => void;
  reject: (e: Error) => void;
}

interface ApplyWaiter {
  index: number;
  resolve: () => void;
}

interface ReadBatch {
  waiters: Array<{ resolve: (index: number) => void; reject: (e: Error) => void }>;
}

type Listener = () => void;

export class RaftDriver implements RaftRpcHandler {
  readonly selfId: NodeId;
  readonly node: RaftNodeApi;
  readonly transport: RaftTransport;
  readonly snapshots: SnapshotReceiver;
  private readonly log: Logger;
  private readonly raftLog: RaftLogStore;
  readonly data: DataStore;
  private readonly snapDir: string;
  private readonly tickMs: number;
  private readonly electionTick: number;
  private tickTimer: NodeJS.Timeout | null = null;
  private scheduled = false;
  private observer: DriverObserver | undefined;
  private running = false;
  private stopped = false;

  role: Role = 'Follower';
  leaderId: NodeId | null = null;
  term = 0;
  private applied: number;

  private addresses = new Map<NodeId, string>();
  private proposals = new Map<number, ProposalWaiter>();
  private applyWaiters: ApplyWaiter[] = [];
  private readQueue: ReadBatch['waiters'] = [];
  private readBatches = new Map<string, ReadBatch>();
  private readSeq = 0;
  private rpcWaiters = new Map<string, Array<(m: Message | null) => void>>();
  private pendingSnapshotFiles = new Map<number, string>();
  private listeners = new Set<Listener>();
  private compacting = false;
  private lastPromoteCheck = 0;
  private shaCache = new Map<string, { mtimeMs: number; size: number; sha256: string }>();
  private readonly snapshotThreshold: number;
  private readonly catchUpEntries: number;
  /** Learners this leader should promote once they have caught up. */
  readonly autoPromote = true;
  /** Fatal error (e.g. raft.db write failed): the node must stop. */
  fatal: Error | null = null;
  onFatal: (err: Error) => void = () => {};
  /** Set once this node knows it was removed from the cluster (see removal.ts); it then retires. */
  removed: RemovedInfo | null = null;
  onRemoved: (info: RemovedInfo) => void = () => {};
  onRejoined: () => void = () => {};
  private readonly removedPeers: RemovedPeers;

  constructor(private readonly opts: DriverOptions) {
    this.selfId = opts.id;
    this.commitNoticeDelayMs = Math.max(0, opts.commitNoticeDelayMs ?? 5);
    this.applyDelayMs = Math.max(0, opts.applyDelayMs ?? 30);
    this.removedPeers = new RemovedPeers(opts.id);
    this.observer = opts.observer;
    this.log = opts.logger ?? silentLogger;
    this.raftLog = opts.raftLog;
    this.data = opts.data;
    this.snapDir = join(opts.dataDir, 'snapshots');
    mkdirSync(this.snapDir, { recursive: true });
    // A crash while taking or restoring a snapshot leaves its temporary copy behind; none is in use now.
    for (const f of readdirSync(this.snapDir))
      if (/^(snap-tmp-|restore-)/.test(f)) rmSync(join(this.snapDir, f), { force: true });
    this.snapshots = new SnapshotReceiver(join(this.snapDir, 'incoming'));
    this.snapshotThreshold = opts.snapshotThreshold ?? 10_000;
    this.catchUpEntries = opts.snapshotCatchUpEntries ?? 2_000;

    this.recoverPendingSnapshot();

    // Ticks: heartbeat is a whole number of ticks; the election timeout about electionTimeoutMs.
    this.tickMs = Math.max(1, Math.min(opts.heartbeatMs, Math.floor(opts.electionTimeoutMs / 10)));
    const heartbeatTick = Math.max(1, Math.round(opts.heartbeatMs / this.tickMs));
    const electionTick = Math.max(heartbeatTick + 1, Math.round(opts.electionTimeoutMs / this.tickMs));
    this.electionTick = electionTick;

    this.applied = this.data.appliedIndex();
    const snapIdx = this.raftLog.snapshotMeta().index;
    const local = this.latestSnapshotFile();
    try {
      this.lastSnapshotBytes = local ? statSync(local.path).size : 0;
    } catch {
      // gone meanwhile: as if there were none
    }
    if (this.applied < snapIdx && local && local.index >= snapIdx) {
      // data.db lost entries that raft.db no longer has (e.g. data.db was deleted): start again
      // from this node's own snapshot; the log after it is re-applied.
      const copy = join(this.snapDir, `restore-${process.pid}.db`);
      copyFileSync(local.path, copy);
      this.data.restoreFrom(copy);
      rmSync(copy, { force: true });
      this.log.warn(
        { from: this.applied, to: this.data.appliedIndex() },
        'data.db was behind raft.db: restored the local snapshot',
      );
      this.applied = this.data.appliedIndex();
    }
    if (this.applied < snapIdx) {
      throw new Error(
        `data.db is at index ${this.applied}, older than raft.db's snapshot ${snapIdx}, and no usable local snapshot (${this.snapDir}/snap-N.db, N >= ${snapIdx}) exists to rebuild it from: data.db was replaced or lost. ` +
          `Replace this member from its peers: remove it (POST /cluster/remove {"id":"${opts.id}"} on a healthy member), move ${opts.dataDir} aside, start it with an empty data dir and --join <member URL> (docs/RELIABILITY.md, "Corruption")`,
      );
    }
    for (const [id, url] of Object.entries(opts.addressHints ?? {})) this.addresses.set(id, url);
    this.refreshAddresses();

    this.node = opts.createNode({
      id: opts.id,
      storage: this.raftLog,
      electionTick,
      heartbeatTick,
      random: Math.random,
      preVote: true,
      checkQuorum: true,
      readOnly: 'safe',
      maxSizePerMsg: opts.maxSizePerMsg ?? 1024 * 1024,
      maxInflightMsgs: opts.maxInflightMsgs ?? 64,
      maxInflightBytes: 0,
      applied: this.applied,
      // Set after a damaged raft.db was truncated: no votes, no campaigns until caught up again.
      abstainUntil: this.raftLog.abstainUntil(),
    });
    this.term = this.raftLog.hardState().term;

    this.transport = new RaftTransport({
      selfId: opts.id,
      resolveUrl: (id) => this.addresses.get(id),
      deliver: (m) => this.deliver(m),
      onRemoved: (peer) => this.retire({ how: 'peer', peer }),
      ...(opts.clusterSecret ? { clusterSecret: opts.clusterSecret } : {}),
      reportUnreachable: (id) => {
        if (this.stopped) return;
        this.node.reportUnreachable(id);
        this.schedule();
      },
      reportSnapshot: (id, ok) => {
        if (this.stopped) return;
        this.node.reportSnapshot(id, ok);
        this.schedule();
      },
      snapshotSource: (index) => this.snapshotSource(index),
      ...(opts.snapshotChunkBytes ? { snapshotChunkBytes: opts.snapshotChunkBytes } : {}),
      rpcTimeoutMs: opts.rpcTimeoutMs ?? Math.max(1_000, opts.electionTimeoutMs * 2),
      appendWindow: Number(process.env.TIMESTORE_RAFT_APPEND_WINDOW ?? 2) || 2,
      observeAppend: (peer, seconds) => this.observe('appendRoundTrip', peer, seconds),
      observeForward: (ok, writes) => this.observe('forwarded', ok, writes),
      logger: this.log,
    });
  }

  // ---------------------------------------------------------------- lifecycle
  start(): void {
    if (process.env.TIMESTORE_RAFT_STATS === '1') {
      let prev = { ...this.stats };
      setInterval(() => {
        const cur = {
          ...this.stats,
          appendRequests: this.transport.merged,
          appendRttMs: this.transport.appendRttMs,
        };
        const d = Object.fromEntries(
          Object.entries(cur).map(([k, v]) => [
            k,
            Math.round((v - (prev as Record<string, number>)[k]!) * 10) / 10,
          ]),
        );
        prev = cur;
        const reqs = (d as Record<string, number>).appendRequests ?? 0;
        const rtt = reqs > 0 ? Math.round(((d as Record<string, number>).appendRttMs! / reqs) * 10) / 10 : 0;
        this.log.info({ ...d, avgAppendRttMs: rtt, role: this.role }, 'raft loop stats (per second)');
      }, 1000).unref();
    }
    // setInterval drops the ticks that fall due while the loop is busy or the process waits for a
    // CPU (measured on the shared benchmark machine: followers started an election 2.75 s after the
    // leader died, with a 1-2 s randomized timeout). The core counts its timeouts in ticks, so the
    // missed ones are replayed (at most electionTick at once) to keep them in wall-clock time. Pre-vote
    // and check-quorum keep a node that was itself stalled from disrupting a healthy leader.
    let lastTick = performance.now();
    this.tickTimer = setInterval(() => {
      if (this.stopped || this.removed) return; // a removed node must not campaign
      const now = performance.now();
      const due = Math.max(1, Math.floor((now - lastTick) / this.tickMs + 0.25));
      const ticks = Math.min(due, this.electionTick);
      lastTick = ticks === due ? lastTick + due * this.tickMs : now;
      for (let i = 0; i < ticks; i++) this.node.tick();
      this.schedule();
      this.maybePromoteLearners();
    }, this.tickMs);
    this.schedule();
  }

  /** Stop ticking and sending; fail everything pending. raft.db/data.db are closed by the owner. */
  stop(why = 'the node is shutting down'): void {
    if (this.stopped) return;
    this.stopped = true;
    if (this.tickTimer) clearInterval(this.tickTimer);
    this.clearNoticeTimer();
    if (this.applyTimer) clearTimeout(this.applyTimer);
    this.heldNotices.clear();
    this.transport.close();
    const err = this.failProposals(why);
    for (const b of this.readBatches.values()) for (const w of b.waiters) w.reject(err);
    this.readBatches.clear();
    for (const w of this.readQueue) w.reject(err);
    this.readQueue = [];
    for (const q of this.rpcWaiters.values()) for (const r of q) r(null);
    this.rpcWaiters.clear();
    this.notify();
  }

  get isStopped(): boolean {
    return this.stopped;
  }

  appliedIndex(): number {
    return this.applied;
  }

  urlOf(id: NodeId): string | undefined {
    return this.addresses.get(id);
  }

  members(): Array<{ id: NodeId; url: string | null; voter: boolean }> {
    const m = this.node.status().membership;
    return [
      ...m.voters.map((id) => ({ id, url: this.addresses.get(id) ?? null, voter: true })),
      ...m.learners.map((id) => ({ id, url: this.addresses.get(id) ?? null, voter: false })),
    ];
  }

  status(): Status {
    return this.node.status();
  }

  storageInfo(): { firstIndex: number; lastIndex: number; snapshotIndex: number } {
    return {
      firstIndex: this.raftLog.firstIndex(),
      lastIndex: this.raftLog.lastIndex(),
      snapshotIndex: this.raftLog.snapshotMeta().index,
    };
  }

  /** Called on every role/leader/term change and apply. */
  onChange(fn: Listener): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  /** Calls an observer method; instrumentation errors never reach the loop. */
  private observe<K extends keyof DriverObserver>(
    k: K,
    ...args: Parameters<NonNullable<DriverObserver[K]>>
  ): void {
    const o = this.observer;
    const fn = o?.[k] as ((...a: unknown[]) => void) | undefined;
    if (!fn) return;
    try {
      fn.apply(o, args);
    } catch {
      // ignored on purpose
    }
  }

  /** Instrumentation is built after the node (it needs the node's status); it plugs in here. */
  setObserver(o: DriverObserver | null): void {
    this.observer = o ?? undefined;
  }

  /** Proposals waiting to be committed and applied (on the leader). */
  get pendingProposals(): number {
    return this.proposals.size;
  }

  private notify(): void {
    for (const fn of [...this.listeners]) {
      try {
        fn();
      } catch {
        // listeners must not break the loop
      }
    }
  }

  /** Resolves when something changes (leader, role, apply) or after ms. */
  waitChange(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(done, ms);
      const off = this.onChange(done);
      function done() {
        clearTimeout(t);
        off();
        resolve();
      }
    });
  }

  // ---------------------------------------------------------------- proposals and reads
  /** Propose a command; resolves once it is committed and applied locally (only on the leader). */
  propose(
    command: Command,
    timeoutMs = 30_000,
    trace?: ProposalTrace,
    opts: { answerWhenDurable?: boolean } = {},
  ): Promise<{
    index: number;
    term: number;
    result: ApplyResult | null;
    /** Answered once durable here (answerWhenDurable), and the commit still to come. */
    durable?: { committed: Promise<unknown> };
  }> {
    if (this.stopped) {
      const err = new ProposalFailedError('the node is shutting down', true);
      trace?.fail(err);
      return Promise.reject(err);
    }
    // Nothing else pending: no later proposal can share this entry's fsync, so the Ready runs at
    // once rather than a loop turn later (see schedule()).
    const alone = this.proposals.size === 0;
    const r = this.node.propose(JSON.stringify(command));
    if (!r.ok) {
      trace?.fail(new Error(describeProposalError(r.error)));
      this.observe('proposal', r.error.code === 'NotLeader' ? 'not_leader' : 'failed', 0);
      const leader =
        r.error.code === 'NotLeader' || r.error.code === 'TransferInProgress' ? r.error.leaderId : null;
      return Promise.reject(
        new ProposalFailedError(describeProposalError(r.error), r.error.code !== 'Rejected', leader),
      );
    }
    trace?.proposed(r.index, r.term);
    if (timelineOn) mark('prop', r.index);
    this.schedule(alone);
    const t0 = performance.now();
    const seconds = () => (performance.now() - t0) / 1000;
    const atCommit = this.answersAtCommit ? putResult(command, r.index) : null;
    const committed = this.waitProposal(r.index, r.term, timeoutMs, trace, atCommit).then(
      (v) => {
        this.observe('proposal', 'committed', seconds());
        return { ...v, term: r.term };
      },
      (err: unknown) => {
        const timedOut = err instanceof ProposalFailedError && /not committed within/.test(err.message);
        this.observe('proposal', timedOut ? 'timeout' : 'failed', seconds());
        throw err;
      },
    );
    if (!opts.answerWhenDurable || !atCommit || !this.durableAnswerUseful()) return committed;
    // A forward whose follower can commit the entry from the leader's durable copy and its own
    // (awaitForwarded): answered once this node's fsync covers the entry, or at commit if that
    // comes first (it cannot here, but a commit also means durable). The commit promise's own
    // failure is the answer's only while it is not given yet.
    const durable = new Promise<{
      index: number;
      term: number;
      result: ApplyResult;
      durable: { committed: Promise<unknown> };
    }>((resolve, reject) => {
      const index = r.index;
      this.durableWaiters.set(index, {
        term: r.term,
        resolve: () => {
          // Before the answer leaves: reads from now on wait for this entry, which the
          // follower may acknowledge before this leader knows it committed.
          this.node.announceDurable(index);
          resolve({ index, term: r.term, result: atCommit, durable: { committed } });
        },
        reject,
      });
      committed.then(
        () => this.takeDurableWaiter(index)?.resolve(),
        (err: unknown) => this.takeDurableWaiter(index)?.reject(err as Error),
      );
    });
    return durable;
  }

  /**
   * Leader: entries proposed for a forward asking to be answered once durable here (propose's
   * answerWhenDurable), by index; settled by the Ready that persists them (settleDurable).
   */
  private durableWaiters = new Map<number, { term: number; resolve(): void; reject(e: Error): void }>();

  /** Removes and returns the waiter for `index`: each is settled once, by whichever comes first. */
  private takeDurableWaiter(index: number) {
    const w = this.durableWaiters.get(index);
    this.durableWaiters.delete(index);
    return w;
  }

  /** The Ready's new entries are durable on this node: answer the forwards waiting for that. */
  private settleDurable(entries: readonly Entry[]): void {
    if (this.durableWaiters.size === 0 || entries.length === 0) return;
    const first = entries[0]!.index;
    const last = entries[entries.length - 1]!.index;
    for (const index of [...this.durableWaiters.keys()]) {
      if (index < first || index > last) continue;
      const w = this.takeDurableWaiter(index)!;
      if (entries[index - first]!.term === w.term) w.resolve();
      else w.reject(new ProposalOverwrittenError());
    }
  }

  /**
   * Whether a forwarding follower can commit an entry from its own copy and this leader's
   * (RaftNode.learnDurableOnLeader): two voters make a quorum only with at most three. In a
   * larger cluster the follower would have to wait for the commit index anyway (a held commit
   * notice): it is answered at commit instead, as before.
   */
  private durableAnswerUseful(): boolean {
    if (this.votersEpoch !== this.membershipEpoch) {
      this.votersEpoch = this.membershipEpoch;
      this.votersCount = this.node.status().membership.voters.length;
    }
    return this.votersCount <= 3;
  }
  private votersEpoch = -1;
  private votersCount = 0;

  /**
   * Follower: the leader proposed a write this node forwarded as (index, term) and answered once
   * the entry was durable in its own log. Resolves once this node knows the entry is committed:
   * at once if its own persisted log holds the entry, which with the leader's copy makes a
   * quorum (three voters; RaftNode.learnDurableOnLeader), else after the Ready that persists it
   * here, or when the leader's commit index reaches it (a larger cluster, a learner, or an entry
   * that reached this node only through a later leader). Rejects (ProposalFailedError,
   * retryable) when another entry lands at that index, so the write was lost with its leader and
   * may be forwarded again, and after timeoutMs (its fate unknown).
   */
  awaitForwarded(
    leader: NodeId,
    index: number,
    term: number,
    result: ApplyResult,
    timeoutMs: number,
  ): Promise<void> {
    if (this.stopped) return Promise.reject(new ProposalFailedError('the node is shutting down', true));
    if (index <= this.applied) {
      // Applied here already (the leader's appends and commit index were faster than its
      // answer): only the entry's term is left to check.
      return this.node.learnDurableOnLeader(leader, index, term)
        ? Promise.resolve()
        : Promise.reject(
            new ProposalFailedError(
              `entry ${index} was applied here before the leader's answer arrived, and is not ` +
                `known to be the forwarded write (another term there, or compacted): outcome unknown`,
              false,
            ),
          );
    }
    // A proposal of this node's own at that index, from when it led an older term, is lost.
    const old = this.proposals.get(index);
    if (old && old.term !== term) {
      this.proposals.delete(index);
      old.reject(new ProposalOverwrittenError());
    }
    const done = this.waitProposal(index, term, timeoutMs, undefined, result).then(() => {});
    this.forwardClaims.set(index, { leader, term });
    this.tryClaim(index);
    return done;
  }

  /** Follower: forwarded writes waiting for their commit here (awaitForwarded), by index. */
  private forwardClaims = new Map<number, { leader: NodeId; term: number }>();

  /** Answers the claim's writer if its entry is committed here now (learnDurableOnLeader). */
  private tryClaim(index: number): void {
    const c = this.forwardClaims.get(index);
    if (!c) return;
    const w = this.proposals.get(index);
    if (!w || w.term !== c.term) {
      this.forwardClaims.delete(index); // answered or failed meanwhile
      return;
    }
    if (!this.node.learnDurableOnLeader(c.leader, index, c.term)) return;
    this.forwardClaims.delete(index);
    this.proposals.delete(index);
    this.answeredUpTo = Math.max(this.answeredUpTo, index);
    this.schedule(true); // the commit index moved: persisted and applied with the next Ready
    this.observe('committedFromOwnCopy');
    w.resolve({ index, result: w.atCommit });
  }

  /** After a Ready persisted entries here: the claims their fsync may complete. */
  private retryClaims(): void {
    if (this.stopped) return;
    for (const index of [...this.forwardClaims.keys()]) this.tryClaim(index);
  }

  /**
   * Resolve when the entry (index, term) is applied; reject when another entry lands at that index,
   * or after timeoutMs (a leader cut off from its quorum never commits it: the outcome is unknown).
   */
  private waitProposal(
    index: number,
    term: number,
    timeoutMs: number,
    trace?: ProposalTrace,
    atCommit: ApplyResult | null = null,
  ): Promise<{ index: number; result: ApplyResult | null }> {
    return new Promise((resolve, reject) => {
      const t = setTimeout(
        () => {
          if (this.proposals.get(index) === w) this.proposals.delete(index);
          w.reject(
            new ProposalFailedError(`entry ${index} not committed within ${timeoutMs} ms (no quorum?)`, true),
          );
        },
        Math.max(1, timeoutMs),
      );
      const w: ProposalWaiter = {
        term,
        atCommit,
        trace,
        resolve: (v) => {
          clearTimeout(t);
          trace?.applied();
          resolve(v);
        },
        reject: (e) => {
          clearTimeout(t);
          trace?.fail(e);
          reject(e);
        },
      };
      this.proposals.set(index, w);
    });
  }

  proposeConfChange(cc: ConfChange): Promise<{ index: number }> {
    if (this.stopped) return Promise.reject(new ProposalFailedError('the node is shutting down', true));
    const r = this.node.proposeConfChange(cc);
    if (!r.ok) {
      const leader = r.error.code === 'NotLeader' ? r.error.leaderId : null;
      return Promise.reject(
        new ProposalFailedError(describeProposalError(r.error), r.error.code !== 'Rejected', leader),
      );
    }
    this.schedule();
    return this.waitProposal(r.index, r.term, 30_000).then(({ index }) => ({ index }));
  }

  /**
   * The leader answered a write this node forwarded: (index, term) is committed. Lets this node
   * apply it without waiting for the leader's next append (RaftNode.learnCommitted checks that
   * the local entry there is that one). Returns whether it committed the entry here: the caller
   * may then answer its writer at once; the entry is applied with the next batch, or before
   * anything this node reads (applyCommitted, waitApplied).
   */
  learnCommitted(index: number, term: number): boolean {
    if (this.stopped) return false;
    if (!this.node.learnCommitted(index, term)) {
      // Most likely the entry's append has not reached this node yet (the leader committed it
      // with the other followers): try again once a Ready has persisted more of the log, rather
      // than wait for a commit index the leader may hold back (commit notices).
      if (index > this.applied && index > (this.pendingLearn?.index ?? 0))
        this.pendingLearn = { index, term };
      return false;
    }
    this.schedule(true);
    return true;
  }

  /** A commit learnt from a forward's answer before this node's log had the entry (learnCommitted). */
  private pendingLearn: { index: number; term: number } | null = null;

  /** After a Ready persisted entries: the pending learnt commit, if the log has its entry now. */
  private retryPendingLearn(): void {
    const p = this.pendingLearn;
    if (!p || this.stopped) return;
    if (p.index <= this.applied || this.node.learnCommitted(p.index, p.term)) {
      this.pendingLearn = null;
      this.schedule(true);
    }
  }

  /**
   * ReadIndex: resolves with an index such that serving a read once appliedIndex >= index is
   * linearizable. Reads that arrive together share one ReadIndex round (the round is started
   * after all of them arrived, in the next loop turn).
   */
  readIndex(): Promise<number> {
    if (this.stopped) return Promise.reject(new ProposalFailedError('the node is shutting down', true));
    return new Promise((resolve, reject) => {
      this.readQueue.push({ resolve, reject });
      this.schedule();
    });
  }

  private startReadRound(): void {
    if (this.readQueue.length === 0) return;
    const waiters = this.readQueue;
    this.readQueue = [];
    const id = `${this.selfId}-${++this.readSeq}`;
    const r = this.node.readIndex(id);
    if (!r.ok) {
      const err = new ProposalFailedError(
        describeProposalError(r.error),
        true,
        r.error.code === 'NotLeader' ? r.error.leaderId : null,
      );
      for (const w of waiters) w.reject(err);
      return;
    }
    this.readBatches.set(id, { waiters });
    // A round that never completes (leadership lost) is failed after a bound.
    setTimeout(
      () => {
        const b = this.readBatches.get(id);
        if (!b) return;
        this.readBatches.delete(id);
        for (const w of b.waiters) w.reject(new ProposalFailedError('read index round timed out', true));
      },
      Math.max(2_000, this.opts.electionTimeoutMs * 3),
    ).unref();
  }

  /**
   * Applies now what is committed and waiting for its batch (at most applyChunkEntries): a local
   * (`consistency=none`) read calls it first, so that it sees every write this node answered.
   */
  applyCommitted(): void {
    if (!this.stopped && this.applyQueue.length > 0) this.drainApply();
  }

  /** Resolves once appliedIndex >= index; rejects after timeoutMs. */
  waitApplied(index: number, timeoutMs: number): Promise<void> {
    if (this.applied >= index) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const w: ApplyWaiter = { index, resolve: () => resolve() };
      const t = setTimeout(
        () => {
          const i = this.applyWaiters.indexOf(w);
          if (i >= 0) this.applyWaiters.splice(i, 1);
          reject(
            new ProposalFailedError(`not applied up to ${index} in time (applied ${this.applied})`, true),
          );
        },
        Math.max(1, timeoutMs),
      );
      w.resolve = () => {
        clearTimeout(t);
        resolve();
      };
      this.applyWaiters.push(w);
      // Entries held back for a batched apply (see afterPersist): someone waits for them now.
      if (this.applyQueue.length > 0) this.scheduleApply();
    });
  }

  transferLeadership(to?: NodeId): { ok: true; to: NodeId } | { ok: false; error: string } {
    const st = this.node.status();
    if (st.role !== 'Leader')
      return { ok: false, error: `not the leader (leader: ${st.leaderId ?? 'unknown'})` };
    let target = to;
    if (!target) {
      const candidates = (st.progress ?? [])
        .filter((p) => p.id !== this.selfId && !p.learner && st.membership.voters.includes(p.id))
        .sort((a, b) => Number(b.recentActive) - Number(a.recentActive) || b.match - a.match);
      target = candidates[0]?.id;
    }
    if (!target) return { ok: false, error: 'no other voter to transfer leadership to' };
    const r = this.node.transferLeadership(target);
    this.schedule();
    if (!r.ok) return { ok: false, error: describeProposalError(r.error) };
    return { ok: true, to: target };
  }

  // ---------------------------------------------------------------- incoming messages
  currentTerm(): number {
    return this.term;
  }

  deliver(m: Message): void {
    if (this.stopped) return;
    try {
      this.node.step(m);
    } catch (err) {
      // A damaged raft.db read while stepping: this node must stop, not answer from a broken log.
      if ((err as Error).name === 'RaftLogCorruptError') return this.fail(err as Error);
      this.log.warn({ err: String((err as Error).message), type: m.type, from: m.from }, 'step failed');
      return;
    }
    this.schedule(true);
  }

  /** The leader's commit index as last heard in an append (for readiness). */
  leaderCommitSeen = 0;

  handleRequest(m: Message): Promise<Message | null> {
    if (this.removedPeers.has(m.from)) return Promise.reject(new MemberRemovedError(m.from));
    if (this.stopped) return Promise.resolve(null);
    if (m.type === 'append') this.leaderCommitSeen = Math.max(this.leaderCommitSeen, m.leaderCommit);
    try {
      this.node.step(m);
    } catch (err) {
      if ((err as Error).name === 'RaftLogCorruptError') this.fail(err as Error);
      throw err;
    }
    const key = `${m.from}|${m.type === 'vote' ? 'voteResponse' : 'appendResponse'}`;
    return new Promise((resolve) => {
      let q = this.rpcWaiters.get(key);
      if (!q) this.rpcWaiters.set(key, (q = []));
      q.push(resolve);
      this.schedule(true);
    });
  }

  installSnapshot(m: Extract<Message, { type: 'snapshot' }>, path: string): Promise<Message | null> {
    this.pendingSnapshotFiles.set(m.snapshot.index, path);
    return this.handleRequest(m);
  }

  // ---------------------------------------------------------------- the loop
  /**
   * Run the loop soon. By default in the next loop turn (setImmediate), so that everything arriving
   * in this turn (requests on other sockets, answers) shares one Ready and one fsync: that is the
   * group commit under load. `prompt` runs it as soon as the current callback returns (a
   * microtask): for a peer's message (a follower's append, a leader's answer), which nothing else
   * in this turn would join, and for a proposal on an idle leader. Measured at 1 client, the turn
   * cost 50–150 µs at each of the write's three stops.
   */
  schedule(prompt = false): void {
    if (this.stopped) return;
    if (prompt) {
      if (this.promptScheduled) return;
      this.promptScheduled = true;
      queueMicrotask(() => {
        this.promptScheduled = false;
        this.run();
      });
      return;
    }
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      this.run();
    });
  }

  private promptScheduled = false;

  private run(): void {
    if (this.stopped || this.running) return;
    this.running = true;
    try {
      this.startReadRound();
      let guard = 0;
      while (!this.stopped && !this.syncing && this.node.hasReady()) {
        const rd = this.node.ready();
        // false: raft.db is being fsync'd; the Ready is finished (and advanced) when that is done.
        if (!this.handleReady(rd)) break;
        this.node.advance(rd);
        if (++guard > 1000) {
          // Yield to I/O; continue in the next turn.
          this.schedule();
          break;
        }
      }
    } catch (err) {
      this.fail(err as Error);
    } finally {
      this.running = false;
    }
    // Requests whose step produced no response get an empty answer (not while a Ready is being
    // fsync'd: the answers to what was stepped meanwhile are in the next one).
    if (this.syncing) return;
    for (const q of this.rpcWaiters.values()) for (const r of q) r(null);
    this.rpcWaiters.clear();
  }

  /**
   * A Ready's raft.db transaction is written and its fsync runs on the thread pool. Meanwhile the
   * event loop goes on: requests are parsed and proposed, peers' messages are stepped into the
   * core, and all of it forms the next Ready (group commit). Nothing that depends on the state
   * being fsync'd leaves this process before it is done: the Ready's messages, its applies, the
   * answers to writers. What the core decides meanwhile (a commit counting this node's entries)
   * only shows in the next Ready, which is handled after this one.
   */
  private syncing = false;
  /**
   * Who fsyncs on the thread pool. A leader does: while its fsync runs it parses and proposes the
   * writes that form the next Ready (group commit). A follower fsyncs on the event loop: what
   * arrives meanwhile waits in the socket and forms the next Ready just the same, and the two
   * hand-offs between threads (~70 µs measured with three members fsyncing at once, see
   * docs/BENCHMARKS.md) stay off the write's critical path. TIMESTORE_RAFT_ASYNC_FSYNC: `leader`
   * (default), `1` (every role), `0` (none).
   */
  private readonly asyncFsync = fsyncMode(process.env.TIMESTORE_RAFT_ASYNC_FSYNC);

  private fail(err: Error): void {
    if (this.fatal) return;
    this.fatal = err;
    this.log.error({ err: String(err.stack ?? err) }, 'fatal error in the Raft loop; stopping this node');
    this.stop();
    this.onFatal(err);
  }

  /** Loop counters (GET /raft/status?stats=1 and TIMESTORE_RAFT_STATS=1 logs). */
  readonly stats = {
    readies: 0,
    persisted: 0,
    appendsOut: 0,
    entriesOut: 0,
    heartbeatsOut: 0,
    responses: 0,
    applied: 0,
    loopMs: 0,
    persistMs: 0,
    applyMs: 0,
  };

  private handleReady(rd: Ready): boolean {
    const t0 = performance.now();
    this.stats.readies++;
    this.stats.persisted += rd.entries.length;
    this.stats.applied += rd.committedEntries.length;
    for (const m of rd.messages) {
      if (m.type === 'append') {
        if (m.entries.length > 0) {
          this.stats.appendsOut++;
          this.stats.entriesOut += m.entries.length;
        } else this.stats.heartbeatsOut++;
      } else if (m.type === 'appendResponse') this.stats.responses++;
    }
    try {
      return this.handleReadyInner(rd);
    } finally {
      this.stats.loopMs += performance.now() - t0;
    }
  }

  private handleReadyInner(rd: Ready): boolean {
    const ss = rd.softState;
    const lastNew = rd.entries.length > 0 ? rd.entries[rd.entries.length - 1]!.index : -1;
    if (timelineOn && lastNew >= 0) mark('rdy', lastNew);
    const changed = ss.role !== this.role || ss.leaderId !== this.leaderId || ss.term !== this.term;
    if (changed) {
      if (ss.leaderId !== this.leaderId || ss.role !== this.role) {
        this.log.info({ role: ss.role, leader: ss.leaderId, term: ss.term }, 'raft state changed');
      }
      this.role = ss.role;
      this.leaderId = ss.leaderId;
      this.term = ss.term;
      if (ss.role !== 'Leader') this.heldNotices.clear();
    }

    // 1. A snapshot received from the leader goes into data.db first (atomic restore), with a
    //    marker so that a crash between the restore and the raft.db write is finished on restart.
    if (rd.snapshot) {
      this.drainApply(Infinity);
      this.installSnapshotData(rd.snapshot);
    }

    // 2. Durable state: one transaction, one fsync.
    //    A leader's appends may leave before its own fsync (Raft thesis §10.2.1) when they depend on
    //    nothing new in this Ready's hard state (same term and vote as already on disk): a commit
    //    that counts the leader's own entries is handled in a later Ready, after this fsync (see
    //    `syncing`). Everything else waits for the fsync.
    let rest = rd.messages;
    const persisted = this.raftLog.hardState();
    if (
      this.opts.parallelLeaderPersist !== false &&
      ss.role === 'Leader' &&
      !rd.snapshot &&
      rd.entries.length > 0 &&
      (!rd.hardState || (rd.hardState.term === persisted.term && rd.hardState.vote === persisted.vote))
    ) {
      const early = rd.messages.filter((m) => m.type === 'append');
      if (early.length > 0) {
        rest = rd.messages.filter((m) => m.type !== 'append');
        this.send(early);
        if (timelineOn) mark('sent', lastNew);
      }
    }
    const tp = performance.now();
    if (rd.entries.length > 0 || rd.hardState) failpoint('raft.before-persist');
    const mustSync = this.raftLog.persistUnsynced({
      snapshot: rd.snapshot,
      entries: rd.entries,
      hardState: rd.hardState,
    });
    if (timelineOn && mustSync) mark('txn', lastNew);
    const recordPersist = () => {
      const persistMs = performance.now() - tp;
      this.stats.persistMs += persistMs;
      // Only what was written and fsync'd: a Ready that only moves the commit index writes nothing
      // (persistUnsynced returned false), and counting it read as two persists per write.
      if (mustSync) this.observe('persisted', persistMs / 1000, rd.entries.length);
    };
    // A snapshot's Ready is rare and swaps files around: kept fully synchronous.
    const async =
      mustSync &&
      !rd.snapshot &&
      (this.asyncFsync === 'all' || (this.asyncFsync === 'leader' && ss.role === 'Leader'));
    if (!async || plantedBug('ack-before-fsync')) {
      if (mustSync && plantedBug('ack-before-fsync'))
        this.raftLog.sync(() => {}); // the planted bug: nothing waits for this fsync
      else if (mustSync) this.raftLog.syncWalSync();
      if (timelineOn && mustSync) mark('fsync', lastNew);
      recordPersist();
      this.afterPersist(rd, ss, rest, changed);
      return true;
    }
    this.syncing = true;
    this.raftLog.sync((err) => {
      this.syncing = false;
      if (this.stopped) return;
      if (err) return this.fail(new Error(`raft.db fsync failed: ${err.message}`));
      if (timelineOn) mark('fsync', lastNew);
      recordPersist();
      try {
        this.afterPersist(rd, ss, rest, changed);
        this.node.advance(rd);
      } catch (e) {
        return this.fail(e as Error);
      }
      this.run();
    });
    return false;
  }

  /** Steps 3-5 of a Ready, once its state is durable. */
  private afterPersist(rd: Ready, ss: Ready['softState'], rest: Message[], changed: boolean): void {
    if (rd.entries.length > 0) failpoint('raft.after-persist');
    // Not into the core between ready() and advance(): once this loop turn is done.
    if (rd.entries.length > 0 && this.pendingLearn) queueMicrotask(() => this.retryPendingLearn());
    if (rd.entries.length > 0 && this.forwardClaims.size > 0) queueMicrotask(() => this.retryClaims());
    // Not into the core between ready() and advance() (settleDurable announces the entries).
    if (rd.entries.length > 0 && this.durableWaiters.size > 0)
      queueMicrotask(() => this.settleDurable(rd.entries));
    if (rd.snapshot) {
      rmSync(pendingSnapshotMarker(this.opts.dataDir), { force: true });
      this.applied = Math.max(this.applied, this.data.appliedIndex());
      // Proposals the snapshot covers have an unknown fate for this node: let callers retry.
      for (const [idx, w] of this.proposals) {
        if (idx <= rd.snapshot.index) {
          this.proposals.delete(idx);
          w.reject(new ProposalFailedError('superseded by a snapshot', true));
        }
      }
    }
    if (rd.snapshot || rd.entries.some((e) => e.kind === 'config')) this.refreshAddresses();

    // 3. Messages (after persisting).
    if (rest.length > 0) {
      const out: Message[] = [];
      for (const m of rest) {
        const q = this.rpcWaiters.get(`${m.to}|${m.type}`);
        const r = q?.shift();
        if (timelineOn && r && m.type === 'appendResponse') mark('rsp', m.matchIndex ?? -1);
        if (r) r(m);
        else if (m.type === 'append' && m.lazy && this.mayHoldNotices()) this.holdNotice(m);
        else if (ss.role === 'Leader' && m.type === 'append' && m.entries.length === 0)
          this.deferredAppends.push(m);
        else out.push(m);
      }
      this.send(out);
      // A leader's empty appends (commit notices, heartbeats) leave one loop turn later: writing to
      // a follower's socket wakes it, and on a busy machine the woken process takes the CPU from
      // this one, so the apply below and the answers to the writers would wait behind it. Nothing
      // on the write path waits for a commit notice; the order against later appends does not
      // matter to Raft (a follower checks each append against its log).
      if (this.deferredAppends.length > 0 && !this.deferredScheduled) {
        this.deferredScheduled = true;
        setImmediate(() => {
          this.deferredScheduled = false;
          const msgs = this.deferredAppends;
          this.deferredAppends = [];
          if (!this.stopped) this.send(msgs);
        });
      }
    }

    // 4. Apply. this.applied (what reads and writes wait for) advances only once data.db has the
    // entries. When someone here waits for the apply itself, it runs right here if this Ready has
    // no answer to a peer to send (a leader's messages are already on the sockets: the transport
    // writes synchronously), else in the next loop turn, keeping data.db's commit off the
    // replication round trip (a follower's answers are written by handlers that resume after this
    // turn). Entries nobody waits for (a follower's, or puts the leader answered at commit) are
    // batched for up to applyDelayMs.
    if (rd.committedEntries.length > 0) {
      if (timelineOn) mark('cmt', rd.committedEntries[rd.committedEntries.length - 1]!.index);
      for (const e of rd.committedEntries) {
        this.applyQueue.push(e);
        this.proposals.get(e.index)?.trace?.committed();
      }
      const answersNone = rest.every((m) => m.type !== 'appendResponse' && m.type !== 'voteResponse');
      // Writers whose answer needs nothing from data.db are answered now (answerAtCommit).
      // On a follower: forwarded writes awaiting their commit here (awaitForwarded).
      if (this.proposals.size > 0) this.answerAtCommit(rd.committedEntries);
      // Someone here waits for the apply itself: a writer not answered at commit (a delete, a
      // membership change), a read (waitApplied), a forwarded write whose entry came late.
      const awaited =
        this.applyWaiters.length > 0 ||
        (ss.role === 'Leader' && rd.committedEntries.some((e) => this.proposals.has(e.index)));
      if (awaited && answersNone) this.drainApply();
      else if (!awaited && this.applyDelayMs > 0) {
        // Nobody waits for these entries: batch them, on every role. One data.db transaction per
        // write cost ~100-150 µs of CPU at one client, on each member, on the two cores all three
        // share. A waiter arriving meanwhile drains at once (waitApplied), and a
        // `consistency=none` read applies what is committed first (applyCommitted), so a client
        // that was answered at commit reads its write back from the node it wrote to.
        this.applyTimer ??= setTimeout(() => {
          this.applyTimer = null;
          if (!this.applyScheduled) this.drainApply();
        }, this.applyDelayMs);
      } else this.scheduleApply();
    }

    // 5. Reads.
    for (const rs of rd.readStates) {
      const b = this.readBatches.get(rs.requestId);
      if (!b) continue;
      this.readBatches.delete(rs.requestId);
      for (const w of b.waiters) w.resolve(rs.index);
    }

    if (changed || rd.committedEntries.length > 0) this.notify();
  }

  private deferredAppends: Message[] = [];
  private deferredScheduled = false;

  // ---------------------------------------------------------------- commit notices
  // After a commit the core sends every follower an empty append carrying the new commit index
  // (`lazy`). Nothing in Raft waits for it, and at low concurrency it doubled the requests per
  // write: each follower was woken twice per write (append, then notice), on the leader's two
  // cores shared by three members. A notice is therefore held for up to commitNoticeDelayMs and
  // goes out with the next append to the same follower (the transport merges it: the append's
  // leaderCommit is at least as high), or alone when that time is up. A follower that asked for a
  // read index gets them at once (handleReadIndex). A follower that forwarded a write does not
  // need them: it learns the commit from the leader's answer (learnCommitted). Sending notices at
  // once while a forward was in flight, as before that, cost every forwarded write one more
  // request to each follower (measured at one client through a follower: 6.1 context switches
  // per write on the forwarding follower, 5.2 on the other, against ~3.8 for a write to the leader).
  private heldNotices = new Map<NodeId, Message>();
  private noticeTimer: NodeJS.Timeout | null = null;

  private readonly commitNoticeDelayMs: number;

  private mayHoldNotices(): boolean {
    return this.commitNoticeDelayMs > 0;
  }

  private holdNotice(m: Message): void {
    // A later notice has the higher commit index (and read round): it replaces the held one.
    this.heldNotices.set(m.to, m);
    this.noticeTimer ??= setTimeout(() => {
      this.noticeTimer = null;
      this.flushCommitNotices();
    }, this.commitNoticeDelayMs);
  }

  private clearNoticeTimer(): void {
    if (this.noticeTimer) clearTimeout(this.noticeTimer);
    this.noticeTimer = null;
  }

  /** Send every held commit notice now (a follower waits for its apply). */
  flushCommitNotices(): void {
    this.clearNoticeTimer();
    if (this.heldNotices.size === 0) return;
    const msgs = [...this.heldNotices.values()];
    this.heldNotices.clear();
    if (!this.stopped) this.transport.send(msgs);
  }

  /**
   * transport.send. Any append to a follower supersedes a notice held for it: the leader's commit
   * index and read round only grow, so the newer message carries at least as much.
   */
  private send(msgs: Message[]): void {
    if (this.heldNotices.size > 0) {
      for (const m of msgs) if (m.type === 'append') this.heldNotices.delete(m.to);
      if (this.heldNotices.size === 0) this.clearNoticeTimer();
    }
    if (msgs.length > 0) this.transport.send(msgs);
  }
  private applyQueue: Entry[] = [];
  private applyScheduled = false;
  private applyTimer: NodeJS.Timeout | null = null;
  private readonly applyDelayMs: number;

  /**
   * TIMESTORE_ANSWER_AT_COMMIT=0 answers every write only after its apply, here and on a
   * follower that forwarded it, as before (for A/B measurements and as a way back).
   */
  readonly answersAtCommit = process.env.TIMESTORE_ANSWER_AT_COMMIT !== '0';
  /** The highest index answered at commit (before its apply): failpoint apply.after-early-ack. */
  private answeredUpTo = 0;

  /**
   * A leader's writers whose entries just committed and whose answer needs nothing from data.db
   * (ProposalWaiter.atCommit) are answered now: the entry is on a quorum's disks, which is what
   * an acknowledgement promises (ARCHITECTURE.md), and its apply cannot fail (the command passed
   * checkCommand before it was proposed; any other apply error stops the node, and the entry is
   * applied from raft.db when it starts again). Measured at one client: the data.db transaction
   * (~80 µs) left the critical path of every write. Reads stay linearizable: `linearizable` and
   * `leader` reads wait until the apply has caught up with the commit index.
   */
  private answerAtCommit(entries: Entry[]): void {
    for (const e of entries) {
      const w = this.proposals.get(e.index);
      if (!w?.atCommit || w.term !== e.term) continue;
      this.proposals.delete(e.index);
      this.answeredUpTo = Math.max(this.answeredUpTo, e.index);
      w.resolve({ index: e.index, result: w.atCommit });
    }
  }

  /** Apply what is queued in the next loop turn. */
  private scheduleApply(): void {
    if (this.applyScheduled) return;
    this.applyScheduled = true;
    setImmediate(() => this.drainApply());
  }

  private drainApply(limit = this.opts.applyChunkEntries ?? 5_000): void {
    this.applyScheduled = false;
    if (this.stopped || this.applyQueue.length === 0) return;
    const entries = this.applyQueue.length > limit ? this.applyQueue.splice(0, limit) : this.applyQueue;
    if (entries === this.applyQueue) this.applyQueue = [];
    // The rest in a later turn: HTTP (probes, status) is answered in between.
    else this.scheduleApply();
    const ta = performance.now();
    try {
      this.apply(entries);
      if (timelineOn) mark('appl', entries[entries.length - 1]!.index);
    } catch (err) {
      this.fail(err as Error);
    } finally {
      const applyMs = performance.now() - ta;
      this.stats.applyMs += applyMs;
      this.observe('applied', applyMs / 1000, entries.length);
    }
    this.notify();
  }

  private apply(entries: Entry[]): void {
    const batch: Array<{ index: number; command: Command | null }> = [];
    for (const e of entries) {
      if (e.index <= this.applied) continue;
      this.logBytesSinceSnapshot += e.data.length;
      let command: Command | null = null;
      if (e.kind === 'normal' && e.data !== '') {
        try {
          command = JSON.parse(e.data) as Command;
        } catch {
          command = null;
        }
      }
      batch.push({ index: e.index, command });
    }
    if (batch.length === 0) return;
    if (batch[0]!.index <= this.answeredUpTo) failpoint('apply.after-early-ack');
    const results = this.applyBatchSafely(batch);
    this.applied = entries[entries.length - 1]!.index;
    if (this.applyWaiters.length > 0 || entries.some((e) => this.proposals.has(e.index)))
      failpoint('apply.before-ack');
    for (const e of entries) {
      const w = this.proposals.get(e.index);
      if (!w) continue;
      this.proposals.delete(e.index);
      if (w.term !== e.term) w.reject(new ProposalOverwrittenError());
      else {
        const r = results.get(e.index);
        if (r instanceof Error) w.reject(r);
        else w.resolve({ index: e.index, result: r ?? null });
      }
    }
    // Waiters for apply progress.
    if (this.applyWaiters.length > 0) {
      const ready = this.applyWaiters.filter((w) => w.index <= this.applied);
      if (ready.length > 0) {
        this.applyWaiters = this.applyWaiters.filter((w) => w.index > this.applied);
        for (const w of ready) w.resolve();
      }
    }
    if (entries.some((e) => e.kind === 'config'))
      this.onConfigApplied(entries.filter((e) => e.kind === 'config'));
    this.maybeSnapshot();
  }

  /**
   * Apply in one transaction; if the batch fails (a command the engine rejects), apply entry by
   * entry so that the bad one becomes a no-op on every node alike (deterministic).
   */
  private applyBatchSafely(
    batch: Array<{ index: number; command: Command | null }>,
  ): Map<number, ApplyResult | Error> {
    const out = new Map<number, ApplyResult | Error>();
    try {
      const rs = this.data.applyBatch(batch);
      for (const r of rs) out.set(r.index, r);
      return out;
    } catch (err) {
      if (batch.length === 1) {
        const b = batch[0]!;
        // Only the engine's verdict on the command itself is the same on every node; anything else
        // (disk full, I/O error) is this node failing, and skipping the entry here would diverge.
        if (b.command === null || !(err instanceof InvalidCommandError)) throw err;
        this.log.warn(
          { index: b.index, err: String((err as Error).message) },
          'command rejected by the engine; applied as no-op',
        );
        const rs = this.data.applyBatch([{ index: b.index, command: null }]);
        for (const r of rs) out.set(r.index, r);
        out.set(b.index, err as Error);
        return out;
      }
    }
    for (const b of batch) for (const [k, v] of this.applyBatchSafely([b])) out.set(k, v);
    return out;
  }

  private onConfigApplied(entries: Entry[]): void {
    for (const e of entries) {
      const cc = parseConfChange(e.data);
      if (cc && this.removedPeers.applied(cc)) {
        // Our own removal. A node catching up from an old log (re-added under the same id) may
        // apply an old removal first: it counts only if this node's log is complete up to the
        // leader's commit and its latest configuration does not bring it back.
        const latest = this.raftLog.membershipAt(this.raftLog.lastIndex()).membership;
        const back = latest.voters.includes(this.selfId) || latest.learners.includes(this.selfId);
        if (!back && this.raftLog.lastIndex() >= this.leaderCommitSeen)
          this.retire({ how: 'applied', index: e.index });
      } else if (cc?.type === 'remove') {
        this.log.info({ node: cc.nodeId, index: e.index }, 'member removed');
      } else if (cc?.nodeId === this.selfId && this.removed) {
        this.rejoined(e.index);
      } else if (cc)
        this.log.info({ change: cc.type, node: cc.nodeId, index: e.index }, 'membership change applied');
    }
  }

  /** Fails every proposal still waiting (retryable: another node may take it); returns the error. */
  private failProposals(why: string): ProposalFailedError {
    const err = new ProposalFailedError(why, true);
    for (const w of this.proposals.values()) w.reject(err);
    this.proposals.clear();
    this.forwardClaims.clear();
    for (const w of this.durableWaiters.values()) w.reject(err);
    this.durableWaiters.clear();
    return err;
  }

  /**
   * This node was removed: stop taking part. Ticks are skipped, so it neither campaigns nor times
   * out; it still answers Raft requests, so a leader that adds it back (same id, same data) can
   * replicate to it, and applying that re-add brings it back (rejoined()). Status and probes keep
   * answering. What happens next (exit after a grace period) is the owner's (onRemoved).
   */
  private retire(info: RemovedInfo): void {
    if (this.removed || this.stopped) return;
    this.removed = info;
    this.log.info(
      { ...info, event: 'raft.removed' },
      'this node was removed from the cluster; it no longer campaigns or replicates',
    );
    this.failProposals('this node was removed from the cluster');
    this.notify();
    this.onRemoved(info);
  }

  /** Applied a config change that adds this node back after it was removed: take part again. */
  private rejoined(index: number): void {
    if (!this.removed) return;
    this.removed = null;
    this.log.info({ index, event: 'raft.rejoined' }, 'this node was added back to the cluster');
    this.notify();
    this.onRejoined();
  }

  /** Grows whenever the membership may have changed (config entries or a snapshot were persisted). */
  membershipEpoch = 0;

  private refreshAddresses(): void {
    this.membershipEpoch++;
    const view = this.raftLog.membershipAt(this.raftLog.lastIndex());
    for (const [id, url] of Object.entries(view.contexts)) {
      if (url) this.addresses.set(id, url);
    }
  }

  /** Learn a member's URL before its config entry arrives (e.g. a join request). */
  setAddress(id: NodeId, url: string): void {
    this.addresses.set(id, url);
  }

  // ---------------------------------------------------------------- snapshots
  private recoverPendingSnapshot(): void {
    const marker = pendingSnapshotMarker(this.opts.dataDir);
    if (!existsSync(marker)) return;
    try {
      const { meta } = JSON.parse(readFileSync(marker, 'utf8')) as { meta: SnapshotMeta; path: string };
      if (this.data.appliedIndex() >= meta.index && this.raftLog.snapshotMeta().index < meta.index) {
        // data.db was restored but raft.db was not updated before the crash: finish it.
        this.raftLog.persist({ snapshot: meta });
        this.log.warn({ index: meta.index }, 'finished installing a snapshot interrupted by a crash');
      }
    } finally {
      rmSync(marker, { force: true });
    }
  }

  private installSnapshotData(meta: SnapshotMeta): void {
    const path = this.pendingSnapshotFiles.get(meta.index);
    if (!path)
      throw new Error(`the core asked to install snapshot ${meta.index}, but no such file was received`);
    this.pendingSnapshotFiles.clear();
    const marker = pendingSnapshotMarker(this.opts.dataDir);
    if (!plantedBug('install-no-marker')) writeFileSync(marker, JSON.stringify({ meta, path }));
    failpoint('install.before-swap');
    const started = Date.now();
    let bytes = 0;
    try {
      bytes = statSync(path).size;
    } catch {
      // restoreFrom reports a missing file itself
    }
    try {
      this.data.restoreFrom(path);
    } catch (err) {
      this.observe('snapshot', 'install', {
        index: meta.index,
        bytes,
        seconds: (Date.now() - started) / 1000,
        ok: false,
      });
      throw err;
    }
    rmSync(path, { force: true });
    this.observe('snapshot', 'install', {
      index: meta.index,
      bytes,
      seconds: (Date.now() - started) / 1000,
      ok: true,
    });
    this.log.info({ index: meta.index, ms: Date.now() - started }, 'snapshot installed into data.db');
    failpoint('install.after-swap');
  }

  private latestSnapshotFile(): { index: number; path: string } | null {
    let best: { index: number; path: string } | null = null;
    for (const f of readdirSync(this.snapDir)) {
      const m = /^snap-(\d+)\.db$/.exec(f);
      if (!m) continue;
      const index = Number(m[1]);
      if (!best || index > best.index) best = { index, path: join(this.snapDir, f) };
    }
    return best;
  }

  private async snapshotSource(index: number): Promise<SnapshotSource | null> {
    const path = join(this.snapDir, `snap-${index}.db`);
    let st;
    try {
      st = statSync(path);
    } catch {
      return null;
    }
    const cached = this.shaCache.get(path);
    if (cached && cached.mtimeMs === st.mtimeMs && cached.size === st.size)
      return { path, size: cached.size, sha256: cached.sha256 };
    const { size, sha256 } = await fileSha256(path);
    this.shaCache.set(path, { mtimeMs: st.mtimeMs, size, sha256 });
    return { path, size, sha256 };
  }

  /** Entry bytes applied since the last snapshot (what the log has grown by, for snapshotDue). */
  private logBytesSinceSnapshot = 0;
  /** Size of the newest snapshot file: what the next copy of data.db will cost, about. */
  private lastSnapshotBytes = 0;

  /** Snapshot data.db and compact raft.db when the log is long enough. */
  private maybeSnapshot(): void {
    if (this.compacting || this.stopped) return;
    const due = snapshotDue({
      appliedSinceSnapshot: this.applied - this.raftLog.snapshotMeta().index,
      logBytesSinceSnapshot: this.logBytesSinceSnapshot,
      lastSnapshotBytes: this.lastSnapshotBytes,
      minEntries: this.snapshotThreshold,
    });
    if (due) void this.snapshotNow();
  }

  /** Take a snapshot of data.db at its applied index and compact raft.db (online). */
  async snapshotNow(): Promise<SnapshotMeta | null> {
    if (this.compacting) return null;
    this.compacting = true;
    const tmp = join(this.snapDir, `snap-tmp-${process.pid}-${Date.now()}.db`);
    const started = Date.now();
    try {
      const { index, bytes } = await this.opts.data.snapshotTo(tmp);
      if (this.stopped) return null;
      if (index <= this.raftLog.snapshotMeta().index) {
        rmSync(tmp, { force: true });
        return null;
      }
      const final = join(this.snapDir, `snap-${index}.db`);
      failpoint('snapshot.before-rename');
      renameSync(tmp, final);
      const view = this.raftLog.membershipAt(index);
      const meta: SnapshotMeta = {
        index,
        term: this.raftLog.term(index),
        membership: view.membership,
        contexts: view.contexts,
      };
      failpoint('snapshot.before-compact');
      this.raftLog.compact(meta, index - this.catchUpEntries);
      failpoint('compact.after');
      // Keep only the newest snapshot file (a transfer in progress keeps its open descriptor).
      for (const f of readdirSync(this.snapDir)) {
        const m = /^snap-(\d+)\.db$/.exec(f);
        if (m && Number(m[1]) < index) rmSync(join(this.snapDir, f), { force: true });
      }
      this.lastSnapshotBytes = bytes;
      this.logBytesSinceSnapshot = 0;
      this.observe('snapshot', 'take', { index, bytes, seconds: (Date.now() - started) / 1000, ok: true });
      this.log.info(
        { index, bytes, ms: Date.now() - started, firstIndex: this.raftLog.firstIndex() },
        'snapshot taken; raft log compacted',
      );
      return meta;
    } catch (err) {
      this.observe('snapshot', 'take', {
        index: 0,
        bytes: 0,
        seconds: (Date.now() - started) / 1000,
        ok: false,
      });
      rmSync(tmp, { force: true });
      this.log.warn({ err: String((err as Error).message) }, 'snapshot failed');
      return null;
    } finally {
      this.compacting = false;
    }
  }

  /**
   * The newest local snapshot file with its metadata, for a peer rebuilding a damaged data.db
   * (GET /raft/snapshot/latest). Only a file raft.db has recorded as its snapshot (its metadata
   * is known); null otherwise.
   */
  async snapshotForPeer(): Promise<(SnapshotSource & { meta: SnapshotMeta }) | null> {
    const meta = this.raftLog.snapshotMeta();
    if (meta.index === 0) return null;
    const src = await this.snapshotSource(meta.index);
    return src ? { ...src, meta } : null;
  }

  /** The newest local snapshot (for tests/status). */
  latestSnapshot(): { index: number; path: string } | null {
    return this.latestSnapshotFile();
  }

  // ---------------------------------------------------------------- membership
  private maybePromoteLearners(): void {
    if (this.role !== 'Leader' || !this.autoPromote) return;
    const now = Date.now();
    if (now - this.lastPromoteCheck < 200) return;
    this.lastPromoteCheck = now;
    const st = this.node.status();
    if (st.membership.learners.length === 0 || !st.progress) return;
    const last = st.lastIndex;
    for (const p of st.progress) {
      if (!p.learner || !st.membership.learners.includes(p.id)) continue;
      // Caught up: within a small window of the leader's log and recently heard from.
      if (p.recentActive && p.state === 'replicate' && last - p.match <= 64) {
        this.proposeConfChange({ type: 'promote', nodeId: p.id }).then(
          () => this.log.info({ node: p.id }, 'learner promoted to voter'),
          (err) =>
            this.log.debug({ node: p.id, err: String((err as Error).message) }, 'promotion not possible yet'),
        );
        break;
      }
    }
  }
}

/** TIMESTORE_RAFT_ASYNC_FSYNC: which roles fsync raft.db on the thread pool. */
export function fsyncMode(v: string | undefined): 'all' | 'leader' | 'none' {
  const t = (v ?? '').trim().toLowerCase();
  if (t === '' || t === 'leader') return 'leader';
  if (t === '1' || t === 'all' || t === 'true') return 'all';
  if (t === '0' || t === 'none' || t === 'false') return 'none';
  throw new Error(`TIMESTORE_RAFT_ASYNC_FSYNC: expected leader, 1 (all roles) or 0 (none), got "${v}"`);
}

/** Below this size a copy of data.db is cheap (well under a second): the entry count alone decides. */
export const SNAPSHOT_SIZE_FLOOR_BYTES = 64 * 1024 * 1024;
/** Above the floor, a snapshot waits until the log has grown by 1/SNAPSHOT_SIZE_RATIO of the last copy. */
export const SNAPSHOT_SIZE_RATIO = 4;

/**
 * Whether to snapshot data.db and compact raft.db now. Pure. A snapshot copies the whole of
 * data.db, so taking one every `minEntries` whatever its size made the copying grow with the data:
 * at 4,000 writes/s and 10,000 entries a 10 GB data.db would be copied every 2.5 s, for ever.
 * Above SNAPSHOT_SIZE_FLOOR_BYTES a snapshot also waits until the log since the last one has
 * grown by a quarter of that copy's size, so copying costs at most about four bytes per byte
 * written, and raft.db holds at most about a quarter of data.db's size beyond its catch-up entries.
 */
export function snapshotDue(s: {
  appliedSinceSnapshot: number;
  logBytesSinceSnapshot: number;
  lastSnapshotBytes: number;
  minEntries: number;
}): boolean {
  if (s.appliedSinceSnapshot < s.minEntries) return false;
  if (s.lastSnapshotBytes <= SNAPSHOT_SIZE_FLOOR_BYTES) return true;
  return s.logBytesSinceSnapshot * SNAPSHOT_SIZE_RATIO >= s.lastSnapshotBytes;
}
