// data.db as the node uses it: opened after its integrity check (a Raft member's damaged file is
// moved aside and rebuilt, a single node's refused), then wrapped in the corruption guard that
// every data call of the node goes through. See src/storage/DESIGN.md.
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { DataStore } from '../storage/data-store.js';
import { CorruptionGuard, guardDataStore } from '../storage/integrity/corruption-guard.js';
import { corruptionMarkerPath, openVerifiedDataStore } from '../storage/integrity/data-file.js';
import { ConfigError, type NodeConfig } from './config.js';
import { failpointHook, plantedBug } from './failpoints.js';

const DATA_CHECKS = ['quick_check', 'integrity_check', 'none'] as const;

/** TIMESTORE_DATA_CHECK: the SQLite check data.db gets on open (default quick_check). */
function dataCheck(): (typeof DATA_CHECKS)[number] {
  const v = process.env.TIMESTORE_DATA_CHECK;
  if (v === undefined || v === '') return 'quick_check';
  if ((DATA_CHECKS as readonly string[]).includes(v)) return v as (typeof DATA_CHECKS)[number];
  throw new ConfigError(`TIMESTORE_DATA_CHECK=${v}: expected one of ${DATA_CHECKS.join(', ')}`);
}

/**
 * data.db, checked. A Raft member's damaged file is moved aside and rebuilt (the driver restores
 * the local snapshot and re-applies raft.db); a single node's is its only copy: it refuses to start.
 */
function openStoreChecked(member: boolean, path: string, logger?: Logger): DataStore {
  const check = dataCheck();
  try {
    const opened = openVerifiedDataStore(path, {
      store: {
        synchronous: member ? 'NORMAL' : 'FULL',
        failpoint: failpointHook('snapshot.mid-copy', 'install.mid-swap', 'apply.mid-batch'),
        plantedBug: plantedBug('apply-no-txn') ? 'apply-no-txn' : null,
      },
      onCorrupt: member ? 'quarantine' : 'refuse',
      check,
    });
    if (opened.quarantined) {
      logger?.error(
        {
          event: 'storage.corrupt',
          file: 'data.db',
          path,
          detail: opened.quarantined.detail,
          movedTo: opened.quarantined.movedTo,
        },
        `data.db is corrupt; moved it aside to ${opened.quarantined.movedTo[0]} (kept for analysis); rebuilding it from a snapshot (its own, else a peer's) and raft.db`,
      );
    } else {
      logger?.info({ file: 'data.db', check, ms: opened.checkMs }, 'data.db integrity check passed');
    }
    return opened.store;
  } catch (err) {
    if ((err as Error).name === 'StorageCorruptError')
      logger?.error(
        { event: 'storage.corrupt', file: 'data.db', path, err: (err as Error).message },
        'data.db is corrupt; refusing to start',
      );
    throw err;
  }
}

export interface GuardedOpenOptions {
  /** A Raft member (data.db is derived state) or a single node (data.db is its only copy). */
  member: boolean;
  /** Tests inject a store; it is guarded all the same. */
  openStore?: (config: NodeConfig) => DataStore;
  logger?: Logger;
}

export function openGuardedDataStore(
  config: NodeConfig,
  opts: GuardedOpenOptions,
): { store: DataStore; guard: CorruptionGuard } {
  const path = join(config.dataDir, 'data.db');
  const raw = opts.openStore ? opts.openStore(config) : openStoreChecked(opts.member, path, opts.logger);
  const guard = new CorruptionGuard({
    path,
    markerPath: corruptionMarkerPath(path),
    onFault: (f) =>
      opts.logger?.error(
        { event: 'storage.corrupt', file: f.file, path: f.path, detail: f.detail },
        opts.member
          ? `${f.file} is corrupt: this node serves no data (503) until it is restarted, which rebuilds it`
          : `${f.file} is corrupt: this node serves no data (503); it is the only copy: restore it from a backup`,
      ),
  });
  return { store: guardDataStore(raw, guard), guard };
}
