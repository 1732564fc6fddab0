// Membership removal as one node sees it. A removed node must stop taking part, but in Raft it
// rarely learns that its removal committed: the leader stops replicating to it as soon as it
// appends the change. So, as in etcd, the members tell it: once a member has applied "remove X"
// (and no later re-add of X), it answers X's Raft requests with 410 `removed`, and X, on such an
// answer (or on applying its own removal itself, e.g. a removed leader), retires: it stops
// campaigning and replicating, reports `removed` in /raft/status and /readyz, and exits after a
// grace period unless --on-removed stay (src/node/raft/replicated-node.ts).
import type { ConfChange, NodeId } from '../../raft/index.js';

/** Thrown when a removed member sends a Raft request; the RPC server answers 410 `removed`. */
export class MemberRemovedError extends Error {
  constructor(readonly nodeId: NodeId) {
    super(`node ${nodeId} was removed from the cluster; it must not take part any more`);
    this.name = 'MemberRemovedError';
  }
}

/** How this node learnt it was removed. */
export interface RemovedInfo {
  /** 'applied': it applied its own removal; 'peer': a member answered 410 `removed`. */
  how: 'applied' | 'peer';
  /** The config entry's index (when applied), or the member that said so. */
  index?: number;
  peer?: NodeId;
}

/** The peers this node knows were removed (from config entries it applied since it started). */
export class RemovedPeers {
  private readonly removed = new Set<NodeId>();

  constructor(private readonly selfId: NodeId) {}

  /** Track an applied config change; returns true when it removes this node itself. */
  applied(cc: ConfChange): boolean {
    if (cc.type === 'remove') {
      if (cc.nodeId === this.selfId) return true;
      this.removed.add(cc.nodeId);
    } else {
      // Re-added under the same id (e.g. a StatefulSet pod that came back): a member again.
      this.removed.delete(cc.nodeId);
    }
    return false;
  }

  has(id: NodeId): boolean {
    return this.removed.has(id);
  }
}
