// The contract of the time-series state machine (data.db). Implemented by SqliteDataStore in
// src/storage/data/. The API and the node depend on this interface only.
import type {
  AggregateBucket,
  AggregateQuery,
  Command,
  Point,
  PointPage,
  PointQuery,
} from '../tsdb/model.js';

export interface ApplyResult {
  index: number;
  /** The points as stored by the command's puts, in op order. */
  points: Point[];
  /** Ids the command's deletes actually removed. */
  deleted: string[];
}

export interface DataStore {
  /** Index of the last command applied (0 for a new store). Durable together with the data. */
  appliedIndex(): number;
  /**
   * Apply commands in one SQLite transaction that also records the last index as applied.
   * `command: null` marks an index with no data effect (Raft no-op or config entry).
   * Indices at or below appliedIndex() are skipped (replay after a crash is harmless).
   * Deterministic: the same sequence gives the same state on every node.
   */
  applyBatch(batch: Array<{ index: number; command: Command | null }>): ApplyResult[];
  get(id: string): Point | undefined;
  query(q: PointQuery): PointPage;
  aggregate(q: AggregateQuery): AggregateBucket[];
  /** Number of points stored. */
  count(): number;
  /** Consistent copy of the store at its applied index into a new file (online; writers wait briefly at most). */
  snapshotTo(path: string): Promise<{ index: number; bytes: number }>;
  /** Replace the whole store with a snapshot file produced by snapshotTo (atomic: all or nothing). */
  restoreFrom(path: string): void;
  /** Sizes of data.db and its WAL, in bytes. */
  fileSizes(): { db: number; wal: number };
  close(): void;
}
