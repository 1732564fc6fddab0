// A seeded, deterministic cluster simulator for the Raft core. Everything random (faults, delays,
// election timeouts, client load) comes from one seed, so a failing seed replays exactly:
//   npm run sim -- --seed <n> [--nodes k] --trace
// Virtual time advances in units; every node ticks once per TICK units, out of phase with the others.
import { MemoryStorage, RaftNode, applyConfChange, decodeConfChange } from '../../src/raft/index.js';
import type {
  ConfChange,
  Entry,
  HardState,
  Membership,
  Message,
  NodeId,
  RaftBugs,
  RaftConfig,
  Ready,
  SnapshotMeta,
} from '../../src/raft/index.js';
import { Rng } from './rng.js';

export const TICK = 5;

export interface FaultProfile {
  /** Per message. */
  drop: number;
  dup: number;
  /** Delivery delay in units, uniform in [1, maxDelay]. */
  maxDelay: number;
  /** Per tick probabilities. */
  partition: number;
  crash: number;
  propose: number;
  read: number;
  confChange: number;
  transfer: number;
  compact: number;
  /** Probability that a node defers handling its Ready in a unit (slow fsync). */
  persistDelay: number;
  /** A crashed node restarts after 1..restartTicks ticks. */
  restartTicks: number;
}

export interface RaftKnobs {
  preVote: boolean;
  checkQuorum: boolean;
  readOnly: 'safe' | 'lease';
  electionTick: number;
  heartbeatTick: number;
  maxSizePerMsg: number;
  maxInflightMsgs: number;
  maxInflightBytes: number;
}

export interface SimOptions {
  seed: number;
  /** Initial voters, 1..7. */
  nodes: number;
  /** Members (voters + learners) never exceed this, joins included. */
  maxNodes?: number;
  /** Ticks of faults and load. */
  faultTicks: number;
  /** After healing: ticks within which the cluster must converge. */
  livenessTicks?: number;
  bugs?: RaftBugs;
  /** Check that every message's term/vote/entries were durable when it was sent (default true). */
  checkSendDurability?: boolean;
  profile?: Partial<FaultProfile>;
  knobs?: Partial<RaftKnobs>;
  /**
   * Commit hints (RaftNode.learnCommitted, as a follower learns from the answer to a write it
   * forwarded): an acknowledged entry's (index, term) reaches a random member after a random
   * delay, during the faults. Drawn from an RNG of their own; off by default, so that seeds of the
   * other campaigns replay as before.
   */
  commitHints?: boolean;
  /**
   * Durable hints (RaftNode.learnDurableOnLeader, as a follower learns from a forward answered once
   * durable on the leader): when a leader persists entries of its own term, the last one's
   * (index, term) reaches a random member after a random delay, during the faults. An RNG of its
   * own; off by default.
   */
  durableHints?: boolean;
  /** Collect a trace; printed on failure by the CLI. */
  trace?: boolean;
  /** With trace: also log every message sent from this unit on. */
  traceMessages?: number;
}

export interface SimStats {
  units: number;
  elections: number;
  maxTerm: number;
  proposed: number;
  acked: number;
  reads: number;
  crashes: number;
  snapshotsSent: number;
  confChanges: number;
  /** Commit hints that moved a member's commit index. */
  hints: number;
  /** Durable hints that moved a member's commit index. */
  durableHints: number;
  transfers: number;
  messages: number;
}

export interface SimResult {
  seed: number;
  ok: boolean;
  violation?: string;
  /** Virtual time (units) of the violation. */
  at?: number;
  stats: SimStats;
  profile: FaultProfile;
  knobs: RaftKnobs;
  trace: string[];
}

class Violation extends Error {}

interface AppState {
  applied: number;
  hash: number;
  membership: Membership;
  snap: { meta: SnapshotMeta; hash: number } | null;
}

interface SimNode {
  id: NodeId;
  rng: Rng;
  disk: MemoryStorage;
  app: AppState;
  raft: RaftNode | null;
  incarnation: number;
  /** Crash at the next Ready, after this many of its steps (0: before persisting, 1: before sending, 2: before advance). */
  crashAt: number | null;
  restartAt: number | null;
  /** Permanently gone (removed from the cluster, or an orphaned joiner). */
  retired: boolean;
  incomingSnap: Map<number, number>;
  lastPersisted: HardState;
  lastApplied: number;
  phase: number;
  /** Terms this node has been seen leading (for leader completeness, checked once per term). */
  ledTerm: number;
}

interface InFlight {
  at: number;
  m: Message;
  fromInc: number;
  snapHash?: number;
}

interface Pending {
  value: string;
  index: number;
  term: number;
}

const DEFAULT_KNOBS: RaftKnobs = {
  preVote: true,
  checkQuorum: true,
  readOnly: 'safe',
  electionTick: 10,
  heartbeatTick: 1,
  maxSizePerMsg: 1024,
  maxInflightMsgs: 8,
  maxInflightBytes: 0,
};

