// Observability of one node, built and bound in one place (docs/OBSERVABILITY.md): Prometheus
// metrics (GET /metrics) fed from the Raft driver's status and the data directory, health probes
// (/livez here; /readyz and /readyz/leader come from the Raft node when there is one), request
// logs, tracing middleware and trace propagation on requests to peers, Raft event logs and the
// Kubernetes leader label. startNode calls createNodeObservability once and passes the pieces to
// createApp; tracing itself (the OpenTelemetry SDK) is started once per process by the CLI.
//
// Requests to peers (ReplicatedService forwarding a write, asking the leader for a read index) go
// through undici; they are observed through undici's diagnostics channels, which run synchronously
// in the caller's async context: the forward gets its CLIENT span and a `traceparent`, and is
// counted in timestore_forwarded_writes_total, without touching the Raft code.
import { AsyncLocalStorage } from 'node:async_hooks';
import diagnosticsChannel from 'node:diagnostics_channel';
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import { pino, type Logger } from 'pino';
import { Gauge } from 'prom-client';
import { context, ROOT_CONTEXT, trace, type Span } from '@opentelemetry/api';
import type { ExtraRouter, OpenApiPathItem } from '../api/index.js';
import {
  bindRaftStatus,
  bindStorageSizes,
  cachedValue,
  createLeaderLabeler,
  createMetrics,
  createRaftEventLogger,
  inClusterTarget,
  injectTraceHeaders,
  metricsRouter,
  probesOpenApiPaths,
  probesRouter,
  recordError,
  requestLogger,
  requestMetricsMiddleware,
  SpanKind,
  staleLeaderDemoter,
  statStorageSizes,
  tracer,
  tracingMiddleware,
  type LeaderLabeler,
  type Metrics,
  type NodePhase,
} from '../observability/index.js';
import type { DataStore } from '../storage/data-store.js';
import type { StorageFault } from '../storage/integrity/corruption-guard.js';
import type { NodeConfig } from './config.js';
import type { ReplicatedNode } from './raft/replicated-node.js';

export interface NodeObservabilityOptions {
  config: NodeConfig;
  store: DataStore;
  /** The Raft member, when the node has one (--peers / --join). */
  raft?: ReplicatedNode;
  logger?: Logger;
  version: string;
  /** How often timestore_storage_points recounts (a full count(*) in SQLite); default 60 s. */
  pointsTtlMs?: number;
  /** Damage found in data.db while running (timestore_storage_corrupt, probes). */
  storageFault?: () => StorageFault | null;
}

export interface NodeObservability {
  metrics: Metrics;
  /** For createApp's `middleware` (tracing, request metrics, request logs, peer-request scope). */
  middleware: RequestHandler[];
  /** For createApp's `extraRouters`: GET /metrics and the probes this node does not get elsewhere. */
  routers: ExtraRouter[];
  openapiPaths: Record<string, OpenApiPathItem>;
  /**
   * Runs `fn` as a request of this node for what it sends to peers (the forward's span and
   * timestore_forwarded_writes_total): what express's middleware does, for handlers outside express.
   */
  inPeerScope(fn: () => void): void;
  /** The node listens and its Raft loop runs: readiness may pass. */
  started(): void;
  /** Shutdown: probes fail with `stopping`, the leader label goes to follower; idempotent. */
  close(): Promise<void>;
}

/** timestore_storage_corrupt{file="data.db"}: 1 once the file was found damaged while running. */
function bindStorageFault(metrics: Metrics, fault: () => StorageFault | null): void {
  new Gauge({
    name: 'timestore_storage_corrupt',
    help: "1 when this node found the storage file damaged while running (it serves no data from it; a restart rebuilds a Raft member's data.db).",
    labelNames: ['file'],
    registers: [metrics.registry],
    collect() {
      this.set({ file: 'data.db' }, fault() ? 1 : 0);
    },
  });
}

/** Paths that are not logged at info, one line per request: probes, scrapes and Raft peer traffic. */
const QUIET_PATHS = [
  '/livez',
  '/readyz',
  '/readyz/leader',
  '/metrics',
  '/raft/append',
  '/raft/vote',
  '/raft/message',
  '/raft/timeout-now',
  '/raft/status',
  '/raft/read-index',
  '/raft/commit-index',
  '/raft/snapshot/status',
  '/raft/snapshot/chunk',
];

