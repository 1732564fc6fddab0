// The Raft state machine (Ongaro & Ousterhout, and the Raft thesis), modelled on etcd-io/raft.
// Pure and deterministic: time enters through tick(), randomness through config.random, and
// everything to persist or send leaves through ready(). See DESIGN.md for the Ready contract.
import {
  applyConfChange,
  cloneMembership,
  decodeConfChange,
  encodeConfChange,
  isMember,
  isVoter,
  sameMembership,
  validateConfChange,
} from './confchange.js';
import { RaftLog } from './log.js';
import { Progress } from './progress.js';
import { committedIndex, hasQuorum, voteResult } from './quorum.js';
import { ReadOnly } from './read-only.js';
import { entriesSize } from './util.js';
import type {
  ConfChange,
  Entry,
  HardState,
  Membership,
  Message,
  NodeId,
  ProposalError,
  ProposeResult,
  RaftBugs,
  RaftConfig,
  RaftNodeApi,
  ReadState,
  Ready,
  Role,
  Status,
} from './types.js';

type AppendMsg = Extract<Message, { type: 'append' }>;
type AppendRespMsg = Extract<Message, { type: 'appendResponse' }>;
type VoteMsg = Extract<Message, { type: 'vote' }>;
type VoteRespMsg = Extract<Message, { type: 'voteResponse' }>;
type SnapshotMsg = Extract<Message, { type: 'snapshot' }>;

type SoftState = Ready['softState'];

export class RaftNode implements RaftNodeApi {
  readonly id: NodeId;
  private readonly cfg: RaftConfig;
  private readonly bugs: RaftBugs;

  private term = 0;
  private vote: NodeId | null = null;
  // Planted bug only: the vote was granted but is left out of the HardState handed to storage.
  private voteHidden = false;
  private role: Role = 'Follower';
  private leaderId: NodeId | null = null;

  private readonly log: RaftLog;

  // Membership = base (from the snapshot) folded with the config entries in the log after it.
  private baseMembership: Membership;
  private confLog: Array<{ index: number; membership: Membership }> = [];
  private membership: Membership;

  private prs = new Map<NodeId, Progress>();
  private votes = new Map<NodeId, boolean>();
  private msgs: Message[] = [];
  private readStates: ReadState[] = [];
  private readonly readOnly = new ReadOnly();
  // ReadIndex requests that arrived before this leader committed an entry of its own term.
  private pendingReads: string[] = [];

  private electionElapsed = 0;
  // Logical clock (ticks since start), for leader leases.
  private ticks = 0;
  // Heartbeat rounds: every heartbeat broadcast gets a number (carried as readCtx and echoed back),
  // and the tick it was sent at, so an answer proves the follower heard us at or after that tick.
  private roundSeq = 0;
  private roundSentAt = new Map<number, number>();
  private sentTimeoutNow = false;
  // CheckQuorum lease of a node that just (re)started: it may have promised a lease to a leader
  // before the crash, so it refuses votes for one election timeout (unless the election is a transfer).
  private startupLease = true;
  private heartbeatElapsed = 0;
  private randomizedElectionTimeout = 0;
  private leadTransferee: NodeId | null = null;
  private pendingConfIndex = 0;
  // Proposals only mark the log dirty; one broadcast per ready() batches them into one append.
  private needBcast = false;

  private prevHardState: HardState;
  private prevSoftState: SoftState;
  private awaitingAdvance = false;

  constructor(config: RaftConfig) {
    validateConfig(config);
    this.cfg = config;
    this.id = config.id;
    this.bugs = config.bugs ?? {};
    const storage = config.storage;
    const { hardState, membership } = storage.initialState();
    this.log = new RaftLog(storage, hardState.commit, config.applied);
    // The base is the membership at the snapshot index, not initialState()'s (which a storage may
    // compute at its last index): folding the log over a base that already holds an uncommitted
    // change would keep that change after a truncation removes its entry.
    this.baseMembership = cloneMembership(storage.snapshotMeta().membership);
    this.membership = cloneMembership(this.baseMembership);
    this.rebuildConfLogFromStorage();
    if (this.confLog.length === 0 && isEmptyMembership(this.baseMembership)) {
      // A storage that keeps its membership neither in a snapshot nor in the log.
      this.baseMembership = cloneMembership(membership);
      this.membership = cloneMembership(membership);
    }
    this.term = hardState.term;
    this.vote = hardState.vote;
    this.becomeFollower(this.term, null);
    // A node that never had a term can have promised no lease.
    this.startupLease = hardState.term > 0;
    this.prevHardState = { ...hardState };
    this.prevSoftState = this.softState();
  }

  // ---------------------------------------------------------------- public API

  tick(): void {
    this.ticks++;
    if (this.role === 'Leader') this.tickHeartbeat();
    else this.tickElection();
  }

  campaign(): void {
    this.hup(false);
  }

  propose(data: string): ProposeResult {
    const err = this.leaderCheck();
    if (err) return { ok: false, error: err };
    if (!isVoter(this.membership, this.id)) {
      // A leader removed from the membership only finishes committing its removal.
      return { ok: false, error: { code: 'NotLeader', leaderId: null } };
    }
    const e = this.appendEntry('normal', data);
    return { ok: true, index: e.index, term: e.term };
  }