/** Per-seed fault mix: every seed draws its own profile, so a campaign covers calm and violent runs. */
export function drawProfile(rng: Rng): FaultProfile {
  const violent = rng.chance(0.5);
  return {
    drop: rng.pick([0, 0.01, 0.05, 0.1, 0.2]),
    dup: rng.pick([0, 0.02, 0.1]),
    maxDelay: rng.pick([1, 3, TICK, 2 * TICK, 4 * TICK]),
    partition: violent ? rng.pick([0.02, 0.05, 0.1]) : rng.pick([0, 0.01, 0.02]),
    crash: violent ? rng.pick([0.01, 0.03, 0.06]) : rng.pick([0, 0.005, 0.01]),
    propose: rng.pick([0.2, 0.5, 1, 2]),
    read: rng.pick([0, 0.2, 0.5]),
    confChange: rng.pick([0, 0.01, 0.03]),
    transfer: rng.pick([0, 0.01, 0.03]),
    compact: rng.pick([0, 0.02, 0.1]),
    persistDelay: rng.pick([0, 0.2, 0.5]),
    restartTicks: rng.pick([5, 40]),
  };
}

export function drawKnobs(rng: Rng): RaftKnobs {
  const checkQuorum = rng.chance(0.6);
  return {
    preVote: rng.chance(0.6),
    checkQuorum,
    readOnly: checkQuorum && rng.chance(0.3) ? 'lease' : 'safe',
    electionTick: rng.pick([6, 10, 10, 15]),
    heartbeatTick: rng.pick([1, 1, 2]),
    maxSizePerMsg: rng.pick([1, 16, 64, 1024, 1 << 20]),
    maxInflightMsgs: rng.pick([1, 2, 4, 16, 256]),
    maxInflightBytes: rng.pick([0, 0, 32, 256]),
  };
}

export function runSim(opts: SimOptions): SimResult {
  return new Sim(opts).run();
}

class Sim {
  private readonly rng: Rng;
  private readonly profile: FaultProfile;
  private readonly knobs: RaftKnobs;
  private readonly opts: SimOptions;
  private readonly nodes = new Map<NodeId, SimNode>();
  private net = new Map<number, InFlight[]>();
  private readonly blocked = new Set<string>();
  private readonly scheduled: Array<{ at: number; run: () => void }> = [];
  private now = 0;
  private nextNodeId = 0;
  private proposalSeq = 0;
  private readSeq = 0;
  private trace: string[] = [];
  private readonly stats: SimStats = {
    units: 0,
    elections: 0,
    maxTerm: 0,
    proposed: 0,
    acked: 0,
    reads: 0,
    crashes: 0,
    snapshotsSent: 0,
    confChanges: 0,
    hints: 0,
    durableHints: 0,
    transfers: 0,
    messages: 0,
  };
  private faultsOn = true;
  private readonly hintRng: Rng | null;
  private readonly durableRng: Rng | null;

  // ---- global truth the invariants are checked against
  private readonly leaderOfTerm = new Map<number, NodeId>();
  /** Term of the committed entry at each index (from persisted commits). */
  private readonly canonTerm: number[] = [];
  /** Hash of the applied state machine after applying each index. */
  private readonly canonHash: number[] = [];
  /** Per (index, term): the entry's content and its predecessor's term (log matching). */
  private readonly seenEntries = new Map<string, string>();
  private readonly pending = new Map<string, Pending>();
  private readonly acked: Array<{ index: number; term: number; value: string }> = [];
  private maxAckedIndex = 0;
  private readonly pendingReads = new Map<string, { minIndex: number }>();
  private readonly joiners: Array<{ id: NodeId; index: number; term: number }> = [];
  private sentinel: { node: NodeId; inc: number; index: number; term: number } | null = null;
  private sentinelAcked = false;

  constructor(opts: SimOptions) {
    this.opts = opts;
    this.rng = new Rng(opts.seed);
    this.hintRng = opts.commitHints ? new Rng((opts.seed ^ 0x5bd1e995) >>> 0) : null;
    this.durableRng = opts.durableHints ? new Rng((opts.seed ^ 0x27d4eb2f) >>> 0) : null;
    const profileRng = this.rng.fork();
    this.profile = { ...drawProfile(profileRng), ...opts.profile };
    this.knobs = { ...DEFAULT_KNOBS, ...drawKnobs(profileRng), ...opts.knobs };
    if (this.knobs.readOnly === 'lease' && !this.knobs.checkQuorum) this.knobs.readOnly = 'safe';
    const ids = Array.from({ length: opts.nodes }, () => this.freshId());
    for (const id of ids) this.startNode(id, new MemoryStorage(ids), { voters: [...ids], learners: [] });
  }

  run(): SimResult {
    const res = (ok: boolean, violation?: string): SimResult => ({
      seed: this.opts.seed,
      ok,
      violation,
      at: ok ? undefined : this.now,
      stats: { ...this.stats, units: this.now },
      profile: this.profile,
      knobs: this.knobs,
      trace: this.trace,
    });
    try {
      const faultUnits = this.opts.faultTicks * TICK;
      while (this.now < faultUnits) this.step();
      this.heal();
      // Liveness, in two stages: a leader commits a fresh proposal within the bound; then every
      // member catches up (the time that takes depends on the backlog and the flow-control knobs).
      const ticks = this.opts.livenessTicks ?? 300;
      // Entries proposed during the faults must replicate first; with the tightest flow-control
      // knobs (one entry per message, one message in flight) that costs a round trip (2 units) each.
      const bound = this.now + ticks * TICK + 3 * this.backlog();
      while (!this.sentinelAcked) {
        if (this.now >= bound)
          throw new Violation(
            `liveness: no leader committed a new proposal within ${ticks} ticks after healing (${this.describe()})`,
          );
        this.step();
      }
      const catchUp = this.now + 10 * ticks * TICK;
      while (!this.converged()) {
        if (this.now >= catchUp)
          throw new Violation(
            `liveness: members did not catch up within ${10 * ticks} ticks after healing (${this.describe()})`,
          );
        this.step();
      }
      this.finalChecks();
      return res(true);
    } catch (e) {
      if (e instanceof Violation) return res(false, e.message);
      const err = e as Error;
      return res(false, `exception: ${err.stack ?? String(err)}`);
    }
  }

