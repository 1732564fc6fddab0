// Pending ReadIndex requests on the leader (Raft thesis §6.4). The leader numbers its heartbeat
// rounds; a request waits for the round started right after it was registered. A follower's answer
// echoing round c confirms leadership for every request of round c or earlier, because c was sent
// after they were registered.
import type { NodeId, ReadState } from './types.js';

interface PendingRead {
  ctx: number;
  index: number;
  requestId: string;
  acks: Set<NodeId>;
}

export class ReadOnly {
  private queue: PendingRead[] = [];

  /** Register a request; `ctx` is the round that will confirm it (increasing across calls). */
  add(ctx: number, index: number, requestId: string, self: NodeId): void {
    this.queue.push({ ctx, index, requestId, acks: new Set([self]) });
  }

  /** Record an ack, then release every request at the front that a quorum has confirmed. */
  recvAck(from: NodeId, ctx: number, confirmed: (acks: ReadonlySet<NodeId>) => boolean): ReadState[] {
    for (const r of this.queue) {
      if (r.ctx > ctx) break;
      r.acks.add(from);
    }
    return this.release(confirmed);
  }

  release(confirmed: (acks: ReadonlySet<NodeId>) => boolean): ReadState[] {
    // A later request confirmed implies every earlier one is too (its ack covers them).
    let upto = -1;
    for (let i = 0; i < this.queue.length; i++) if (confirmed(this.queue[i]!.acks)) upto = i;
    if (upto < 0) return [];
    const done = this.queue.splice(0, upto + 1);
    return done.map((r) => ({ requestId: r.requestId, index: r.index }));
  }

  pending(): number {
    return this.queue.length;
  }

  reset(): void {
    this.queue = [];
  }
}