  proposeConfChange(change: ConfChange): ProposeResult {
    const err = this.leaderCheck();
    if (err) return { ok: false, error: err };
    if (!isVoter(this.membership, this.id))
      return { ok: false, error: { code: 'NotLeader', leaderId: null } };
    // One change at a time, and only once this leader has committed an entry of its own term
    // (the fix for single-server changes: otherwise an uncommitted change of an older leader and
    // this one can yield two disjoint majorities).
    if (this.pendingConfIndex > this.log.committed || this.log.term(this.log.committed) !== this.term) {
      return { ok: false, error: { code: 'ConfChangeInProgress' } };
    }
    const reason = validateConfChange(this.membership, change);
    if (reason) return { ok: false, error: { code: 'Rejected', reason } };
    if (change.type === 'promote') {
      // Promoting a learner that is far behind would stall commits until it catches up. Under
      // steady writes a healthy learner trails by what is in flight, so allow one window of lag.
      const pr = this.prs.get(change.nodeId);
      const caughtUp =
        pr !== undefined &&
        (pr.match >= this.log.committed ||
          (pr.state === 'replicate' && this.log.committed - pr.match <= this.cfg.maxInflightMsgs));
      if (!caughtUp) {
        return {
          ok: false,
          error: { code: 'Rejected', reason: `learner ${change.nodeId} has not caught up yet` },
        };
      }
    }
    const e = this.appendEntry('config', encodeConfChange(change));
    this.pendingConfIndex = e.index;
    return { ok: true, index: e.index, term: e.term };
  }

  /**
   * (index, term) is known to be committed: a leader of that term answered a write forwarded by
   * this node with it. Commits this node's log up to `index` when its own entry there has `term`:
   * by log matching its log then equals the leader's up to `index`, all of it committed. The
   * follower can apply its forwarded write without waiting for the leader's next append to carry
   * the commit index. Anything else (a different or missing entry there) is ignored: the leader's
   * appends bring this node's log and commit index up to date as before. Returns whether the
   * commit index moved.
   */
  learnCommitted(index: number, term: number): boolean {
    if (!Number.isSafeInteger(index) || index <= this.log.committed || index > this.log.lastIndex())
      return false;
    if (!this.bugs.learnCommittedWithoutTermCheck && !this.log.matchTerm(index, term)) return false;
    this.log.commitTo(index);
    return true;
  }

  /**
   * `leader`, leader of `term`, has (index, term) durable in its own log (it answered a write this
   * node forwarded once its own fsync covered the entry). If this node's persisted log holds that
   * entry too, received while this node is still in `term`, and the two of them are a quorum of
   * the voters (three voters: any two), the leader of `term` has replicated its entry on a
   * majority during its term: committed, whether or not the leader has heard so yet (Raft thesis
   * §3.6.2). Commits this node's log up to `index` then and returns true, sparing the forwarded
   * write the round trip through the leader's commit. The entry must be persisted here, not only
   * received: the quorum counted is of disks. And this node must still be in `term`: a copy that
   * reached it in a later term (re-replicated by a later leader) does not count, as in the
   * thesis's figure 3.7, where an old entry stored on a majority is still overwritten by a
   * candidate whose last entry has a higher term. Anything else (not persisted yet, another entry
   * there, a later term, a larger cluster, this node a learner) returns false and changes nothing;
   * the leader's appends bring the commit index as before. Returns whether (index, term) is
   * committed here now (also when it was already: a commit index that passed it with that entry;
   * false for one compacted away, whose term is no longer known).
   */
  learnDurableOnLeader(leader: NodeId, index: number, term: number): boolean {
    if (!Number.isSafeInteger(index) || index < 1 || leader === this.id) return false;
    if (index <= this.log.committed) return this.log.matchTerm(index, term);
    const u = this.log.unstable;
    if (!this.bugs.learnDurableWithoutPersistCheck && (index >= u.offset || u.snapshot)) return false;
    if (!this.log.matchTerm(index, term)) return false;
    if (!this.bugs.learnDurableInLaterTerm && this.term !== term) return false;
    const holders = (id: NodeId) => id === this.id || id === leader;
    if (!this.bugs.learnDurableWithoutQuorumCheck && !hasQuorum(this.membership.voters, holders))
      return false;
    this.log.commitTo(index);
    return true;
  }

  /**
   * Leader: entry `index` of this term, durable here, was announced to a follower as such (the
   * answer to a write it forwarded, which it may acknowledge once its own copy is durable too:
   * learnDurableOnLeader). Reads served from now on wait for it (readFloor).
   */
  announceDurable(index: number): void {
    if (this.role !== 'Leader' || !Number.isSafeInteger(index)) return;
    if (index > this.announcedDurable) this.announcedDurable = Math.min(index, this.log.lastIndex());
  }

  /** The highest entry announced durable in this leadership (announceDurable); 0 after an election. */
  private announcedDurable = 0;

  readIndex(requestId: string): { ok: true } | { ok: false; error: ProposalError } {
    if (this.role !== 'Leader') return { ok: false, error: { code: 'NotLeader', leaderId: this.leaderId } };
    if (!this.committedOwnTerm() && !this.bugs.readIndexBeforeNoopCommit) {
      // Our commit index may lag the previous leader's until our no-op commits (thesis §6.4).
      this.pendingReads.push(requestId);
      return { ok: true };
    }
    this.serveRead(requestId);
    return { ok: true };
  }

  transferLeadership(to: NodeId): { ok: true } | { ok: false; error: ProposalError } {
    if (this.role !== 'Leader') return { ok: false, error: { code: 'NotLeader', leaderId: this.leaderId } };
    if (to === this.id) return { ok: true };
    if (!isVoter(this.membership, to))
      return { ok: false, error: { code: 'Rejected', reason: `${to} is not a voter` } };
    if (this.leadTransferee === to) return { ok: true };
    this.leadTransferee = to;
    // The transfer must finish within an election timeout, or proposals resume here.
    this.electionElapsed = 0;
    const pr = this.prs.get(to)!;
    if (pr.match === this.log.lastIndex()) this.sendTimeoutNow(to);
    else this.maybeSendAppend(to, true);
    return { ok: true };
  }

