// Single-server membership changes. A change takes effect when its entry is appended (thesis §4.1),
// so the core folds config entries over the snapshot's membership whenever the log changes.
import type { ConfChange, Membership, NodeId } from './types.js';

export function cloneMembership(m: Membership): Membership {
  return { voters: [...m.voters], learners: [...m.learners] };
}

export function sameMembership(a: Membership, b: Membership): boolean {
  const eq = (x: string[], y: string[]) =>
    x.length === y.length && [...x].sort().join('\0') === [...y].sort().join('\0');
  return eq(a.voters, b.voters) && eq(a.learners, b.learners);
}

export function isVoter(m: Membership, id: NodeId): boolean {
  return m.voters.includes(id);
}

export function isMember(m: Membership, id: NodeId): boolean {
  return m.voters.includes(id) || m.learners.includes(id);
}

/**
 * The membership after `cc`. Idempotent, so replaying entries the storage's membership already
 * reflects is harmless. The application uses it too, to know the membership at a snapshot index.
 */
export function applyConfChange(m: Membership, cc: ConfChange): Membership {
  const voters = m.voters.filter((v) => v !== cc.nodeId);
  const learners = m.learners.filter((v) => v !== cc.nodeId);
  switch (cc.type) {
    case 'addLearner':
      // Demoting a voter is not supported: addLearner of a voter leaves it a voter.
      if (m.voters.includes(cc.nodeId)) return cloneMembership(m);
      learners.push(cc.nodeId);
      break;
    case 'promote':
      if (!m.learners.includes(cc.nodeId) && !m.voters.includes(cc.nodeId)) return cloneMembership(m);
      voters.push(cc.nodeId);
      break;
    case 'addVoter':
      voters.push(cc.nodeId);
      break;
    case 'remove':
      break;
  }
  return { voters: voters.sort(), learners: learners.sort() };
}

/** Why a change may not be proposed against membership m (null when it may). */
export function validateConfChange(m: Membership, cc: ConfChange): string | null {
  if (typeof cc.nodeId !== 'string' || cc.nodeId === '') return 'nodeId must be a non-empty string';
  switch (cc.type) {
    case 'addLearner':
      if (isMember(m, cc.nodeId)) return `${cc.nodeId} is already a member`;
      return null;
    case 'promote':
      if (!m.learners.includes(cc.nodeId)) return `${cc.nodeId} is not a learner`;
      return null;
    case 'addVoter':
      if (isVoter(m, cc.nodeId)) return `${cc.nodeId} is already a voter`;
      return null;
    case 'remove':
      if (!isMember(m, cc.nodeId)) return `${cc.nodeId} is not a member`;
      if (isVoter(m, cc.nodeId) && m.voters.length === 1) return 'cannot remove the last voter';
      return null;
    default:
      return `unknown change type ${(cc as { type: unknown }).type as string}`;
  }
}

export function encodeConfChange(cc: ConfChange): string {
  return JSON.stringify(cc.context === undefined ? { type: cc.type, nodeId: cc.nodeId } : cc);
}

export function decodeConfChange(data: string): ConfChange {
  const v = JSON.parse(data) as ConfChange;
  if (
    !v ||
    typeof v.nodeId !== 'string' ||
    !['addLearner', 'promote', 'addVoter', 'remove'].includes(v.type)
  ) {
    throw new Error(`malformed config entry: ${data}`);
  }
  return v;
}