  // ------------------------------------------------------------------ nodes

  private freshId(): NodeId {
    return `n${++this.nextNodeId}`;
  }

  private config(n: SimNode): RaftConfig {
    const k = this.knobs;
    return {
      id: n.id,
      storage: n.disk,
      electionTick: k.electionTick,
      heartbeatTick: k.heartbeatTick,
      random: () => n.rng.float(),
      preVote: k.preVote,
      checkQuorum: k.checkQuorum,
      readOnly: k.readOnly,
      maxSizePerMsg: k.maxSizePerMsg,
      maxInflightMsgs: k.maxInflightMsgs,
      maxInflightBytes: k.maxInflightBytes,
      applied: n.app.applied,
      bugs: this.opts.bugs,
    };
  }

  private startNode(id: NodeId, disk: MemoryStorage, membership: Membership): SimNode {
    const n: SimNode = {
      id,
      rng: this.rng.fork(),
      disk,
      app: { applied: 0, hash: 0, membership, snap: null },
      raft: null,
      incarnation: 0,
      crashAt: null,
      restartAt: null,
      retired: false,
      incomingSnap: new Map(),
      lastPersisted: disk.hardStateSnapshot(),
      lastApplied: 0,
      phase: this.rng.int(TICK),
      ledTerm: 0,
    };
    n.raft = new RaftNode(this.config(n));
    this.nodes.set(id, n);
    this.log(`start ${id} membership=${JSON.stringify(membership)}`);
    return n;
  }

  private crash(n: SimNode, why: string): void {
    if (!n.raft) return;
    n.raft = null;
    n.incarnation++;
    n.crashAt = null;
    n.incomingSnap.clear();
    this.stats.crashes++;
    this.log(`crash ${n.id} (${why})`);
    if (!n.retired)
      n.restartAt = this.faultsOn
        ? this.now + this.rng.range(1, this.profile.restartTicks) * TICK
        : this.now + TICK;
  }

  private restart(n: SimNode): void {
    n.restartAt = null;
    if (n.retired || n.raft) return;
    n.raft = new RaftNode(this.config(n));
    const bs = n.raft.basicStatus();
    n.lastApplied = Math.max(n.lastApplied, 0);
    this.log(
      `restart ${n.id} term=${bs.term} commit=${bs.commitIndex} applied=${n.app.applied} last=${bs.lastIndex}`,
    );
  }

  private retire(n: SimNode, why: string): void {
    if (n.retired) return;
    this.crash(n, why);
    n.retired = true;
    n.restartAt = null;
  }

  private live(): SimNode[] {
    const out: SimNode[] = [];
    for (const n of this.nodes.values()) if (n.raft) out.push(n);
    return out;
  }

  private leaders(): SimNode[] {
    return this.live().filter((n) => n.raft!.basicStatus().role === 'Leader');
  }

  // ------------------------------------------------------------------ main loop

  private step(): void {
    const now = this.now;
    if (now % TICK === 0) {
      this.runScheduled();
      if (this.faultsOn) this.injectFaults();
      this.clientLoad();
    }
    for (const n of this.nodes.values()) {
      if (!n.raft && n.restartAt !== null && n.restartAt <= now) this.restart(n);
    }
    for (const n of this.nodes.values()) {
      if (n.raft && (now + n.phase) % TICK === 0) n.raft.tick();
    }
    const due = this.net.get(now);
    if (due) {
      this.net.delete(now);
      // Messages due in the same unit arrive in any order, until the network heals.
      if (this.faultsOn) this.rng.shuffle(due);
      for (const f of due) this.deliver(f);
    }
    for (const n of this.nodes.values()) {
      if (!n.raft || !n.raft.hasReady()) continue;
      if (this.faultsOn && this.rng.chance(this.profile.persistDelay)) continue;
      this.handleReady(n);
    }
    this.checkNodes();
    this.now++;
  }

  private runScheduled(): void {
    for (let i = 0; i < this.scheduled.length;) {
      const s = this.scheduled[i]!;
      if (s.at <= this.now) {
        this.scheduled.splice(i, 1);
        s.run();
      } else i++;
    }
  }

  private handleReady(n: SimNode): void {
    const raft = n.raft!;
    const rd = raft.ready();
    const crashAt = n.crashAt;
    if (crashAt === 0) return this.crash(n, 'before persisting a Ready');
    this.persist(n, rd);
    if (this.durableRng && this.faultsOn && rd.softState.role === 'Leader') {
      const last = rd.entries[rd.entries.length - 1];
      if (last && last.term === rd.softState.term) {
        // As the node's leader does when it answers a forward once durable.
        n.raft!.announceDurable(last.index);
        this.durableHint(n.id, last);
      }
    }
    if (crashAt === 1) return this.crash(n, 'after persisting, before sending');
    for (const m of rd.messages) this.send(n, m);
    this.apply(n, rd);
    if (crashAt === 2) return this.crash(n, 'after applying, before advance');
    raft.advance(rd);
  }

