// startNode(config): open the store, build the service and the HTTP app, listen. Returns a handle
// whose close() shuts down in order: stop HTTP (finishing in-flight requests), drain the service,
// close SQLite. The choice of service (single node vs Raft) is made in createService, one place.
import { mkdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type express from 'express';
import type { Logger } from 'pino';
import { createApp, type ExtraRouter } from '../api/index.js';
import { withFastWrite } from '../api/fast-write.js';
import { withAppendFastPath } from './raft/append-fast-path.js';
import { withForwardFastPath } from './raft/forward-fast-path.js';
import { peerStreamServer } from './raft/peer-stream-server.js';
import { CLUSTER_MAX_BODY_BYTES } from './raft/routes.js';
import type { DataStore } from '../storage/data-store.js';
import type { CorruptionGuard, StorageFault } from '../storage/integrity/corruption-guard.js';
import { ConfigError, type NodeConfig } from './config.js';
import { armFailpoints } from './failpoints.js';
import { openGuardedDataStore } from './data-store-open.js';
import { fastPathsEnabled, listen, type HttpServerHandle } from './http-server.js';
import { LocalService } from './local-service.js';
import { createNodeObservability, type NodeObservability } from './observability.js';
import { recoverDataFromPeers } from './raft/data-recovery.js';
import { createReplicatedNode, raftMaxBodyBytes, type ReplicatedNode } from './raft/replicated-node.js';
import { silentLogger } from './raft/transport.js';
import type { TimeStoreService } from './service.js';

export interface StartNodeOptions {
  logger?: Logger;
  /** Reported by /livez and the OpenAPI document; default: package.json's version. */
  version?: string;
  /**
   * Open the data store (tests inject one); default: <data-dir>/data.db, checked on open
   * (openVerifiedDataStore). Either way it is wrapped in the corruption guard.
   */
  openStore?: (config: NodeConfig) => DataStore;
  extraRouters?: ExtraRouter[];
  /** How long close() waits for in-flight requests before dropping connections. */
  shutdownGraceMs?: number;
}

export interface NodeHandle {
  config: NodeConfig;
  /** Where the node actually listens (the real port when --listen asked for port 0). */
  url: string;
  port: number;
  app: express.Express;
  http: HttpServerHandle;
  service: TimeStoreService;
  store: DataStore;
  /** Damage found in data.db while running (null while sound): reads and writes answer 503. */
  storageFault(): StorageFault | null;
  /** Graceful shutdown; idempotent. */
  close(): Promise<void>;
}

/** A service with a lifecycle (LocalService now, the Raft service later). */
type ClosableService = TimeStoreService & { close(): Promise<void> };

/** With --peers or --join a node is a Raft member (src/node/raft); otherwise a cluster of its own. */
function isRaftMember(config: NodeConfig): boolean {
  return Boolean(config.peers || config.join);
}

/** Builds the service isRaftMember chose: LocalService, or the Raft node's replicated service. */
function createService(
  config: NodeConfig,
  store: DataStore,
  guard: CorruptionGuard,
  logger?: Logger,
): { service: ClosableService; raft?: ReplicatedNode } {
  const inner = isRaftMember(config)
    ? createReplicatedNode(config, {
        data: store,
        storageFault: () => guard.fault,
        ...(logger ? { logger } : {}),
      })
    : null;
  const service: ClosableService = inner ? inner.service : new LocalService(store);
  // Once data.db is known to be damaged no request touches it: the same 503 for reads and writes
  // whatever the service (a write on a Raft member would otherwise be committed and then fail to
  // apply here).
  const guarded: ClosableService = {
    write: async (command, o) => {
      guard.check();
      return service.write(command, o);
    },
    read: async (consistency, fn, o) => {
      guard.check();
      return service.read(consistency, fn, o);
    },
    close: () => service.close(),
  };
  return inner ? { service: guarded, raft: inner } : { service: guarded };
}

export async function startNode(config: NodeConfig, opts: StartNodeOptions = {}): Promise<NodeHandle> {
  const logger = opts.logger;
  // Test-only (TIMESTORE_FAILPOINTS, TIMESTORE_TEST_BUG); a typo in them fails the start here.
  const armed = armFailpoints();
  if (armed.failpoints.length > 0 || armed.bug) logger?.warn(armed, 'test failpoints armed');
  mkdirSync(config.dataDir, { recursive: true });
  // A Raft member's writes are durable in raft.db before they are applied, and the driver re-applies
  // from there (or from its local snapshot) after a crash, so data.db need not fsync each apply:
  // that takes one fsync off every write's path. A single node's data.db is its only record.
  const { store, guard } = openGuardedDataStore(config, {
    member: isRaftMember(config),
    ...(opts.openStore ? { openStore: opts.openStore } : {}),
    ...(logger ? { logger } : {}),
  });
  let service: ClosableService;
  let raft: ReplicatedNode | undefined;
  let http: HttpServerHandle;
  let obs: NodeObservability | undefined;
  try {
    if (isRaftMember(config)) {
      // data.db behind raft.db with no local snapshot to rebuild from (e.g. it was damaged and
      // moved aside above): a peer's snapshot, before the Raft loop needs the state.
      const hints: Record<string, string> = {};
      for (const p of config.peers ?? []) hints[p.id] = p.url;
      await recoverDataFromPeers({
        selfId: config.id,
        dataDir: config.dataDir,
        data: store,
        hints,
        log: logger ?? silentLogger,
        ...(config.clusterSecret ? { clusterSecret: config.clusterSecret } : {}),
      });
    }
    ({ service, raft } = createService(config, store, guard, logger));
    const version = opts.version ?? packageVersion();
    obs = createNodeObservability({
      config,
      store,
      version,
      storageFault: () => guard.fault,
      ...(raft ? { raft } : {}),
      ...(logger ? { logger } : {}),
    });
    const app = createApp({
      service,
      nodeId: config.id,
      version,
      maxBodyBytes: config.maxBodyBytes,
      ...(logger ? { logger } : {}),
      metrics: obs.metrics.api,
      middleware: obs.middleware,
      openapiPaths: obs.openapiPaths,
      extraRouters: [...obs.routers, ...(raft?.routers ?? []), ...(opts.extraRouters ?? [])],
    });
    // Single-entry writes skip express where nothing but the write itself is needed (fast-write.ts):
    // on every node (a follower forwards), without tracing. TIMESTORE_FAST_WRITE=0 turns it off.
    const fast = fastPathsEnabled();
    const api = obs.metrics.api;
    const driver = raft?.driver;
    const handler = fast
      ? withFastWrite(
          {
            service,
            maxBodyBytes: config.maxBodyBytes,
            // A candidate has no leader to forward to: express waits for one and reports it.
            eligible: driver ? () => driver.role !== 'Candidate' && driver.leaderId !== null : () => true,
            inPeerScope: obs.inPeerScope,
            metrics: {
              requestDuration: api.requestDuration,
              requestsInFlight: api.requestsInFlight,
              ingestedPoints: api.ingestedPoints,
            },
            ...(logger ? { requestLogger: logger, appLogger: logger } : {}),
          },
          app,
        )
      : app;
    // /raft/append likewise, on every Raft member (append-fast-path.ts), and /raft/forward on the
    // leader (forward-fast-path.ts).
    const peerMetrics = { requestDuration: api.requestDuration, requestsInFlight: api.requestsInFlight };
    const secret = config.clusterSecret ? { clusterSecret: config.clusterSecret } : {};
    const served =
      fast && raft
        ? withAppendFastPath(
            raft.driver,
            { maxBodyBytes: raftMaxBodyBytes(config), ...secret, metrics: peerMetrics },
            withForwardFastPath(
              raft.driver,
              raft.service,
              { maxBodyBytes: CLUSTER_MAX_BODY_BYTES, ...secret, metrics: peerMetrics },
              handler,
            ),
          )
        : handler;
    http = await listen(served, {
      host: config.listen.host,
      port: config.listen.port,
      ...(fast && raft
        ? {
            upgrade: peerStreamServer({
              driver: raft.driver,
              service: raft.service,
              appendMaxBytes: raftMaxBodyBytes(config),
              forwardMaxBytes: CLUSTER_MAX_BODY_BYTES,
              ...secret,
              metrics: peerMetrics,
            }),
          }
        : {}),
      requestTimeoutMs: config.bodyTimeoutMs,
      ...(logger ? { logger } : {}),
    }).catch((err: NodeJS.ErrnoException) => {
      // The operator's fix is a different --listen (or stopping the other process): say so.
      if (err.code === 'EADDRINUSE' || err.code === 'EADDRNOTAVAIL' || err.code === 'EACCES') {
        throw new ConfigError(
          `--listen ${config.listen.host}:${config.listen.port}: cannot listen (${err.code}: ${err.message})`,
        );
      }
      throw err;
    });
    raft?.start();
    obs.started();
    logger?.info(
      { url: http.url, dataDir: config.dataDir, appliedIndex: store.appliedIndex(), points: store.count() },
      'node listening',
    );

    let closing: Promise<void> | null = null;
    const close = () =>
      (closing ??= (async () => {
        raft?.service.beginShutdown(); // forwarded writes stop waiting for this node's own apply
        await raft?.prepareShutdown(); // a leader hands leadership over while HTTP still serves
        await obs?.close(); // probes fail with `stopping`; the leader label goes to follower
        await http.close(opts.shutdownGraceMs ?? 10_000);
        await service.close();
        store.close();
        logger?.info('node stopped; data store closed');
      })());
    return {
      config,
      url: http.url,
      port: http.port,
      app,
      http,
      service,
      store,
      storageFault: () => guard.fault,
      close,
    };
  } catch (err) {
    await obs?.close();
    store.close();
    if ((err as Error).name === 'RaftLogCorruptError')
      logger?.error(
        { event: 'storage.corrupt', file: 'raft.db', err: (err as Error).message },
        'raft.db is corrupt; refusing to start',
      );
    throw err;
  }
}

let cachedVersion: string | undefined;

/** The version in package.json (found by walking up from this file: works from src/ and dist/). */
export function packageVersion(): string {
  if (cachedVersion) return cachedVersion;
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    try {
      const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as {
        name?: string;
        version?: string;
      };
      if (pkg.name === 'timestore' && pkg.version) return (cachedVersion = pkg.version);
    } catch {
      // not here; go up
    }
    dir = dirname(dir);
  }
  return (cachedVersion = '0.0.0');
}
