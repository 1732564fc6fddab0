// Health probes of a TimeStore node: pure decision functions + an express router.
//
//   GET /livez          liveness: the process and its event loop are healthy. Never depends on Raft
//                       (a node that lost quorum is healthy; restarting it would only make things worse).
//   GET /readyz         readiness: member of a cluster, a leader is known, applied index within
//                       `maxLagEntries` of the leader's commit. 503 problem+json naming the reason.
//   GET /readyz/leader  like /readyz, and this node is the leader (not handing leadership over).
//
// While the node replays its log or installs a snapshot (phase 'replaying' / 'installing-snapshot')
// liveness passes whatever the event-loop delay (that work is expected to block) and readiness fails
// with that reason: the startup allowance. See docs/OBSERVABILITY.md for the Kubernetes probe setup.
import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';
import type { Request, Response } from 'express';
import { Router } from 'express';

/** Lifecycle phase of a node, set by the node as it starts and stops. */
export type NodePhase = 'starting' | 'replaying' | 'installing-snapshot' | 'running' | 'stopping';

/** The subset of the Raft `Status` (src/raft/types.ts) the probes read; a `Status` is assignable. */
export interface ProbeRaftStatus {
  id: string;
  role: string;
  leaderId: string | null;
  term: number;
  commitIndex: number;
  appliedIndex: number;
  membership: { voters: readonly string[]; learners: readonly string[] };
  /** Only on the leader: a leadership transfer in progress. */
  leadTransferee?: string | null;
}

/** What the node reports to the probes; returned by the getter passed to `probesRouter`. */
export interface ProbeState {
  phase: NodePhase;
  /** null until the Raft node exists. */
  raft: ProbeRaftStatus | null;
  /**
   * The leader's commit index as last heard from it (leaderCommit of the latest AppendEntries).
   * A follower's own commitIndex can trail it when its log is behind; defaults to raft.commitIndex.
   */
  leaderCommitIndex?: number;
  /** A fatal, unrecoverable error (e.g. fsync failed): liveness fails so Kubernetes restarts the pod. */
  fatalError?: string | null;
  /** A storage file found damaged while running: readiness fails naming it (no data is served). */
  storageFault?: { file: string; path: string; detail: string } | null;
  /** A restart repairs a storage fault (a Raft member rebuilds data.db): liveness fails too. */
  restartRepairsStorage?: boolean;
}

export interface ProbeOptions {
  /** Max entries the applied index may trail the leader's commit index and still be ready (default 1000). */
  maxLagEntries?: number;
  /** Liveness fails when the event loop's p99 delay since the previous probe exceeds this (ms, default 5000). */
  maxEventLoopDelayMs?: number;
  /** Whether learners (non-voting members catching up) may be ready (default true). */
  learnersReady?: boolean;
}

export type ProbeReason =
  | 'fatal-error'
  | 'storage-corrupt'
  | 'event-loop-blocked'
  | 'starting'
  | 'replaying-log'
  | 'installing-snapshot'
  | 'stopping'
  | 'not-a-member'
  | 'no-leader'
  | 'lagging'
  | 'not-leader'
  | 'transferring-leadership';

export type ProbeResult = { ok: true; detail: string } | { ok: false; reason: ProbeReason; detail: string };

const DEFAULTS = { maxLagEntries: 1000, maxEventLoopDelayMs: 5000, learnersReady: true };

/** Liveness: fatal error or a sluggish event loop (ignored during the startup phases). Never Raft state. */
function storageCorrupt(f: NonNullable<ProbeState['storageFault']>, then: string): ProbeResult {
  return {
    ok: false,
    reason: 'storage-corrupt',
    detail: `${f.file} (${f.path}) is corrupt: ${f.detail}; no data is served from it; ${then}`,
  };
}