  private persist(n: SimNode, rd: Ready): void {
    if (rd.snapshot) {
      const s = rd.snapshot;
      const hash = n.incomingSnap.get(s.index);
      if (hash === undefined)
        throw new Violation(`${n.id} installs snapshot ${s.index} whose data never arrived`);
      const canon = this.canonHash[s.index];
      if (canon !== undefined && canon !== hash)
        throw new Violation(
          `${n.id} installs snapshot ${s.index} with a state that differs from the applied state`,
        );
      if (s.index < n.app.applied)
        throw new Violation(`${n.id} installs snapshot ${s.index} below its applied index ${n.app.applied}`);
      n.disk.applySnapshot(s);
      n.app = { applied: s.index, hash, membership: s.membership, snap: { meta: s, hash } };
      this.recordCanonTerm(n, s.index, s.term);
      this.log(`${n.id} installs snapshot ${s.index}/${s.term}`);
    }
    if (rd.entries.length > 0) {
      const first = rd.entries[0]!.index;
      let prevTerm: number | undefined;
      try {
        prevTerm =
          first - 1 >= n.disk.firstIndex() - 1 && first - 1 <= n.disk.lastIndex()
            ? n.disk.term(first - 1)
            : undefined;
      } catch {
        prevTerm = undefined;
      }
      for (const e of rd.entries) {
        if (prevTerm !== undefined) {
          // Log matching, by induction: an (index, term) names one entry and one predecessor term.
          const key = `${e.index}:${e.term}`;
          const val = `${prevTerm}|${e.kind}|${e.data}`;
          const seen = this.seenEntries.get(key);
          if (seen === undefined) this.seenEntries.set(key, val);
          else if (seen !== val)
            throw new Violation(`log matching: entry ${key} on ${n.id} is ${val}, elsewhere ${seen}`);
        }
        prevTerm = e.term;
      }
      if (first <= n.lastPersisted.commit)
        throw new Violation(`${n.id} overwrites committed entry ${first} (commit ${n.lastPersisted.commit})`);
      n.disk.append(rd.entries);
    }
    if (rd.hardState) {
      const hs = rd.hardState;
      const prev = n.lastPersisted;
      if (hs.term < prev.term)
        throw new Violation(`${n.id} persisted term went back ${prev.term} -> ${hs.term}`);
      if (hs.commit < prev.commit)
        throw new Violation(`${n.id} persisted commit went back ${prev.commit} -> ${hs.commit}`);
      if (hs.term === prev.term && prev.vote !== null && hs.vote !== prev.vote)
        throw new Violation(`${n.id} changed its vote in term ${hs.term}`);
      n.disk.setHardState(hs);
      n.lastPersisted = { ...hs };
      if (hs.commit > n.disk.lastIndex())
        throw new Violation(`${n.id} persisted commit ${hs.commit} beyond its log ${n.disk.lastIndex()}`);
      for (let i = Math.max(prev.commit + 1, n.disk.firstIndex()); i <= hs.commit; i++)
        this.recordCanonTerm(n, i, n.disk.term(i));
    }
  }

  private recordCanonTerm(n: SimNode, index: number, term: number): void {
    const t = this.canonTerm[index];
    if (t === undefined) this.canonTerm[index] = term;
    else if (t !== term)
      throw new Violation(`committed entry ${index} has term ${term} on ${n.id} but ${t} was committed`);
  }

  private apply(n: SimNode, rd: Ready): void {
    for (const e of rd.committedEntries) {
      if (e.index <= n.app.applied) continue; // already applied before a crash
      if (e.index !== n.app.applied + 1)
        throw new Violation(`${n.id} applies ${e.index} after ${n.app.applied}`);
      const hash = mix(n.app.hash, e);
      const canon = this.canonHash[e.index];
      if (canon === undefined) this.canonHash[e.index] = hash;
      else if (canon !== hash)
        throw new Violation(
          `state machine safety: ${n.id} applied a different entry ${e.index} (${e.kind} ${e.data.slice(0, 40)})`,
        );
      n.app.applied = e.index;
      n.app.hash = hash;
      if (e.kind === 'config') this.applyConfig(n, e);
      const key = `${n.id}:${n.incarnation}:${e.index}`;
      const p = this.pending.get(key);
      if (p) {
        this.pending.delete(key);
        if (p.term === e.term && p.value === e.data) {
          this.acked.push({ index: e.index, term: e.term, value: e.data });
          this.maxAckedIndex = Math.max(this.maxAckedIndex, e.index);
          this.stats.acked++;
          if (this.hintRng && this.faultsOn) this.hint(e.index, e.term);
        }
      }
      const s = this.sentinel;
      if (s && s.node === n.id && s.inc === n.incarnation && s.index === e.index) {
        if (s.term === e.term) this.sentinelAcked = true;
        else this.sentinel = null;
      }
    }
    if (n.app.applied < n.lastApplied) throw new Violation(`${n.id} applied index went back`);
    n.lastApplied = n.app.applied;
    for (const r of rd.readStates) {
      const key = `${n.id}:${n.incarnation}:${r.requestId}`;
      const pr = this.pendingReads.get(key);
      if (!pr) throw new Violation(`${n.id} answered unknown read ${r.requestId}`);
      this.pendingReads.delete(key);
      if (r.index < pr.minIndex) {
        throw new Violation(
          `linearizability: read ${r.requestId} on ${n.id} at index ${r.index} misses a write acknowledged at ${pr.minIndex} before it was issued`,
        );
      }
      this.stats.reads++;
    }
  }

