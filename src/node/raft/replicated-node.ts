// Wiring of one replicated node: raft.db + data.db in the data directory, the Raft core, the driver
// loop, the replicated TimeStoreService and the routers the HTTP server mounts (Raft RPCs, status,
// membership). The HTTP server itself belongs to the caller (src/node/start.ts): it mounts
// `routers`, listens, then calls start(); on SIGTERM it calls shutdown() before closing.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { NextFunction, Request, Response, Router } from 'express';
import { probesRouter, startupPhase, type NodePhase } from '../../observability/probes.js';
import { RaftNode } from '../../raft/raft-node.js';
import type { RaftConfig, RaftNodeApi } from '../../raft/types.js';
import type { DataStore } from '../../storage/data-store.js';
import type { StorageFault } from '../../storage/integrity/corruption-guard.js';
import { RaftLogCorruptError } from '../../storage/integrity/errors.js';
import { openRaftLog, type RaftLogStore } from '../../storage/raft-log/index.js';
import type { NodeConfig } from '../config.js';
import { RaftDriver } from './driver.js';
import { failpointHook } from '../failpoints.js';
import { ReplicatedService } from './replicated-service.js';
import type { RemovedInfo } from './removal.js';
import { peerAuth } from './peer-auth.js';
import { clusterRouter } from './routes.js';
import { raftRouter, silentLogger, type Logger } from './transport.js';

export interface ReplicatedNodeDeps {
  /** The node's data.db (owned by the caller, who closes it after service.close()). */
  data: DataStore;
  logger?: Logger;
  /** The Raft core; RaftNode by default (tests may plant a fake). */
  createRaftNode?: (config: RaftConfig) => RaftNodeApi;
  /** Log compaction threshold (entries applied past the last snapshot). Env: TIMESTORE_SNAPSHOT_ENTRIES. */
  snapshotThreshold?: number;
  snapshotCatchUpEntries?: number;
  /** Bounded wait of writes/reads for a leader before 503 (ms). Env: TIMESTORE_REQUEST_TIMEOUT_MS. */
  requestTimeoutMs?: number;
  /** Damage found in data.db while running: /readyz fails naming the file. */
  storageFault?: () => StorageFault | null;
  /** How a removed node exits after its grace period (default: SIGTERM to itself). */
  exitRemoved?: (log: Logger) => void;
}

/**
 * What the operator runs when this node's raft.db is damaged: replace the member (its log cannot be
 * trusted, and a voter that lost entries it acknowledged must not vote; see src/storage/DESIGN.md).
 */
export function raftLogRemedy(config: NodeConfig): string {
  const others = (config.peers ?? []).filter((p) => p.id !== config.id).map((p) => p.url);
  const member = others[0] ?? config.join ?? '<URL of a healthy member>';
  return (
    `To replace this member: (1) on a healthy member: curl -X POST ${member}/cluster/remove ` +
    `-H 'content-type: application/json' -d '{"id":"${config.id}"}'; ` +
    `(2) keep the damaged files: mv ${config.dataDir} ${config.dataDir}.corrupt; ` +
    `(3) start this node again with an empty --data-dir ${config.dataDir} and --join ${member} ` +
    `instead of --peers: it comes back as a learner, receives a snapshot and the log from the leader, ` +
    `and is promoted to voter once caught up (docs/RELIABILITY.md, "Corruption").`
  );
}

export interface ReplicatedNode {
  service: ReplicatedService;
  driver: RaftDriver;
  routers: Router[];
  /** Start ticking (call once the HTTP server listens); a --join node asks to be added. */
  start(): void;
  /** starting, replaying, installing-snapshot, running or stopping: what the probes report. */
  phase(): NodePhase;
  /**
   * First step of a graceful stop, while the HTTP server still serves: a leader hands leadership
   * to the most up-to-date voter and waits (bounded) until the new leader is known. Then the
   * caller closes HTTP (in-flight requests finish, forwarded to the new leader) and calls
   * service.close() (stops the Raft loop, closes raft.db), then closes data.db.
   */
  prepareShutdown(opts?: { transferTimeoutMs?: number }): Promise<void>;
}

