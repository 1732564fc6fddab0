// One place that notices a damaged data.db while the node runs. Every DataStore call goes through
// the guard (guardDataStore); SQLite reporting SQLITE_CORRUPT / SQLITE_NOTADB trips it once: the
// fault is recorded (probes, metric, 503 answers read it), logged, and written to a marker file so
// that the next start treats data.db as damaged even if SQLite's quick_check would miss it.
// From then on every data call throws StorageCorruptError: no request is served from the file.
import { writeFileSync } from 'node:fs';
import { basename } from 'node:path';
import type { DataStore } from '../data-store.js';
import { isSqliteCorruption, StorageCorruptError } from './errors.js';

export interface StorageFault {
  /** The file's name (data.db) and full path. */
  file: string;
  path: string;
  /** What SQLite (or a check) reported. */
  detail: string;
  /** ISO time the fault was first seen. */
  since: string;
}

export interface CorruptionGuardOptions {
  /** The guarded file (data.db). */
  path: string;
  /** Written (JSON StorageFault) when the guard trips; read by openVerifiedDataStore on the next start. */
  markerPath?: string;
  /** Called once, when the guard trips (log line, metric). */
  onFault?: (fault: StorageFault) => void;
  /** Injected clock (tests). */
  now?: () => Date;
}

export class CorruptionGuard {
  private current: StorageFault | null = null;

  constructor(private readonly opts: CorruptionGuardOptions) {}

  get fault(): StorageFault | null {
    return this.current;
  }

  /** Records the damage (first call only) and returns the error to throw. */
  trip(detail: string): StorageCorruptError {
    if (!this.current) {
      this.current = {
        file: basename(this.opts.path),
        path: this.opts.path,
        detail,
        since: (this.opts.now ?? (() => new Date()))().toISOString(),
      };
      if (this.opts.markerPath) {
        try {
          writeFileSync(this.opts.markerPath, JSON.stringify(this.current));
        } catch {
          // The marker only helps the next start; the fault is already in memory and in the log.
        }
      }
      try {
        this.opts.onFault?.(this.current);
      } catch {
        // reporting must not change what the caller sees
      }
    }
    return this.error();
  }

  private error(): StorageCorruptError {
    return new StorageCorruptError(this.current!.path, this.current!.detail);
  }

  /** Throws StorageCorruptError once the guard has tripped. */
  check(): void {
    if (this.current) throw this.error();
  }

  /** Runs fn; SQLite corruption trips the guard and becomes StorageCorruptError. */
  run<T>(fn: () => T): T {
    this.check();
    try {
      return fn();
    } catch (err) {
      throw this.translate(err);
    }
  }

  async runAsync<T>(fn: () => Promise<T>): Promise<T> {
    this.check();
    try {
      return await fn();
    } catch (err) {
      throw this.translate(err);
    }
  }

  private translate(err: unknown): unknown {
    if (err instanceof StorageCorruptError) return this.trip(err.detail);
    if (isSqliteCorruption(err)) {
      const e = err as Error & { code: string };
      return this.trip(`${e.code}: ${e.message}`);
    }
    return err;
  }
}

/**
 * The DataStore seen by everything above storage: the same store, with every SQLite-touching call
 * inside the guard. appliedIndex (held in memory), fileSizes and close pass through.
 */
export function guardDataStore(store: DataStore, guard: CorruptionGuard): DataStore {
  return {
    appliedIndex: () => store.appliedIndex(),
    applyBatch: (batch) => guard.run(() => store.applyBatch(batch)),
    get: (id) => guard.run(() => store.get(id)),
    query: (q) => guard.run(() => store.query(q)),
    aggregate: (q) => guard.run(() => store.aggregate(q)),
    count: () => guard.run(() => store.count()),
    snapshotTo: (path) => guard.runAsync(() => store.snapshotTo(path)),
    restoreFrom: (path) => guard.run(() => store.restoreFrom(path)),
    fileSizes: () => store.fileSizes(),
    close: () => store.close(),
  };
}