  step(m: Message): void {
    if (m.to !== this.id) return;
    if (m.term > this.term) {
      if (m.type === 'vote') {
        // CheckQuorum leader lease: while we hear from a leader, a disruptive (e.g. rejoining) node
        // cannot unseat it. A transfer is a deliberate election and overrides the lease.
        const inLease =
          this.cfg.checkQuorum &&
          (this.leaderId !== null || this.startupLease) &&
          this.electionElapsed < this.cfg.electionTick;
        if (!m.transfer && inLease) return;
      }
      if (m.type === 'vote' && m.preVote) {
        // A PreVote request never changes our term.
      } else if (m.type === 'voteResponse' && m.preVote && m.voteGranted) {
        // Granted PreVotes carry the future term; we bump it when the real election starts.
      } else {
        const lead = m.type === 'append' || m.type === 'snapshot' ? m.from : null;
        this.becomeFollower(m.term, lead);
      }
    } else if (m.term < this.term) {
      if ((this.cfg.checkQuorum || this.cfg.preVote) && m.type === 'append') {
        // Tell a stale leader about the newer term, or it may keep a partitioned node's PreVotes failing forever.
        this.send({
          type: 'appendResponse',
          from: this.id,
          to: m.from,
          term: this.term,
          success: false,
          matchIndex: 0,
          conflictIndex: 0,
          conflictTerm: 0,
          readCtx: 0,
        });
      } else if (m.type === 'vote' && m.preVote) {
        this.send({
          type: 'voteResponse',
          from: this.id,
          to: m.from,
          term: this.term,
          voteGranted: false,
          preVote: true,
        });
      }
      return;
    }

    if (m.type === 'vote') {
      this.handleVote(m);
      return;
    }
    switch (this.role) {
      case 'Leader':
        this.stepLeader(m);
        break;
      case 'Candidate':
      case 'PreCandidate':
        this.stepCandidate(m);
        break;
      case 'Follower':
        this.stepFollower(m);
        break;
    }
  }

  hasReady(): boolean {
    this.flushBroadcast();
    const u = this.log.unstable;
    return (
      !sameSoft(this.softState(), this.prevSoftState) ||
      !sameHard(this.hardState(), this.prevHardState) ||
      u.entries.length > 0 ||
      u.snapshot !== null ||
      this.msgs.length > 0 ||
      this.readStates.length > 0 ||
      this.log.hasNextEnts()
    );
  }

  ready(): Ready {
    if (this.awaitingAdvance) throw new Error('ready() called again before advance() of the previous Ready');
    this.flushBroadcast();
    const hs = this.hardState();
    const soft = this.softState();
    const u = this.log.unstable;
    const rd: Ready = {
      softState: soft,
      hardState: sameHard(hs, this.prevHardState) ? null : hs,
      entries: u.entries.slice(),
      snapshot: u.snapshot,
      messages: this.msgs,
      committedEntries: this.log.nextEnts(this.cfg.maxCommittedSizePerReady),
      readStates: this.readStates,
    };
    this.msgs = [];
    this.readStates = [];
    this.prevSoftState = soft;
    if (rd.hardState) this.prevHardState = hs;
    this.awaitingAdvance = true;
    return rd;
  }

  advance(rd: Ready): void {
    this.awaitingAdvance = false;
    const last = rd.entries[rd.entries.length - 1];
    if (last) this.log.unstable.stableTo(last.index, last.term);
    if (rd.snapshot) {
      this.log.unstable.stableSnapTo(rd.snapshot.index);
      this.log.appliedTo(rd.snapshot.index);
    }
    const lastApplied = rd.committedEntries[rd.committedEntries.length - 1];
    if (lastApplied) this.log.appliedTo(lastApplied.index);
  }

  reportUnreachable(peer: NodeId): void {
    if (this.role !== 'Leader') return;
    const pr = this.prs.get(peer);
    if (pr && pr.state === 'replicate') pr.becomeProbe();
  }

  reportSnapshot(peer: NodeId, ok: boolean): void {
    if (this.role !== 'Leader') return;
    const pr = this.prs.get(peer);
    if (!pr || pr.state !== 'snapshot') return;
    // Failed streams are retried from scratch (probe finds out what the follower has).
    if (!ok) pr.pendingSnapshot = 0;
    pr.becomeProbe();
    // Wait for the follower's answer (or a heartbeat's) before probing.
    pr.probeSent = true;
  }

  status(): Status {
    return {
      id: this.id,
      role: this.role,
      leaderId: this.leaderId,
      term: this.term,
      vote: this.vote,
      commitIndex: this.log.committed,
      appliedIndex: this.log.applied,
      lastIndex: this.log.lastIndex(),
      membership: cloneMembership(this.membership),
      progress: this.role === 'Leader' ? [...this.prs.values()].map((p) => p.view()) : null,
      leadTransferee: this.leadTransferee,
    };
  }

  /** The scalar part of status(), without allocating membership or progress copies (hot paths, metrics). */
  basicStatus(): {
    role: Role;
    leaderId: NodeId | null;
    term: number;
    commitIndex: number;
    appliedIndex: number;
    lastIndex: number;
  } {
    return {
      role: this.role,
      leaderId: this.leaderId,
      term: this.term,
      commitIndex: this.log.committed,
      appliedIndex: this.log.applied,
      lastIndex: this.log.lastIndex(),
    };
  }

