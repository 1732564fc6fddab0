// The contract between the pure Raft core (src/raft) and whoever drives it (the simulator in
// test/raft, the node in src/node). Shapes here are fixed on purpose: the node's HTTP transport and
// raft.db storage are written against them. Add fields freely; rename or remove only on purpose.

export type NodeId = string;

/**
 * One log entry. `data` is opaque to Raft for `normal` entries (the node puts a JSON-encoded
 * state-machine command there). A `noop` entry is appended by every new leader (its data is '').
 * A `config` entry carries a JSON-encoded ConfChange; it takes effect when appended (not when
 * committed), as in the Raft thesis §4.1.
 */
export interface Entry {
  index: number;
  term: number;
  kind: 'normal' | 'noop' | 'config';
  data: string;
}

/** What must be on stable storage before any message that depends on it is sent. */
export interface HardState {
  term: number;
  vote: NodeId | null;
  commit: number;
}

export interface Membership {
  voters: NodeId[];
  learners: NodeId[];
}

/**
 * One single-server membership change. `context` travels with the entry and is opaque to Raft
 * (the node stores the member's URL there, so every node learns every member's address from the log).
 */
export interface ConfChange {
  type: 'addLearner' | 'promote' | 'addVoter' | 'remove';
  nodeId: NodeId;
  context?: string;
}

/**
 * Snapshot metadata. The snapshot's bytes never pass through the Raft core: the application keeps
 * them (data.db at `index`) and the transport streams them out of band. `contexts` keeps the
 * ConfChange contexts (member URLs) that were in force at `index`, so they survive compaction.
 */
export interface SnapshotMeta {
  index: number;
  term: number;
  membership: Membership;
  contexts: Record<NodeId, string>;
}

/** Read-only view of what the application has persisted; the core reads it synchronously. */
export interface Storage {
  initialState(): { hardState: HardState; membership: Membership };
  /** Entries in [lo, hi), at most maxBytes of data (always at least one entry when lo < hi). */
  entries(lo: number, hi: number, maxBytes?: number): Entry[];
  /** Term of the entry at index; for index === snapshot.index returns the snapshot's term. Throws CompactedError below that. */
  term(index: number): number;
  /** Index of the first entry still in the log (snapshot.index + 1 when the log is empty). */
  firstIndex(): number;
  lastIndex(): number;
  snapshotMeta(): SnapshotMeta;
}

export type Message =
  | {
      type: 'vote';
      from: NodeId;
      to: NodeId;
      term: number;
      lastLogIndex: number;
      lastLogTerm: number;
      /** PreVote round: the term is the one the candidate *would* use; nobody changes state. */
      preVote: boolean;
      /** Sent after TimeoutNow: voters disregard their leader lease / CheckQuorum stickiness. */
      transfer: boolean;
    }
  | { type: 'voteResponse'; from: NodeId; to: NodeId; term: number; voteGranted: boolean; preVote: boolean }
  | {
      type: 'append';
      from: NodeId;
      to: NodeId;
      term: number;
      prevLogIndex: number;
      prevLogTerm: number;
      entries: Entry[];
      leaderCommit: number;
      /**
       * The leader's latest heartbeat round, echoed back in the answer: it confirms ReadIndex
       * requests registered before the round and dates the leader lease. 0 before the first round.
       */
      readCtx: number;
      /**
       * Set on an empty append that only carries a new commit index (a commit notice): nothing in
       * Raft waits for it, so the driver may hold it briefly and fold it into the next append to
       * the same follower (whose leaderCommit is at least as high). Never set on heartbeats or
       * probes. Not part of the wire format.
       */
      lazy?: true;
    }
  | {
      type: 'appendResponse';
      from: NodeId;
      to: NodeId;
      term: number;
      success: boolean;
      /** On success: the follower's last index matching the leader's log. On failure: the rejected prevLogIndex. */
      matchIndex: number;
      /** On failure: hints for fast backtracking (Raft thesis §5.3 optimisation). */
      conflictIndex: number;
      conflictTerm: number;
      readCtx: number;
    }
  | { type: 'snapshot'; from: NodeId; to: NodeId; term: number; snapshot: SnapshotMeta }
  | { type: 'timeoutNow'; from: NodeId; to: NodeId; term: number };

