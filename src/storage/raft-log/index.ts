// raft.db: the Raft log, hard state and snapshot metadata of one node, in its own SQLite file (WAL,
// synchronous=FULL), apart from data.db so the log and the data never contend for one lock.
//
// Implements the core's synchronous `Storage` view, plus `persist(ready)`, which writes a Ready's
// snapshot metadata, entries (replacing a conflicting suffix) and hard state in ONE transaction:
// one commit = one fsync for everything in the batch (group commit).
import Database from 'better-sqlite3';
import {
  CompactedError,
  type ConfChange,
  type Entry,
  type HardState,
  type Membership,
  type NodeId,
  type SnapshotMeta,
  type Storage,
} from '../../raft/types.js';

export interface PersistBatch {
  snapshot?: SnapshotMeta | null;
  entries?: Entry[];
  hardState?: HardState | null;
}

export interface MembershipView {
  membership: Membership;
  contexts: Record<NodeId, string>;
}

const EMPTY_SNAPSHOT: SnapshotMeta = {
  index: 0,
  term: 0,
  membership: { voters: [], learners: [] },
  contexts: {},
};

/** Apply one ConfChange to a membership (pure; returns new objects). */
export function applyConfChange(view: MembershipView, cc: ConfChange): MembershipView {
  const voters = view.membership.voters.filter((v) => v !== cc.nodeId);
  const learners = view.membership.learners.filter((v) => v !== cc.nodeId);
  const contexts = { ...view.contexts };
  switch (cc.type) {
    case 'addLearner':
      // Same semantics as the core (src/raft/confchange.ts): addLearner of a voter leaves it a voter.
      if (view.membership.voters.includes(cc.nodeId)) voters.push(cc.nodeId);
      else learners.push(cc.nodeId);
      break;
    case 'promote':
      if (view.membership.voters.includes(cc.nodeId) || view.membership.learners.includes(cc.nodeId))
        voters.push(cc.nodeId);
      else return view;
      break;
    case 'addVoter':
      voters.push(cc.nodeId);
      break;
    case 'remove':
      break;
  }
  voters.sort();
  learners.sort();
  if (cc.type === 'remove') delete contexts[cc.nodeId];
  else if (cc.context) contexts[cc.nodeId] = cc.context;
  return { membership: { voters, learners }, contexts };
}

/** Parse a config entry's data; null when it is not a ConfChange. */
export function parseConfChange(data: string): ConfChange | null {
  try {
    const cc = JSON.parse(data) as ConfChange;
    if (cc && typeof cc === 'object' && typeof cc.nodeId === 'string' && typeof cc.type === 'string')
      return cc;
  } catch {
    // fall through
  }
  return null;
}

function dataBytes(e: Entry): number {
  return e.data.length + 16;
}

export interface RaftLogOptions {
  /** Test-only crash/stall point (src/node/failpoints.ts arms it); absent in production. */
  failpoint?: (name: 'compact.mid-transaction') => void;
}

export class RaftLogStore implements Storage {
  private readonly db: Database.Database;
  private hard: HardState = { term: 0, vote: null, commit: 0 };
  private snap: SnapshotMeta = EMPTY_SNAPSHOT;
  /** Index/term of the last entry removed from the log (the log starts at compactIndex + 1). */
  private compactIndex = 0;
  private compactTerm = 0;
  private last = 0;
  /** Small in-memory tail of the log: the leader and followers read recent entries constantly. */
  private tail: Entry[] = [];
  private static readonly TAIL_MAX = 4096;

  private readonly stmts: {
    getMeta: Database.Statement;
    putMeta: Database.Statement;
    insert: Database.Statement;
    deleteFrom: Database.Statement;
    deleteUpTo: Database.Statement;
    range: Database.Statement;
    termOf: Database.Statement;
    maxIdx: Database.Statement;
    configs: Database.Statement;
    count: Database.Statement;
  };