export function liveness(
  state: Pick<ProbeState, 'phase' | 'fatalError' | 'storageFault' | 'restartRepairsStorage'>,
  eventLoopDelayMs: number,
  opts: ProbeOptions = {},
): ProbeResult {
  const max = opts.maxEventLoopDelayMs ?? DEFAULTS.maxEventLoopDelayMs;
  if (state.fatalError)
    return { ok: false, reason: 'fatal-error', detail: `fatal error: ${state.fatalError}` };
  if (state.storageFault && state.restartRepairsStorage)
    return storageCorrupt(state.storageFault, 'restart the node to rebuild it from its snapshot and raft.db');
  const startup =
    state.phase === 'starting' || state.phase === 'replaying' || state.phase === 'installing-snapshot';
  if (!startup && eventLoopDelayMs > max) {
    return {
      ok: false,
      reason: 'event-loop-blocked',
      detail: `event loop p99 delay ${Math.round(eventLoopDelayMs)} ms exceeds ${max} ms`,
    };
  }
  return { ok: true, detail: startup ? `alive (${state.phase})` : 'alive' };
}

/** What a starting node knows about its catching up, for `startupPhase`. */
export interface StartupProgress {
  appliedIndex: number;
  /**
   * The commit index raft.db held when the process started: entries up to it are already known to be
   * committed and are re-applied to data.db before the node serves fresh reads (its log replay).
   */
  replayUntil: number;
  /** A snapshot being received from a leader: its index and when its last chunk arrived (ms). */
  snapshot: { index: number; lastActivityMs: number } | null;
  nowMs: number;
  /** A transfer without a chunk for this long is abandoned (its leader died or sent something else). */
  snapshotIdleMs: number;
}

/**
 * The phase a `running` node reports while it still catches up: `installing-snapshot` while a
 * snapshot transfer is live and not yet installed, `replaying` while the applied index is below the
 * commit index it started with. Other phases (starting, stopping) pass through.
 */
export function startupPhase(base: NodePhase, p: StartupProgress): NodePhase {
  if (base !== 'running') return base;
  if (
    p.snapshot &&
    p.appliedIndex < p.snapshot.index &&
    p.nowMs - p.snapshot.lastActivityMs < p.snapshotIdleMs
  )
    return 'installing-snapshot';
  if (p.appliedIndex < p.replayUntil) return 'replaying';
  return 'running';
}

/** Readiness: serving traffic makes sense (forwarding writes to a known leader, reads fresh enough). */
export function readiness(state: ProbeState, opts: ProbeOptions = {}): ProbeResult {
  const maxLag = opts.maxLagEntries ?? DEFAULTS.maxLagEntries;
  const learnersReady = opts.learnersReady ?? DEFAULTS.learnersReady;
  if (state.storageFault)
    return storageCorrupt(
      state.storageFault,
      state.restartRepairsStorage
        ? 'a restart rebuilds it'
        : 'restore it from a backup (docs/RELIABILITY.md, "Corruption")',
    );
  switch (state.phase) {
    case 'starting':
      return { ok: false, reason: 'starting', detail: 'the node is starting' };
    case 'replaying':
      return { ok: false, reason: 'replaying-log', detail: 'the node is replaying its Raft log' };
    case 'installing-snapshot':
      return { ok: false, reason: 'installing-snapshot', detail: 'the node is installing a snapshot' };
    case 'stopping':
      return { ok: false, reason: 'stopping', detail: 'the node is shutting down' };
    case 'running':
      break;
  }
  const s = state.raft;
  if (!s) return { ok: false, reason: 'starting', detail: 'the Raft node is not running yet' };
  const voter = s.membership.voters.includes(s.id);
  const learner = s.membership.learners.includes(s.id);
  if (!voter && !(learner && learnersReady)) {
    return {
      ok: false,
      reason: 'not-a-member',
      detail: learner
        ? `node ${s.id} is a learner still catching up`
        : `node ${s.id} is not a member of the cluster configuration`,
    };
  }
  if (s.leaderId === null)
    return { ok: false, reason: 'no-leader', detail: `no leader is known in term ${s.term}` };
  const leaderCommit = Math.max(state.leaderCommitIndex ?? 0, s.commitIndex);
  const lag = leaderCommit - s.appliedIndex;
  if (lag > maxLag) {
    return {
      ok: false,
      reason: 'lagging',
      detail: `applied index ${s.appliedIndex} is ${lag} entries behind the leader's commit index ${leaderCommit} (max ${maxLag})`,
    };
  }
  return { ok: true, detail: `ready: ${s.role.toLowerCase()} in term ${s.term}, leader ${s.leaderId}` };
}