export type MessageType = Message['type'];

export type Role = 'Follower' | 'PreCandidate' | 'Candidate' | 'Leader';

export interface ReadState {
  /** The id the caller passed to readIndex(). */
  requestId: string;
  /** Serve the read once appliedIndex >= index. */
  index: number;
}

/**
 * Everything the driver must act on, produced by RaftNode.ready(). The contract (as in etcd-io/raft):
 * 1. Persist `snapshot` (if any), then `entries` (appending; an entry at an index that already exists
 *    replaces it and everything after it), then `hardState` (if any) — atomically or in that order,
 *    with one fsync covering all of them.
 * 2. Only then send `messages`. (Messages in `messages` may depend on what is in 1.)
 * 3. Apply `committedEntries` to the state machine in order (may overlap with 2; they are durable
 *    on a quorum already); install `snapshot` into the state machine before applying them.
 * 4. Call advance(ready) — the core assumes everything in the batch is now durable.
 */
export interface Ready {
  softState: { role: Role; leaderId: NodeId | null; term: number };
  hardState: HardState | null;
  entries: Entry[];
  snapshot: SnapshotMeta | null;
  messages: Message[];
  committedEntries: Entry[];
  readStates: ReadState[];
}

export interface RaftConfig {
  id: NodeId;
  storage: Storage;
  /** Ticks without a leader message before a follower campaigns; randomized in [electionTick, 2*electionTick). */
  electionTick: number;
  /** Ticks between leader heartbeats. */
  heartbeatTick: number;
  /** Uniform random in [0, 1): the only source of randomness. */
  random: () => number;
  preVote: boolean;
  checkQuorum: boolean;
  /** 'safe' = ReadIndex with a quorum heartbeat round; 'lease' requires checkQuorum. */
  readOnly: 'safe' | 'lease';
  /** Max bytes of entry data per append message. */
  maxSizePerMsg: number;
  /** Max append messages in flight per follower in replicate state. */
  maxInflightMsgs: number;
  /** Max bytes of entry data in flight per follower (0 = unlimited). */
  maxInflightBytes: number;
  /** The applied index the application restarted from (entries after it are re-delivered as committed). */
  applied: number;
  /** Max bytes of entry data in one Ready's committedEntries (0 or absent = unlimited; at least one entry). */
  maxCommittedSizePerReady?: number;
  /**
   * This node lost log entries it may have acknowledged (a damaged log truncated on disk) up to
   * this index. Until its commit index reaches it, it grants no vote (nor pre-vote) and never
   * campaigns: a quorum that counted its acknowledgement must not elect a leader through it that
   * lacks a committed entry. Absent or 0: a normal node.
   */
  abstainUntil?: number;
  /** Test-only: plant known bugs so the simulator can prove its checks bite. Never set in production. */
  bugs?: RaftBugs;
}

/** Test-only switches, each re-introducing one classic Raft bug. */
export interface RaftBugs {
  /** Commit an entry of an earlier term by counting replicas (Raft paper Figure 8). */
  commitPreviousTermByCount?: boolean;
  /** Grant a vote without making it part of the HardState to persist. */
  voteWithoutPersist?: boolean;
  /** Truncate everything after prevLogIndex on append, even when the entries do not conflict. */
  truncateOnNonConflictingAppend?: boolean;
  /** Serve ReadIndex with the leader's commit index before its own-term no-op has committed. */
  readIndexBeforeNoopCommit?: boolean;
  /** Lease reads trust leadership without a quorum of recent answers (only CheckQuorum's step-down). */
  leaseWithoutQuorum?: boolean;
  /** learnCommitted commits up to the index without checking that the local entry there has the term. */
  learnCommittedWithoutTermCheck?: boolean;
  /** learnDurableOnLeader counts this node's entry before it is persisted. */
  learnDurableWithoutPersistCheck?: boolean;
  /** learnDurableOnLeader commits with this node and the leader alone, whatever the cluster's size. */
  learnDurableWithoutQuorumCheck?: boolean;
  /** learnDurableOnLeader counts this node's copy even when it is in a later term than the entry. */
  learnDurableInLaterTerm?: boolean;
  /** ReadIndex reads at the commit index, not waiting for entries announced durable (announceDurable). */
  readFloorIgnoresDurable?: boolean;
}