export function createNodeObservability(opts: NodeObservabilityOptions): NodeObservability {
  const { config, store, raft } = opts;
  const log = opts.logger ?? pino({ level: 'silent' });
  const metrics = createMetrics(undefined, { version: opts.version });
  const fault = opts.storageFault ?? (() => null);
  // A damaged data.db cannot be counted; the scrape still answers (the corrupt gauge says why).
  const points = cachedValue(() => (fault() ? undefined : store.count()), opts.pointsTtlMs ?? 60_000);
  bindStorageFault(metrics, fault);
  bindStorageSizes(metrics, () => ({ ...statStorageSizes(config.dataDir), points: points() }));

  let phase: NodePhase = 'starting';
  let labeler: LeaderLabeler | null = null;
  let offChange: (() => void) | null = null;
  let stopProbes: () => void = () => {};
  let raftEvents: ReturnType<typeof createRaftEventLogger> | null = null;
  const routers: ExtraRouter[] = [metricsRouter(metrics)];

  if (raft) {
    const driver = raft.driver;
    const raftStatus = () => {
      const st = driver.status();
      const info = driver.storageInfo();
      return {
        ...st,
        appliedIndex: driver.appliedIndex(),
        firstIndex: info.firstIndex,
        snapshotIndex: info.snapshotIndex,
      };
    };
    const raftMetrics = bindRaftStatus(metrics, raftStatus);
    const raftLog = createRaftEventLogger(log);
    raftEvents = raftLog;
    // In Kubernetes: the pod's role label, and once this pod is labelled leader in a term, the
    // stale leader labels of the other members' pods (named like their node ids, as in a
    // StatefulSet) from older terms set to follower.
    const k8s = inClusterTarget();
    const demote = k8s ? staleLeaderDemoter({ target: k8s, logger: log }) : null;
    labeler = k8s
      ? createLeaderLabeler({
          target: k8s,
          logger: log,
          onApplied(value, term) {
            if (value !== 'leader' || term === null || !demote) return;
            const peers = driver
              .members()
              .map((m) => m.id)
              .filter((id) => id !== config.id);
            void demote(peers, term, () => driver.role === 'Leader' && driver.status().term === term);
          },
        })
      : null;
    let lastRole: string | null = null;
    let lastTerm = -1;
    // onChange fires on every apply too; what is observed here only moves with role, term, leader
    // or membership, and driver.status() copies the membership and progress (measured ~35 µs of
    // the leader's CPU per write at one client). Indexes are read by the scrape itself.
    let seen = '';
    const onChange = () => {
      const key = `${driver.role}|${driver.currentTerm()}|${driver.leaderId}|${driver.membershipEpoch}|${driver.isStopped}`;
      if (key === seen) return;
      seen = key;
      const st = driver.status();
      raftMetrics.observe();
      raftLog.observe(st);
      if (st.role !== lastRole || (st.role === 'Leader' && st.term !== lastTerm)) {
        lastRole = st.role;
        lastTerm = st.term;
        labeler?.update(st.role, st.term);
      }
    };
    onChange();
    offChange = driver.onChange(onChange);
    // What only the loop itself can time: proposals, persist and apply, snapshots taken/installed.
    const events = raftLog;
    driver.setObserver({
      proposal(result, seconds) {
        metrics.raft.proposals.inc({ result });
        if (result === 'committed') metrics.raft.commitDuration.observe(seconds);
        metrics.raft.proposalsPending.set(driver.pendingProposals);
      },
      persisted(seconds) {
        metrics.raft.persistDuration.observe(seconds);
      },
      applied(seconds) {
        metrics.raft.applyDuration.observe(seconds);
        metrics.raft.proposalsPending.set(driver.pendingProposals);
      },
      // Appends go over the transport's own pipelined connection, not undici: timed there.
      appendRoundTrip(peer, seconds) {
        metrics.raft.appendDuration.observe({ peer }, seconds);
      },
      // Forwards on the transport's pipelined connection (undici's are counted by the subscriber).
      forwarded(ok, writes) {
        metrics.api.forwardedWrites.inc({ result: ok ? 'ok' : 'error' }, writes);
      },
      committedFromOwnCopy() {
        metrics.api.forwardedFromOwnCopy.inc();
      },
      snapshot(op, info) {
        metrics.recordSnapshot(op, info);
        events.snapshot(op, info);
      },
    });
    // Raft's own /readyz and /readyz/leader are mounted by the Raft node; /livez is ours.
    const probes = probesRouter(
      () => ({
        // While running, the Raft node's own phase: a log replay or snapshot install gets the allowance.
        phase:
          driver.isStopped && phase !== 'stopping' ? 'stopping' : phase === 'running' ? raft.phase() : phase,
        raft: null,
        fatalError: driver.fatal ? driver.fatal.message : null,
        storageFault: fault(),
        // A restart rebuilds a member's data.db: let liveness fail so that Kubernetes restarts it.
        restartRepairsStorage: true,
      }),
      { info: { nodeId: config.id, version: opts.version } },
    );
    stopProbes = () => probes.stop();
    routers.unshift(onlyPaths(['/livez'], probes));
  } else {
    // A single node of its own is its own leader: ready once it serves.
    const probes = probesRouter(
      () => ({
        phase,
        raft: {
          id: config.id,
          role: 'Leader',
          leaderId: config.id,
          term: 1,
          commitIndex: store.appliedIndex(),
          appliedIndex: store.appliedIndex(),
          membership: { voters: [config.id], learners: [] },
        },
        storageFault: fault(),
      }),
      { info: { nodeId: config.id, version: opts.version } },
    );
    stopProbes = () => probes.stop();
    routers.unshift(probes);
  }

  const peerScope = new PeerRequestScope(metrics);
  if (raft) {
    // AppendEntries round trips to each peer, timed from undici's request events (same span of
    // time as the transport's own appendRttMs: queued → response headers).
    const driver = raft.driver;
    let peers = new Map<string, string | undefined>();
    let peersAt = 0;
    peerScope.observePeers({
      peerOf(origin) {
        const now = performance.now();
        if (now - peersAt > 5_000) [peers, peersAt] = [new Map(), now]; // membership changes
        if (!peers.has(origin))
          peers.set(origin, driver.members().find((m) => m.url && sameOrigin(m.url, origin))?.id);
        return peers.get(origin);
      },
      snapshotSent(peer, { index, bytes, seconds, ok }) {
        metrics.recordSnapshot('send', { seconds, bytes, ok });
        raftEvents?.snapshot('send', {
          index,
          bytes,
          seconds,
          peer,
          ...(ok ? {} : { error: 'not acknowledged' }),
        });
      },
    });
  }
  let closing: Promise<void> | null = null;
  return {
    metrics,
    middleware: [
      skipPaths(UNTRACED_PATHS, tracingMiddleware()),
      requestMetricsMiddleware(metrics),
      requestLogger(log, { quietPaths: QUIET_PATHS }),
      peerScope.middleware,
    ],
    routers,
    openapiPaths: probesOpenApiPaths as Record<string, OpenApiPathItem>,
    inPeerScope: (fn) => peerScope.run(fn),
    started() {
      if (phase === 'starting') phase = 'running';
    },
    close() {
      return (closing ??= (async () => {
        phase = 'stopping';
        offChange?.();
        raft?.driver.setObserver(null);
        peerScope.close();
        stopProbes();
        if (labeler) {
          labeler.update('Follower');
          await Promise.race([labeler.idle(), new Promise((r) => setTimeout(r, 2_000).unref())]);
          await labeler.stop();
        }
      })());
    },
  };
}