/** Leader readiness: ready, and this node is the leader and not handing leadership over. */
export function leaderReadiness(state: ProbeState, opts: ProbeOptions = {}): ProbeResult {
  const r = readiness(state, opts);
  if (!r.ok) return r;
  const s = state.raft!;
  if (s.role !== 'Leader') {
    return {
      ok: false,
      reason: 'not-leader',
      detail: `node ${s.id} is a ${s.role.toLowerCase()}; the leader is ${s.leaderId}`,
    };
  }
  if (s.leadTransferee) {
    return {
      ok: false,
      reason: 'transferring-leadership',
      detail: `leadership is being transferred to ${s.leadTransferee}`,
    };
  }
  return { ok: true, detail: `leader in term ${s.term}` };
}

/** Event-loop delay sampled with perf_hooks.monitorEventLoopDelay; p99 over the window since the last read. */
export interface EventLoopMonitor {
  /** p99 delay (ms) since the previous call (or start), then resets the window. */
  p99DelayMs(): number;
  stop(): void;
}

export function createEventLoopMonitor(resolutionMs = 20): EventLoopMonitor {
  const h: IntervalHistogram = monitorEventLoopDelay({ resolution: resolutionMs });
  h.enable();
  return {
    p99DelayMs() {
      // Values are ns and include the sampling interval itself; subtract it.
      const v = h.count > 0 ? Math.max(0, h.percentile(99) / 1e6 - resolutionMs) : 0;
      h.reset();
      return v;
    },
    stop() {
      h.disable();
    },
  };
}

/**
 * RFC 9457 body of a failed probe. Type and title are the API's `unavailable` problem type
 * (src/api/problem.ts); `reason` is the machine-readable ProbeReason, `check` the probe.
 */
export function probeProblem(
  check: 'livez' | 'readyz' | 'readyz/leader',
  r: Extract<ProbeResult, { ok: false }>,
  requestId?: string,
) {
  return {
    type: 'urn:timestore:problem:unavailable',
    title: 'Service unavailable',
    status: 503,
    detail: r.detail,
    check,
    reason: r.reason,
    ...(requestId ? { requestId } : {}),
  };
}

export interface ProbesRouterOptions extends ProbeOptions {
  /** Event-loop monitor (one is created, and stopped with the router's `stop()`, if omitted). */
  eventLoop?: EventLoopMonitor;
  /**
   * Fields added to every 200 body, e.g. { nodeId, version }: with them /livez answers exactly the
   * API's Livez shape {status: 'ok', nodeId, version}, so this router can replace the app's /livez.
   */
  info?: Record<string, string>;
}

/**
 * Router serving GET /livez, /readyz, /readyz/leader. `getState` is called on every probe.
 * Call `router.stop()` on shutdown to stop the event-loop monitor it created.
 */
