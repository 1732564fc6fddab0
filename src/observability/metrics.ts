// Prometheus metrics of one TimeStore node (prom-client).
//
// Wiring (see docs/OBSERVABILITY.md):
//   const metrics = createMetrics();                       // own Registry per node (several nodes may share a process)
//   const raftBinding = bindRaftStatus(metrics, () => ({ ...raft.status(), firstIndex: storage.firstIndex() }));
//   raftBinding.observe();                                 // after every Ready: counts elections / leader changes
//   bindStorageSizes(metrics, () => ({ ...statStorageSizes(dataDir), points: points() }));  // points = cachedValue(() => store.count(), 60_000)
//   app.use(requestMetricsMiddleware(metrics));            // first, before the routes
//   app.use(metricsRouter(metrics));                       // GET /metrics
//   metrics.raft.proposals.inc({ result: 'committed' }); metrics.raft.commitDuration.observe(s); ...
//
// Gauges that mirror state are computed at scrape time from getters (collect callbacks), so the node
// does not have to push values on every change. Counters and histograms are fed by the node directly.
//
// This module imports nothing project-specific: the status shape below is structural and a
// src/raft/types.ts `Status` is assignable to it.
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { NextFunction, Request, Response } from 'express';
import { Router } from 'express';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** The subset of the Raft `Status` (src/raft/types.ts) the metrics read, plus optional log bounds. */
export interface RaftStatusView {
  id: string;
  role: string;
  leaderId: string | null;
  term: number;
  commitIndex: number;
  appliedIndex: number;
  lastIndex: number;
  /** Only on the leader. */
  progress: ReadonlyArray<{ id: string; match: number; learner?: boolean }> | null;
  membership?: { voters: readonly string[]; learners: readonly string[] };
  /** First index still in the log (storage.firstIndex()); enables timestore_raft_log_entries. */
  firstIndex?: number;
  /** Index of the latest snapshot (storage.snapshotMeta().index). */
  snapshotIndex?: number;
}

/** Sizes in bytes of the node's files; omit what does not exist. `points` = points stored. */
export interface StorageSizes {
  dataDbBytes?: number;
  dataWalBytes?: number;
  raftDbBytes?: number;
  raftWalBytes?: number;
  snapshotBytes?: number;
  points?: number;
}

export const RAFT_ROLES = ['Follower', 'PreCandidate', 'Candidate', 'Leader'] as const;
export const STORAGE_FILES = ['data.db', 'data.db-wal', 'raft.db', 'raft.db-wal', 'snapshots'] as const;
export type SnapshotOperation = 'take' | 'install' | 'send';
export type ProposalResult = 'committed' | 'failed' | 'not_leader' | 'timeout';

/** Latency buckets (seconds) for fsync-bound operations: 0.5 ms .. 10 s. */
export const LATENCY_BUCKETS = [
  0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
];
/** Buckets (seconds) for snapshots: 10 ms .. 10 min. */
export const SNAPSHOT_BUCKETS = [0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 120, 300, 600];

export interface CreateMetricsOptions {
  /** Collect process_* and nodejs_* defaults into this registry (default true). */
  defaultMetrics?: boolean;
  /** Value of the `version` label of timestore_build_info. */
  version?: string;
}