/**
 * Raft peer traffic, probes and scrapes: no SERVER span unless the caller sent a trace context
 * (heartbeats alone would be ten root spans a second per peer).
 */
const UNTRACED_PATHS = QUIET_PATHS.filter((p) => p !== '/raft/read-index' && p !== '/raft/commit-index');

/** Runs `mw` except for requests to `paths` that carry no traceparent. */
function skipPaths(paths: string[], mw: RequestHandler): RequestHandler {
  const set = new Set(paths);
  return (req: Request, res: Response, next: NextFunction) =>
    set.has(req.path) && req.headers.traceparent === undefined ? next() : mw(req, res, next);
}

/** Serves `router` only for the given paths (the others fall through to later routers). */
function onlyPaths(paths: string[], router: RequestHandler): RequestHandler {
  const set = new Set(paths);
  return (req: Request, res: Response, next: NextFunction) =>
    set.has(req.path) ? router(req, res, next) : next();
}

// ------------------------------------------------------------------ requests to peers (undici)

function sameOrigin(url: string, origin: string): boolean {
  try {
    return new URL(url).origin === new URL(origin).origin;
  } catch {
    return false;
  }
}

/** What the diagnostics-channel subscriber needs to know about the node a request comes from. */
class PeerRequestScope {
  private static readonly als = new AsyncLocalStorage<PeerRequestScope>();
  private static subscribed = false;
  /** Nodes observing their requests to peers (one per process outside tests). */
  private static readonly appendObservers = new Set<PeerRequestScope>();
  private observer: PeerObserver | null = null;