  constructor(
    readonly path: string,
    private readonly opts: RaftLogOptions = {},
  ) {
    this.db = new Database(path);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = FULL');
    this.db.pragma('busy_timeout = 5000');
    this.db.exec(`
      CREATE TABLE IF NOT EXISTS entries (
        idx INTEGER PRIMARY KEY,
        term INTEGER NOT NULL,
        kind TEXT NOT NULL,
        data TEXT NOT NULL
      );
      CREATE INDEX IF NOT EXISTS entries_config ON entries(idx) WHERE kind = 'config';
      CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    `);
    this.stmts = {
      getMeta: this.db.prepare('SELECT value FROM meta WHERE key = ?'),
      putMeta: this.db.prepare(
        'INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value',
      ),
      insert: this.db.prepare('INSERT INTO entries(idx, term, kind, data) VALUES (?, ?, ?, ?)'),
      deleteFrom: this.db.prepare('DELETE FROM entries WHERE idx >= ?'),
      deleteUpTo: this.db.prepare('DELETE FROM entries WHERE idx <= ?'),
      range: this.db.prepare(
        'SELECT idx, term, kind, data FROM entries WHERE idx >= ? AND idx < ? ORDER BY idx',
      ),
      termOf: this.db.prepare('SELECT term FROM entries WHERE idx = ?'),
      maxIdx: this.db.prepare('SELECT MAX(idx) AS m FROM entries'),
      configs: this.db.prepare(
        "SELECT idx, data FROM entries WHERE kind = 'config' AND idx > ? AND idx <= ? ORDER BY idx",
      ),
      count: this.db.prepare('SELECT COUNT(*) AS c FROM entries'),
    };
    const hs = this.getMeta<HardState>('hardState');
    if (hs) this.hard = hs;
    const sm = this.getMeta<SnapshotMeta>('snapshot');
    if (sm) this.snap = sm;
    const ci = this.getMeta<{ index: number; term: number }>('compacted');
    if (ci) {
      this.compactIndex = ci.index;
      this.compactTerm = ci.term;
    }
    const m = (this.stmts.maxIdx.get() as { m: number | null }).m;
    this.last = m ?? this.compactIndex;
  }

  private getMeta<T>(key: string): T | undefined {
    const row = this.stmts.getMeta.get(key) as { value: string } | undefined;
    return row ? (JSON.parse(row.value) as T) : undefined;
  }

  private putMeta(key: string, value: unknown): void {
    this.stmts.putMeta.run(key, JSON.stringify(value));
  }

  /** True when nothing was ever persisted (a brand-new node). */
  isEmpty(): boolean {
    return (
      this.last === 0 &&
      this.hard.term === 0 &&
      this.snap.index === 0 &&
      this.getMeta('bootstrapped') === undefined
    );
  }

  /**
   * Bootstrap a brand-new cluster (etcd style): the initial voters as `addVoter` config entries at
   * indexes 1..n of term 1, committed. Every founding member writes the identical entries, so a node
   * that joins later learns the founding membership from the log like any other change.
   */
  bootstrap(voters: Array<{ id: NodeId; url: string }>): void {
    if (!this.isEmpty()) throw new Error('raft.db is not empty: refusing to bootstrap over existing state');
    const entries: Entry[] = voters.map((v, i) => ({
      index: i + 1,
      term: 1,
      kind: 'config',
      data: JSON.stringify({ type: 'addVoter', nodeId: v.id, context: v.url } satisfies ConfChange),
    }));
    this.db.transaction(() => {
      this.writeEntries(entries);
      this.putMeta('hardState', { term: 1, vote: null, commit: entries.length });
      this.putMeta('bootstrapped', true);
    })();
    this.hard = { term: 1, vote: null, commit: entries.length };
  }

  /** Mark a joining node as initialised (empty membership, waits for the leader). */
  markJoining(): void {
    this.db.transaction(() => this.putMeta('bootstrapped', 'join'))();
  }

