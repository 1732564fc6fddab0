// Wiring of one replicated node: raft.db + data.db in the data directory, the Raft core, the driver
// loop, the replicated TimeStoreService and the routers the HTTP server mounts (Raft RPCs, status,
// membership). The HTTP server itself belongs to the caller (src/node/start.ts): it mounts
// `routers`, listens, then calls start(); on SIGTERM it calls shutdown() before closing.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { NextFunction, Request, Response, Router } from 'express';
import { probesRouter, type NodePhase } from '../../observability/probes.js';
import { RaftNode } from '../../raft/raft-node.js';
import type { RaftConfig, RaftNodeApi } from '../../raft/types.js';
import type { DataStore } from '../../storage/data-store.js';
import { openRaftLog, type RaftLogStore } from '../../storage/raft-log/index.js';
import type { NodeConfig } from '../config.js';
import { RaftDriver } from './driver.js';
import { ReplicatedService } from './replicated-service.js';
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
}

export interface ReplicatedNode {
  service: ReplicatedService;
  driver: RaftDriver;
  routers: Router[];
  /** Start ticking (call once the HTTP server listens); a --join node asks to be added. */
  start(): void;
  /**
   * First step of a graceful stop, while the HTTP server still serves: a leader hands leadership
   * to the most up-to-date voter and waits (bounded) until the new leader is known. Then the
   * caller closes HTTP (in-flight requests finish, forwarded to the new leader) and calls
   * service.close() (stops the Raft loop, closes raft.db), then closes data.db.
   */
  prepareShutdown(opts?: { transferTimeoutMs?: number }): Promise<void>;
}

function envInt(name: string): number | undefined {
  const v = process.env[name];
  if (v === undefined || v === '') return undefined;
  const n = Number(v);
  return Number.isFinite(n) && n >= 0 ? n : undefined;
}

export function createReplicatedNode(config: NodeConfig, deps: ReplicatedNodeDeps): ReplicatedNode {
  const log = deps.logger ?? silentLogger;
  mkdirSync(config.dataDir, { recursive: true });
  const raftLog: RaftLogStore = openRaftLog(join(config.dataDir, 'raft.db'));
  const data = deps.data;

  if (raftLog.isEmpty()) {
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
    parallelLeaderPersist: process.env.TIMESTORE_RAFT_PARALLEL_PERSIST !== '0',
    snapshotThreshold: deps.snapshotThreshold ?? envInt('TIMESTORE_SNAPSHOT_ENTRIES') ?? 10_000,
    snapshotCatchUpEntries:
      deps.snapshotCatchUpEntries ?? envInt('TIMESTORE_SNAPSHOT_CATCHUP_ENTRIES') ?? 1_000,
    logger: log,
  });
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
    onClose: closeRaft,
  });
  // Readiness (GET /readyz, /readyz/leader): member, leader known, caught up. /livez stays the API's.
  let phase: NodePhase = 'starting';
  const probes = probesRouter(
    () => {
      const st = driver.status();
      return {
        phase: driver.isStopped && phase !== 'stopping' ? 'stopping' : phase,
        raft: { ...st, appliedIndex: driver.appliedIndex() },
        leaderCommitIndex:
          st.role === 'Leader' ? st.commitIndex : Math.max(st.commitIndex, driver.leaderCommitSeen),
        fatalError: driver.fatal ? driver.fatal.message : null,
      };
    },
    { info: { nodeId: config.id } },
  );
  const readyz = (req: Request, res: Response, next: NextFunction) =>
    req.path.startsWith('/readyz') ? probes(req, res, next) : next();
  const routers = [
    raftRouter(driver, { maxBodyBytes: raftMaxBodyBytes(config), logger: log }),
    clusterRouter({ driver, service, logger: log }),
    readyz as unknown as Router,
  ];

  driver.onFatal = (err) => {
    log.error({ err: String(err.message) }, 'raft loop failed; exiting');
    closeRaft();
    process.exitCode = 1;
    setTimeout(() => process.exit(1), 100).unref();
  };

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
    start() {
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