  readonly middleware: RequestHandler;

  /** Scopes alive in this process: one per node (several only in tests). */
  private static readonly live = new Set<PeerRequestScope>();

  constructor(readonly metrics: Metrics) {
    PeerRequestScope.subscribe();
    PeerRequestScope.live.add(this);
    // With several nodes in one process (tests), everything a request handler starts (the
    // service's forward included) runs in its node's scope, so the subscriber knows which node's
    // counters to feed. With one node (every real process) the scope is that node: no
    // AsyncLocalStorage, whose first run() installs promise hooks for the whole process: every
    // promise then pays for them (measured on the 3-node benchmark: +15 % writes/s at 16 and 64
    // clients without them).
    this.middleware = (_req, _res, next) => this.run(next);
  }

  /** Runs fn in this node's scope (see the constructor). */
  run(fn: () => void): void {
    if (PeerRequestScope.live.size > 1) PeerRequestScope.als.run(this, fn);
    else fn();
  }

  /** The node an undici request belongs to (see the constructor). */
  private static current(): PeerRequestScope | undefined {
    if (PeerRequestScope.live.size === 1) return PeerRequestScope.live.values().next().value;
    return PeerRequestScope.als.getStore();
  }

  /**
   * Observe snapshot sends (GET /raft/snapshot/status → chunks → POST /raft/snapshot/install) to
   * the peers `peerOf` recognizes (by origin). They are sent from the Raft loop, outside any request scope,
   * so they are attributed by target: with several nodes in one process (tests), a request to a
   * peer they share is counted by each of them.
   */
  observePeers(observer: PeerObserver): void {
    this.observer = observer;
    PeerRequestScope.appendObservers.add(this);
  }

  close(): void {
    PeerRequestScope.appendObservers.delete(this);
    PeerRequestScope.live.delete(this);
  }

