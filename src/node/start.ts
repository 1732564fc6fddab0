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
import { tracingEnabledFromEnv } from '../observability/tracing.js';
import { withAppendFastPath } from './raft/append-fast-path.js';
import type { DataStore } from '../storage/data-store.js';
import { openDataStore } from '../storage/data/index.js';
import { ConfigError, type NodeConfig } from './config.js';
import { listen, type HttpServerHandle } from './http-server.js';
import { LocalService } from './local-service.js';
import { createNodeObservability, type NodeObservability } from './observability.js';
import { createReplicatedNode, raftMaxBodyBytes, type ReplicatedNode } from './raft/replicated-node.js';
import type { TimeStoreService } from './service.js';

export interface StartNodeOptions {
  logger?: Logger;
  /** Reported by /livez and the OpenAPI document; default: package.json's version. */
  version?: string;
  /** Open the data store (tests inject an in-memory one); default: openDataStore(<data-dir>/data.db). */
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
  logger?: Logger,
): { service: ClosableService; raft?: ReplicatedNode } {
  if (isRaftMember(config)) {
    const raft = createReplicatedNode(config, { data: store, ...(logger ? { logger } : {}) });
    return { service: raft.service, raft };
  }
  return { service: new LocalService(store) };
}

export async function startNode(config: NodeConfig, opts: StartNodeOptions = {}): Promise<NodeHandle> {
  const logger = opts.logger;
  mkdirSync(config.dataDir, { recursive: true });
  // A Raft member's writes are durable in raft.db before they are applied, and the driver re-applies
  // from there (or from its local snapshot) after a crash, so data.db need not fsync each apply:
  // that takes one fsync off every write's path. A single node's data.db is its only record.
  const store = opts.openStore
    ? opts.openStore(config)
    : openDataStore(join(config.dataDir, 'data.db'), {
        synchronous: isRaftMember(config) ? 'NORMAL' : 'FULL',
      });
  let service: ClosableService;
  let raft: ReplicatedNode | undefined;
  let http: HttpServerHandle;
  let obs: NodeObservability | undefined;
  try {
    ({ service, raft } = createService(config, store, logger));
    const version = opts.version ?? packageVersion();
    obs = createNodeObservability({
      config,
      store,
      version,
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
    // on a single node and on the Raft leader, without tracing. TIMESTORE_FAST_WRITE=0 turns it off.
    const fast = process.env.TIMESTORE_FAST_WRITE !== '0' && !tracingEnabledFromEnv();
    const api = obs.metrics.api;
    const driver = raft?.driver;
    const handler = fast
      ? withFastWrite(
          {
            service,
            maxBodyBytes: config.maxBodyBytes,
            eligible: driver ? () => driver.role === 'Leader' : () => true,
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
    // /raft/append likewise, on every Raft member (append-fast-path.ts).
    const served =
      fast && driver
        ? withAppendFastPath(
            driver,
            {
              maxBodyBytes: raftMaxBodyBytes(config),
              metrics: { requestDuration: api.requestDuration, requestsInFlight: api.requestsInFlight },
            },
            handler,
          )
        : handler;
    http = await listen(served, {
      host: config.listen.host,
      port: config.listen.port,
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
        await raft?.prepareShutdown(); // a leader hands leadership over while HTTP still serves
        await obs?.close(); // probes fail with `stopping`; the leader label goes to follower
        await http.close(opts.shutdownGraceMs ?? 10_000);
        await service.close();
        store.close();
        logger?.info('node stopped; data store closed');
      })());
    return { config, url: http.url, port: http.port, app, http, service, store, close };
  } catch (err) {
    await obs?.close();
    store.close();
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