/** `{ [key]: value }` when value is defined, else `{}` (options that have their own default). */
function optional<K extends string>(key: K, value: number | undefined): { [P in K]?: number } {
  return value === undefined ? {} : ({ [key]: value } as { [P in K]?: number });
}

function removedDetail(id: string, info: RemovedInfo): string {
  return info.how === 'applied'
    ? `node ${id} was removed from the cluster (configuration entry ${info.index})`
    : `node ${id} was removed from the cluster (as member ${info.peer} answered)`;
}

/** SIGTERM to ourselves when someone handles it (the CLI's graceful shutdown); otherwise only log. */
function exitBySignal(log: Logger): void {
  if (process.listenerCount('SIGTERM') > 0) process.kill(process.pid, 'SIGTERM');
  else log.warn({}, 'removed from the cluster, but no SIGTERM handler to shut down through; staying up');
}

function envInt(name: string): number | undefined {
  const v = process.env[name];
  if (v === undefined || v === '') return undefined;
  const n = Number(v);
  return Number.isFinite(n) && n >= 0 ? n : undefined;
}

const REPAIR_ENV = 'TIMESTORE_RAFT_LOG_REPAIR';

/**
 * Opens raft.db. When only entries are damaged, the cluster has at least two other voters, and
 * TIMESTORE_RAFT_LOG_REPAIR=truncate, the log is truncated at the first damaged entry and the
 * node abstains from elections until it has committed its old last index again (RaftConfig
 * abstainUntil; test/raft/abstain.test.ts). Otherwise the RaftLogCorruptError stops the start.
 */
function openRaftLogOrRepair(config: NodeConfig, log: Logger): RaftLogStore {
  const path = join(config.dataDir, 'raft.db');
  const remedy = raftLogRemedy(config);
  const options = { remedy, failpoint: failpointHook('compact.mid-transaction') };
  try {
    return openRaftLog(path, options);
  } catch (err) {
    if (!(err instanceof RaftLogCorruptError)) throw err;
    const { damage } = err;
    const mode = process.env[REPAIR_ENV];
    if (!damage.entriesOnly || damage.firstBadIndex === null) throw err;
    if (mode !== 'truncate') {
      throw new RaftLogCorruptError(
        path,
        damage,
        `${remedy} Or, since only entries are damaged, let the node repair itself: restart it with ${REPAIR_ENV}=truncate (it drops entries from ${damage.firstBadIndex} on and takes no part in elections until it has them again from the leader).`,
      );
    }
    const store = openRaftLog(path, { verify: 'none', remedy });
    try {
      let voters: readonly string[];
      try {
        voters = store.membershipAt(damage.firstBadIndex - 1).membership.voters;
      } catch {
        voters = [];
      }
      const others = voters.filter((v) => v !== config.id).length;
      // The other voters must elect a leader without this one: at least two of them (n >= 3).
      // (A learner's acknowledgements never count: its truncation needs no such condition.)
      if (voters.length === 0 || (voters.includes(config.id) && others < 2))
        throw new RaftLogCorruptError(
          path,
          damage,
          `${REPAIR_ENV}=truncate needs at least two other voters to elect a leader while this node abstains (voters: ${voters.join(', ') || 'unknown'}). ${remedy}`,
        );
      const r = store.truncateDamaged(damage.firstBadIndex);
      log.error(
        { event: 'raft.repair', file: 'raft.db', path, problems: damage.problems, ...r },
        `raft.db was damaged from entry ${r.from}: truncated there (entries ${r.from}..${r.oldLast} dropped); this node abstains from elections until it commits index ${r.abstainUntil} again`,
      );
    } finally {
      store.close();
    }
    return openRaftLog(path, options);
  }
}