  /** An acknowledged (index, term) reaches a random member later (see SimOptions.commitHints). */
  private hint(index: number, term: number): void {
    const rng = this.hintRng!;
    const delay = rng.int(4 * TICK);
    const pick = rng.float();
    this.schedule(delay, () => {
      const live = this.live();
      if (live.length === 0) return;
      const n = live[Math.floor(pick * live.length)]!;
      if (n.raft!.learnCommitted(index, term)) {
        this.stats.hints++;
        this.log(`${n.id} learns ${index}@${term} is committed`);
      }
    });
  }

  /**
   * `leader` persisted entry e of its term: a random member hears of it later and keeps asking
   * every tick, as the node's forwarding follower does after each of its Readys until its claim
   * holds or times out (SimOptions.durableHints). When it holds, the member acknowledges e to its writer
   * at once: e joins the acknowledged writes that must never be lost.
   */
  private durableHint(leader: string, e: Entry): void {
    const rng = this.durableRng!;
    const delay = rng.int(4 * TICK);
    const pick = rng.float();
    const attempt = (left: number, id?: string) => {
      const live = this.live();
      if (live.length === 0) return;
      const n = id ? this.nodes.get(id) : live[Math.floor(pick * live.length)]!;
      if (!n?.raft || n.retired) return;
      const before = n.raft.basicStatus().commitIndex;
      if (n.raft.learnDurableOnLeader(leader, e.index, e.term)) {
        if (n.raft.basicStatus().commitIndex > before) this.stats.durableHints++;
        this.acked.push({ index: e.index, term: e.term, value: e.data });
        this.maxAckedIndex = Math.max(this.maxAckedIndex, e.index);
        this.log(`${n.id} learns ${e.index}@${e.term} is durable on ${leader}: acknowledged`);
      } else if (left > 0) this.schedule(TICK, () => attempt(left - 1, n.id));
    };
    // The node's follower keeps its claim until the write's timeout: ten election timeouts.
    this.schedule(delay, () => attempt(10 * this.knobs.electionTick));
  }

  private applyConfig(n: SimNode, e: Entry): void {
    const cc = decodeConfChange(e.data);
    n.app.membership = applyConfChange(n.app.membership, cc);
    if (cc.type === 'remove') {
      const gone = this.nodes.get(cc.nodeId);
      // A removed member shuts down, as the node would, some time after its removal committed.
      if (gone && !gone.retired)
        this.schedule(this.rng.range(0, 20) * TICK, () => this.retire(gone, 'removed from the cluster'));
    }
    for (const j of this.joiners) {
      if (j.index === e.index && j.term !== e.term) {
        const orphan = this.nodes.get(j.id);
        if (orphan) this.retire(orphan, 'its join was never committed');
      }
    }
  }

  // ------------------------------------------------------------------ network

  private send(from: SimNode, m: Message): void {
    // Flow control must bound traffic: a storm means a feedback loop (e.g. answers triggering resends).
    if (
      ++this.stats.messages >
      400 * (this.opts.faultTicks + (this.opts.livenessTicks ?? 300)) * this.nodes.size
    ) {
      throw new Violation(`message storm: ${this.stats.messages} messages`);
    }
    if (this.opts.checkSendDurability !== false) this.checkDurableBeforeSend(from, m);
    if (this.opts.traceMessages && this.now >= this.opts.traceMessages) this.log(`send ${fmt(m)}`);
    let snapHash: number | undefined;
    if (m.type === 'snapshot') {
      this.stats.snapshotsSent++;
      const snap = from.app.snap;
      if (!snap || snap.meta.index < m.snapshot.index)
        throw new Violation(`${from.id} sends snapshot ${m.snapshot.index} it does not hold`);
      if (snap.meta.index > m.snapshot.index) {
        // Superseded by a newer snapshot since the Ready was made: the stream fails, the core retries.
        from.raft!.reportSnapshot(m.to, false);
        return;
      }
      snapHash = snap.hash;
    }
    const copies = this.faultsOn && this.rng.chance(this.profile.dup) ? 2 : 1;
    for (let i = 0; i < copies; i++) {
      // Healing restores a sane network: in-order delivery after one unit.
      let delay = this.faultsOn ? 1 + this.rng.int(this.profile.maxDelay) : 1;
      if (m.type === 'snapshot') delay += this.rng.int(3 * TICK); // streamed: slower than a message
      const at = this.now + delay;
      const f: InFlight = { at, m, fromInc: from.incarnation, snapHash };
      const q = this.net.get(at);
      if (q) q.push(f);
      else this.net.set(at, [f]);
    }
  }