function metricsFor(registry: Registry) {
  const r = [registry];
  return {
    buildInfo: new Gauge({
      name: 'timestore_build_info',
      help: 'Always 1; labelled with the TimeStore version.',
      labelNames: ['version'] as const,
      registers: r,
    }),
    raft: {
      term: new Gauge({ name: 'timestore_raft_term', help: 'Current Raft term of this node.', registers: r }),
      role: new Gauge({
        name: 'timestore_raft_role',
        help: 'Raft role of this node: 1 for the current role, 0 for the others.',
        labelNames: ['role'] as const,
        registers: r,
      }),
      isLeader: new Gauge({
        name: 'timestore_raft_is_leader',
        help: '1 if this node is the Raft leader, else 0.',
        registers: r,
      }),
      hasLeader: new Gauge({
        name: 'timestore_raft_has_leader',
        help: '1 if this node knows a current leader, else 0.',
        registers: r,
      }),
      commitIndex: new Gauge({
        name: 'timestore_raft_commit_index',
        help: 'Highest log index known to be committed.',
        registers: r,
      }),
      appliedIndex: new Gauge({
        name: 'timestore_raft_applied_index',
        help: 'Highest log index applied to the state machine (data.db).',
        registers: r,
      }),
      lastIndex: new Gauge({
        name: 'timestore_raft_last_index',
        help: 'Last index in the local Raft log.',
        registers: r,
      }),
      applyLag: new Gauge({
        name: 'timestore_raft_apply_lag_entries',
        help: 'Committed entries not yet applied on this node (commit index - applied index).',
        registers: r,
      }),
      peerMatchIndex: new Gauge({
        name: 'timestore_raft_peer_match_index',
        help: 'Match index of each peer as seen by the leader (exported only on the leader).',
        labelNames: ['peer'] as const,
        registers: r,
      }),
      peerLag: new Gauge({
        name: 'timestore_raft_peer_lag_entries',
        help: "Entries a peer is behind the leader's last index (exported only on the leader).",
        labelNames: ['peer'] as const,
        registers: r,
      }),
      members: new Gauge({
        name: 'timestore_raft_members',
        help: 'Cluster members in the current configuration, by kind.',
        labelNames: ['kind'] as const,
        registers: r,
      }),
      logEntries: new Gauge({
        name: 'timestore_raft_log_entries',
        help: 'Entries retained in the Raft log (not yet compacted into a snapshot).',
        registers: r,
      }),
      snapshotIndex: new Gauge({
        name: 'timestore_raft_snapshot_index',
        help: 'Log index covered by the latest snapshot.',
        registers: r,
      }),
      elections: new Counter({
        name: 'timestore_raft_elections_total',
        help: 'Elections this node started: terms it entered as Candidate (or straight as Leader). Pre-votes are timestore_raft_prevotes_total.',
        registers: r,
      }),
      prevotes: new Counter({
        name: 'timestore_raft_prevotes_total',
        help: 'Pre-vote rounds this node started (entering PreCandidate); a pre-vote does not change the term. A retry that never leaves PreCandidate is not seen.',
        registers: r,
      }),
      leaderChanges: new Counter({
        name: 'timestore_raft_leader_changes_total',
        help: 'Changes of the leader seen by this node (to a new, known leader).',
        registers: r,
      }),
      proposals: new Counter({
        name: 'timestore_raft_proposals_total',
        help: 'Proposals by outcome: committed, failed, not_leader, timeout.',
        labelNames: ['result'] as const,
        registers: r,
      }),
      proposalsPending: new Gauge({
        name: 'timestore_raft_proposals_pending',
        help: 'Proposals waiting to be committed and applied.',
        registers: r,
      }),
      appendDuration: new Histogram({
        name: 'timestore_raft_append_duration_seconds',
        help: 'Round trip of an AppendEntries RPC from the leader to a peer.',
        labelNames: ['peer'] as const,
        buckets: LATENCY_BUCKETS,
        registers: r,
      }),
      persistDuration: new Histogram({
        name: 'timestore_raft_persist_duration_seconds',
        help: 'Time to persist a Ready (entries + hard state, one fsync) to raft.db.',
        buckets: LATENCY_BUCKETS,
        registers: r,
      }),
      commitDuration: new Histogram({
        name: 'timestore_raft_commit_duration_seconds',
        help: 'Time from proposal until committed (quorum, fsync) and applied on the leader: what a writer waits.',
        buckets: LATENCY_BUCKETS,
        registers: r,
      }),
      applyDuration: new Histogram({
        name: 'timestore_raft_apply_duration_seconds',
        help: 'Time to apply a batch of committed entries to data.db.',
        buckets: LATENCY_BUCKETS,
        registers: r,
      }),
      snapshots: new Counter({
        name: 'timestore_raft_snapshots_total',
        help: 'Snapshots by operation (take, install, send) and result (ok, error).',
        labelNames: ['operation', 'result'] as const,
        registers: r,
      }),
      snapshotDuration: new Histogram({
        name: 'timestore_raft_snapshot_duration_seconds',
        help: 'Duration of successful snapshot operations (take, install, send).',
        labelNames: ['operation'] as const,
        buckets: SNAPSHOT_BUCKETS,
        registers: r,
      }),
      snapshotBytes: new Counter({
        name: 'timestore_raft_snapshot_bytes_total',
        help: 'Bytes of snapshots taken, installed and sent.',
        labelNames: ['operation'] as const,
        registers: r,
      }),
    },
    storage: {
      size: new Gauge({
        name: 'timestore_storage_size_bytes',
        help: 'Size on disk of the node files: data.db, data.db-wal, raft.db, raft.db-wal, snapshots.',
        labelNames: ['file'] as const,
        registers: r,
      }),
      points: new Gauge({
        name: 'timestore_storage_points',
        help: 'Points stored in data.db.',
        registers: r,
      }),
    },
    api: {
      requestDuration: new Histogram({
        name: 'timestore_http_request_duration_seconds',
        help: 'HTTP request duration by method, matched route template and status code.',
        labelNames: ['method', 'route', 'status'] as const,
        buckets: LATENCY_BUCKETS,
        registers: r,
      }),
      requestsInFlight: new Gauge({
        name: 'timestore_http_requests_in_flight',
        help: 'HTTP requests being served.',
        registers: r,
      }),
      forwardedWrites: new Counter({
        name: 'timestore_forwarded_writes_total',
        help: 'Writes this node forwarded to the leader, by result (ok, error).',
        labelNames: ['result'] as const,
        registers: r,
      }),
      forwardedFromOwnCopy: new Counter({
        name: 'timestore_forwarded_writes_own_copy_total',
        help: "Forwarded writes this follower acknowledged from its own durable copy and the leader's, before the leader's commit.",
        registers: r,
      }),
      ingestedPoints: new Counter({
        name: 'timestore_ingested_points_total',
        help: 'Points accepted for ingestion on this node, by input format (json, ndjson, csv, line).',
        labelNames: ['format'] as const,
        registers: r,
      }),
      rejectedInputs: new Counter({
        name: 'timestore_rejected_inputs_total',
        help: 'Inputs rejected with a 4xx, by reason (a fixed vocabulary, never a free-text message).',
        labelNames: ['reason'] as const,
        registers: r,
      }),
    },
  };
}

