// The JSON wire format of the Raft RPCs between peers. Field names follow the original design
// (term, candidateId, lastLogIndex, lastLogTerm / leaderId, prevLogIndex, prevLogTerm,
// entries[{term, command}], leaderCommit); extra fields carry what the core's messages need beyond
// that (preVote, transfer, readCtx, entry kind, fast-backtracking hints). Everything a peer sends is
// validated with zod before it reaches the core.
import { z } from 'zod';
import type { Entry, Message, SnapshotMeta } from '../../raft/types.js';

const idx = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);
const nodeId = z.string().min(1).max(128);

export const wireEntrySchema = z.object({
  term: idx,
  command: z.string(),
  kind: z.enum(['normal', 'noop', 'config']).optional(),
  index: idx.optional(),
});
export type WireEntry = z.infer<typeof wireEntrySchema>;

export const voteRequestSchema = z.looseObject({
  term: idx,
  candidateId: nodeId,
  lastLogIndex: idx,
  lastLogTerm: idx,
  preVote: z.boolean().optional(),
  transfer: z.boolean().optional(),
  to: nodeId.optional(),
});

export const voteResponseSchema = z.looseObject({
  term: idx,
  voteGranted: z.boolean(),
  preVote: z.boolean().optional(),
  ignored: z.boolean().optional(),
});

export const appendRequestSchema = z.looseObject({
  term: idx,
  leaderId: nodeId,
  prevLogIndex: idx,
  prevLogTerm: idx,
  entries: z.array(wireEntrySchema),
  leaderCommit: idx,
  readCtx: idx.optional(),
  to: nodeId.optional(),
});

export const appendResponseSchema = z.looseObject({
  term: idx,
  success: z.boolean(),
  matchIndex: idx.optional(),
  conflictIndex: idx.optional(),
  conflictTerm: idx.optional(),
  readCtx: idx.optional(),
  ignored: z.boolean().optional(),
});

export const timeoutNowSchema = z.looseObject({ term: idx, leaderId: nodeId, to: nodeId.optional() });

export const membershipSchema = z.object({ voters: z.array(nodeId), learners: z.array(nodeId) });
export const snapshotMetaSchema = z.object({
  index: idx,
  term: idx,
  membership: membershipSchema,
  contexts: z.record(z.string(), z.string()),
});

export const snapshotInstallSchema = z.looseObject({
  term: idx,
  leaderId: nodeId,
  snapshot: snapshotMetaSchema,
  size: idx,
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
});

/** One-way message (responses that had no pending request, and anything else). */
export const anyMessageSchema = z.looseObject({
  type: z.enum(['vote', 'voteResponse', 'append', 'appendResponse', 'snapshot', 'timeoutNow']),
  from: nodeId,
  to: nodeId,
  term: idx,
});

// ------------------------------------------------------------------ conversions

export function voteToWire(m: Extract<Message, { type: 'vote' }>) {
  return {
    term: m.term,
    candidateId: m.from,
    lastLogIndex: m.lastLogIndex,
    lastLogTerm: m.lastLogTerm,
    preVote: m.preVote,
    transfer: m.transfer,
    to: m.to,
  };
}

export function voteFromWire(
  b: z.infer<typeof voteRequestSchema>,
  self: string,
): Extract<Message, { type: 'vote' }> {
  return {
    type: 'vote',
    from: b.candidateId,
    to: self,
    term: b.term,
    lastLogIndex: b.lastLogIndex,
    lastLogTerm: b.lastLogTerm,
    preVote: b.preVote ?? false,
    transfer: b.transfer ?? false,
  };
}

export function voteResponseToWire(m: Extract<Message, { type: 'voteResponse' }>) {
  return { term: m.term, voteGranted: m.voteGranted, preVote: m.preVote, from: m.from };
}

export function voteResponseFromWire(
  b: z.infer<typeof voteResponseSchema>,
  from: string,
  to: string,
  preVote: boolean,
): Extract<Message, { type: 'voteResponse' }> {
  return {
    type: 'voteResponse',
    from,
    to,
    term: b.term,
    voteGranted: b.voteGranted,
    preVote: b.preVote ?? preVote,
  };
}

