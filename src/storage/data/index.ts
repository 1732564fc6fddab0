// The time-series state machine on SQLite (data.db). See schema.ts for the layout and why.
//
// Everything a command does happens in one transaction together with the applied index, so a
// crash leaves either all of a batch or none of it, and replaying committed entries after a
// restart is harmless (indices at or below appliedIndex() are skipped).
import Database from 'better-sqlite3';
import {
  closeSync,
  copyFileSync,
  existsSync,
  fsyncSync,
  openSync,
  renameSync,
  rmSync,
  statSync,
} from 'node:fs';
import { basename, dirname, join } from 'node:path';
import type { ApplyResult, DataStore } from '../data-store.js';
import type {
  AggregateBucket,
  AggregateFn,
  AggregateQuery,
  Command,
  Point,
  PointPage,
  PointQuery,
  WriteOp,
} from '../../tsdb/model.js';
import { InvalidCommandError, InvalidQueryError } from './errors.js';
import {
  compareIdKeys,
  decodeCursor,
  encodeCursor,
  idKeyAndCanonical,
  idToKey,
  keyToId,
  MAX_ID_BYTES,
  type IdKey,
} from './keys.js';
import { DDL, SCHEMA_VERSION } from './schema.js';

export { InvalidCommandError, InvalidQueryError } from './errors.js';
export { decodeCursor, encodeCursor } from './keys.js';

/** Largest page a query or aggregate may ask for: every read is bounded by it. */
export const MAX_QUERY_LIMIT = 10_000;
export const MAX_DEVICE_ID_BYTES = 256;
const MAX_TS = Number.MAX_SAFE_INTEGER;
const MIN_TS = -Number.MAX_SAFE_INTEGER;
const AGGREGATE_FNS: readonly AggregateFn[] = ['count', 'sum', 'avg', 'min', 'max', 'first', 'last'];
const DAY_US = 86_400_000_000;
const PUT_CHUNK = 50;

// Ingest from many devices at once dirties one leaf page per device per transaction, and every
// dirty page is written whole to the WAL (and again at checkpoint). Small pages and a larger WAL
// between checkpoints cut the bytes written per row by more than half in bench/ingest, for under
// 1 byte per row of extra space; see docs/BENCHMARKS.md.
const DEFAULT_PAGE_SIZE = 1024;
const DEFAULT_WAL_AUTOCHECKPOINT_PAGES = 8192;

export interface DataStoreOptions {
  /** Page size for a new file (an existing file keeps its own). Default 1024. */
  pageSize?: number;
  /** WAL pages between automatic checkpoints. Default 8192 (8 MiB at the default page size). */
  walAutocheckpointPages?: number;
  /** SQLite page cache, KiB. Default 32768 (32 MiB). */
  cacheSizeKiB?: number;
  /**
   * 'FULL' (default) fsyncs every transaction. 'NORMAL' keeps every transaction atomic (WAL) but
   * fsyncs only at checkpoints: a power loss may take back the last transactions. Only for a store
   * whose commands are durable elsewhere and re-applied from there (a Raft member: raft.db holds
   * every committed entry after data.db's durable applied index, or a snapshot that covers it).
   */
  synchronous?: 'FULL' | 'NORMAL';
  /** Test-only crash/stall points (src/node/failpoints.ts arms them); absent in production. */
  failpoint?: (name: 'snapshot.mid-copy' | 'install.mid-swap' | 'apply.mid-batch') => void;
  /** Test-only planted bug (TIMESTORE_TEST_BUG), to prove the crash tests catch it. */
  plantedBug?: 'apply-no-txn' | null;
}

/** A point row as read: raw arrays, because row objects cost about a microsecond each. */
type StoredRow = [ts: number, id: IdKey, value: number, tagset: number | null, attrs: string | null];

interface PreparedPut {
  series: number;
  ts: number;
  key: IdKey;
  value: number;
  tagset: number | null;
  attrs: string | null;
  point: Point;
}

type Statements = ReturnType<SqliteDataStore['prepareStatements']>;