export type Metrics = ReturnType<typeof metricsFor> & {
  registry: Registry;
  /** Records one snapshot operation: counter, duration and bytes. */
  recordSnapshot(operation: SnapshotOperation, r: { seconds: number; bytes: number; ok?: boolean }): void;
};

/**
 * Creates every TimeStore metric in `registry` (a fresh Registry by default: do not share one
 * registry between two nodes in one process, the names would clash).
 */
export function createMetrics(registry: Registry = new Registry(), opts: CreateMetricsOptions = {}): Metrics {
  const m = metricsFor(registry);
  if (opts.defaultMetrics !== false) addDefaultMetrics(registry);
  m.buildInfo.set({ version: opts.version ?? 'dev' }, 1);
  for (const role of RAFT_ROLES) m.raft.role.set({ role }, role === 'Follower' ? 1 : 0);
  return {
    ...m,
    registry,
    recordSnapshot(operation, { seconds, bytes, ok = true }) {
      m.raft.snapshots.inc({ operation, result: ok ? 'ok' : 'error' });
      if (!ok) return;
      m.raft.snapshotDuration.observe({ operation }, seconds);
      m.raft.snapshotBytes.inc({ operation }, bytes);
    },
  };
}

/**
 * prom-client's process_* and nodejs_* defaults, except three gauges it names with a `_total` suffix
 * (which `promtool check metrics` rejects); their per-type versions nodejs_active_{handles,requests,resources}
 * (same data, no suffix) stay.
 */
function addDefaultMetrics(registry: Registry): void {
  collectDefaultMetrics({ register: registry });
  for (const name of [
    'nodejs_active_handles_total',
    'nodejs_active_requests_total',
    'nodejs_active_resources_total',
  ]) {
    registry.removeSingleMetric(name);
  }
}