export function appendToWire(m: Extract<Message, { type: 'append' }>) {
  return {
    term: m.term,
    leaderId: m.from,
    prevLogIndex: m.prevLogIndex,
    prevLogTerm: m.prevLogTerm,
    entries: m.entries.map((e) => ({ term: e.term, command: e.data, kind: e.kind, index: e.index })),
    leaderCommit: m.leaderCommit,
    readCtx: m.readCtx,
    to: m.to,
  };
}

export class WireError extends Error {}

export function appendFromWire(
  b: z.infer<typeof appendRequestSchema>,
  self: string,
): Extract<Message, { type: 'append' }> {
  const entries: Entry[] = b.entries.map((e, i) => {
    const index = b.prevLogIndex + 1 + i;
    if (e.index !== undefined && e.index !== index) {
      throw new WireError(
        `entries[${i}].index is ${e.index}; expected ${index} (prevLogIndex + 1 + position)`,
      );
    }
    return { index, term: e.term, kind: e.kind ?? 'normal', data: e.command };
  });
  return {
    type: 'append',
    from: b.leaderId,
    to: self,
    term: b.term,
    prevLogIndex: b.prevLogIndex,
    prevLogTerm: b.prevLogTerm,
    entries,
    leaderCommit: b.leaderCommit,
    readCtx: b.readCtx ?? 0,
  };
}

export function appendResponseToWire(m: Extract<Message, { type: 'appendResponse' }>) {
  return {
    term: m.term,
    success: m.success,
    matchIndex: m.matchIndex,
    conflictIndex: m.conflictIndex,
    conflictTerm: m.conflictTerm,
    readCtx: m.readCtx,
    from: m.from,
  };
}

export function appendResponseFromWire(
  b: z.infer<typeof appendResponseSchema>,
  from: string,
  to: string,
): Extract<Message, { type: 'appendResponse' }> {
  return {
    type: 'appendResponse',
    from,
    to,
    term: b.term,
    success: b.success,
    matchIndex: b.matchIndex ?? 0,
    conflictIndex: b.conflictIndex ?? 0,
    conflictTerm: b.conflictTerm ?? 0,
    readCtx: b.readCtx ?? 0,
  };
}

export function snapshotMessage(from: string, to: string, term: number, snapshot: SnapshotMeta): Message {
  return { type: 'snapshot', from, to, term, snapshot };
}

/** Loose structural check of a one-way message body (full shape checks per type). */
export function anyMessageFromWire(body: unknown, self: string): Message {
  const base = anyMessageSchema.parse(body);
  if (base.to !== self) throw new WireError(`message is addressed to ${base.to}, this node is ${self}`);
  switch (base.type) {
    case 'voteResponse': {
      const b = voteResponseSchema.parse(body);
      return voteResponseFromWire(b, base.from, self, b.preVote ?? false);
    }
    case 'appendResponse':
      return appendResponseFromWire(appendResponseSchema.parse(body), base.from, self);
    case 'timeoutNow':
      return { type: 'timeoutNow', from: base.from, to: self, term: base.term };
    case 'vote':
      return voteFromWire(voteRequestSchema.parse({ ...(body as object), candidateId: base.from }), self);
    case 'append':
      return appendFromWire(appendRequestSchema.parse({ ...(body as object), leaderId: base.from }), self);
    case 'snapshot':
      throw new WireError('snapshots are installed through /raft/snapshot/install');
  }
}

export function messageToOneWay(m: Message): Record<string, unknown> {
  switch (m.type) {
    case 'voteResponse':
      return { type: m.type, to: m.to, ...voteResponseToWire(m) };
    case 'appendResponse':
      return { type: m.type, to: m.to, ...appendResponseToWire(m) };
    case 'timeoutNow':
      return { type: m.type, from: m.from, to: m.to, term: m.term };
    case 'vote':
      return { type: m.type, from: m.from, ...voteToWire(m) };
    case 'append':
      return { type: m.type, from: m.from, ...appendToWire(m) };
    case 'snapshot':
      return { type: m.type, from: m.from, to: m.to, term: m.term, snapshot: m.snapshot };
  }
}
