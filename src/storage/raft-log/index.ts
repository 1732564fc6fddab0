// raft.db: the Raft log, hard state and snapshot metadata of one node, in its own SQLite file (WAL),
// apart from data.db so the log and the data never contend for one lock.
//
// Implements the core's synchronous `Storage` view, plus `persist(ready)`, which writes a Ready's
// snapshot metadata, entries (replacing a conflicting suffix) and hard state in ONE transaction:
// one commit = one fsync for everything in the batch (group commit). The fsync is this store's own
// (of the WAL file; SQLite runs with synchronous=NORMAL): synchronous in persist() and every other
// write, or split off (persistUnsynced() + sync()) so the Raft loop can run it on the thread pool.
//
// Integrity (src/storage/DESIGN.md): every entry row and every meta row carries a CRC-32 of its
// content, written in the same statement. Opening verifies the whole file (quick_check, every
// checksum, the log's contiguity); every entry read back from SQLite is verified again. Damage
// raises RaftLogCorruptError: the node stops rather than serve or vote with a damaged log.
import Database from 'better-sqlite3';
import { closeSync, fdatasync, fdatasyncSync, openSync } from 'node:fs';
import { entryChecksum, metaChecksum } from '../integrity/checksum.js';
import { isSqliteCorruption, RaftLogCorruptError, type RaftLogDamage } from '../integrity/errors.js';
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

/**
 * raft.db layout versions (PRAGMA user_version). 0: the first format, no checksums. 1: a `crc`
 * column on entries and meta. Opening a version-0 file migrates it in one transaction.
 */
export const RAFT_LOG_FORMAT = 1;

/** What the operator does about a damaged raft.db when the store is used without a node around it. */
const GENERIC_REMEDY =
  'Replace this member: remove it from the cluster, move its data directory aside, and start it again with --join (see docs/RELIABILITY.md, "Corruption").';

/** Findings are capped so that a file full of damage still gives a readable message. */
const MAX_PROBLEMS = 5;

interface EntryRow {
  idx: number;
  term: number;
  kind: Entry['kind'];
  data: string;
  crc: number | null;
}

export interface RaftLogOptions {
  /**
   * 'full' (default): quick_check and every checksum on open. 'none': only what is read is verified
   * (for tools that must open a damaged file to inspect it).
   */
  verify?: 'full' | 'none';
  /** What to tell the operator in a RaftLogCorruptError (the node passes one naming itself). */
  remedy?: string;
  /** Test-only crash/stall point (src/node/failpoints.ts arms it); absent in production. */
  failpoint?: (name: 'compact.mid-transaction') => void;
}

/** What opening found and did, for the node's start-up log line. */
export interface RaftLogOpenReport {
  /** The format the file had before this open (0 = migrated from the checksum-less format now). */
  formatBefore: number;
  /** Entries and meta rows whose checksum was verified, and how long the whole check took. */
  verifiedEntries: number;
  verifiedMeta: number;
  verifyMs: number;
}