  private checkDurableBeforeSend(n: SimNode, m: Message): void {
    const hs = n.lastPersisted;
    const isPre = (m.type === 'vote' || m.type === 'voteResponse') && m.preVote;
    if (!isPre && m.term > hs.term)
      throw new Violation(
        `durability: ${n.id} sends ${m.type} at term ${m.term} before persisting it (persisted ${hs.term})`,
      );
    // A message of an older term than the persisted one is stale but harmless: that term is over.
    if (m.type === 'voteResponse' && m.voteGranted && !m.preVote && m.term === hs.term && hs.vote !== m.to) {
      throw new Violation(
        `durability: ${n.id} grants its vote to ${m.to} in term ${m.term} before persisting it`,
      );
    }
    if (m.type === 'vote' && !m.preVote && m.term === hs.term && hs.vote !== n.id) {
      throw new Violation(
        `durability: ${n.id} asks for votes in term ${m.term} before persisting its own vote`,
      );
    }
    // (An answer of an older term may overstate: a newer leader truncated the entries after it was
    // made. That is safe: no node can ack entries and then vote for a candidate lacking them.)
    if (m.type === 'appendResponse' && m.success && m.term === hs.term && m.matchIndex > n.disk.lastIndex()) {
      throw new Violation(
        `durability: ${n.id} acknowledges index ${m.matchIndex} but persisted only up to ${n.disk.lastIndex()}`,
      );
    }
  }

  private deliver(f: InFlight): void {
    const m = f.m;
    const to = this.nodes.get(m.to);
    const from = this.nodes.get(m.from);
    const reachable =
      to !== undefined &&
      to.raft !== null &&
      !this.blocked.has(`${m.from}>${m.to}`) &&
      !(this.faultsOn && this.rng.chance(this.profile.drop));
    if (m.type === 'snapshot') {
      const senderUp = from !== undefined && from.raft !== null && from.incarnation === f.fromInc;
      if (!reachable) {
        if (senderUp) from.raft!.reportSnapshot(m.to, false);
        return;
      }
      to.incomingSnap.set(m.snapshot.index, f.snapHash!);
      this.stepNode(to, m);
      if (senderUp) from.raft!.reportSnapshot(m.to, true);
      return;
    }
    if (!reachable) return;
    this.stepNode(to, m);
  }

  private stepNode(n: SimNode, m: Message): void {
    n.raft!.step(m);
  }

  // ------------------------------------------------------------------ faults and load

  private schedule(delay: number, run: () => void): void {
    this.scheduled.push({ at: this.now + delay, run });
  }

  private injectFaults(): void {
    const p = this.profile;
    const rng = this.rng;
    if (rng.chance(p.partition)) this.partition();
    if (rng.chance(p.crash)) {
      const live = this.live();
      if (live.length > 0) {
        const n = rng.pick(live);
        const mode = rng.int(4);
        if (mode === 3) this.crash(n, 'between steps');
        else n.crashAt = mode;
      }
    }
    if (rng.chance(p.confChange)) this.confChange();
    if (rng.chance(p.transfer)) {
      const ls = this.leaders();
      if (ls.length > 0) {
        const l = rng.pick(ls);
        const voters = l.raft!.status().membership.voters;
        const to = rng.pick(voters);
        const r = l.raft!.transferLeadership(to);
        if (r.ok) this.stats.transfers++;
        this.log(`transfer ${l.id} -> ${to}: ${JSON.stringify(r)}`);
      }
    }
    if (rng.chance(p.compact)) {
      const live = this.live();
      if (live.length > 0) this.compact(rng.pick(live));
    }
  }

  private partition(): void {
    const rng = this.rng;
    const ids = [...this.nodes.keys()];
    const kind = rng.int(5);
    if (kind === 0) {
      // symmetric split into two sides
      const side = new Set(ids.filter(() => rng.chance(0.5)));
      for (const a of ids)
        for (const b of ids) if (side.has(a) !== side.has(b)) this.blocked.add(`${a}>${b}`);
      this.log(`partition: split ${[...side].join(',')} | rest`);
    } else if (kind === 1) {
      // asymmetric: some one-way links
      const k = rng.range(1, ids.length);
      for (let i = 0; i < k; i++) {
        const a = rng.pick(ids);
        const b = rng.pick(ids);
        if (a !== b) this.blocked.add(`${a}>${b}`);
      }
      this.log(`partition: ${k} one-way cuts`);
    } else if (kind === 2) {
      // isolate a leader, in one or both directions
      const ls = this.leaders();
      const victim = ls.length > 0 ? rng.pick(ls).id : rng.pick(ids);
      const mode = rng.int(3);
      for (const o of ids) {
        if (o === victim) continue;
        if (mode !== 1) this.blocked.add(`${victim}>${o}`);
        if (mode !== 2) this.blocked.add(`${o}>${victim}`);
      }
      this.log(`partition: isolate ${victim} mode ${mode}`);
    } else if (kind === 3) {
      // cut links one by one in random order, then heal them one by one in another order
      const links: string[] = [];
      for (const a of ids) for (const b of ids) if (a !== b) links.push(`${a}>${b}`);
      rng.shuffle(links);
      const cut = links.slice(0, rng.range(1, links.length));
      let t = 0;
      for (const l of cut) {
        t += rng.range(0, 3) * TICK;
        this.schedule(t, () => this.blocked.add(l));
      }
      const healOrder = rng.shuffle(cut.slice());
      t += rng.range(5, 40) * TICK;
      for (const l of healOrder) {
        t += rng.range(0, 3) * TICK;
        this.schedule(t, () => this.blocked.delete(l));
      }
      this.log(`partition: rolling cut of ${cut.length} links`);
      return;
    } else {
      this.blocked.clear();
      this.log('heal all links');
      return;
    }
    const dur = rng.range(5, 60) * TICK;
    const snapshot = new Set(this.blocked);
    this.schedule(dur, () => {
      for (const l of snapshot) this.blocked.delete(l);
    });
  }

