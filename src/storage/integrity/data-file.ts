// Opening data.db with its integrity checked, and what to do when it is damaged.
//
// data.db of a Raft member is derived state (its snapshot + raft.db's log), so a damaged file is
// moved aside (kept for forensics) and an empty one takes its place; the Raft driver then restores
// the node's own snapshot and re-applies the log (src/node/raft/driver.ts). A single node's data.db
// is its only copy: it refuses to start and says so.
import Database from 'better-sqlite3';
import { existsSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { openDataStore, type DataStoreOptions, type SqliteDataStore } from '../data/index.js';
import { isSqliteCorruption, StorageCorruptError } from './errors.js';
import { fsyncDir } from './fsync.js';

/** Marker a tripped CorruptionGuard leaves next to data.db: the next start treats the file as damaged. */
export function corruptionMarkerPath(dataPath: string): string {
  return join(dirname(dataPath), `${basename(dataPath)}.corrupt-detected.json`);
}

export interface VerifiedOpenOptions {
  store?: DataStoreOptions;
  /** 'quarantine' (Raft member: data.db is rebuilt) or 'refuse' (single node: it is the only copy). */
  onCorrupt: 'quarantine' | 'refuse';
  /** Which SQLite check runs on open (default quick_check; see src/storage/DESIGN.md for timings). */
  check?: 'quick_check' | 'integrity_check' | 'none';
  /** Injected clock for the quarantine file name. */
  now?: () => Date;
}

export interface VerifiedOpen {
  store: SqliteDataStore;
  /** How long the check took (ms) and what it said. */
  checkMs: number;
  /** When data.db was damaged and moved aside: what was wrong and where the files went. */
  quarantined: { detail: string; movedTo: string[] } | null;
}

/**
 * Runs the check on the file, opened on its own connection so that nothing is created or cached
 * before the verdict. The detail of the damage, or null when it is sound (or does not exist yet).
 */
function checkWith(path: string, check: 'quick_check' | 'integrity_check'): string | null {
  if (!existsSync(path)) return null;
  let db: Database.Database | null = null;
  try {
    // Not readonly: a -wal left by a crash must be replayed (that needs write access to -shm).
    db = new Database(path, { fileMustExist: true });
    const rows = db.pragma(`${check}(5)`) as Array<Record<string, string>>;
    const msgs = rows.map((r) => Object.values(r)[0]!);
    return msgs.length === 1 && msgs[0] === 'ok' ? null : `${check}: ${msgs.join('; ')}`;
  } catch (err) {
    if (isSqliteCorruption(err))
      return `${check} failed: ${(err as { code: string }).code}: ${(err as Error).message}`;
    throw err;
  } finally {
    db?.close();
  }
}

/** Moves data.db and its -wal/-shm aside as <name>.corrupt-<time>[-wal|-shm]; returns the new paths. */
export function quarantine(path: string, now: Date): string[] {
  const stamp = now.toISOString().replace(/[:.]/g, '-');
  const moved: string[] = [];
  for (const suffix of ['', '-wal', '-shm']) {
    const from = `${path}${suffix}`;
    if (!existsSync(from)) continue;
    const to = `${path}.corrupt-${stamp}${suffix}`;
    renameSync(from, to);
    moved.push(to);
  }
  fsyncDir(dirname(path));
  return moved;
}

/**
 * Opens data.db after checking it. Damage is: a marker left by a guard that tripped at runtime,
 * the check failing, or SQLite refusing the file (SQLITE_CORRUPT / SQLITE_NOTADB) while opening.
 */
export function openVerifiedDataStore(path: string, opts: VerifiedOpenOptions): VerifiedOpen {
  const marker = corruptionMarkerPath(path);
  const started = performance.now();
  let damage: string | null = null;
  if (existsSync(marker)) {
    let detail = 'a previous run found it damaged';
    try {
      const m = JSON.parse(readFileSync(marker, 'utf8')) as { detail?: string; since?: string };
      detail = `found damaged at ${m.since ?? '?'}: ${m.detail ?? '?'}`;
    } catch {
      // an unreadable marker still says the file was damaged
    }
    damage = detail;
  } else {
    const check = opts.check ?? 'quick_check';
    if (check !== 'none') damage = checkWith(path, check);
  }
  let store: SqliteDataStore | null = null;
  if (damage === null) {
    try {
      store = openDataStore(path, opts.store);
    } catch (err) {
      if (!isSqliteCorruption(err)) throw err;
      damage = `${(err as { code: string }).code}: ${(err as Error).message}`;
    }
  }
  const checkMs = Math.round((performance.now() - started) * 10) / 10;
  if (store) return { store, checkMs, quarantined: null };
  if (opts.onCorrupt === 'refuse') {
    throw new StorageCorruptError(
      path,
      `${damage}. This node has no replica to rebuild it from: stop it, keep the file for analysis, and restore data.db from a backup (see docs/RELIABILITY.md, "Corruption")`,
    );
  }
  const movedTo = quarantine(path, (opts.now ?? (() => new Date()))());
  rmSync(marker, { force: true });
  return { store: openDataStore(path, opts.store), checkMs, quarantined: { detail: damage!, movedTo } };
}