  /** The log as the core sees it, persisted or not (for tests and the simulator's invariant checks). */
  logView(): {
    firstIndex: number;
    lastIndex: number;
    term(i: number): number | undefined;
    entries(lo: number, hi: number): Entry[];
  } {
    const log = this.log;
    return {
      firstIndex: log.firstIndex(),
      lastIndex: log.lastIndex(),
      term: (i) => log.term(i),
      entries: (lo, hi) => log.entries(lo, hi) ?? [],
    };
  }

  // ---------------------------------------------------------------- roles

  private softState(): SoftState {
    return { role: this.role, leaderId: this.leaderId, term: this.term };
  }

  private hardState(): HardState {
    return { term: this.term, vote: this.voteHidden ? null : this.vote, commit: this.log.committed };
  }

  private reset(term: number): void {
    if (this.term !== term) {
      this.term = term;
      this.vote = null;
      this.voteHidden = false;
    }
    this.leaderId = null;
    this.electionElapsed = 0;
    this.heartbeatElapsed = 0;
    this.resetRandomizedElectionTimeout();
    this.leadTransferee = null;
    this.votes = new Map();
    this.readOnly.reset();
    this.pendingReads = [];
    this.roundSentAt.clear();
    this.sentTimeoutNow = false;
    this.needBcast = false;
  }

  private becomeFollower(term: number, lead: NodeId | null): void {
    this.reset(term);
    this.role = 'Follower';
    this.leaderId = lead;
  }

  private becomePreCandidate(): void {
    // Neither term nor vote changes: a PreVote round must leave no trace if it fails.
    this.startupLease = false;
    this.role = 'PreCandidate';
    this.votes = new Map();
    this.leaderId = null;
  }

  private becomeCandidate(): void {
    this.reset(this.term + 1);
    this.startupLease = false;
    this.vote = this.id;
    this.role = 'Candidate';
  }

  private becomeLeader(): void {
    this.reset(this.term);
    this.role = 'Leader';
    this.leaderId = this.id;
    // What an earlier leadership announced is of an older term: covered by this term's no-op,
    // whose commit reads wait for.
    this.announcedDurable = 0;
    this.prs = new Map();
    const last = this.log.lastIndex();
    for (const id of [...this.membership.voters, ...this.membership.learners]) this.addProgress(id, last + 1);
    const self = this.prs.get(this.id);
    if (self) {
      self.match = last;
      self.recentActive = true;
      self.becomeReplicate();
    }
    // Conservatively treat any config entry in the uncommitted tail as pending.
    this.pendingConfIndex = last;
    // The no-op lets this leader commit everything before it (§5.4.2) and learn its commit index (§6.4).
    this.appendEntry('noop', '');
  }

  private addProgress(id: NodeId, next: number): void {
    const pr = new Progress(
      id,
      next,
      this.membership.learners.includes(id),
      this.cfg.maxInflightMsgs,
      this.cfg.maxInflightBytes,
    );
    pr.progressTick = this.ticks;
    this.prs.set(id, pr);
  }

  /**
   * A node may campaign if it is a voter in its latest configuration, or in the committed one: its
   * own uncommitted removal may never commit (think of a two-node cluster whose leader appended
   * "remove self" and crashed before sending it: the other node cannot win without its vote, so it
   * must be able to win, lead under the new configuration without counting itself, and step down
   * once the removal commits). Votes are always counted in the latest configuration.
   */
  private promotable(): boolean {
    return isVoter(this.membership, this.id) || isVoter(this.committedMembership(), this.id);
  }

  private committedMembership(): Membership {
    for (let i = this.confLog.length - 1; i >= 0; i--) {
      const c = this.confLog[i]!;
      if (c.index <= this.log.committed) return c.membership;
    }
    return this.baseMembership;
  }

  private tickElection(): void {
    this.electionElapsed++;
    if (this.electionElapsed >= this.cfg.electionTick) this.startupLease = false;
    if (this.promotable() && this.electionElapsed >= this.randomizedElectionTimeout) {
      this.electionElapsed = 0;
      this.hup(false);
    }
  }

  private tickHeartbeat(): void {
    this.heartbeatElapsed++;
    this.electionElapsed++;
    // Rounds older than an election timeout can no longer extend a lease.
    for (const [ctx, at] of this.roundSentAt) {
      if (at >= this.ticks - this.cfg.electionTick) break;
      this.roundSentAt.delete(ctx);
    }
    if (this.electionElapsed >= this.cfg.electionTick) {
      this.electionElapsed = 0;
      if (this.cfg.checkQuorum) {
        const active = hasQuorum(
          this.membership.voters,
          (id) => id === this.id || this.prs.get(id)?.recentActive === true,
        );
        if (!active) {
          this.becomeFollower(this.term, null);
          return;
        }
        for (const [id, pr] of this.prs) if (id !== this.id) pr.recentActive = false;
      }
      if (this.leadTransferee !== null) this.leadTransferee = null;
    }
    if (this.heartbeatElapsed >= this.cfg.heartbeatTick) {
      this.heartbeatElapsed = 0;
      this.bcastHeartbeat(this.newRound());
    }
  }

  private resetRandomizedElectionTimeout(): void {
    const et = this.cfg.electionTick;
    const r = Math.floor(this.cfg.random() * et);
    this.randomizedElectionTimeout = et + Math.min(Math.max(r, 0), et - 1);
  }

  /** See RaftConfig.abstainUntil: no votes and no campaigns until the commit index reaches it. */
  private abstaining(): boolean {
    return (this.cfg.abstainUntil ?? 0) > this.log.committed;
  }

