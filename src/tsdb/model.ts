// The time-series data model shared by the engine (src/storage), the API (src/api) and the node
// (src/node). A state-machine Command is what one Raft entry carries (JSON-encoded in Entry.data).

/** One stored point. Time is integer microseconds since the Unix epoch (exact in a JS number). */
export interface Point {
  /** UUID (generated ids are UUIDv7, time-ordered). Writing an id that exists replaces that point. */
  id: string;
  deviceId: string;
  ts: number;
  value: number;
  /** Indexed string labels (low cardinality), e.g. {site: "north"}. */
  tags?: Record<string, string>;
  /** Free-form JSON stored alongside the point (the original design's "flexible schema"). */
  attributes?: Record<string, unknown>;
}

export type WriteOp = { op: 'put'; point: Point } | { op: 'delete'; id: string };

/**
 * A batch applied atomically by the engine. Ids are assigned by the node that first received the
 * write, before it is proposed, so a retried or re-forwarded command replaces with identical
 * content: applying it twice leaves the same state as applying it once.
 */
export interface Command {
  /** The client's or the receiving node's request id, for tracing and logs. */
  requestId?: string;
  ops: WriteOp[];
}

export interface PointQuery {
  deviceId?: string;
  /** Inclusive lower bound, µs. */
  from?: number;
  /** Exclusive upper bound, µs. */
  to?: number;
  order: 'asc' | 'desc';
  limit: number;
  /** Opaque cursor returned by the previous page. */
  cursor?: string;
}

export interface PointPage {
  points: Point[];
  /** Pass back as `cursor` for the next page; null when this was the last page. */
  nextCursor: string | null;
}

export type AggregateFn = 'count' | 'sum' | 'avg' | 'min' | 'max' | 'first' | 'last';

export interface AggregateQuery {
  deviceId: string;
  from?: number;
  to?: number;
  /** Bucket width in µs; buckets are aligned to the epoch. */
  bucket: number;
  fns: AggregateFn[];
  order: 'asc' | 'desc';
  limit: number;
}

export interface AggregateBucket {
  /** Bucket start, µs. */
  start: number;
  values: Partial<Record<AggregateFn, number | null>>;
}
