// Rebuilding a Raft member's data.db from a peer's snapshot, before the Raft loop starts, when the
// node's own files cannot do it: data.db is behind raft.db's snapshot (it was damaged and moved
// aside, or lost) and no local snapshot file covers that point (e.g. the node got its snapshot
// from the leader, and installed snapshots are not kept as files).
//
// Safe for Raft because a snapshot is committed state (a node snapshots only what it applied) and
// it is installed with InstallSnapshot's rule: the log after the snapshot index is kept when it
// agrees at that index, otherwise dropped (then it held nothing committed after that point that the
// snapshot lacks). The hard state's term and vote are kept; commit rises to the snapshot index.
import { createHash } from 'node:crypto';
import Database from 'better-sqlite3';
import {
  createWriteStream,
  existsSync,
  mkdirSync,
  readdirSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { request } from 'undici';
import type { NodeId, SnapshotMeta } from '../../raft/types.js';
import type { DataStore } from '../../storage/data-store.js';
import { openRaftLog } from '../../storage/raft-log/index.js';
import { pendingSnapshotMarker } from './driver.js';
import type { Logger } from './transport.js';

export interface DataRecoveryOptions {
  selfId: NodeId;
  dataDir: string;
  data: DataStore;
  /** Member URLs known from the command line (--peers), tried after the ones in raft.db. */
  hints?: Record<NodeId, string>;
  log: Logger;
  timeoutMs?: number;
  /** --cluster-secret: GET /raft/snapshot/latest is a peer endpoint and needs it when set. */
  clusterSecret?: string;
}

export type DataRecoveryResult =
  | { action: 'not-needed' }
  | { action: 'restored'; from: NodeId; index: number; keptLog: boolean }
  | { action: 'impossible'; tried: Array<{ id: NodeId; error: string }> };

/** True when the file opens as SQLite and passes quick_check. */
function soundSqlite(path: string): boolean {
  let db: Database.Database | null = null;
  try {
    db = new Database(path, { readonly: true, fileMustExist: true });
    return db.pragma('quick_check', { simple: true }) === 'ok';
  } catch {
    return false;
  } finally {
    db?.close();
  }
}

/**
 * Index of the newest sound local snapshot file (0: none). A damaged one is renamed
 * `<name>.corrupt` (kept, and no longer picked by the driver) so that a peer's is fetched instead.
 */
function newestLocalSnapshot(snapDir: string, log: Logger): number {
  if (!existsSync(snapDir)) return 0;
  const found: number[] = [];
  for (const f of readdirSync(snapDir)) {
    const m = /^snap-(\d+)\.db$/.exec(f);
    if (m) found.push(Number(m[1]));
  }
  for (const index of found.sort((a, b) => b - a)) {
    const path = join(snapDir, `snap-${index}.db`);
    if (soundSqlite(path)) return index;
    renameSync(path, `${path}.corrupt`);
    log.error(
      { event: 'storage.corrupt', file: `snap-${index}.db`, movedTo: `${path}.corrupt` },
      `local snapshot ${path} is damaged; kept as ${path}.corrupt, not used`,
    );
  }
  return 0;
}

/** Downloads a peer's newest snapshot into `dir`; checks size and sha256. */
async function download(
  url: string,
  dir: string,
  timeoutMs: number,
  clusterSecret: string | undefined,
): Promise<{ path: string; meta: SnapshotMeta }> {
  const res = await request(`${url}/raft/snapshot/latest`, {
    method: 'GET',
    ...(clusterSecret ? { headers: { authorization: `Bearer ${clusterSecret}` } } : {}),
    headersTimeout: timeoutMs,
    bodyTimeout: timeoutMs,
  });
  if (res.statusCode !== 200) {
    const text = await res.body.text();
    throw new Error(`HTTP ${res.statusCode}: ${text.slice(0, 200)}`);
  }
  const sha = String(res.headers['x-timestore-snapshot-sha256'] ?? '');
  const size = Number(res.headers['content-length']);
  const meta = JSON.parse(
    Buffer.from(String(res.headers['x-timestore-snapshot-meta'] ?? ''), 'base64').toString('utf8'),
  ) as SnapshotMeta;
  if (!Number.isSafeInteger(meta?.index) || !Number.isSafeInteger(meta?.term) || !meta.membership)
    throw new Error('the snapshot metadata header is missing or malformed');
  const path = join(dir, `fetched-${meta.index}.db`);
  const h = createHash('sha256');
  let got = 0;
  await pipeline(
    res.body,
    async function* (src: Readable) {
      for await (const chunk of src) {
        h.update(chunk as Buffer);
        got += (chunk as Buffer).length;
        yield chunk;
      }
    },
    createWriteStream(path),
  );
  if (got !== size || h.digest('hex') !== sha) {
    rmSync(path, { force: true });
    throw new Error(`the snapshot arrived incomplete or changed (${got} of ${size} bytes, sha256 mismatch)`);
  }
  return { path, meta };
}

export async function recoverDataFromPeers(opts: DataRecoveryOptions): Promise<DataRecoveryResult> {
  const snapDir = join(opts.dataDir, 'snapshots');
  const raftPath = join(opts.dataDir, 'raft.db');
  if (!existsSync(raftPath)) return { action: 'not-needed' };
  // Read only what decides; the node verifies the whole file when it opens it for real.
  const raftLog = openRaftLog(raftPath, { verify: 'none' });
  try {
    const need = raftLog.snapshotMeta().index;
    if (opts.data.appliedIndex() >= need) return { action: 'not-needed' };
    if (newestLocalSnapshot(snapDir, opts.log) >= need) return { action: 'not-needed' };
    const urls = new Map<NodeId, string>();
    for (const [id, url] of Object.entries(raftLog.membershipAt(raftLog.lastIndex()).contexts))
      if (id !== opts.selfId && url) urls.set(id, url);
    for (const [id, url] of Object.entries(opts.hints ?? {}))
      if (id !== opts.selfId && !urls.has(id)) urls.set(id, url);
    opts.log.warn(
      { appliedIndex: opts.data.appliedIndex(), snapshotIndex: need, peers: [...urls.keys()] },
      'data.db is behind raft.db and no local snapshot covers it: fetching a snapshot from a peer',
    );
    const incoming = join(snapDir, 'incoming');
    mkdirSync(incoming, { recursive: true });
    const tried: Array<{ id: NodeId; error: string }> = [];
    for (const [id, url] of urls) {
      let fetched: { path: string; meta: SnapshotMeta };
      try {
        fetched = await download(url, incoming, opts.timeoutMs ?? 120_000, opts.clusterSecret);
      } catch (err) {
        tried.push({ id, error: (err as Error).message });
        continue;
      }
      const { path, meta } = fetched;
      try {
        if (meta.index < need) {
          tried.push({ id, error: `its snapshot ${meta.index} is older than this node's ${need}` });
          continue;
        }
        let keepLog = false;
        if (meta.index <= raftLog.lastIndex()) {
          try {
            keepLog = raftLog.term(meta.index) === meta.term;
          } catch {
            keepLog = false;
          }
        }
        const hard = raftLog.hardState();
        const hardState = { ...hard, commit: Math.max(hard.commit, meta.index) };
        // The same crash marker as a snapshot from the leader: a crash after the restore and before
        // raft.db records it is finished by the driver on the next start.
        const marker = pendingSnapshotMarker(opts.dataDir);
        if (!keepLog) writeFileSync(marker, JSON.stringify({ meta, path }));
        opts.data.restoreFrom(path);
        if (keepLog) raftLog.persist({ hardState });
        else raftLog.persist({ snapshot: meta, hardState });
        rmSync(marker, { force: true });
        opts.log.warn(
          { from: id, index: meta.index, keptLog: keepLog },
          `data.db rebuilt from ${id}'s snapshot at index ${meta.index}; the log after it is re-applied`,
        );
        return { action: 'restored', from: id, index: meta.index, keptLog: keepLog };
      } catch (err) {
        tried.push({ id, error: (err as Error).message });
      } finally {
        rmSync(path, { force: true });
      }
    }
    opts.log.error({ tried }, 'no peer could provide a usable snapshot for data.db');
    return { action: 'impossible', tried };
  } finally {
    raftLog.close();
  }
}