function fsyncPath(path: string, dir = false): void {
  // Directories are opened read-only; fsync on them is what makes a rename durable on Linux.
  const fd = openSync(path, dir ? 'r' : 'r+');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return false;
  const proto = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

// String#isWellFormed is ES2024; the project's lib is ES2023.
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

function checkId(id: unknown, where: string): string {
  if (typeof id !== 'string' || id.length === 0) {
    throw new InvalidCommandError(
      `${where}: id must be a non-empty string; got ${id === '' ? 'an empty string' : typeof id}`,
    );
  }
  if (LONE_SURROGATE.test(id)) {
    // A lone surrogate would be stored as U+FFFD and never match again.
    throw new InvalidCommandError(`${where}: id is not well-formed Unicode (lone surrogate)`);
  }
  if (Buffer.byteLength(id, 'utf8') > MAX_ID_BYTES) {
    throw new InvalidCommandError(`${where}: id is longer than ${MAX_ID_BYTES} bytes`);
  }
  return id;
}

/** Floor of a / b for a safe integer a and positive safe integer b, exact. */
function floorTo(a: number, b: number): number {
  const r = a % b;
  return r < 0 ? a - r - b : a - r;
}

/** Tags as stored and read back: keys sorted, so one label set interns to one tagset row. Pure. */
function sortedTags(tags: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(tags).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

/**
 * A put's point as stored and read back, `id` in canonical form, and its attributes' JSON text.
 * Pure: preparePut stores exactly this, and putResult predicts applyBatch's answer with it. -0
 * reads back as 0 (SQLite keeps integral REALs as integers).
 */
function storedPoint(p: Point, id: string): { point: Point; attrs: string | null } {
  const point: Point = { id, deviceId: p.deviceId, ts: p.ts, value: p.value === 0 ? 0 : p.value };
  if (p.tags !== undefined) point.tags = sortedTags(p.tags);
  let attrs: string | null = null;
  if (p.attributes !== undefined) {
    attrs = JSON.stringify(p.attributes);
    point.attributes = JSON.parse(attrs) as Record<string, unknown>;
  }
  return { point, attrs };
}

/**
 * What applyBatch will answer for `command` at `index`, known without data.db, or null when that
 * depends on data.db: a command made of puts only (a delete reports only the ids it found). The
 * stored point of a put is the same whatever data.db holds, so a Raft leader can answer the
 * writer as soon as the entry is committed and apply it after (src/node/raft/driver.ts). The
 * command must have passed checkCommand. Pure.
 */
export function putResult(command: Command, index: number): ApplyResult | null {
  const points: Point[] = [];
  for (const op of command.ops) {
    if (op.op !== 'put') return null;
    points.push(storedPoint(op.point, idKeyAndCanonical(op.point.id).id).point);
  }
  return { index, points, deleted: [] };
}

/**
 * Checks a command completely, as applyBatch does before its transaction starts. The node calls it
 * before proposing, so a command the engine would reject never reaches the Raft log.
 * Throws InvalidCommandError naming the bad op and field.
 */
export function checkCommand(command: Command | null, where0 = 'command'): void {
  if (command === null) return;
  if (typeof command !== 'object' || !Array.isArray(command.ops)) {
    throw new InvalidCommandError(`${where0}: command must be null or an object with an ops array`);
  }
  command.ops.forEach((op: WriteOp, i) => {
    const where = `${where0} ops[${i}]`;
    if (op === null || typeof op !== 'object')
      throw new InvalidCommandError(`${where}: expected {op: "put"|"delete", ...}`);
    if (op.op === 'delete') {
      checkId(op.id, where);
      return;
    }
    if (op.op !== 'put')
      throw new InvalidCommandError(
        `${where}: op must be "put" or "delete"; got ${JSON.stringify((op as { op: unknown }).op)}`,
      );
    const p = op.point;
    if (p === null || typeof p !== 'object')
      throw new InvalidCommandError(`${where}: put needs a point object`);
    checkId(p.id, where);
    if (typeof p.deviceId !== 'string' || p.deviceId.length === 0) {
      throw new InvalidCommandError(`${where}: deviceId must be a non-empty string`);
    }
    if (LONE_SURROGATE.test(p.deviceId)) {
      throw new InvalidCommandError(`${where}: deviceId is not well-formed Unicode (lone surrogate)`);
    }
    if (Buffer.byteLength(p.deviceId, 'utf8') > MAX_DEVICE_ID_BYTES) {
      throw new InvalidCommandError(`${where}: deviceId is longer than ${MAX_DEVICE_ID_BYTES} bytes`);
    }
    if (!Number.isSafeInteger(p.ts)) {
      throw new InvalidCommandError(
        `${where}: ts must be an integer number of microseconds within ±(2^53-1); got ${p.ts}`,
      );
    }
    if (typeof p.value !== 'number' || !Number.isFinite(p.value)) {
      throw new InvalidCommandError(`${where}: value must be a finite number; got ${String(p.value)}`);
    }
    if (p.tags !== undefined) {
      if (!isPlainObject(p.tags))
        throw new InvalidCommandError(`${where}: tags must be an object of strings`);
      for (const [k, v] of Object.entries(p.tags)) {
        if (typeof v !== 'string')
          throw new InvalidCommandError(`${where}: tags.${k} must be a string; got ${typeof v}`);
      }
    }
    if (p.attributes !== undefined) {
      if (!isPlainObject(p.attributes))
        throw new InvalidCommandError(`${where}: attributes must be a JSON object`);
      try {
        JSON.stringify(p.attributes);
      } catch (e) {
        throw new InvalidCommandError(
          `${where}: attributes are not serializable as JSON (${(e as Error).message})`,
        );
      }
    }
  });
}

export class SqliteDataStore implements DataStore {
  private db!: Database.Database;
  private stmts!: Statements;
  private applied = 0;
  /** ts values are stored as ts - base (see schema.ts); null until the first point is written. */
  private base: number | null = null;
  private devicesByName = new Map<string, number>();
  private deviceNames = new Map<number, string>();
  private tagsetsByJson = new Map<string, number>();
  private tagsetsById = new Map<number, Readonly<Record<string, string>>>();
  /** False while no point has ever had tags/attributes: puts then skip clearing old extras. */
  private hasExtras = false;
  private closed = false;

  constructor(
    readonly path: string,
    private readonly opts: DataStoreOptions = {},
  ) {
    // A restore interrupted before its rename leaves this behind; the old file is still intact.
    rmSync(this.tmpRestorePath(), { force: true });
    this.open();
  }

  private tmpRestorePath(): string {
    return join(dirname(this.path), `.${basename(this.path)}.restore-tmp`);
  }

  private open(): void {
    const db = new Database(this.path);
    try {
      // page_size only takes effect on a file with no tables yet, i.e. before journal_mode = WAL.
      db.pragma(`page_size = ${Math.trunc(this.opts.pageSize ?? DEFAULT_PAGE_SIZE)}`);
      db.pragma('journal_mode = WAL');
      db.pragma(`synchronous = ${this.opts.synchronous === 'NORMAL' ? 'NORMAL' : 'FULL'}`);
      db.pragma(
        `wal_autocheckpoint = ${Math.trunc(this.opts.walAutocheckpointPages ?? DEFAULT_WAL_AUTOCHECKPOINT_PAGES)}`,
      );
      db.pragma(`cache_size = ${-Math.trunc(this.opts.cacheSizeKiB ?? 32768)}`);
      db.exec(DDL);
      const version = db.prepare(`SELECT value FROM meta WHERE key = 'schema_version'`).pluck().get() as
        number | undefined;
      if (version === undefined) {
        db.prepare(`INSERT INTO meta(key, value) VALUES ('schema_version', ?), ('applied_index', 0)`).run(
          SCHEMA_VERSION,
        );
      } else if (version !== SCHEMA_VERSION) {
        throw new Error(
          `${this.path}: data.db schema version ${version} is not the supported version ${SCHEMA_VERSION}`,
        );
      }
    } catch (e) {
      db.close();
      throw e;
    }
    this.db = db;
    this.closed = false;
    this.loadState();
  }

  /** Reads everything cached in memory from the file (after open, restore, or a rolled-back batch). */
  private loadState(): void {
    const meta = new Map(
      (this.db.prepare('SELECT key, value FROM meta').all() as Array<{ key: string; value: number }>).map(
        (r) => [r.key, r.value],
      ),
    );
    this.applied = meta.get('applied_index') ?? 0;
    this.base = meta.get('ts_base') ?? null;
    this.devicesByName.clear();
    this.deviceNames.clear();
    for (const r of this.db.prepare('SELECT id, name FROM devices').iterate() as IterableIterator<{
      id: number;
      name: string;
    }>) {
      this.devicesByName.set(r.name, r.id);
      this.deviceNames.set(r.id, r.name);
    }
    this.hasExtras = this.db.prepare('SELECT EXISTS (SELECT 1 FROM extras)').pluck().get() === 1;
    this.tagsetsByJson.clear();
    this.tagsetsById.clear();
    for (const r of this.db.prepare('SELECT id, json FROM tagsets').iterate() as IterableIterator<{
      id: number;
      json: string;
    }>) {
      this.tagsetsByJson.set(r.json, r.id);
      this.tagsetsById.set(r.id, Object.freeze(JSON.parse(r.json) as Record<string, string>));
    }
    this.stmts = this.prepareStatements();
  }

  // The base is a literal in the SQL rather than a parameter so the planner sees plain column
  // ranges; statements are re-prepared the one time it is set. Bound µs arrive as REAL (that is
  // how better-sqlite3 binds JS numbers), so they are CAST to INTEGER before any arithmetic to
  // keep it exact over the whole ±2^53 range.
  private prepareStatements() {
    const db = this.db;
    const b = String(this.base ?? 0);
    const rel = (p: string) => `(CAST(${p} AS INTEGER) - ${b})`;
    // Reads join extras only once some point has had tags or attributes (the join costs about a
    // fifth of a page read); statements are re-prepared when that first happens.
    const cols = this.hasExtras
      ? `p.ts + ${b} AS ts, p.id AS id, p.value AS value, e.tagset AS tagset, e.attrs AS attrs`
      : `p.ts + ${b} AS ts, p.id AS id, p.value AS value, NULL AS tagset, NULL AS attrs`;
    const from = this.hasExtras ? 'points p LEFT JOIN extras e ON e.id = p.id' : 'points p';
    // A LIMIT bound as a parameter costs SQLite ~8 µs more per execution than a literal one
    // (measured), which dominates the small probes of the all-devices merge; those use statements
    // with literal limits, cached per limit. A user's page is one statement, so it binds its limit.
    const page = (order: 'ASC' | 'DESC', cursor: boolean, limit?: number) => {
      const cmp = order === 'ASC' ? '>' : '<';
      return db
        .prepare(
          `SELECT ${cols} FROM ${from} WHERE p.series = @series AND p.ts >= ${rel('@from')} AND p.ts < ${rel('@to')}` +
            (cursor ? ` AND (p.ts, p.id) ${cmp} (${rel('@cts')}, @cid)` : '') +
            ` ORDER BY p.ts ${order}, p.id ${order} LIMIT ${limit === undefined ? '@limit' : String(limit)}`,
        )
        .raw();
    };
    const fixedPages = new Map<string, Database.Statement>();
    const fixedPage = (order: 'ASC' | 'DESC', cursor: boolean, limit: number) => {
      const key = `${order}${cursor}${limit}`;
      let st = fixedPages.get(key);
      if (st === undefined) fixedPages.set(key, (st = page(order, cursor, limit)));
      return st;
    };
    // For each device, the ts of its first row after the cursor, in one statement: the
    // all-devices merge then only reads rows of devices that reach the page.
    const probe = (order: 'ASC' | 'DESC', cursor: boolean) => {
      const first = (col: string) =>
        `(SELECT ${col} FROM points p WHERE p.series = d.id` +
        ` AND p.ts >= ${rel('@from')} AND p.ts < ${rel('@to')}` +
        (cursor ? ` AND (p.ts, p.id) ${order === 'ASC' ? '>' : '<'} (${rel('@cts')}, @cid)` : '') +
        ` ORDER BY p.ts ${order}, p.id ${order} LIMIT 1)`;
      return db.prepare(`SELECT d.id, ${first(`p.ts + ${b}`)}, ${first('p.id')} FROM devices d`).raw();
    };
    const bucketEdge = (order: 'ASC' | 'DESC') =>
      db
        .prepare(
          `SELECT ts + ${b} FROM points WHERE series = ? AND ts >= ${rel('?')} AND ts < ${rel('?')} ORDER BY ts ${order} LIMIT 1`,
        )
        .pluck();
    const firstLast = (order: 'ASC' | 'DESC') =>
      db
        .prepare(
          `SELECT value FROM points WHERE series = ? AND ts >= ${rel('?')} AND ts < ${rel('?')} ORDER BY ts ${order}, id ${order} LIMIT 1`,
        )
        .pluck();
    return {
      put: db.prepare(`INSERT OR REPLACE INTO points(series, ts, id, value) VALUES (?, ${rel('?')}, ?, ?)`),
      // Rows within one statement are inserted in order, so replace semantics are unchanged.
      putMany: db.prepare(
        `INSERT OR REPLACE INTO points(series, ts, id, value) VALUES ` +
          Array.from({ length: PUT_CHUNK }, () => `(?, ${rel('?')}, ?, ?)`).join(', '),
      ),
      putExtras: db.prepare('INSERT OR REPLACE INTO extras(id, tagset, attrs) VALUES (?, ?, ?)'),
      delExtras: db.prepare('DELETE FROM extras WHERE id = ?'),
      del: db.prepare('DELETE FROM points WHERE id = ?'),
      get: db.prepare(`SELECT ${cols}, p.series AS series FROM ${from} WHERE p.id = ?`).raw(),
      count: db.prepare('SELECT count(*) FROM points').pluck(),
      setApplied: db.prepare(`UPDATE meta SET value = ? WHERE key = 'applied_index'`),
      setBase: db.prepare(`INSERT INTO meta(key, value) VALUES ('ts_base', ?)`),
      insertDevice: db.prepare('INSERT INTO devices(name) VALUES (?)'),
      insertTagset: db.prepare('INSERT INTO tagsets(json) VALUES (?)'),
      pageAsc: page('ASC', false),
      pageDesc: page('DESC', false),
      pageAscAfter: page('ASC', true),
      pageDescAfter: page('DESC', true),
      fixedPage,
      probeAsc: probe('ASC', false),
      probeDesc: probe('DESC', false),
      probeAscAfter: probe('ASC', true),
      probeDescAfter: probe('DESC', true),
      firstTs: bucketEdge('ASC'),
      lastTs: bucketEdge('DESC'),
      firstValue: firstLast('ASC'),
      lastValue: firstLast('DESC'),
      bucketStats: db.prepare(
        `SELECT count(*) AS count, sum(value) AS sum, avg(value) AS avg, min(value) AS min, max(value) AS max` +
          ` FROM points WHERE series = ? AND ts >= ${rel('?')} AND ts < ${rel('?')}`,
      ),
    };
  }

  private checkOpen(): void {
    if (this.closed) throw new Error(`data store ${this.path} is closed`);
  }

  appliedIndex(): number {
    this.checkOpen();
    return this.applied;
  }

  // ---- writes ------------------------------------------------------------------------------------

  /** Validates a command completely before the transaction starts, so bad input writes nothing. */
  private validate(index: number, command: Command | null, position: number): void {
    const where0 = `batch[${position}] (index ${index})`;
    if (!Number.isSafeInteger(index) || index < 1) {
      throw new InvalidCommandError(`${where0}: index must be a positive integer`);
    }
    checkCommand(command, where0);
  }

  private deviceIdFor(name: string): number {
    let id = this.devicesByName.get(name);
    if (id === undefined) {
      id = Number(this.stmts.insertDevice.run(name).lastInsertRowid);
      this.devicesByName.set(name, id);
      this.deviceNames.set(id, name);
    }
    return id;
  }

  private tagsetFor(tags: Record<string, string>): { id: number; tags: Readonly<Record<string, string>> } {
    // Sorted keys so the same label set interns to one row whatever order the client sent.
    const sorted = sortedTags(tags);
    const json = JSON.stringify(sorted);
    let id = this.tagsetsByJson.get(json);
    if (id === undefined) {
      id = Number(this.stmts.insertTagset.run(json).lastInsertRowid);
      this.tagsetsByJson.set(json, id);
      this.tagsetsById.set(id, Object.freeze(sorted));
    }
    return { id, tags: this.tagsetsById.get(id)! };
  }

  private preparePut(p: Point, key: IdKey, id: string): PreparedPut {
    if (this.base === null) {
      this.base = floorTo(p.ts, DAY_US);
      this.stmts.setBase.run(this.base);
      this.stmts = this.prepareStatements();
    }
    const series = this.deviceIdFor(p.deviceId);
    const { point, attrs } = storedPoint(p, id);
    // The tagset row holds the same sorted labels as point.tags.
    const tagset = p.tags !== undefined ? this.tagsetFor(p.tags).id : null;
    return { series, ts: p.ts, key, value: point.value, tagset, attrs, point };
  }

  private runPut(p: PreparedPut): void {
    this.stmts.put.run(p.series, p.ts, p.key, p.value);
    this.putExtras(p);
  }

  /** The extras row follows the point: written when it has tags/attributes, removed when not. */
  private putExtras(p: PreparedPut): void {
    if (p.tagset !== null || p.attrs !== null) {
      if (!this.hasExtras) {
        this.hasExtras = true;
        this.stmts = this.prepareStatements();
      }
      this.stmts.putExtras.run(p.key, p.tagset, p.attrs);
    } else if (this.hasExtras) {
      this.stmts.delExtras.run(p.key);
    }
  }

  private runDelete(key: IdKey): boolean {
    if (this.stmts.del.run(key).changes === 0) return false;
    if (this.hasExtras) this.stmts.delExtras.run(key);
    return true;
  }

  applyBatch(batch: Array<{ index: number; command: Command | null }>): ApplyResult[] {
    this.checkOpen();
    if (!Array.isArray(batch))
      throw new InvalidCommandError('applyBatch expects an array of {index, command}');
    batch.forEach((e, i) => {
      if (e === null || typeof e !== 'object')
        throw new InvalidCommandError(`batch[${i}]: expected {index, command}`);
      this.validate(e.index, e.command, i);
    });
    try {
      if (this.opts.plantedBug === 'apply-no-txn') this.recordAppliedFirstBug(batch);
      return this.db.transaction(() => this.applyInTransaction(batch))();
    } catch (e) {
      // The transaction rolled back; devices, tagsets or the base cached during it may not exist.
      this.loadState();
      throw e;
    }
  }

  /**
   * The planted bug apply-no-txn: the batch's applied index is committed in a transaction of its
   * own before the writes, so a crash in between leaves entries marked applied that never were.
   */
  private recordAppliedFirstBug(batch: Array<{ index: number }>): void {
    const before = this.applied;
    const last = batch.reduce((m, e) => Math.max(m, e.index), before);
    this.db.transaction(() => this.stmts.setApplied.run(last))();
    this.applied = before; // the writes below still skip only what really was applied
  }

  private applyInTransaction(batch: Array<{ index: number; command: Command | null }>): ApplyResult[] {
    let last = this.applied;
    const entries: Array<{ index: number; ops: WriteOp[] }> = [];
    for (const e of batch) {
      if (e.index <= last) continue;
      last = e.index;
      entries.push({ index: e.index, ops: e.command?.ops ?? [] });
    }
    if (entries.length === 0) return [];

    // Every op's id in canonical form; when none repeats, ops commute, and puts can be applied
    // sorted by (series, ts): each device's rows then land on its b-tree leaf one after another
    // instead of 100 devices taking turns, which measurably speeds up ingest. Device and tagset
    // ids are still assigned in op order, so every replica assigns the same ones.
    const seen = new Set<string>();
    let distinct = true;
    const ids: Array<Array<{ key: IdKey; id: string }>> = entries.map((e) =>
      e.ops.map((op) => {
        const k = idKeyAndCanonical(op.op === 'put' ? op.point.id : op.id);
        if (seen.has(k.id)) distinct = false;
        seen.add(k.id);
        return k;
      }),
    );

    const results: ApplyResult[] = [];
    const puts: PreparedPut[] = [];
    entries.forEach((e, ei) => {
      if (ei === 1) this.opts.failpoint?.('apply.mid-batch');
      const r: ApplyResult = { index: e.index, points: [], deleted: [] };
      e.ops.forEach((op, oi) => {
        const { key, id } = ids[ei]![oi]!;
        if (op.op === 'put') {
          const p = this.preparePut(op.point, key, id);
          if (distinct) puts.push(p);
          else this.runPut(p);
          r.points.push(p.point);
        } else if (this.runDelete(key)) {
          r.deleted.push(id);
        }
      });
      results.push(r);
    });
    if (distinct) {
      puts.sort((a, b) => a.series - b.series || a.ts - b.ts || compareIdKeys(a.key, b.key));
      // One statement per PUT_CHUNK rows: the per-call cost of better-sqlite3 is a visible part of
      // ingest CPU when rows are this small.
      let i = 0;
      if (puts.length >= PUT_CHUNK) {
        const params: unknown[] = new Array(PUT_CHUNK * 4);
        for (; i + PUT_CHUNK <= puts.length; i += PUT_CHUNK) {
          for (let k = 0; k < PUT_CHUNK; k++) {
            const p = puts[i + k]!;
            const o = k * 4;
            params[o] = p.series;
            params[o + 1] = p.ts;
            params[o + 2] = p.key;
            params[o + 3] = p.value;
          }
          this.stmts.putMany.run(params);
          for (let k = 0; k < PUT_CHUNK; k++) this.putExtras(puts[i + k]!);
        }
      }
      for (; i < puts.length; i++) this.runPut(puts[i]!);
    }
    this.stmts.setApplied.run(last);
    this.applied = last;
    return results;
  }

  // ---- reads -------------------------------------------------------------------------------------

  private toPoint(row: StoredRow, deviceId: string): Point {
    const [ts, key, value, tagset, attrs] = row;
    const p: Point = { id: keyToId(key), deviceId, ts, value };
    if (tagset !== null) {
      const t = this.tagsetsById.get(tagset);
      if (t === undefined) throw new Error(`${this.path}: point ${p.id} refers to missing tagset ${tagset}`);
      p.tags = { ...t };
    }
    if (attrs !== null) p.attributes = JSON.parse(attrs) as Record<string, unknown>;
    return p;
  }

  get(id: string): Point | undefined {
    this.checkOpen();
    if (typeof id !== 'string' || id.length === 0) return undefined;
    const row = this.stmts.get.get(idToKey(id)) as [...StoredRow, number] | undefined;
    if (row === undefined) return undefined;
    return this.toPoint(row.slice(0, 5) as StoredRow, this.deviceNames.get(row[5])!);
  }

  count(): number {
    this.checkOpen();
    return this.stmts.count.get() as number;
  }

  private checkLimit(limit: unknown): number {
    if (typeof limit !== 'number' || !Number.isSafeInteger(limit) || limit < 1 || limit > MAX_QUERY_LIMIT) {
      throw new InvalidQueryError(`limit must be an integer in 1..${MAX_QUERY_LIMIT}; got ${String(limit)}`);
    }
    return limit;
  }

  private checkRange(from: unknown, to: unknown): { from: number; to: number } {
    for (const [name, v] of [
      ['from', from],
      ['to', to],
    ] as const) {
      if (v !== undefined && (typeof v !== 'number' || !Number.isSafeInteger(v))) {
        throw new InvalidQueryError(
          `${name} must be an integer number of microseconds within ±(2^53-1); got ${String(v)}`,
        );
      }
    }
    // 2^53 is exactly representable, so `to` = MAX_TS + 1 still excludes nothing.
    return { from: (from as number | undefined) ?? MIN_TS, to: (to as number | undefined) ?? MAX_TS + 1 };
  }

  private checkOrder(order: unknown): 'asc' | 'desc' {
    if (order !== 'asc' && order !== 'desc')
      throw new InvalidQueryError(`order must be "asc" or "desc"; got ${JSON.stringify(order)}`);
    return order;
  }

  /** Up to `limit` rows of one series strictly after `after` in the query order. */
  private seriesPage(
    series: number,
    order: 'asc' | 'desc',
    from: number,
    to: number,
    after: { ts: number; key: IdKey } | null,
    limit: number,
    fixed = false,
  ): StoredRow[] {
    const s = this.stmts;
    if (fixed) {
      const st = s.fixedPage(order === 'asc' ? 'ASC' : 'DESC', after !== null, limit);
      return (
        after === null
          ? st.all({ series, from, to })
          : st.all({ series, from, to, cts: after.ts, cid: after.key })
      ) as StoredRow[];
    }
    if (after === null) {
      return (order === 'asc' ? s.pageAsc : s.pageDesc).all({ series, from, to, limit }) as StoredRow[];
    }
    return (order === 'asc' ? s.pageAscAfter : s.pageDescAfter).all({
      series,
      from,
      to,
      limit,
      cts: after.ts,
      cid: after.key,
    }) as StoredRow[];
  }

  query(q: PointQuery): PointPage {
    this.checkOpen();
    if (q === null || typeof q !== 'object') throw new InvalidQueryError('query must be an object');
    const order = this.checkOrder(q.order);
    const limit = this.checkLimit(q.limit);
    const { from, to } = this.checkRange(q.from, q.to);
    if (q.deviceId !== undefined && typeof q.deviceId !== 'string')
      throw new InvalidQueryError('deviceId must be a string');
    const after = q.cursor === undefined || q.cursor === null ? null : decodeCursor(q.cursor);
    if (from >= to) return { points: [], nextCursor: null };

    // One row more than asked tells whether there is a next page without a second query.
    let rows: Array<{ row: StoredRow; series: number }>;
    if (q.deviceId !== undefined) {
      const series = this.devicesByName.get(q.deviceId);
      if (series === undefined) return { points: [], nextCursor: null };
      rows = this.seriesPage(series, order, from, to, after, limit + 1).map((row) => ({ row, series }));
    } else {
      rows = this.mergeSeries(order, from, to, after, limit + 1);
    }
    const more = rows.length > limit;
    if (more) rows.length = limit;
    const points = rows.map(({ row, series }) => this.toPoint(row, this.deviceNames.get(series)!));
    const lastRow = rows[rows.length - 1]?.row;
    return { points, nextCursor: more && lastRow ? encodeCursor(lastRow[0], lastRow[1]) : null };
  }

  /**
   * The next `want` rows across all devices in (ts, id) order: a k-way merge of per-device index
   * ranges. The table is clustered per device, so a global time order has no index of its own
   * (it would cost ~30 bytes per point); instead each page costs one probe statement that seeks
   * once into every device (inside SQLite), plus reads of only the devices that reach the page.
   * Memory stays bounded by devices + 4·want rows.
   */
  private mergeSeries(
    order: 'asc' | 'desc',
    from: number,
    to: number,
    after: { ts: number; key: IdKey } | null,
    want: number,
  ): Array<{ row: StoredRow; series: number }> {
    const sign = order === 'asc' ? 1 : -1;
    // A head is either a device's buffered rows, or (lazy) only the key of its first row, known
    // from the probe; a lazy head's rows are read only when that key reaches the top.
    interface Head {
      series: number;
      buf: StoredRow[];
      pos: number;
      next: number;
      lazy: { ts: number; key: IdKey } | null;
    }
    const less = (a: Head, b: Head): boolean => {
      const ra = a.lazy ?? a.buf[a.pos]!;
      const rb = b.lazy ?? b.buf[b.pos]!;
      const ta = Array.isArray(ra) ? ra[0] : ra.ts;
      const tb = Array.isArray(rb) ? rb[0] : rb.ts;
      if (ta !== tb) return sign * (ta - tb) < 0;
      return sign * compareIdKeys(Array.isArray(ra) ? ra[1] : ra.key, Array.isArray(rb) ? rb[1] : rb.key) < 0;
    };
    const heap: Head[] = [];
    const push = (h: Head) => {
      heap.push(h);
      let i = heap.length - 1;
      while (i > 0) {
        const parent = (i - 1) >> 1;
        if (!less(heap[i]!, heap[parent]!)) break;
        [heap[i], heap[parent]] = [heap[parent]!, heap[i]!];
        i = parent;
      }
    };
    const pop = (): Head => {
      const top = heap[0]!;
      const lastH = heap.pop()!;
      if (heap.length > 0) {
        heap[0] = lastH;
        let i = 0;
        for (;;) {
          const l = 2 * i + 1;
          const r = l + 1;
          let m = i;
          if (l < heap.length && less(heap[l]!, heap[m]!)) m = l;
          if (r < heap.length && less(heap[r]!, heap[m]!)) m = r;
          if (m === i) break;
          [heap[i], heap[m]] = [heap[m]!, heap[i]!];
          i = m;
        }
      }
      return top;
    };
    const s = this.stmts;
    const probe =
      after === null
        ? (order === 'asc' ? s.probeAsc : s.probeDesc).all({ from, to })
        : (order === 'asc' ? s.probeAscAfter : s.probeDescAfter).all({
            from,
            to,
            cts: after.ts,
            cid: after.key,
          });
    for (const [series, ts, key] of probe as Array<[number, number | null, IdKey | null]>) {
      if (ts !== null && key !== null) push({ series, buf: [], pos: 0, next: 4, lazy: { ts, key } });
    }
    const out: Array<{ row: StoredRow; series: number }> = [];
    while (out.length < want && heap.length > 0) {
      const h = pop();
      if (h.lazy !== null) {
        h.lazy = null;
        h.buf = this.seriesPage(h.series, order, from, to, after, 4, true);
        h.next = 8;
        if (h.buf.length > 0) push(h);
        continue;
      }
      const row = h.buf[h.pos++]!;
      out.push({ row, series: h.series });
      if (h.pos === h.buf.length) {
        // Refills start small and double: with rows interleaved across devices most devices
        // contribute a row or two to a page, while a device that dominates it gets big reads.
        // (powers of two only, so few distinct statements get cached; surplus rows are dropped)
        if (out.length === want) continue;
        const refill = h.next;
        h.next = Math.min(h.next * 2, 256);
        h.buf = this.seriesPage(h.series, order, from, to, { ts: row[0], key: row[1] }, refill, true);
        h.pos = 0;
        if (h.buf.length === 0) continue;
      }
      push(h);
    }
    return out;
  }

  aggregate(q: AggregateQuery): AggregateBucket[] {
    this.checkOpen();
    if (q === null || typeof q !== 'object') throw new InvalidQueryError('aggregate query must be an object');
    const order = this.checkOrder(q.order);
    const limit = this.checkLimit(q.limit);
    const { from, to } = this.checkRange(q.from, q.to);
    if (typeof q.deviceId !== 'string') throw new InvalidQueryError('deviceId must be a string');
    const bucket = q.bucket;
    if (typeof bucket !== 'number' || !Number.isSafeInteger(bucket) || bucket < 1) {
      throw new InvalidQueryError(
        `bucket must be a positive integer number of microseconds; got ${String(bucket)}`,
      );
    }
    if (!Array.isArray(q.fns) || q.fns.length === 0 || q.fns.some((f) => !AGGREGATE_FNS.includes(f))) {
      throw new InvalidQueryError(
        `fns must be a non-empty list of ${AGGREGATE_FNS.join(', ')}; got ${JSON.stringify(q.fns)}`,
      );
    }
    const series = this.devicesByName.get(q.deviceId);
    if (series === undefined || from >= to) return [];
    const s = this.stmts;
    const out: AggregateBucket[] = [];
    // Bucket by bucket: find the next point, aggregate its bucket in SQL, jump past it. Cost is
    // bounded by the rows of the returned buckets, however wide the range or sparse the data.
    let lo = from;
    let hi = to;
    while (out.length < limit && lo < hi) {
      const t = (order === 'asc' ? s.firstTs : s.lastTs).get(series, lo, hi) as number | undefined;
      if (t === undefined) break;
      const start = floorTo(t, bucket);
      // start + bucket can pass 2^53 only at the far end of the range, where `to` caps it anyway.
      const end = start > hi - bucket ? hi : start + bucket;
      const bLo = Math.max(start, lo);
      const bHi = Math.min(end, hi);
      const stats = s.bucketStats.get(series, bLo, bHi) as Record<
        'count' | 'sum' | 'avg' | 'min' | 'max',
        number | null
      >;
      const values: AggregateBucket['values'] = {};
      for (const fn of q.fns) {
        if (fn === 'first') values.first = s.firstValue.get(series, bLo, bHi) as number;
        else if (fn === 'last') values.last = s.lastValue.get(series, bLo, bHi) as number;
        else values[fn] = stats[fn];
      }
      out.push({ start, values });
      if (order === 'asc') lo = bHi;
      else hi = bLo;
    }
    return out;
  }

  // ---- files -------------------------------------------------------------------------------------

  async snapshotTo(path: string): Promise<{ index: number; bytes: number }> {
    this.checkOpen();
    const tmp = `${path}.tmp`;
    rmSync(tmp, { force: true });
    // The online backup API copies pages in steps and yields between them; writes made through
    // this connection meanwhile are copied too, so the result is the state when it finished.
    // With the failpoint armed the copy goes 8 pages a step, so a crash can land in the middle of it.
    const progress = () => {
      this.opts.failpoint?.('snapshot.mid-copy');
      return 8;
    };
    await (this.opts.failpoint ? this.db.backup(tmp, { progress }) : this.db.backup(tmp));
    let index: number;
    const copy = new Database(tmp);
    try {
      // A self-contained single file (no -wal to carry along); the store switches it back to WAL
      // when it opens it after a restore.
      copy.pragma('journal_mode = DELETE');
      index = copy.prepare(`SELECT value FROM meta WHERE key = 'applied_index'`).pluck().get() as number;
    } finally {
      copy.close();
    }
    fsyncPath(tmp);
    renameSync(tmp, path);
    fsyncPath(dirname(path), true);
    return { index, bytes: statSync(path).size };
  }

  restoreFrom(path: string): void {
    this.checkOpen();
    this.checkSnapshot(path);
    const tmp = this.tmpRestorePath();
    copyFileSync(path, tmp);
    fsyncPath(tmp);
    // Fold the WAL into data.db and close, so no -wal can be replayed onto the new file.
    this.db.pragma('wal_checkpoint(TRUNCATE)');
    this.db.close();
    this.closed = true;
    rmSync(`${this.path}-wal`, { force: true });
    rmSync(`${this.path}-shm`, { force: true });
    this.opts.failpoint?.('install.mid-swap');
    // rename is atomic: a crash before it leaves the old store, after it the new one.
    renameSync(tmp, this.path);
    fsyncPath(dirname(this.path), true);
    this.open();
  }

  private checkSnapshot(path: string): void {
    if (!existsSync(path)) throw new Error(`snapshot ${path} does not exist`);
    if (existsSync(`${path}-wal`)) {
      throw new Error(
        `snapshot ${path} has a -wal file next to it; expected a single-file snapshot made by snapshotTo`,
      );
    }
    let db: Database.Database;
    try {
      db = new Database(path, { readonly: true, fileMustExist: true });
    } catch (e) {
      throw new Error(`snapshot ${path} cannot be opened as SQLite: ${(e as Error).message}`);
    }
    try {
      let check: unknown;
      try {
        check = db.pragma('quick_check', { simple: true });
      } catch (e) {
        throw new Error(`snapshot ${path} is not a readable SQLite database: ${(e as Error).message}`);
      }
      if (check !== 'ok') throw new Error(`snapshot ${path} failed quick_check: ${String(check)}`);
      let version: unknown;
      try {
        version = db.prepare(`SELECT value FROM meta WHERE key = 'schema_version'`).pluck().get();
      } catch {
        version = undefined;
      }
      if (version !== SCHEMA_VERSION) {
        throw new Error(
          `snapshot ${path} is not a TimeStore data snapshot of schema version ${SCHEMA_VERSION} (found ${String(version)})`,
        );
      }
    } finally {
      db.close();
    }
  }

  fileSizes(): { db: number; wal: number } {
    const size = (p: string) => {
      try {
        return statSync(p).size;
      } catch {
        return 0;
      }
    };
    return { db: size(this.path), wal: size(`${this.path}-wal`) };
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.db.close();
  }
}

/** Opens (creating if needed) the data store at `path`, the data.db file itself. */
export function openDataStore(path: string, opts?: DataStoreOptions): SqliteDataStore {
  return new SqliteDataStore(path, opts);
}