/** Makes a function the only producer of a gauge's values (prom-client calls collect at scrape). */
function onCollect(gauge: Gauge<string>, fn: () => void): void {
  // prom-client invokes `collect` with `this` bound to the gauge; errors must not break the scrape.
  (gauge as unknown as { collect: () => void }).collect = () => {
    try {
      fn();
    } catch {
      /* the getter failed (e.g. node shutting down): keep the last values */
    }
  };
}

export interface RaftStatusBinding {
  /**
   * Reads the status now and counts transitions (elections, leader changes). Call it after every
   * Ready the driver handles; the scrape calls it too, but would miss transitions in between.
   */
  observe(): void;
}

/**
 * Feeds the Raft gauges from `getStatus` at scrape time, and counts elections / leader changes.
 * `getStatus` is e.g. `() => ({ ...raftNode.status(), firstIndex: storage.firstIndex() })`.
 */
export function bindRaftStatus(metrics: Metrics, getStatus: () => RaftStatusView): RaftStatusBinding {
  const g = metrics.raft;
  let prevRole: string | null = null;
  let prevLeader: string | null = null;
  let prevTerm = -1;
  let peersShown = new Set<string>();

  const observe = (s: RaftStatusView) => {
    // A node enters a new term as Candidate or Leader only through an election it started itself
    // (a vote request from someone else makes it a Follower of the new term). Counting new terms, not
    // Candidate sightings, also counts an election won between two observations.
    if ((s.role === 'Candidate' || s.role === 'Leader') && prevTerm >= 0 && s.term > prevTerm)
      g.elections.inc();
    // A pre-vote keeps the term, so only the role shows it.
    if (s.role === 'PreCandidate' && prevRole !== 'PreCandidate') g.prevotes.inc();
    prevRole = s.role;
    prevTerm = s.term;
    // A term has at most one leader: every new (leader, term) pair is one change of leadership.
    if (s.leaderId !== null) {
      const key = `${s.term}/${s.leaderId}`;
      if (key !== prevLeader) g.leaderChanges.inc();
      prevLeader = key;
    }
  };

  const collect = () => {
    const s = getStatus();
    observe(s);
    g.term.set(s.term);
    for (const role of RAFT_ROLES) g.role.set({ role }, s.role === role ? 1 : 0);
    g.isLeader.set(s.role === 'Leader' ? 1 : 0);
    g.hasLeader.set(s.leaderId !== null ? 1 : 0);
    g.commitIndex.set(s.commitIndex);
    g.appliedIndex.set(s.appliedIndex);
    g.lastIndex.set(s.lastIndex);
    g.applyLag.set(Math.max(0, s.commitIndex - s.appliedIndex));
    if (s.firstIndex !== undefined) g.logEntries.set(Math.max(0, s.lastIndex - s.firstIndex + 1));
    if (s.snapshotIndex !== undefined) g.snapshotIndex.set(s.snapshotIndex);
    if (s.membership) {
      g.members.set({ kind: 'voter' }, s.membership.voters.length);
      g.members.set({ kind: 'learner' }, s.membership.learners.length);
    }
    // Per-peer series exist only on the leader; drop them on step-down and for removed peers.
    const now = new Set<string>();
    if (s.role === 'Leader' && s.progress) {
      for (const p of s.progress) {
        if (p.id === s.id) continue;
        now.add(p.id);
        g.peerMatchIndex.set({ peer: p.id }, p.match);
        g.peerLag.set({ peer: p.id }, Math.max(0, s.lastIndex - p.match));
      }
    }
    for (const peer of peersShown) {
      if (!now.has(peer)) {
        g.peerMatchIndex.remove({ peer });
        g.peerLag.remove({ peer });
      }
    }
    peersShown = now;
  };
  // One getter call per scrape: `term` is collected first (registration order), the rest read the
  // values it set. Other gauges' collect stay no-ops.
  onCollect(g.term, collect);
  return {
    observe() {
      try {
        observe(getStatus());
      } catch {
        /* ignore */
      }
    },
  };
}