  private confChange(): void {
    const ls = this.leaders();
    if (ls.length === 0) return;
    const l = this.rng.pick(ls);
    const raft = l.raft!;
    const m = raft.status().membership;
    const members = [...m.voters, ...m.learners];
    const maxNodes = this.opts.maxNodes ?? 7;
    const kind = this.rng.int(4);
    let cc: ConfChange | null = null;
    let joiner: NodeId | null = null;
    if ((kind === 0 || kind === 1) && members.length < maxNodes) {
      joiner = this.freshId();
      cc = { type: kind === 0 ? 'addLearner' : 'addVoter', nodeId: joiner, context: `sim://${joiner}` };
    } else if (kind === 2 && m.learners.length > 0) {
      cc = { type: 'promote', nodeId: this.rng.pick(m.learners) };
    } else if (kind === 3 && members.length > 1) {
      cc = { type: 'remove', nodeId: this.rng.pick(members) };
    }
    if (!cc) return;
    const r = raft.proposeConfChange(cc);
    this.log(`conf change on ${l.id}: ${JSON.stringify(cc)} -> ${JSON.stringify(r)}`);
    if (!r.ok) return;
    this.stats.confChanges++;
    if (joiner) {
      // The joiner starts from the membership the leader reports, itself as a learner until the
      // log tells it otherwise (as the node's join handshake does).
      const after = raft.status().membership;
      const base: Membership = {
        voters: after.voters.filter((v) => v !== joiner),
        learners: [...after.learners.filter((v) => v !== joiner), joiner],
      };
      this.startNode(joiner, new MemoryStorage(base.voters, base.learners), base);
      this.joiners.push({ id: joiner, index: r.index, term: r.term });
    }
  }

  private compact(n: SimNode): void {
    const applied = n.app.applied;
    const snapIndex = n.app.snap?.meta.index ?? 0;
    if (applied <= snapIndex || applied > n.disk.lastIndex()) return;
    const meta = n.disk.createSnapshot(applied, n.app.membership);
    n.app.snap = { meta, hash: n.app.hash };
    const keep = this.rng.pick([0, 0, 5, 50]);
    n.disk.compact(Math.max(n.disk.firstIndex() - 1, applied - keep));
    this.log(`${n.id} snapshot at ${applied}, log from ${n.disk.firstIndex()}`);
  }

  private clientLoad(): void {
    const rng = this.rng;
    const p = this.faultsOn ? this.profile.propose : 0;
    let k = Math.floor(p) + (rng.chance(p - Math.floor(p)) ? 1 : 0);
    const ls = this.leaders();
    while (k-- > 0) {
      const live = this.live();
      if (live.length === 0) break;
      const n = ls.length > 0 && rng.chance(0.9) ? rng.pick(ls) : rng.pick(live);
      const burst = rng.chance(0.2) ? rng.range(2, 8) : 1;
      for (let i = 0; i < burst; i++) {
        const value = `v${++this.proposalSeq}`;
        const r = n.raft!.propose(value);
        this.stats.proposed++;
        if (r.ok)
          this.pending.set(`${n.id}:${n.incarnation}:${r.index}`, { value, index: r.index, term: r.term });
      }
    }
    if (this.faultsOn && ls.length > 0 && rng.chance(this.profile.read)) {
      const n = rng.pick(ls);
      const id = `r${++this.readSeq}`;
      const r = n.raft!.readIndex(id);
      if (r.ok) this.pendingReads.set(`${n.id}:${n.incarnation}:${id}`, { minIndex: this.maxAckedIndex });
    }
    if (!this.faultsOn && !this.sentinelAcked && this.sentinel === null && ls.length > 0) {
      const n = ls[0]!;
      const r = n.raft!.propose('sentinel');
      if (r.ok) this.sentinel = { node: n.id, inc: n.incarnation, index: r.index, term: r.term };
    }
    if (this.sentinel) {
      const s = this.sentinel;
      const n = this.nodes.get(s.node)!;
      if (!n.raft || n.incarnation !== s.inc || n.raft.basicStatus().term !== s.term) {
        if (!this.sentinelAcked) this.sentinel = null;
      }
    }
  }

  private heal(): void {
    this.faultsOn = false;
    this.blocked.clear();
    this.scheduled.length = 0;
    for (const n of this.nodes.values()) {
      n.crashAt = null;
      if (!n.raft && !n.retired) n.restartAt = this.now;
    }
    this.log('--- healed: no more faults ---');
  }

  // ------------------------------------------------------------------ invariants