  private hup(transfer: boolean): void {
    if (this.role === 'Leader') return;
    if (!this.promotable() || this.abstaining()) return;
    if (this.cfg.preVote && !transfer) this.campaignPre();
    else this.campaignReal(transfer);
  }

  private campaignPre(): void {
    this.becomePreCandidate();
    this.votes.set(this.id, true);
    if (voteResult(this.membership.voters, this.votes) === 'won') {
      this.campaignReal(false);
      return;
    }
    this.sendVotes(this.term + 1, true, false);
  }

  private campaignReal(transfer: boolean): void {
    this.becomeCandidate();
    this.votes.set(this.id, true);
    if (voteResult(this.membership.voters, this.votes) === 'won') {
      this.becomeLeader();
      return;
    }
    this.sendVotes(this.term, false, transfer);
  }

  private sendVotes(term: number, preVote: boolean, transfer: boolean): void {
    const lastLogIndex = this.log.lastIndex();
    const lastLogTerm = this.log.lastTerm();
    for (const v of this.membership.voters) {
      if (v === this.id) continue;
      this.send({ type: 'vote', from: this.id, to: v, term, lastLogIndex, lastLogTerm, preVote, transfer });
    }
  }

  private handleVote(m: VoteMsg): void {
    const canVote =
      this.vote === m.from ||
      (this.vote === null && this.leaderId === null) ||
      (m.preVote && m.term > this.term);
    if (canVote && !this.abstaining() && this.log.isUpToDate(m.lastLogIndex, m.lastLogTerm)) {
      // The response is only sent after the HardState holding this vote is durable (Ready contract).
      this.send({
        type: 'voteResponse',
        from: this.id,
        to: m.from,
        term: m.term,
        voteGranted: true,
        preVote: m.preVote,
      });
      if (!m.preVote) {
        this.electionElapsed = 0;
        this.vote = m.from;
        if (this.bugs.voteWithoutPersist) this.voteHidden = true;
      }
    } else {
      this.send({
        type: 'voteResponse',
        from: this.id,
        to: m.from,
        term: this.term,
        voteGranted: false,
        preVote: m.preVote,
      });
    }
  }

  private stepCandidate(m: Message): void {
    switch (m.type) {
      case 'append':
        this.becomeFollower(this.term, m.from);
        this.handleAppend(m);
        break;
      case 'snapshot':
        this.becomeFollower(this.term, m.from);
        this.handleSnapshot(m);
        break;
      case 'voteResponse':
        this.handleVoteResponse(m);
        break;
      default:
        break;
    }
  }

  private handleVoteResponse(m: VoteRespMsg): void {
    if (m.preVote !== (this.role === 'PreCandidate')) return;
    this.votes.set(m.from, m.voteGranted);
    const res = voteResult(this.membership.voters, this.votes);
    if (res === 'won') {
      if (this.role === 'PreCandidate') this.campaignReal(false);
      else this.becomeLeader();
    } else if (res === 'lost') {
      this.becomeFollower(this.term, null);
    }
  }

  private stepFollower(m: Message): void {
    switch (m.type) {
      case 'append':
        this.electionElapsed = 0;
        this.leaderId = m.from;
        this.handleAppend(m);
        break;
      case 'snapshot':
        this.electionElapsed = 0;
        this.leaderId = m.from;
        this.handleSnapshot(m);
        break;
      case 'timeoutNow':
        // Skip PreVote: the leader asked for this election, and voters override their lease for it.
        if (this.promotable() && !this.abstaining()) this.campaignReal(true);
        break;
      default:
        break;
    }
  }

  private stepLeader(m: Message): void {
    if (m.type === 'appendResponse') this.handleAppendResponse(m);
  }

  // ---------------------------------------------------------------- follower side of replication

  private handleAppend(m: AppendMsg): void {
    const reply = (success: boolean, matchIndex: number, conflictIndex = 0, conflictTerm = 0) =>
      this.send({
        type: 'appendResponse',
        from: this.id,
        to: m.from,
        term: this.term,
        success,
        matchIndex,
        conflictIndex,
        conflictTerm,
        readCtx: m.readCtx,
      });
    const log = this.log;
    // An entry of the leader's own term can only have come from this leader, so (log matching)
    // our log matches its log up to our last index: report that, and heartbeats reveal progress
    // made by appends that were reordered or whose answers were lost.
    const known = (n: number) => (log.lastTerm() === m.term ? Math.max(n, log.lastIndex()) : n);
    if (m.prevLogIndex < log.committed) {
      // Our committed prefix is in every later leader's log, so we match it up to there.
      reply(true, known(log.committed));
      return;
    }
    if (log.matchTerm(m.prevLogIndex, m.prevLogTerm)) {
      const lastNew = m.prevLogIndex + m.entries.length;
      if (this.bugs.truncateOnNonConflictingAppend && m.entries.length > 0) {
        log.append(m.entries);
        this.onLogAppended(m.entries[0]!.index, m.entries);
      } else {
        // §5.3: truncate only from the first conflicting entry; a stale or duplicated append
        // whose entries we already have must not drop the entries after them.
        const ci = log.findConflict(m.entries);
        if (ci !== 0) {
          if (ci <= log.committed)
            throw new Error(`entry ${ci} conflicts with committed entry (committed ${log.committed})`);
          const ents = m.entries.slice(ci - (m.prevLogIndex + 1));
          log.append(ents);
          this.onLogAppended(ci, ents);
        }
      }
      log.commitTo(Math.min(m.leaderCommit, lastNew));
      reply(true, known(lastNew));
      return;
    }
    // Rejection: matchIndex carries the rejected prevLogIndex (so the leader can drop stale
    // rejections), and the conflict hints let it skip a whole term per round trip.
    const last = log.lastIndex();
    if (m.prevLogIndex > last) {
      reply(false, m.prevLogIndex, last + 1, 0);
      return;
    }
    const ct = log.term(m.prevLogIndex)!;
    let first = m.prevLogIndex;
    while (first - 1 > log.committed && log.term(first - 1) === ct) first--;
    reply(false, m.prevLogIndex, first, ct);
  }