  private static subscribe(): void {
    if (PeerRequestScope.subscribed) return;
    PeerRequestScope.subscribed = true;
    // forward: the writes a forward carries (0: not a forward).
    const pending = new WeakMap<object, { span: Span; scope: PeerRequestScope; forward: number }>();
    // Snapshot sends in progress, by target origin (the transport sends one at a time per peer).
    const sends = new Map<string, { t0: number; index: number; bytes: number; span: Span }>();
    const snapshotRequests = new WeakMap<object, { origin: string; install: boolean }>();
    const finishSend = (origin: string, ok: boolean, error?: unknown) => {
      const s = sends.get(origin);
      if (!s) return;
      sends.delete(origin);
      if (error !== undefined) recordError(s.span, error);
      else if (!ok) s.span.setStatus({ code: 2 });
      s.span.end();
      const info = { index: s.index, bytes: s.bytes, seconds: (performance.now() - s.t0) / 1000, ok };
      for (const o of PeerRequestScope.appendObservers) {
        const peer = o.observer?.peerOf(origin);
        if (peer !== undefined) o.observer?.snapshotSent(peer, info);
      }
    };
    diagnosticsChannel.subscribe('undici:request:create', (msg) => {
      const { request } = msg as { request: UndiciRequest };
      const [path = '', query = ''] = String(request.path ?? '').split('?');
      if (path.startsWith('/raft/snapshot/')) {
        if (PeerRequestScope.appendObservers.size === 0) return;
        const origin = String(request.origin ?? '');
        if (path === '/raft/snapshot/status') {
          finishSend(origin, false); // an earlier attempt to this peer that gave up half-way
          const q = new URLSearchParams(query);
          const index = Number(q.get('index') ?? 0);
          const bytes = Number(q.get('size') ?? 0);
          const span = tracer().startSpan(
            'raft.snapshot.send',
            {
              kind: SpanKind.CLIENT,
              attributes: {
                'server.address': origin,
                'timestore.snapshot.index': index,
                'timestore.snapshot.bytes': bytes,
              },
            },
            ROOT_CONTEXT,
          );
          sends.set(origin, { t0: performance.now(), index, bytes, span });
        }
        const s = sends.get(origin);
        if (!s) return;
        const headers = injectTraceHeaders({} as Record<string, string>, trace.setSpan(ROOT_CONTEXT, s.span));
        for (const [k, v] of Object.entries(headers)) request.addHeader?.(k, v);
        snapshotRequests.set(request, { origin, install: path === '/raft/snapshot/install' });
        return;
      }
      const scope = PeerRequestScope.current();
      if (!scope) return;
      const name = PEER_SPANS[path];
      if (!name) return;
      const parent = context.active();
      const span = tracer().startSpan(
        name,
        {
          kind: SpanKind.CLIENT,
          attributes: {
            'server.address': String(request.origin ?? ''),
            'url.path': path,
            'http.request.method': String(request.method ?? ''),
          },
        },
        parent,
      );
      const headers = injectTraceHeaders({} as Record<string, string>, trace.setSpan(parent, span));
      for (const [k, v] of Object.entries(headers)) request.addHeader?.(k, v);
      // A batched forward (forward-batcher.ts) says how many writes it carries.
      const forward =
        path === '/raft/forward' ? Number(new URLSearchParams(query).get('commands') ?? 1) || 1 : 0;
      pending.set(request, { span, scope, forward });
    });
    diagnosticsChannel.subscribe('undici:request:headers', (msg) => {
      const { request, response } = msg as { request: object; response: { statusCode: number } };
      const sr = snapshotRequests.get(request);
      if (sr) {
        snapshotRequests.delete(request);
        // 409 on a chunk: the receiver has another offset and the sender continues from it.
        if (sr.install) finishSend(sr.origin, response.statusCode === 200);
        else if (response.statusCode !== 200 && response.statusCode !== 409) finishSend(sr.origin, false);
        return;
      }
      const p = pending.get(request);
      if (!p) return;
      pending.delete(request);
      p.span.setAttribute('http.response.status_code', response.statusCode);
      if (response.statusCode >= 500) p.span.setStatus({ code: 2 });
      p.span.end();
      if (p.forward)
        p.scope.metrics.api.forwardedWrites.inc(
          { result: response.statusCode === 200 ? 'ok' : 'error' },
          p.forward,
        );
    });
    diagnosticsChannel.subscribe('undici:request:error', (msg) => {
      const { request, error } = msg as { request: object; error: unknown };
      const sr = snapshotRequests.get(request);
      if (sr) {
        snapshotRequests.delete(request);
        finishSend(sr.origin, false, error);
        return;
      }
      const p = pending.get(request);
      if (!p) return;
      pending.delete(request);
      recordError(p.span, error);
      p.span.end();
      if (p.forward) p.scope.metrics.api.forwardedWrites.inc({ result: 'error' }, p.forward);
    });
  }
}

interface PeerObserver {
  /** The member id of a peer, by the origin (scheme://host:port) requests are sent to; undefined if none. */
  peerOf(origin: string): string | undefined;
  snapshotSent(peer: string, info: { index: number; bytes: number; seconds: number; ok: boolean }): void;
}

interface UndiciRequest {
  origin?: unknown;
  path?: unknown;
  method?: unknown;
  addHeader?: (key: string, value: string) => unknown;
}

/** Requests to peers that get a CLIENT span (and a traceparent); Raft traffic (heartbeats) does not. */
const PEER_SPANS: Record<string, string> = {
  '/raft/forward': 'timestore.forward',
  '/raft/read-index': 'raft.read-index',
  '/raft/commit-index': 'raft.commit-index',
  '/cluster/join': 'timestore.join',
};