  private checkNodes(): void {
    for (const n of this.nodes.values()) {
      const raft = n.raft;
      if (!raft) continue;
      const bs = raft.basicStatus();
      if (bs.term > this.stats.maxTerm) this.stats.maxTerm = bs.term;
      if (bs.term < n.lastPersisted.term)
        throw new Violation(`${n.id} term ${bs.term} below its persisted term ${n.lastPersisted.term}`);
      if (bs.commitIndex < n.lastPersisted.commit)
        throw new Violation(`${n.id} commit ${bs.commitIndex} below its persisted commit`);
      if (bs.commitIndex > bs.lastIndex)
        throw new Violation(`${n.id} commit ${bs.commitIndex} beyond its last index ${bs.lastIndex}`);
      if (bs.role === 'Leader' && n.ledTerm !== bs.term) {
        const other = this.leaderOfTerm.get(bs.term);
        if (other !== undefined && other !== n.id)
          throw new Violation(`election safety: ${other} and ${n.id} both lead term ${bs.term}`);
        this.leaderOfTerm.set(bs.term, n.id);
        n.ledTerm = bs.term;
        this.stats.elections++;
        this.log(`${n.id} leads term ${bs.term} (last ${bs.lastIndex}, commit ${bs.commitIndex})`);
        this.checkLeaderCompleteness(n);
      }
    }
  }

  private checkLeaderCompleteness(n: SimNode): void {
    const view = n.raft!.logView();
    for (let i = view.firstIndex; i < this.canonTerm.length; i++) {
      const t = this.canonTerm[i];
      if (t === undefined) continue;
      const have = view.term(i);
      if (have !== t) {
        throw new Violation(
          `leader completeness: ${n.id} leads term ${n.raft!.basicStatus().term} without committed entry ${i}/${t} (has ${have ?? 'nothing'})`,
        );
      }
    }
  }

  private converged(): boolean {
    if (!this.sentinelAcked) return false;
    const ls = this.leaders();
    if (ls.length !== 1) return false;
    const l = ls[0]!;
    const st = l.raft!.status();
    if (st.commitIndex !== st.lastIndex) return false;
    for (const id of [...st.membership.voters, ...st.membership.learners]) {
      const n = this.nodes.get(id);
      if (!n || n.retired) continue;
      if (!n.raft || n.app.applied < st.lastIndex) return false;
    }
    return true;
  }

  private finalChecks(): void {
    for (const a of this.acked) {
      const t = this.canonTerm[a.index];
      if (t !== undefined && t !== a.term)
        throw new Violation(`acknowledged write ${a.value} at ${a.index} lost`);
    }
    const l = this.leaders()[0]!;
    const st = l.raft!.status();
    if (st.commitIndex < this.maxAckedIndex)
      throw new Violation(`acknowledged writes up to ${this.maxAckedIndex} but commit is ${st.commitIndex}`);
  }

  private backlog(): number {
    let last = 0;
    let commit = Infinity;
    for (const n of this.nodes.values()) {
      if (n.retired) continue;
      last = Math.max(last, n.disk.lastIndex());
      commit = Math.min(commit, n.lastPersisted.commit);
    }
    return commit === Infinity ? 0 : Math.max(0, last - commit);
  }

  private describe(): string {
    return this.live()
      .map((n) => {
        const b = n.raft!.basicStatus();
        return `${n.id}:${b.role[0]}${b.term} c${b.commitIndex} a${n.app.applied} l${b.lastIndex}`;
      })
      .join(' ');
  }

  private log(line: string): void {
    if (this.opts.trace) this.trace.push(`[${this.now}] ${line}`);
  }
}

/** A 32-bit chained hash of the applied sequence (FNV-1a over index, kind and data). */
function mix(h: number, e: Entry): number {
  let x = (h ^ 0x811c9dc5) >>> 0;
  const s = `${e.index}|${e.kind}|${e.data}`;
  for (let i = 0; i < s.length; i++) {
    x ^= s.charCodeAt(i);
    x = Math.imul(x, 0x01000193) >>> 0;
  }
  return x;
}

function fmt(m: Message): string {
  switch (m.type) {
    case 'append':
      return `${m.from}->${m.to} app t${m.term} prev=${m.prevLogIndex}/${m.prevLogTerm} n=${m.entries.length} commit=${m.leaderCommit} ctx=${m.readCtx}`;
    case 'appendResponse':
      return `${m.from}->${m.to} appResp t${m.term} ${m.success ? 'ok' : 'REJ'} match=${m.matchIndex} hint=${m.conflictIndex}/${m.conflictTerm} ctx=${m.readCtx}`;
    case 'vote':
      return `${m.from}->${m.to} ${m.preVote ? 'prevote' : 'vote'} t${m.term} last=${m.lastLogIndex}/${m.lastLogTerm}${m.transfer ? ' transfer' : ''}`;
    case 'voteResponse':
      return `${m.from}->${m.to} ${m.preVote ? 'prevoteResp' : 'voteResp'} t${m.term} ${m.voteGranted ? 'granted' : 'rejected'}`;
    case 'snapshot':
      return `${m.from}->${m.to} snapshot t${m.term} at ${m.snapshot.index}/${m.snapshot.term}`;
    case 'timeoutNow':
      return `${m.from}->${m.to} timeoutNow t${m.term}`;
  }
}