  private handleSnapshot(m: SnapshotMsg): void {
    const s = m.snapshot;
    const reply = (matchIndex: number) =>
      this.send({
        type: 'appendResponse',
        from: this.id,
        to: m.from,
        term: this.term,
        success: true,
        matchIndex,
        conflictIndex: 0,
        conflictTerm: 0,
        readCtx: 0,
      });
    if (s.index <= this.log.committed) {
      reply(this.log.committed);
      return;
    }
    if (this.log.matchTerm(s.index, s.term)) {
      // We already have the snapshot's last entry: keep the log, just learn the commit.
      this.log.commitTo(s.index);
      reply(s.index);
      return;
    }
    // Discard the whole log: it conflicts with (or is behind) the snapshot.
    this.log.restore({ ...s, membership: cloneMembership(s.membership), contexts: { ...s.contexts } });
    this.baseMembership = cloneMembership(s.membership);
    this.confLog = [];
    this.setMembership(cloneMembership(s.membership));
    reply(s.index);
  }

  // ---------------------------------------------------------------- leader side of replication

  private appendEntry(kind: Entry['kind'], data: string): Entry {
    const e: Entry = { index: this.log.lastIndex() + 1, term: this.term, kind, data };
    this.log.append([e]);
    this.onLogAppended(e.index, [e]);
    this.prs.get(this.id)?.maybeUpdate(e.index);
    this.needBcast = true;
    this.maybeCommit();
    return e;
  }

  private flushBroadcast(): void {
    if (!this.needBcast) return;
    this.needBcast = false;
    if (this.role === 'Leader') this.bcastAppend();
  }

  /**
   * `commitNotice`: the broadcast only tells followers a new commit index. Those of its appends that
   * carry no entries are marked `lazy` (see the Message type): no Raft rule waits for them.
   */
  private bcastAppend(commitNotice = false): void {
    for (const id of this.prs.keys()) {
      if (id === this.id) continue;
      // In replicate state, fill the inflight window now rather than one message per ack.
      if (this.maybeSendAppend(id, true, commitNotice)) while (this.maybeSendAppend(id, false));
    }
  }

  private bcastHeartbeat(readCtx: number): void {
    for (const [id, pr] of this.prs) {
      if (id === this.id) continue;
      // prevLogIndex = match: known to match, so the follower may safely commit up to it.
      let prev = pr.match;
      let prevTerm = this.log.term(prev);
      if (prevTerm === undefined) {
        prev = 0;
        prevTerm = 0;
      }
      this.send({
        type: 'append',
        from: this.id,
        to: id,
        term: this.term,
        prevLogIndex: prev,
        prevLogTerm: prevTerm,
        entries: [],
        leaderCommit: this.log.committed,
        readCtx,
      });
    }
  }

  private maybeSendAppend(to: NodeId, sendIfEmpty: boolean, lazyIfEmpty = false): boolean {
    const pr = this.prs.get(to);
    if (!pr || pr.isPaused()) return false;
    const prevIndex = pr.next - 1;
    const prevTerm = this.log.term(prevIndex);
    const ents =
      prevTerm === undefined
        ? undefined
        : this.log.entries(pr.next, this.log.lastIndex() + 1, this.cfg.maxSizePerMsg);
    if (ents !== undefined && ents.length === 0 && !sendIfEmpty) return false;
    if (prevTerm === undefined || ents === undefined) {
      // The follower needs entries we compacted: it gets the snapshot, streamed out of band.
      if (!pr.recentActive) return false;
      const snap = this.log.storage.snapshotMeta();
      this.send({ type: 'snapshot', from: this.id, to, term: this.term, snapshot: snap });
      pr.becomeSnapshot(snap.index);
      return true;
    }
    this.send({
      type: 'append',
      from: this.id,
      to,
      term: this.term,
      prevLogIndex: prevIndex,
      prevLogTerm: prevTerm,
      entries: ents,
      leaderCommit: this.log.committed,
      readCtx: this.roundSeq,
      ...(lazyIfEmpty && ents.length === 0 ? { lazy: true } : {}),
    });
    if (pr.state === 'replicate') {
      const last = ents[ents.length - 1];
      if (last) {
        pr.optimisticUpdate(last.index);
        pr.inflights.add(last.index, entriesSize(ents));
      }
    } else if (pr.state === 'probe') {
      pr.probeSent = true;
    }
    return true;
  }