/** Feeds timestore_storage_size_bytes and timestore_storage_points from `getSizes` at scrape time. */
export function bindStorageSizes(metrics: Metrics, getSizes: () => StorageSizes): void {
  const { size, points } = metrics.storage;
  onCollect(size, () => {
    const s = getSizes();
    const files: Array<[(typeof STORAGE_FILES)[number], number | undefined]> = [
      ['data.db', s.dataDbBytes],
      ['data.db-wal', s.dataWalBytes],
      ['raft.db', s.raftDbBytes],
      ['raft.db-wal', s.raftWalBytes],
      ['snapshots', s.snapshotBytes],
    ];
    for (const [file, v] of files) {
      if (v === undefined) size.remove({ file });
      else size.set({ file }, v);
    }
    if (s.points !== undefined) points.set(s.points);
  });
}

/**
 * Stats the conventional files of a data directory (data.db, raft.db and their -wal files; a
 * `snapshots/` directory's direct children). Missing files are left out. Synchronous and cheap
 * (a handful of stat calls), fine for a scrape.
 */
export function statStorageSizes(dataDir: string): StorageSizes {
  const size = (name: string): number | undefined => {
    try {
      return statSync(join(dataDir, name)).size;
    } catch {
      return undefined;
    }
  };
  let snapshotBytes: number | undefined;
  try {
    const dir = join(dataDir, 'snapshots');
    snapshotBytes = 0;
    for (const f of readdirSync(dir)) snapshotBytes += size(join('snapshots', f)) ?? 0;
  } catch {
    snapshotBytes = undefined;
  }
  return {
    dataDbBytes: size('data.db'),
    dataWalBytes: size('data.db-wal'),
    raftDbBytes: size('raft.db'),
    raftWalBytes: size('raft.db-wal'),
    snapshotBytes,
  };
}

/**
 * Wraps an expensive getter (e.g. `store.count()`, a full `SELECT count(*)` in SQLite) so a scrape
 * recomputes it at most every `ttlMs`: `points: cachedValue(() => store.count(), 60_000)`.
 */
export function cachedValue<T>(
  fn: () => T,
  ttlMs: number,
  now: () => number = () => performance.now(),
): () => T {
  let value: { v: T; at: number } | null = null;
  return () => {
    const t = now();
    if (!value || t - value.at >= ttlMs) value = { v: fn(), at: t };
    return value.v;
  };
}

/** Route label of a request: the matched route template (bounded cardinality), never the raw path. */
export function routeLabel(req: Request): string {
  const route = (req as Request & { route?: { path?: unknown } }).route;
  if (!route || route.path === undefined) return 'unmatched';
  const p = route.path;
  const path = typeof p === 'string' ? p : Array.isArray(p) ? p.map(String).join('|') : String(p);
  return (req.baseUrl ?? '') + path;
}

/**
 * Express middleware observing timestore_http_request_duration_seconds{method,route,status} and
 * timestore_http_requests_in_flight. Mount it first (`app.use(requestMetricsMiddleware(metrics))`).
 * Requests that match no route are labelled route="unmatched", so scanners cannot blow up cardinality.
 */
export function requestMetricsMiddleware(metrics: Metrics) {
  const { requestDuration, requestsInFlight } = metrics.api;
  const KNOWN_METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']);
  return (req: Request, res: Response, next: NextFunction): void => {
    const start = process.hrtime.bigint();
    requestsInFlight.inc();
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      requestsInFlight.dec();
      const seconds = Number(process.hrtime.bigint() - start) / 1e9;
      requestDuration.observe(
        {
          method: KNOWN_METHODS.has(req.method) ? req.method : 'OTHER',
          route: routeLabel(req),
          status: String(res.statusCode),
        },
        seconds,
      );
    };
    res.on('finish', finish);
    res.on('close', finish);
    next();
  };
}

/** Router serving GET /metrics in the Prometheus text format. */
export function metricsRouter(metrics: Metrics, path = '/metrics'): Router {
  const router = Router();
  router.get(path, async (_req, res) => {
    try {
      const body = await metrics.registry.metrics();
      res.setHeader('Content-Type', metrics.registry.contentType);
      res.send(body);
    } catch (err) {
      res
        .status(500)
        .type('text/plain')
        .send(`metrics collection failed: ${(err as Error).message}\n`);
    }
  });
  return router;
}