export function probesRouter(
  getState: () => ProbeState,
  opts: ProbesRouterOptions = {},
): Router & { stop(): void } {
  const router = Router() as Router & { stop(): void };
  const ownMonitor = !opts.eventLoop;
  const monitor = opts.eventLoop ?? createEventLoopMonitor();
  router.stop = () => {
    if (ownMonitor) monitor.stop();
  };
  const info = opts.info ?? {};
  const send = (res: Response, check: 'livez' | 'readyz' | 'readyz/leader', r: ProbeResult) => {
    res.setHeader('Cache-Control', 'no-store');
    if (r.ok) {
      res
        .status(200)
        .json(check === 'livez' ? { status: 'ok', ...info } : { status: 'ok', ...info, detail: r.detail });
    } else {
      const requestId = typeof res.locals.requestId === 'string' ? res.locals.requestId : undefined;
      res
        .status(503)
        .type('application/problem+json')
        .send(JSON.stringify(probeProblem(check, r, requestId)));
    }
  };
  const methodNotAllowed = (_req: Request, res: Response) => {
    res
      .status(405)
      .setHeader('Allow', 'GET, HEAD')
      .type('application/problem+json')
      .send(
        JSON.stringify({
          type: 'urn:timestore:problem:method-not-allowed',
          title: 'Method not allowed',
          status: 405,
          detail: 'use GET',
        }),
      );
  };
  const safeState = (): ProbeState | Error => {
    try {
      return getState();
    } catch (err) {
      return err as Error;
    }
  };
  router
    .route('/livez')
    .get((_req: Request, res: Response) => {
      const st = safeState();
      // A failing status getter is not a reason to restart the process: liveness only looks at the loop.
      const state = st instanceof Error ? { phase: 'running' as const, fatalError: null } : st;
      send(res, 'livez', liveness(state, monitor.p99DelayMs(), opts));
    })
    .all(methodNotAllowed);
  router
    .route('/readyz')
    .get((_req: Request, res: Response) => {
      const st = safeState();
      send(
        res,
        'readyz',
        st instanceof Error
          ? { ok: false, reason: 'starting', detail: `status unavailable: ${st.message}` }
          : readiness(st, opts),
      );
    })
    .all(methodNotAllowed);
  router
    .route('/readyz/leader')
    .get((_req: Request, res: Response) => {
      const st = safeState();
      send(
        res,
        'readyz/leader',
        st instanceof Error
          ? { ok: false, reason: 'starting', detail: `status unavailable: ${st.message}` }
          : leaderReadiness(st, opts),
      );
    })
    .all(methodNotAllowed);
  return router;
}

const problemResponse = (description: string) => ({
  description,
  content: { 'application/problem+json': { schema: { $ref: '#/components/schemas/Problem' } } },
});
const okResponse = (description: string) => ({
  description,
  content: {
    'application/json': {
      schema: {
        type: 'object',
        properties: {
          status: { const: 'ok' },
          nodeId: { type: 'string' },
          version: { type: 'string' },
          detail: { type: 'string' },
        },
        required: ['status'],
      },
    },
  },
});
const reasons = (list: ProbeReason[]) => `\`reason\` is one of: ${list.join(', ')}.`;

/** OpenAPI 3.1 path items of the probes (for createApp's `openapiPaths`). */
export const probesOpenApiPaths: Record<string, Record<string, unknown>> = {
  '/livez': {
    get: {
      operationId: 'livez',
      tags: ['Health'],
      summary: 'Liveness: the process and its event loop are healthy (never depends on Raft or quorum)',
      responses: {
        200: {
          description: 'Alive.',
          content: { 'application/json': { schema: { $ref: '#/components/schemas/Livez' } } },
        },
        503: problemResponse(
          `Not alive: restart the process. ${reasons(['fatal-error', 'storage-corrupt', 'event-loop-blocked'])}`,
        ),
      },
    },
  },
  '/readyz': {
    get: {
      operationId: 'readyz',
      tags: ['Health'],
      summary: 'Readiness: member of the cluster, leader known, applied index within the allowed lag',
      responses: {
        200: okResponse('Ready to serve.'),
        503: problemResponse(
          `Not ready. ${reasons(['storage-corrupt', 'starting', 'replaying-log', 'installing-snapshot', 'stopping', 'not-a-member', 'no-leader', 'lagging'])}`,
        ),
      },
    },
  },
  '/readyz/leader': {
    get: {
      operationId: 'readyzLeader',
      tags: ['Health'],
      summary:
        'Leader readiness: ready and the Raft leader (for the leader Service / load-balancer health checks)',
      responses: {
        200: okResponse('This node is the leader and ready.'),
        503: problemResponse(
          `Not the (ready) leader. ${reasons(['not-leader', 'transferring-leadership'])} Or any /readyz reason.`,
        ),
      },
    },
  },
};
