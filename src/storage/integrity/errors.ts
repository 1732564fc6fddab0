// Errors that say a storage file is damaged. They carry the file and what was found, so that the
// API (503 storage-corrupt), the probes (/readyz reason) and the start-up message can all name it.
// Matched by `name` outside src/storage (src/api does not import storage).

/** SQLite result codes that mean "the file is not a sound database", extended codes included. */
const CORRUPTION_CODES = /^SQLITE_(CORRUPT|NOTADB)(_|$)/;

/** True when err is SQLite reporting a damaged file (SQLITE_CORRUPT*, SQLITE_NOTADB*). */
export function isSqliteCorruption(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && CORRUPTION_CODES.test(code);
}

/**
 * data.db (or another derived file) is damaged: the node must not serve from it. `file` is the path,
 * `detail` what was found (quick_check output, the SQLite error).
 */
export class StorageCorruptError extends Error {
  constructor(
    readonly file: string,
    readonly detail: string,
  ) {
    super(`storage file ${file} is corrupt: ${detail}`);
    this.name = 'StorageCorruptError';
  }
}

/** Where a damaged raft.db was found damaged: an entry range, or a metadata row. */
export interface RaftLogDamage {
  /** First and last index of the entries found damaged (null when only metadata is damaged). */
  firstBadIndex: number | null;
  lastBadIndex: number | null;
  /** Human-readable findings, one per problem (capped). */
  problems: string[];
  /**
   * Only entries are damaged (bad checksums, malformed rows, a hole), SQLite's structure and the
   * metadata rows are sound: truncating the log at firstBadIndex leaves a consistent file.
   */
  entriesOnly: boolean;
}

/**
 * raft.db is damaged. Not repaired automatically: a voter whose log lost entries it acknowledged
 * could help elect a leader that lacks them (see src/storage/DESIGN.md). The message says which
 * file, which index range, and what the operator runs to replace the node.
 */
export class RaftLogCorruptError extends Error {
  constructor(
    readonly file: string,
    readonly damage: RaftLogDamage,
    readonly remedy: string,
  ) {
    const range =
      damage.firstBadIndex === null
        ? 'its metadata (hard state / snapshot / compaction rows)'
        : damage.firstBadIndex === damage.lastBadIndex
          ? `entry ${damage.firstBadIndex}`
          : `entries ${damage.firstBadIndex}..${damage.lastBadIndex}`;
    super(
      `raft.db ${file} is corrupt in ${range}: ${damage.problems.join('; ')}. ` +
        `The node refuses to start (or stops) rather than serve or vote with a damaged Raft log. ${remedy}`,
    );
    this.name = 'RaftLogCorruptError';
  }
}
