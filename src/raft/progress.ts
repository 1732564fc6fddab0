// The leader's view of each member: how far its log is known to match, and how to send it more.
// Modelled on etcd-io/raft's tracker.Progress and tracker.Inflights.
import type { NodeId, PeerProgress } from './types.js';

/**
 * Append messages sent to a follower in replicate state and not yet acknowledged, bounded by
 * count and by bytes so one slow follower cannot make the leader buffer without limit.
 */
export class Inflights {
  private readonly items: Array<{ index: number; bytes: number }> = [];
  private bytes = 0;
  /**
   * The usable window, at most maxCount: halved whenever the follower has to be rewound (appends
   * lost or reordered), grown by one per acknowledged append. On a link that reorders, resending a
   * full window per round trip would mostly be wasted.
   */
  private limit: number;

  constructor(
    readonly maxCount: number,
    readonly maxBytes: number,
  ) {
    this.limit = maxCount;
  }

  shrink(): void {
    this.limit = Math.max(1, Math.floor(this.limit / 2));
  }

  grow(): void {
    if (this.limit < this.maxCount) this.limit++;
  }

  add(index: number, bytes: number): void {
    this.items.push({ index, bytes });
    this.bytes += bytes;
  }

  /** Everything up to and including index has been acknowledged. */
  freeLE(index: number): void {
    let n = 0;
    while (n < this.items.length && this.items[n]!.index <= index) {
      this.bytes -= this.items[n]!.bytes;
      n++;
    }
    if (n > 0) this.items.splice(0, n);
  }

  freeFirstOne(): void {
    const first = this.items.shift();
    if (first) this.bytes -= first.bytes;
  }

  full(): boolean {
    return this.items.length >= this.limit || (this.maxBytes > 0 && this.bytes >= this.maxBytes);
  }

  count(): number {
    return this.items.length;
  }

  byteCount(): number {
    return this.bytes;
  }

  reset(): void {
    this.items.length = 0;
    this.bytes = 0;
  }
}

export type ProgressState = 'probe' | 'replicate' | 'snapshot';

export class Progress {
  match = 0;
  next: number;
  state: ProgressState = 'probe';
  /** In probe state: one append is outstanding; wait for its answer (or the next heartbeat). */
  probeSent = false;
  pendingSnapshot = 0;
  /** Heard from within the current election timeout (CheckQuorum; never send snapshots to the silent). */
  recentActive = false;
  /** Leader tick at which the newest round this member has answered was sent (leader leases). */
  leaseAnchor = Number.NEGATIVE_INFINITY;
  /** Leader tick of the last time match moved (or replication restarted): detects lost appends. */
  progressTick = 0;
  /** Rejections of appends sent before this leader round are stale (they predate the last rewind). */
  floorRound = 0;
  readonly inflights: Inflights;

  constructor(
    readonly id: NodeId,
    next: number,
    public isLearner: boolean,
    maxInflight: number,
    maxInflightBytes: number,
  ) {
    this.next = next;
    this.inflights = new Inflights(maxInflight, maxInflightBytes);
  }

  private resetState(state: ProgressState): void {
    this.probeSent = false;
    this.pendingSnapshot = 0;
    this.state = state;
    this.inflights.reset();
  }

  becomeProbe(): void {
    // After a snapshot the follower has at least the snapshot's entries, whatever match says.
    if (this.state === 'snapshot') {
      const pending = this.pendingSnapshot;
      this.resetState('probe');
      this.next = Math.max(this.match + 1, pending + 1);
    } else {
      this.resetState('probe');
      this.next = this.match + 1;
    }
  }

  becomeReplicate(): void {
    this.resetState('replicate');
    this.next = this.match + 1;
  }

  becomeSnapshot(index: number): void {
    this.resetState('snapshot');
    this.pendingSnapshot = index;
  }

  /** A success response: the follower's log matches ours up to n. Returns whether match moved. */
  maybeUpdate(n: number): boolean {
    let updated = false;
    if (this.match < n) {
      this.match = n;
      updated = true;
      this.probeSent = false;
    }
    this.next = Math.max(this.next, n + 1);
    return updated;
  }

  /** Replicate state sends optimistically: next moves before the follower answers. */
  optimisticUpdate(lastSent: number): void {
    this.next = lastSent + 1;
  }

  /**
   * A rejection of the append whose prevLogIndex was `rejected`, with the next index to try per the
   * conflict hint. Returns false when the rejection is stale (answers an append we no longer care about).
   */
  maybeDecrTo(rejected: number, hintNext: number): boolean {
    if (this.state === 'replicate') {
      if (rejected <= this.match) return false;
      this.next = Math.max(Math.min(rejected, hintNext), this.match + 1);
      return true;
    }
    if (this.next - 1 !== rejected) return false;
    this.next = Math.max(Math.min(rejected, hintNext), this.match + 1);
    this.probeSent = false;
    return true;
  }

  isPaused(): boolean {
    switch (this.state) {
      case 'probe':
        return this.probeSent;
      case 'replicate':
        return this.inflights.full();
      case 'snapshot':
        return true;
    }
  }

  view(): PeerProgress {
    return {
      id: this.id,
      match: this.match,
      next: this.next,
      state: this.state,
      learner: this.isLearner,
      recentActive: this.recentActive,
    };
  }
}
