// Majority arithmetic over a set of voters. Learners never count.
import type { NodeId } from './types.js';

export type VoteResult = 'won' | 'lost' | 'pending';

export function majority(n: number): number {
  return Math.floor(n / 2) + 1;
}

/** The highest index that a majority of voters has matched (0 with no voters). */
export function committedIndex(voters: readonly NodeId[], match: (id: NodeId) => number): number {
  if (voters.length === 0) return 0;
  const ms = voters.map(match).sort((a, b) => b - a);
  return ms[majority(voters.length) - 1]!;
}

export function voteResult(voters: readonly NodeId[], votes: ReadonlyMap<NodeId, boolean>): VoteResult {
  if (voters.length === 0) return 'lost';
  let granted = 0;
  let rejected = 0;
  for (const v of voters) {
    const g = votes.get(v);
    if (g === true) granted++;
    else if (g === false) rejected++;
  }
  const q = majority(voters.length);
  if (granted >= q) return 'won';
  if (rejected > voters.length - q) return 'lost';
  return 'pending';
}

export function hasQuorum(voters: readonly NodeId[], ok: (id: NodeId) => boolean): boolean {
  if (voters.length === 0) return false;
  let n = 0;
  for (const v of voters) if (ok(v)) n++;
  return n >= majority(voters.length);
}