  // ---------------------------------------------------------------- Storage
  initialState(): { hardState: HardState; membership: Membership } {
    return { hardState: { ...this.hard }, membership: this.membershipAt(this.last).membership };
  }

  hardState(): HardState {
    return { ...this.hard };
  }

  entries(lo: number, hi: number, maxBytes?: number): Entry[] {
    if (lo <= this.compactIndex) throw new CompactedError(lo);
    hi = Math.min(hi, this.last + 1);
    if (lo >= hi) return [];
    const out: Entry[] = [];
    let bytes = 0;
    const tailStart = this.tail.length > 0 ? this.tail[0]!.index : Infinity;
    if (lo >= tailStart) {
      for (let i = lo - tailStart; i < this.tail.length && this.tail[i]!.index < hi; i++) {
        const e = this.tail[i]!;
        bytes += dataBytes(e);
        if (out.length > 0 && maxBytes !== undefined && bytes > maxBytes) break;
        out.push(e);
      }
      return out;
    }
    for (const row of this.stmts.range.iterate(lo, hi) as Iterable<{
      idx: number;
      term: number;
      kind: Entry['kind'];
      data: string;
    }>) {
      const e: Entry = { index: row.idx, term: row.term, kind: row.kind, data: row.data };
      bytes += dataBytes(e);
      if (out.length > 0 && maxBytes !== undefined && bytes > maxBytes) break;
      out.push(e);
    }
    return out;
  }

  term(index: number): number {
    if (index === this.compactIndex) return this.compactTerm;
    if (index === this.snap.index) return this.snap.term;
    if (index < this.compactIndex) throw new CompactedError(index);
    if (index === 0) return 0;
    if (index > this.last) throw new Error(`term(${index}): beyond the last index ${this.last}`);
    const tailStart = this.tail.length > 0 ? this.tail[0]!.index : Infinity;
    if (index >= tailStart) return this.tail[index - tailStart]!.term;
    const row = this.stmts.termOf.get(index) as { term: number } | undefined;
    if (!row) throw new CompactedError(index);
    return row.term;
  }

  firstIndex(): number {
    return this.compactIndex + 1;
  }

  lastIndex(): number {
    return this.last;
  }

  snapshotMeta(): SnapshotMeta {
    return this.snap;
  }

  // ---------------------------------------------------------------- writes
  private writeEntries(entries: Entry[]): void {
    if (entries.length === 0) return;
    const first = entries[0]!.index;
    if (first > this.last + 1)
      throw new Error(`raft log gap: appending ${first} after last index ${this.last}`);
    if (first <= this.compactIndex)
      throw new Error(`appending ${first} at or below the compacted index ${this.compactIndex}`);
    if (first <= this.last) {
      this.stmts.deleteFrom.run(first);
      const tailStart = this.tail.length > 0 ? this.tail[0]!.index : Infinity;
      if (first >= tailStart) this.tail.length = first - tailStart;
      else this.tail = [];
    }
    for (const e of entries) this.stmts.insert.run(e.index, e.term, e.kind, e.data);
    this.last = entries[entries.length - 1]!.index;
    if (this.tail.length === 0 || this.tail[this.tail.length - 1]!.index + 1 === first) {
      for (const e of entries) this.tail.push({ index: e.index, term: e.term, kind: e.kind, data: e.data });
    } else {
      this.tail = entries.map((e) => ({ ...e }));
    }
    if (this.tail.length > RaftLogStore.TAIL_MAX)
      this.tail.splice(0, this.tail.length - RaftLogStore.TAIL_MAX / 2);
  }