export type ProposalError =
  | { code: 'NotLeader'; leaderId: NodeId | null }
  | { code: 'ConfChangeInProgress' }
  | { code: 'TransferInProgress'; leaderId: NodeId | null }
  | { code: 'Rejected'; reason: string };

export type ProposeResult = { ok: true; index: number; term: number } | { ok: false; error: ProposalError };

/** Progress of one member as seen by the leader (for /raft/status and metrics). */
export interface PeerProgress {
  id: NodeId;
  match: number;
  next: number;
  state: 'probe' | 'replicate' | 'snapshot';
  learner: boolean;
  recentActive: boolean;
}

export interface Status {
  id: NodeId;
  role: Role;
  leaderId: NodeId | null;
  term: number;
  vote: NodeId | null;
  commitIndex: number;
  appliedIndex: number;
  lastIndex: number;
  membership: Membership;
  /** Only on the leader. */
  progress: PeerProgress[] | null;
  leadTransferee: NodeId | null;
}

/**
 * The public face of the Raft core (implemented in src/raft/raft-node.ts by `RaftNode`):
 *
 *   const node = new RaftNode(config);
 *   node.tick();                        // called by the driver every tick interval
 *   node.step(message);                 // a message received from a peer
 *   node.propose(data);                 // normal entry; returns ProposeResult
 *   node.proposeConfChange(change);     // single-server change
 *   node.readIndex(requestId);          // linearizable read request; answered by a ReadState
 *   node.transferLeadership(to);        // TimeoutNow-based
 *   node.campaign();                    // force an election (tests, bootstrap of a one-node cluster)
 *   node.hasReady(); node.ready(); node.advance(ready);
 *   node.reportUnreachable(peer); node.reportSnapshot(peer, ok);
 *   node.status();
 *
 * Compaction is the application's: it snapshots its state machine, then drops log entries from its
 * Storage; the core notices through storage.firstIndex() / snapshotMeta() and sends a `snapshot`
 * message to any follower that needs an entry that is gone.
 */
export interface RaftNodeApi {
  tick(): void;
  step(m: Message): void;
  propose(data: string): ProposeResult;
  proposeConfChange(change: ConfChange): ProposeResult;
  readIndex(requestId: string): { ok: true } | { ok: false; error: ProposalError };
  /** (index, term) is known to be committed; commits up to index if the local entry has that term. */
  learnCommitted(index: number, term: number): boolean;
  /** Leader: entry `index`, durable here, was announced so to a follower; reads wait for it. */
  announceDurable(index: number): void;
  /** `leader` has (index, term) durable; commits it if this node's persisted copy makes a quorum. */
  learnDurableOnLeader(leader: NodeId, index: number, term: number): boolean;
  transferLeadership(to: NodeId): { ok: true } | { ok: false; error: ProposalError };
  campaign(): void;
  hasReady(): boolean;
  ready(): Ready;
  advance(ready: Ready): void;
  reportUnreachable(peer: NodeId): void;
  reportSnapshot(peer: NodeId, ok: boolean): void;
  status(): Status;
}

export class CompactedError extends Error {
  constructor(index: number) {
    super(`log entry ${index} has been compacted into a snapshot`);
    this.name = 'CompactedError';
  }
}
