// The interface the HTTP API (src/api) uses to reach the database, whatever the node's shape: a
// single node applying its own commands, or a Raft member that proposes, forwards and does ReadIndex.
import type { Command, Point } from '../tsdb/model.js';
import type { DataStore } from '../storage/data-store.js';
import type { CancelSignal } from './cancellation.js';

/** Read consistency, asked for by name on every read endpoint (`?consistency=`). */
export type Consistency = 'linearizable' | 'leader' | 'none';

export interface WriteResult {
  /** The Raft index (or local apply index) the command was applied at. */
  index: number;
  points: Point[];
}

export interface TimeStoreService {
  /** Resolves once the command is committed (quorum, fsync'd) and applied locally. */
  write(command: Command, opts: { signal?: CancelSignal }): Promise<WriteResult>;
  /** Runs fn against local state once it is at least as fresh as the consistency level requires. */
  read<T>(consistency: Consistency, fn: (store: DataStore) => T, opts: { signal?: AbortSignal }): Promise<T>;
}

/**
 * Errors a service raises; the API maps them to problem+json.
 * - Unavailable: no leader / no quorum within the bounded wait → 503 with Retry-After.
 * - NotLeader: only when forwarding is impossible (e.g. `consistency=leader` with forwarding off) → 421/503.
 */
export class ServiceUnavailableError extends Error {
  constructor(
    message: string,
    readonly retryAfterSeconds = 1,
  ) {
    super(message);
    this.name = 'ServiceUnavailableError';
  }
}

export class NotLeaderError extends Error {
  constructor(
    readonly leaderId: string | null,
    readonly leaderUrl: string | null,
  ) {
    super(
      leaderId
        ? `this node is not the leader; the leader is ${leaderId}`
        : 'this node is not the leader and no leader is known',
    );
    this.name = 'NotLeaderError';
  }
}