  /**
   * Persist a Ready's durable parts in one transaction (one fsync): snapshot metadata (the log
   * before it is dropped, or all of it when it conflicts), then entries (replacing the conflicting
   * suffix), then the hard state.
   */
  persist(batch: PersistBatch): void {
    const { snapshot, entries, hardState } = batch;
    if (!snapshot && (!entries || entries.length === 0) && !hardState) return;
    // Only the commit index changed (a follower learning it, a leader advancing it): that needs no
    // fsync (etcd's MustSync rule). After a crash the commit index may come back lower; it is
    // learned again from the leader, and the core clamps the applied index to it (re-applying is
    // harmless: applyBatch skips indexes at or below data.db's applied index). The next durable
    // transaction's fsync covers this write as well.
    const commitOnly =
      !snapshot &&
      (!entries || entries.length === 0) &&
      hardState !== null &&
      hardState !== undefined &&
      hardState.term === this.hard.term &&
      hardState.vote === this.hard.vote;
    if (commitOnly) this.db.pragma('synchronous = OFF');
    try {
      this.persistTx(snapshot, entries, hardState);
    } finally {
      if (commitOnly) this.db.pragma('synchronous = FULL');
    }
  }

  private persistTx(
    snapshot: SnapshotMeta | null | undefined,
    entries: Entry[] | undefined,
    hardState: HardState | null | undefined,
  ): void {
    this.db.transaction(() => {
      if (snapshot && snapshot.index > this.snap.index) {
        let keepLog = false;
        if (snapshot.index <= this.last && snapshot.index > this.compactIndex) {
          try {
            keepLog = this.term(snapshot.index) === snapshot.term;
          } catch {
            keepLog = false;
          }
        }
        if (keepLog) this.stmts.deleteUpTo.run(snapshot.index);
        else this.stmts.deleteUpTo.run(Number.MAX_SAFE_INTEGER);
        this.putMeta('snapshot', snapshot);
        this.putMeta('compacted', { index: snapshot.index, term: snapshot.term });
        this.snap = snapshot;
        this.compactIndex = snapshot.index;
        this.compactTerm = snapshot.term;
        if (!keepLog) {
          this.last = snapshot.index;
          this.tail = [];
        } else {
          this.tail = this.tail.filter((e) => e.index > snapshot.index);
        }
      }
      if (entries && entries.length > 0) this.writeEntries(entries);
      if (hardState) {
        this.putMeta('hardState', hardState);
        this.hard = { ...hardState };
      }
    })();
  }

  /**
   * Record a new local snapshot (of data.db at meta.index) and drop log entries up to
   * `compactTo` (≤ meta.index; keeping a few entries below the snapshot lets slightly lagging
   * followers catch up from the log instead of a snapshot).
   */
  compact(meta: SnapshotMeta, compactTo = meta.index): void {
    compactTo = Math.min(compactTo, meta.index, this.last);
    this.db.transaction(() => {
      if (meta.index > this.snap.index) {
        this.putMeta('snapshot', meta);
        this.snap = meta;
      }
      if (compactTo > this.compactIndex) {
        const t = this.term(compactTo);
        this.stmts.deleteUpTo.run(compactTo);
        this.opts.failpoint?.('compact.mid-transaction');
        this.putMeta('compacted', { index: compactTo, term: t });
        this.compactIndex = compactTo;
        this.compactTerm = t;
        this.tail = this.tail.filter((e) => e.index > compactTo);
      }
    })();
  }

  /** Membership and member URLs in force after the entry at `index` (≥ the snapshot index). */
  membershipAt(index: number): MembershipView {
    let view: MembershipView = {
      membership: { voters: [...this.snap.membership.voters], learners: [...this.snap.membership.learners] },
      contexts: { ...this.snap.contexts },
    };
    const from = Math.max(this.snap.index, this.compactIndex);
    for (const row of this.stmts.configs.iterate(from, index) as Iterable<{ idx: number; data: string }>) {
      const cc = parseConfChange(row.data);
      if (cc) view = applyConfChange(view, cc);
    }
    return view;
  }

  /** Entries in the log (for compaction thresholds). */
  entryCount(): number {
    return this.last - this.compactIndex;
  }

  close(): void {
    this.db.close();
  }
}

export function openRaftLog(path: string, opts?: RaftLogOptions): RaftLogStore {
  return new RaftLogStore(path, opts);
}