  private handleAppendResponse(m: AppendRespMsg): void {
    const pr = this.prs.get(m.from);
    if (!pr) return;
    pr.recentActive = true;
    if (m.readCtx > 0) {
      const at = this.roundSentAt.get(m.readCtx);
      if (at !== undefined && at > pr.leaseAnchor) pr.leaseAnchor = at;
      this.handleReadAck(m.from, m.readCtx);
    }
    if (this.role !== 'Leader') return;

    if (!m.success) {
      // Answers to appends sent before our last rewind tell us nothing new; acting on each would
      // resend the window once per stale answer and snowball into a storm.
      if (m.readCtx < pr.floorRound) return;
      const hint = this.nextFromHint(m);
      if (pr.state === 'replicate') {
        if (m.matchIndex <= pr.match) return;
        // The follower's log ends before what we sent: appends were lost, or overtaken and so
        // rejected. Rewind to where its log ends, at most once per round trip.
        pr.next = Math.max(Math.min(m.matchIndex, hint), pr.match + 1);
        pr.inflights.reset();
        pr.inflights.shrink();
        pr.floorRound = this.newRound();
        if (this.maybeSendAppend(m.from, true)) while (this.maybeSendAppend(m.from, false));
        return;
      }
      if (pr.maybeDecrTo(m.matchIndex, hint)) this.maybeSendAppend(m.from, true);
      return;
    }

    const wasPaused = pr.isPaused();
    if (pr.maybeUpdate(m.matchIndex)) {
      pr.progressTick = this.ticks;
      if (pr.state === 'probe') pr.becomeReplicate();
      else if (pr.state === 'snapshot' && pr.match >= pr.pendingSnapshot) {
        pr.becomeProbe();
        pr.becomeReplicate();
      } else if (pr.state === 'replicate') {
        pr.inflights.freeLE(m.matchIndex);
        pr.inflights.grow();
      }

      if (this.maybeCommit()) {
        if (this.role !== 'Leader') return;
        this.bcastAppend(true);
      } else if (wasPaused) {
        this.maybeSendAppend(m.from, true);
      }
      while (this.maybeSendAppend(m.from, false)) {
        // keep the window full
      }
      if (m.from === this.leadTransferee && pr.match === this.log.lastIndex()) this.sendTimeoutNow(m.from);
    } else {
      // A heartbeat answer or a duplicate: the follower is alive, so unblock a stalled probe.
      pr.probeSent = false;
      if (pr.match >= this.log.lastIndex()) return;
      if (pr.state !== 'replicate') {
        this.maybeSendAppend(m.from, true);
        return;
      }
      // In replicate state the answer may simply have overtaken appends still in flight; only when
      // the follower answers a round sent well after our last progress with it, and still lacks
      // the entries, were appends lost: then retransmit from its match.
      if (this.stalled(pr, m)) {
        pr.becomeProbe();
        pr.floorRound = this.newRound();
        pr.progressTick = this.ticks;
        this.maybeSendAppend(m.from, true);
        return;
      }
      if (pr.inflights.full()) pr.inflights.freeFirstOne();
      while (this.maybeSendAppend(m.from, false)) {
        // keep the window full
      }
    }
  }

  /** The follower answered a round sent two heartbeats after its last progress, and made none. */
  private stalled(pr: Progress, m: AppendRespMsg): boolean {
    const sentAt = this.roundSentAt.get(m.readCtx);
    return sentAt !== undefined && sentAt - pr.progressTick >= 2 * this.cfg.heartbeatTick;
  }

  private nextFromHint(m: AppendRespMsg): number {
    if (m.conflictTerm > 0) {
      const idx = this.log.lastIndexOfTerm(m.conflictTerm, m.matchIndex);
      if (idx !== undefined) return idx + 1;
    }
    return m.conflictIndex > 0 ? m.conflictIndex : m.matchIndex;
  }

  /** §5.3/§5.4.2: advance commit to what a majority matches, but only through an entry of our term. */
  private maybeCommit(): boolean {
    const mci = committedIndex(this.membership.voters, (id) => this.prs.get(id)?.match ?? 0);
    if (mci <= this.log.committed) return false;
    if (this.log.term(mci) !== this.term && !this.bugs.commitPreviousTermByCount) return false;
    this.log.commitTo(mci);
    this.afterCommit();
    return true;
  }

  private afterCommit(): void {
    if (this.role !== 'Leader') return;
    if (this.committedOwnTerm() && this.pendingReads.length > 0) {
      const reads = this.pendingReads;
      this.pendingReads = [];
      for (const r of reads) this.serveRead(r);
    }
    // A leader removed from the membership steps down once its removal commits (thesis §4.2.2),
    // handing over to the most up-to-date voter so the cluster need not wait for a timeout.
    if (!isVoter(this.membership, this.id) && this.log.committed >= this.latestConfigIndex()) {
      let best: Progress | null = null;
      for (const v of this.membership.voters) {
        const pr = this.prs.get(v);
        if (pr && (best === null || pr.match > best.match)) best = pr;
      }
      this.bcastAppend();
      if (best && best.match === this.log.lastIndex()) this.sendTimeoutNow(best.id);
      this.becomeFollower(this.term, null);
    }
  }

  private committedOwnTerm(): boolean {
    return this.log.term(this.log.committed) === this.term;
  }

  private sendTimeoutNow(to: NodeId): void {
    // The transferee's election ignores leases, so ours is void for the rest of this term.
    this.sentTimeoutNow = true;
    this.send({ type: 'timeoutNow', from: this.id, to, term: this.term });
  }

  private leaderCheck(): ProposalError | null {
    if (this.role !== 'Leader') return { code: 'NotLeader', leaderId: this.leaderId };
    if (this.leadTransferee !== null) return { code: 'TransferInProgress', leaderId: this.leadTransferee };
    return null;
  }

  // ---------------------------------------------------------------- reads

  private serveRead(requestId: string): void {
    const voters = this.membership.voters;
    if (
      (this.cfg.readOnly === 'lease' && this.leaseValid()) ||
      (voters.length === 1 && voters[0] === this.id)
    ) {
      this.readStates.push({ requestId, index: this.readFloor() });
      return;
    }
    const ctx = this.newRound();
    this.readOnly.add(ctx, this.readFloor(), requestId, this.id);
    this.bcastHeartbeat(ctx);
  }