function checkRow(row: EntryRow): string | null {
  if (typeof row.data !== 'string' || typeof row.kind !== 'string' || !Number.isSafeInteger(row.term))
    return `entry ${row.idx}: malformed row (term ${typeof row.term}, kind ${typeof row.kind}, data ${typeof row.data})`;
  if (row.crc === null || row.crc === undefined) return `entry ${row.idx}: no checksum`;
  const want = entryChecksum(row.idx, row.term, row.kind, row.data);
  if (want !== row.crc)
    return `entry ${row.idx}: checksum mismatch (stored ${row.crc.toString(16)}, content gives ${want.toString(16)})`;
  return null;
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
  private readonly remedy: string;
  /** What opening found (format before, how much was verified, how long it took). */
  readonly openReport: RaftLogOpenReport;

  private readonly stmts: {
    getMeta: Database.Statement;
    deleteMeta: Database.Statement;
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
    this.remedy = opts.remedy ?? GENERIC_REMEDY;
    const started = performance.now();
    let formatBefore = RAFT_LOG_FORMAT;
    try {
      this.db = new Database(path);
    } catch (err) {
      throw this.corruptOr(err, 'cannot be opened');
    }
    try {
      this.db.pragma('journal_mode = WAL');
      // NORMAL: SQLite does not fsync at commit (only around checkpoints, so the WAL can be reused
      // safely); this store fsyncs the WAL itself after every transaction that must be durable,
      // synchronously (durably(), persist()) or, on the Raft loop's hot path, on libuv's thread pool
      // (persistUnsynced() + sync()), so the event loop keeps serving while the disk flushes.
      this.db.pragma('synchronous = NORMAL');
      this.db.pragma('busy_timeout = 5000');
      formatBefore = this.migrate();
      this.db.exec(`CREATE INDEX IF NOT EXISTS entries_config ON entries(idx) WHERE kind = 'config';`);
      this.syncWalSync();
    } catch (err) {
      this.db.close();
      throw this.corruptOr(err, 'cannot be read');
    }
    this.stmts = {
      getMeta: this.db.prepare('SELECT value, crc FROM meta WHERE key = ?'),
      deleteMeta: this.db.prepare('DELETE FROM meta WHERE key = ?'),
      putMeta: this.db.prepare(
        'INSERT INTO meta(key, value, crc) VALUES (?, ?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value, crc = excluded.crc',
      ),
      insert: this.db.prepare('INSERT INTO entries(idx, term, kind, data, crc) VALUES (?, ?, ?, ?, ?)'),
      deleteFrom: this.db.prepare('DELETE FROM entries WHERE idx >= ?'),
      deleteUpTo: this.db.prepare('DELETE FROM entries WHERE idx <= ?'),
      range: this.db.prepare(
        'SELECT idx, term, kind, data, crc FROM entries WHERE idx >= ? AND idx < ? ORDER BY idx',
      ),
      termOf: this.db.prepare('SELECT idx, term, kind, data, crc FROM entries WHERE idx = ?'),
      maxIdx: this.db.prepare('SELECT MAX(idx) AS m FROM entries'),
      configs: this.db.prepare(
        "SELECT idx, term, kind, data, crc FROM entries WHERE kind = 'config' AND idx > ? AND idx <= ? ORDER BY idx",
      ),
      count: this.db.prepare('SELECT COUNT(*) AS c FROM entries'),
    };
    let verified = { entries: 0, meta: 0 };
    try {
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
      if ((opts.verify ?? 'full') === 'full') verified = this.verifyAll();
    } catch (err) {
      this.db.close();
      throw this.corruptOr(err, 'cannot be read');
    }
    this.openReport = {
      formatBefore,
      verifiedEntries: verified.entries,
      verifiedMeta: verified.meta,
      verifyMs: Math.round((performance.now() - started) * 10) / 10,
    };
  }

  /** SQLite saying the file is damaged becomes a RaftLogCorruptError; anything else passes through. */
  private corruptOr(err: unknown, what: string): unknown {
    if (err instanceof RaftLogCorruptError) return err;
    if (!isSqliteCorruption(err)) return err;
    return this.corrupt({
      firstBadIndex: null,
      lastBadIndex: null,
      problems: [
        `the file ${what} by SQLite (${(err as { code?: string }).code}: ${(err as Error).message})`,
      ],
      entriesOnly: false,
    });
  }

  private corrupt(damage: RaftLogDamage): RaftLogCorruptError {
    return new RaftLogCorruptError(this.path, damage, this.remedy);
  }

  /**
   * Creates the tables of a new file, or brings an older file to RAFT_LOG_FORMAT in one
   * transaction (a crash midway leaves the old format, migrated again on the next open).
   * Returns the format the file had.
   */
  private migrate(): number {
    const db = this.db;
    const format = db.pragma('user_version', { simple: true }) as number;
    if (format === RAFT_LOG_FORMAT) return format;
    if (format > RAFT_LOG_FORMAT)
      throw new Error(
        `${this.path}: raft.db format ${format} is newer than this version supports (${RAFT_LOG_FORMAT}); run a newer timestore`,
      );
    db.transaction(() => {
      const hasEntries = db.prepare(`SELECT 1 FROM sqlite_master WHERE name = 'entries'`).get() !== undefined;
      if (!hasEntries) {
        db.exec(`
          CREATE TABLE entries (
            idx INTEGER PRIMARY KEY,
            term INTEGER NOT NULL,
            kind TEXT NOT NULL,
            data TEXT NOT NULL,
            crc INTEGER
          );
          CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL, crc INTEGER);
        `);
      } else {
        // Format 0: the rows as they are now get checksums. Damage done before this upgrade is not
        // detectable (there was nothing to compare with); from here on every change is.
        db.exec(`ALTER TABLE entries ADD COLUMN crc INTEGER; ALTER TABLE meta ADD COLUMN crc INTEGER;`);
        const setEntry = db.prepare('UPDATE entries SET crc = ? WHERE idx = ?');
        const rows = db.prepare('SELECT idx, term, kind, data FROM entries').all() as EntryRow[];
        for (const r of rows) setEntry.run(entryChecksum(r.idx, r.term, r.kind, r.data), r.idx);
        const setMeta = db.prepare('UPDATE meta SET crc = ? WHERE key = ?');
        for (const r of db.prepare('SELECT key, value FROM meta').all() as Array<{
          key: string;
          value: string;
        }>)
          setMeta.run(metaChecksum(r.key, r.value), r.key);
      }
      db.pragma(`user_version = ${RAFT_LOG_FORMAT}`);
    })();
    return format;
  }

  /**
   * The whole file: SQLite's own structure check, every meta and entry checksum, and the log's
   * shape (indexes compactIndex+1..last without a gap, terms never decreasing). Throws
   * RaftLogCorruptError naming the damaged index range.
   */
  private verifyAll(): { entries: number; meta: number } {
    const problems: string[] = [];
    let first: number | null = null;
    let lastBad: number | null = null;
    let entriesOnly = true;
    const bad = (index: number | null, problem: string) => {
      if (problems.length < MAX_PROBLEMS) problems.push(problem);
      if (index !== null) {
        first ??= index;
        lastBad = index;
      } else entriesOnly = false;
    };
    const check = this.db.pragma('quick_check(5)', { simple: false }) as Array<{ quick_check: string }>;
    if (!(check.length === 1 && check[0]!.quick_check === 'ok'))
      for (const r of check) bad(null, `quick_check: ${r.quick_check}`);
    let meta = 0;
    for (const r of this.db.prepare('SELECT key, value, crc FROM meta').all() as Array<{
      key: string;
      value: string;
      crc: number | null;
    }>) {
      meta++;
      if (typeof r.value !== 'string' || r.crc !== metaChecksum(r.key, r.value))
        bad(null, `meta row ${JSON.stringify(r.key)}: checksum mismatch`);
    }
    let entries = 0;
    let expect = this.compactIndex + 1;
    let prevTerm = this.compactTerm;
    for (const row of this.db
      .prepare('SELECT idx, term, kind, data, crc FROM entries ORDER BY idx')
      .iterate() as Iterable<EntryRow>) {
      entries++;
      if (row.idx !== expect) {
        first ??= Math.min(expect, row.idx);
        bad(row.idx, `entries ${expect}..${row.idx - 1} are missing (the log must be contiguous)`);
      }
      expect = row.idx + 1;
      const p = checkRow(row);
      if (p) bad(row.idx, p);
      else if (row.term < prevTerm) bad(row.idx, `entry ${row.idx}: term ${row.term} after term ${prevTerm}`);
      if (!p) prevTerm = row.term;
    }
    if (problems.length > 0)
      throw this.corrupt({ firstBadIndex: first, lastBadIndex: lastBad, problems, entriesOnly });
    return { entries, meta };
  }

  /** A row read back from SQLite: verified, or RaftLogCorruptError. */
  private verified(row: EntryRow): Entry {
    const p = checkRow(row);
    if (p)
      throw this.corrupt({ firstBadIndex: row.idx, lastBadIndex: row.idx, problems: [p], entriesOnly: true });
    return { index: row.idx, term: row.term, kind: row.kind, data: row.data };
  }

  private getMeta<T>(key: string): T | undefined {
    const row = this.stmts.getMeta.get(key) as { value: string; crc: number | null } | undefined;
    if (!row) return undefined;
    if (typeof row.value !== 'string' || row.crc !== metaChecksum(key, row.value))
      throw this.corrupt({
        firstBadIndex: null,
        lastBadIndex: null,
        problems: [`meta row ${JSON.stringify(key)}: checksum mismatch`],
        entriesOnly: false,
      });
    return JSON.parse(row.value) as T;
  }

  private putMeta(key: string, value: unknown): void {
    const json = JSON.stringify(value);
    this.stmts.putMeta.run(key, json, metaChecksum(key, json));
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
    this.durably(() => {
      this.writeEntries(entries);
      this.putMeta('hardState', { term: 1, vote: null, commit: entries.length });
      this.putMeta('bootstrapped', true);
    });
    this.hard = { term: 1, vote: null, commit: entries.length };
  }

  /** Mark a joining node as initialised (empty membership, waits for the leader). */
  markJoining(): void {
    this.durably(() => this.putMeta('bootstrapped', 'join'));
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
    for (const row of this.stmts.range.iterate(lo, hi) as Iterable<EntryRow>) {
      const e = this.verified(row);
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
    const row = this.stmts.termOf.get(index) as EntryRow | undefined;
    if (!row) throw new CompactedError(index);
    return this.verified(row).term;
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
    for (const e of entries)
      this.stmts.insert.run(e.index, e.term, e.kind, e.data, entryChecksum(e.index, e.term, e.kind, e.data));
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
   * suffix), then the hard state. Durable when it returns.
   */
  persist(batch: PersistBatch): void {
    if (this.persistUnsynced(batch)) this.syncWalSync();
  }

  /**
   * persist() without the fsync: the transaction is written (readable at once, and kept by a crash
   * of the process), but survives a machine crash only after sync(). Returns whether that fsync is
   * needed: false when nothing durable changed (see the commit index below). Group commit: one
   * sync() covers every transaction written before it started.
   */
  persistUnsynced(batch: PersistBatch): boolean {
    const { snapshot, entries, hardState } = batch;
    if (!snapshot && (!entries || entries.length === 0) && !hardState) return false;
    // Only the commit index changed (a follower learning it, a leader advancing it): that needs no
    // fsync (etcd's MustSync rule), and no write at all: it is kept in memory and written with the
    // next transaction that has to be durable anyway (entries, term or vote), or by close(). After a
    // crash the commit index may come back lower; it is learned again from the leader, and the core
    // clamps the applied index to it (re-applying is harmless: applyBatch skips indexes at or below
    // data.db's applied index). Before, this was a transaction with synchronous=OFF per Ready: about
    // 80 µs on the critical path of every write, on every member, for a value that may be lost anyway.
    const commitOnly =
      !snapshot &&
      (!entries || entries.length === 0) &&
      hardState !== null &&
      hardState !== undefined &&
      hardState.term === this.hard.term &&
      hardState.vote === this.hard.vote;
    if (commitOnly) {
      if (hardState.commit !== this.hard.commit) {
        this.hard = { ...hardState };
        this.commitUnwritten = true;
      }
      return false;
    }
    this.persistTx(snapshot, entries, hardState ?? (this.commitUnwritten ? this.hard : null));
    return true;
  }

  // ---------------------------------------------------------------- fsync of the WAL
  // fsync flushes a file (its inode), whichever descriptor it is called on: this one is opened on
  // raft.db-wal, which SQLite keeps (and never replaces) while its connection is open.
  private walFd: number | null = null;
  private syncsInFlight = 0;
  private closing = false;

  private wal(): number {
    this.walFd ??= openSync(`${this.path}-wal`, 'r');
    return this.walFd;
  }

  /** Make every transaction written so far durable (blocks the thread for the fsync). */
  syncWalSync(): void {
    fdatasyncSync(this.wal());
  }

  /** `fn` in one transaction, durable when this returns. */
  private durably(fn: () => void): void {
    this.db.transaction(fn)();
    this.syncWalSync();
  }

  /**
   * Make every transaction written before this call durable, on libuv's thread pool; `done` gets
   * the fsync's error, if any (the caller must then treat the node's state as unknown).
   */
  sync(done: (err: Error | null) => void): void {
    let fd: number;
    try {
      fd = this.wal();
    } catch (err) {
      done(err as Error);
      return;
    }
    this.syncsInFlight++;
    fdatasync(fd, (err) => {
      this.syncsInFlight--;
      if (this.closing && this.syncsInFlight === 0) this.closeWal();
      done(err);
    });
  }

  private closeWal(): void {
    if (this.walFd === null) return;
    try {
      closeSync(this.walFd);
    } catch {
      // already gone
    }
    this.walFd = null;
  }

  /** The in-memory commit index is ahead of raft.db's (see persist). */
  private commitUnwritten = false;

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
        this.commitUnwritten = false;
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
    this.durably(() => {
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
    });
  }

  /** Membership and member URLs in force after the entry at `index` (≥ the snapshot index). */
  membershipAt(index: number): MembershipView {
    let view: MembershipView = {
      membership: { voters: [...this.snap.membership.voters], learners: [...this.snap.membership.learners] },
      contexts: { ...this.snap.contexts },
    };
    const from = Math.max(this.snap.index, this.compactIndex);
    for (const row of this.stmts.configs.iterate(from, index) as Iterable<EntryRow>) {
      const cc = parseConfChange(this.verified(row).data);
      if (cc) view = applyConfChange(view, cc);
    }
    return view;
  }

  /**
   * Index this node must commit again before it may vote or campaign (RaftConfig.abstainUntil);
   * 0 for a node that never lost entries. Set by truncateDamaged, cleared by clearAbstain.
   */
  abstainUntil(): number {
    return this.getMeta<number>('abstainUntil') ?? 0;
  }

  /** The node has committed past abstainUntil: an ordinary voter again. Durable (fsync). */
  clearAbstain(): void {
    this.durably(() => this.stmts.deleteMeta.run('abstainUntil'));
  }

  /**
   * Repair of a log damaged only in its entries (RaftLogDamage.entriesOnly): drops the entries
   * from `from` on (all of them, if `from` is at or below the snapshot index: the snapshot then
   * starts the log), lowers the commit index to what is left, keeps term and vote, and records
   * abstainUntil = the old last index, in one transaction. The node must then abstain from
   * voting and campaigning until it commits that far again (src/storage/DESIGN.md).
   */
  truncateDamaged(from: number): { from: number; oldLast: number; abstainUntil: number } {
    const oldLast = this.last;
    if (from <= this.compactIndex || from > oldLast)
      throw new Error(`truncateDamaged(${from}): expected an index in ${this.compactIndex + 1}..${oldLast}`);
    const until = Math.max(oldLast, this.abstainUntil());
    this.durably(() => {
      this.stmts.deleteFrom.run(from);
      let last = from - 1;
      if (from <= this.snap.index) {
        this.stmts.deleteUpTo.run(this.snap.index);
        this.putMeta('compacted', { index: this.snap.index, term: this.snap.term });
        this.compactIndex = this.snap.index;
        this.compactTerm = this.snap.term;
        last = this.snap.index;
      }
      const commit = Math.max(this.compactIndex, Math.min(this.hard.commit, last));
      this.hard = { ...this.hard, commit };
      this.putMeta('hardState', this.hard);
      this.putMeta('abstainUntil', until);
      this.last = last;
      this.tail = [];
    });
    return { from, oldLast, abstainUntil: until };
  }

  /** Entries in the log (for compaction thresholds). */
  entryCount(): number {
    return this.last - this.compactIndex;
  }

  close(): void {
    if (this.commitUnwritten && this.db.open) {
      // A clean stop keeps the latest commit index, so a restart replays no more than it must.
      try {
        this.persistTx(null, undefined, this.hard);
      } catch {
        // Not worth failing a shutdown over: the commit index is learned again from the leader.
      }
    }
    this.db.close();
    // An fsync still running on the thread pool keeps the descriptor until it is done.
    this.closing = true;
    if (this.syncsInFlight === 0) this.closeWal();
  }
}

/** Opens (creating or migrating) raft.db; throws RaftLogCorruptError when it is damaged. */
export function openRaftLog(path: string, opts?: RaftLogOptions): RaftLogStore {
  return new RaftLogStore(path, opts);
}