export function createReplicatedNode(config: NodeConfig, deps: ReplicatedNodeDeps): ReplicatedNode {
  const log = deps.logger ?? silentLogger;
  mkdirSync(config.dataDir, { recursive: true });
  // Verified on open (every checksum, the log's shape): a damaged raft.db stops the start here,
  // unless the operator allowed the safe repair (TIMESTORE_RAFT_LOG_REPAIR=truncate).
  const raftLog: RaftLogStore = openRaftLogOrRepair(config, log);
  const report = raftLog.openReport;
  if (report.formatBefore === 0 && !raftLog.isEmpty())
    log.info({ file: 'raft.db' }, 'raft.db migrated to the checksummed format (existing rows checksummed)');
  log.info(
    { file: 'raft.db', entries: report.verifiedEntries, meta: report.verifiedMeta, ms: report.verifyMs },
    'raft.db integrity check passed',
  );
  const data = deps.data;

  // A cluster bootstrapped just now has its founding config entries committed: nothing to replay.
  const bootstrappedNow = raftLog.isEmpty();
  if (bootstrappedNow) {
    if (config.peers) {
      raftLog.bootstrap(config.peers);
      log.info({ voters: config.peers.map((p) => p.id) }, 'bootstrapped a new cluster');
    } else if (config.join) {
      raftLog.markJoining();
      log.info({ join: config.join }, 'new node: will ask to join an existing cluster');
    } else {
      raftLog.bootstrap([{ id: config.id, url: config.advertise }]);
      log.info({}, 'bootstrapped a single-node cluster');
    }
  } else if (config.peers) {
    log.info({}, 'raft.db exists: using the persisted membership, not --peers');
  }

  const hints: Record<string, string> = { [config.id]: config.advertise };
  for (const p of config.peers ?? []) hints[p.id] = p.url;

  const driver = new RaftDriver({
    id: config.id,
    dataDir: config.dataDir,
    raftLog,
    data,
    createNode: deps.createRaftNode ?? ((c) => new RaftNode(c)),
    electionTimeoutMs: config.electionTimeoutMs,
    heartbeatMs: config.heartbeatMs,
    addressHints: hints,
    ...(config.clusterSecret ? { clusterSecret: config.clusterSecret } : {}),
    parallelLeaderPersist: process.env.TIMESTORE_RAFT_PARALLEL_PERSIST !== '0',
    snapshotThreshold: deps.snapshotThreshold ?? envInt('TIMESTORE_SNAPSHOT_ENTRIES') ?? 10_000,
    snapshotCatchUpEntries:
      deps.snapshotCatchUpEntries ?? envInt('TIMESTORE_SNAPSHOT_CATCHUP_ENTRIES') ?? 1_000,
    ...optional('applyChunkEntries', envInt('TIMESTORE_APPLY_CHUNK_ENTRIES')),
    ...optional('snapshotChunkBytes', envInt('TIMESTORE_SNAPSHOT_CHUNK_BYTES')),
    ...optional('commitNoticeDelayMs', envInt('TIMESTORE_COMMIT_NOTICE_DELAY_MS')),
    // TIMESTORE_FOLLOWER_APPLY_DELAY_MS: its name while only followers batched applies.
    ...optional(
      'applyDelayMs',
      envInt('TIMESTORE_APPLY_DELAY_MS') ?? envInt('TIMESTORE_FOLLOWER_APPLY_DELAY_MS'),
    ),
    logger: log,
  });
  // Entries raft.db knows to be committed but data.db has not applied yet (data.db restored from an
  // older snapshot, lost, or behind after a machine crash): the driver re-applies them first.
  const replayUntil = raftLog.hardState().commit;
  const replayFrom = driver.appliedIndex();
  // A snapshot transfer with no chunk for this long was abandoned by its leader.
  const snapshotIdleMs = Math.max(10_000, config.electionTimeoutMs * 5);
  let joinAbort: AbortController | null = null;
  let closed = false;
  const closeRaft = () => {
    joinAbort?.abort();
    driver.stop();
    if (closed) return;
    closed = true;
    phase = 'stopping';
    probes.stop();
    raftLog.close();
  };
  const service = new ReplicatedService(driver, {
    requestTimeoutMs:
      deps.requestTimeoutMs ??
      envInt('TIMESTORE_REQUEST_TIMEOUT_MS') ??
      Math.max(5_000, config.electionTimeoutMs * 10),
    ...optional('forwardsInFlight', envInt('TIMESTORE_FORWARDS_IN_FLIGHT')),
    ...(process.env.TIMESTORE_FORWARD_ACK === 'committed' ? { forwardAck: 'committed' as const } : {}),
    onClose: closeRaft,
  });
  // Readiness (GET /readyz, /readyz/leader): member, leader known, caught up. /livez stays the API's.
  let phase: NodePhase = 'starting';
  const currentPhase = (): NodePhase =>
    driver.isStopped && phase !== 'stopping'
      ? 'stopping'
      : startupPhase(phase, {
          appliedIndex: driver.appliedIndex(),
          replayUntil,
          snapshot: driver.snapshots.transfer(),
          nowMs: Date.now(),
          snapshotIdleMs,
        });
  const probes = probesRouter(
    () => {
      const st = driver.status();
      return {
        phase: currentPhase(),
        raft: { ...st, appliedIndex: driver.appliedIndex() },
        leaderCommitIndex:
          st.role === 'Leader' ? st.commitIndex : Math.max(st.commitIndex, driver.leaderCommitSeen),
        fatalError: driver.fatal ? driver.fatal.message : null,
        storageFault: deps.storageFault?.() ?? null,
        restartRepairsStorage: true,
        removed: driver.removed ? removedDetail(config.id, driver.removed) : null,
      };
    },
    { info: { nodeId: config.id } },
  );
  const readyz = (req: Request, res: Response, next: NextFunction) =>
    req.path.startsWith('/readyz') ? probes(req, res, next) : next();
  const routers = [
    peerAuth(config.clusterSecret) as unknown as Router,
    raftRouter(driver, { maxBodyBytes: raftMaxBodyBytes(config), logger: log }),
    clusterRouter({ driver, service, logger: log }),
    readyz as unknown as Router,
  ];

  const abstainUntil = raftLog.abstainUntil();
  if (abstainUntil > 0) {
    log.warn(
      { event: 'raft.abstain', until: abstainUntil },
      `this node lost log entries: it grants no votes and does not campaign until it has committed index ${abstainUntil} again`,
    );
    // The leader still believes this node holds what it acknowledged before (its match index
    // never goes down), so it ignores this node's rejections and never resends the lost entries.
    // A new leader starts every follower's progress afresh: while catch-up makes no progress, ask
    // the leader to hand leadership to another voter (never to this one: it may not campaign).
    let lastCommit = -1;
    const nudge = setInterval(
      () => {
        const st = driver.status();
        const leader = st.leaderId;
        if (driver.isStopped || !leader || leader === config.id) return;
        if (st.commitIndex > lastCommit) {
          lastCommit = st.commitIndex;
          return;
        }
        const to = st.membership.voters.find((v) => v !== config.id && v !== leader);
        if (!to) return;
        log.info({ leader, to }, 'catch-up stalled: asking the leader to hand leadership over');
        driver.transport
          .request({ id: leader }, 'POST', '/cluster/transfer-leadership', { to }, { timeoutMs: 10_000 })
          .catch(() => {});
      },
      Math.max(1_000, config.electionTimeoutMs * 4),
    );
    nudge.unref();
    const off = driver.onChange(() => {
      if (driver.isStopped) {
        off();
        clearInterval(nudge);
        return;
      }
      if (driver.status().commitIndex < abstainUntil) return;
      off();
      clearInterval(nudge);
      raftLog.clearAbstain();
      log.info(
        { event: 'raft.abstain.end', commitIndex: driver.status().commitIndex },
        'caught up past the lost entries: votes and campaigns again',
      );
    });
  }

  driver.onFatal = (err) => {
    log.error({ err: String(err.message) }, 'raft loop failed; exiting');
    closeRaft();
    process.exitCode = 1;
    setTimeout(() => process.exit(1), 100).unref();
  };

  // A removed node has retired (no campaigning, no serving; removal.ts). Like a removed etcd
  // member it then exits, after a grace period in which /raft/status and /readyz say `removed`,
  // unless --on-removed stay (then it can be added back). Exiting goes through SIGTERM, so the
  // CLI's graceful shutdown runs.
  let exitTimer: NodeJS.Timeout | undefined;
  driver.onRemoved = (info) => {
    if (config.onRemoved === 'stay') {
      log.info({ ...info }, 'removed from the cluster; staying up as --on-removed stay asks');
      return;
    }
    log.info(
      { ...info, graceMs: config.removedGraceMs },
      'removed from the cluster; exiting after the grace period',
    );
    clearTimeout(exitTimer);
    exitTimer = setTimeout(() => (deps.exitRemoved ?? exitBySignal)(log), config.removedGraceMs);
  };
  // Added back within the grace period (same id and data): stay.
  driver.onRejoined = () => clearTimeout(exitTimer);

  async function joinLoop(url: string, signal: AbortSignal): Promise<void> {
    let delay = 100;
    while (!signal.aborted && raftLog.lastIndex() === 0) {
      try {
        const res = await driver.transport.request(
          { url },
          'POST',
          '/cluster/join',
          { id: config.id, url: config.advertise },
          { timeoutMs: 10_000, signal },
        );
        if (res.status === 200) {
          log.info(
            { via: url, body: res.body },
            'join request accepted; waiting for the leader to replicate',
          );
          return;
        }
        log.warn({ via: url, status: res.status, body: res.body }, 'join request refused; retrying');
      } catch (err) {
        if (signal.aborted) return;
        log.warn({ via: url, err: String((err as Error).message) }, 'join request failed; retrying');
      }
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(delay * 2, 2_000);
    }
  }

  return {
    service,
    driver,
    routers,
    phase: currentPhase,
    start() {
      if (replayFrom < replayUntil && !bootstrappedNow) {
        const started = Date.now();
        log.info({ from: replayFrom + 1, to: replayUntil }, 'replaying the Raft log into data.db');
        const off = driver.onChange(() => {
          if (driver.appliedIndex() < replayUntil) return;
          off();
          log.info(
            { entries: replayUntil - replayFrom, ms: Date.now() - started },
            'Raft log replay finished',
          );
        });
      }
      driver.start();
      phase = 'running';
      if (config.join && raftLog.lastIndex() === 0) {
        joinAbort = new AbortController();
        void joinLoop(config.join, joinAbort.signal);
      }
    },
    async prepareShutdown(opts = {}) {
      joinAbort?.abort();
      phase = 'stopping';
      if (!driver.isStopped && driver.role === 'Leader' && driver.status().membership.voters.length > 1) {
        const t = driver.transferLeadership();
        if (t.ok) {
          log.info({ to: t.to }, 'shutting down: transferring leadership');
          const deadline =
            Date.now() + (opts.transferTimeoutMs ?? Math.max(2_000, config.electionTimeoutMs * 3));
          // Until this node knows the new leader, so forwarded writes can continue.
          while ((driver.leaderId === null || driver.leaderId === config.id) && Date.now() < deadline)
            await driver.waitChange(50);
          const moved = driver.leaderId !== null && driver.leaderId !== config.id;
          log.info(
            { leader: driver.leaderId },
            moved ? 'leadership transferred' : 'leadership transfer did not complete in time',
          );
        } else {
          log.warn({ err: t.error }, 'could not transfer leadership before shutdown');
        }
      }
    },
  };
}

/** Largest Raft message body a member accepts (merged appends carry many entries). */
export function raftMaxBodyBytes(config: { maxBodyBytes: number }): number {
  return Math.max(64 * 1024 * 1024, config.maxBodyBytes * 4);
}