  /**
   * The index a read must reach: the commit index, or the highest entry this leader told a
   * follower is durable here (announceDurable), if higher. That follower may already have
   * acknowledged the entry's write, its own durable copy making the quorum
   * (learnDurableOnLeader), before this leader heard so: a read that did not wait for it could
   * miss a write acknowledged before the read began.
   */
  private readFloor(): number {
    if (this.bugs.readFloorIgnoresDurable) return this.log.committed;
    return Math.max(this.log.committed, this.announcedDurable);
  }

  private newRound(): number {
    const ctx = ++this.roundSeq;
    this.roundSentAt.set(ctx, this.ticks);
    return ctx;
  }

  /**
   * A quorum answered a round sent less than electionTick - 1 ticks ago, so (with CheckQuorum and
   * clocks that tick at the same rate) none of them will vote in another leader yet. The margin of
   * one tick covers followers whose ticks are out of phase with ours. Voided by a transfer.
   */
  private leaseValid(): boolean {
    if (!this.cfg.checkQuorum || this.leadTransferee !== null || this.sentTimeoutNow) return false;
    if (this.bugs.leaseWithoutQuorum) return true;
    const horizon = this.ticks - (this.cfg.electionTick - 1);
    return hasQuorum(this.membership.voters, (id) => {
      if (id === this.id) return true;
      const pr = this.prs.get(id);
      return pr !== undefined && pr.leaseAnchor > horizon;
    });
  }

  private handleReadAck(from: NodeId, ctx: number): void {
    if (this.role !== 'Leader') return;
    const released = this.readOnly.recvAck(from, ctx, (acks) =>
      hasQuorum(this.membership.voters, (id) => acks.has(id)),
    );
    for (const r of released) this.readStates.push(r);
  }

  // ---------------------------------------------------------------- membership

  private latestConfigIndex(): number {
    const last = this.confLog[this.confLog.length - 1];
    return last ? last.index : this.log.firstIndex() - 1;
  }

  private rebuildConfLogFromStorage(): void {
    const first = this.log.firstIndex();
    const last = this.log.lastIndex();
    let m = cloneMembership(this.baseMembership);
    for (let lo = first; lo <= last;) {
      const ents = this.log.entries(lo, last + 1, 1 << 20) ?? [];
      if (ents.length === 0) break;
      for (const e of ents) {
        if (e.kind !== 'config') continue;
        m = applyConfChange(m, decodeConfChange(e.data));
        this.confLog.push({ index: e.index, membership: m });
      }
      lo = ents[ents.length - 1]!.index + 1;
    }
    this.membership = cloneMembership(m);
  }

  /** The log changed from index `from` on (truncated there, then `ents` appended). */
  private onLogAppended(from: number, ents: Entry[]): void {
    let changed = false;
    while (this.confLog.length > 0 && this.confLog[this.confLog.length - 1]!.index >= from) {
      this.confLog.pop();
      changed = true;
    }
    for (const e of ents) {
      if (e.kind !== 'config') continue;
      const prev = this.confLog[this.confLog.length - 1]?.membership ?? this.baseMembership;
      this.confLog.push({ index: e.index, membership: applyConfChange(prev, decodeConfChange(e.data)) });
      changed = true;
    }
    if (!changed) return;
    const m = this.confLog[this.confLog.length - 1]?.membership ?? this.baseMembership;
    this.setMembership(cloneMembership(m));
  }

  private setMembership(m: Membership): void {
    if (sameMembership(m, this.membership)) return;
    this.membership = m;
    if (this.role !== 'Leader') return;
    for (const id of [...this.prs.keys()]) if (!isMember(m, id)) this.prs.delete(id);
    for (const id of [...m.voters, ...m.learners]) {
      const pr = this.prs.get(id);
      if (pr) pr.isLearner = m.learners.includes(id);
      else this.addProgress(id, this.log.lastIndex() + 1);
    }
    if (this.leadTransferee !== null && !isVoter(m, this.leadTransferee)) this.leadTransferee = null;
    // A smaller quorum may commit more right away.
    if (this.maybeCommit() && this.role === 'Leader') this.needBcast = true;
  }

  private send(m: Message): void {
    this.msgs.push(m);
  }
}

function isEmptyMembership(m: Membership): boolean {
  return m.voters.length === 0 && m.learners.length === 0;
}

function sameSoft(a: SoftState, b: SoftState): boolean {
  return a.role === b.role && a.leaderId === b.leaderId && a.term === b.term;
}

function sameHard(a: HardState, b: HardState): boolean {
  return a.term === b.term && a.vote === b.vote && a.commit === b.commit;
}

function validateConfig(c: RaftConfig): void {
  const bad = (why: string) => {
    throw new Error(`invalid RaftConfig: ${why}`);
  };
  if (!c.id) bad('id is required');
  if (!(c.heartbeatTick > 0)) bad('heartbeatTick must be > 0');
  if (!(c.electionTick > c.heartbeatTick)) bad('electionTick must be greater than heartbeatTick');
  if (c.readOnly === 'lease' && !c.checkQuorum) bad("readOnly 'lease' requires checkQuorum");
  if (!(c.maxInflightMsgs > 0)) bad('maxInflightMsgs must be > 0');
  if (!(c.maxSizePerMsg > 0)) bad('maxSizePerMsg must be > 0');
  if (c.maxInflightBytes < 0) bad('maxInflightBytes must be >= 0');
}
