// Structured JSON logs (pino): a logger factory, a one-line-per-request express middleware, and a
// Raft event logger (role changes, elections, leader changes, membership changes, snapshots at info).
//
//   const log = createLogger({ level: config.logLevel, nodeId: config.id });
//   app.use(tracingMiddleware());            // optional, first: gives the request a trace id
//   app.use(requestLogger(log));             // one line per request: reqId, traceId, method, route, status, ms
//   const raftLog = createRaftEventLogger(log);
//   raftLog.observe(raftNode.status());      // after every Ready; logs only changes
//   raftLog.snapshot('take', { index, bytes, seconds });
import { randomUUID } from 'node:crypto';
import { writeSync } from 'node:fs';
import type { NextFunction, Request, Response } from 'express';
import { pino, type DestinationStream, type Logger, type LoggerOptions } from 'pino';
import { trace, context } from '@opentelemetry/api';

export type { Logger } from 'pino';
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export interface CreateLoggerOptions {
  /** Level; default: env TIMESTORE_LOG_LEVEL, else 'info'. Invalid values throw (fail fast on bad config). */
  level?: string;
  /** Added to every line as `nodeId`. */
  nodeId?: string;
  /** Where to write (default stdout). Tests pass a stream to capture lines. */
  destination?: DestinationStream;
  /** Extra base fields (e.g. { pod: process.env.POD_NAME }). */
  base?: Record<string, unknown>;
}

export function resolveLogLevel(level: string | undefined, env: NodeJS.ProcessEnv = process.env): LogLevel {
  const v = (level ?? env.TIMESTORE_LOG_LEVEL ?? 'info').trim().toLowerCase();
  if (!(LOG_LEVELS as readonly string[]).includes(v)) {
    throw new Error(`invalid log level "${v}"; expected one of ${LOG_LEVELS.join(', ')}`);
  }
  return v as LogLevel;
}

/** A pino logger writing one JSON object per line: {"level":"info","time":"…","nodeId":"n1","msg":"…"}. */
export function createLogger(opts: CreateLoggerOptions = {}): Logger {
  const options: LoggerOptions = {
    level: resolveLogLevel(opts.level),
    base: { ...(opts.nodeId !== undefined ? { nodeId: opts.nodeId } : {}), ...opts.base },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
    messageKey: 'msg',
  };
  return pino(options, opts.destination ?? stdoutDestination());
}

/** Longest a log line waits for a full stdout pipe (EAGAIN) before it is dropped. */
const STDOUT_STALL_MS = 1_000;

/**
 * Stdout, written synchronously, one line per write. Not pino's default destination: that writes
 * asynchronously and at exit flushes what is left with sonic-boom's flushSync, which retries every
 * write error forever, not only EAGAIN: a process whose log reader went away just before it exited
 * (`timestore node | jq` and Ctrl-C, a `timestore cluster` launcher killed with SIGKILL) hung in
 * exit until SIGKILL. Here nothing is left to flush at exit; once the reader is gone (EPIPE) lines
 * are dropped; a reader that stalls (EAGAIN) holds a line at most STDOUT_STALL_MS, then lines are
 * dropped until it reads again. Logs never stop the database.
 */
export function stdoutDestination(fd = 1): DestinationStream {
  let gone = false;
  const pause = new Int32Array(new SharedArrayBuffer(4));
  return {
    write(line: string): void {
      if (gone) return;
      let buf = Buffer.from(line, 'utf8');
      const started = Date.now();
      while (buf.length > 0) {
        try {
          buf = buf.subarray(writeSync(fd, buf));
        } catch (err) {
          const code = (err as NodeJS.ErrnoException).code;
          if (code === 'EAGAIN' && Date.now() - started < STDOUT_STALL_MS) {
            Atomics.wait(pause, 0, 0, 1); // 1 ms, then try again
            continue;
          }
          if (code === 'EPIPE' || code === 'EBADF') gone = true;
          return; // this line is dropped
        }
      }
    },
  };
}

// Same rule as the API's request context (src/api/request-context.ts): plain tokens only, safe to echo and log.
const REQUEST_ID_RE = /^[A-Za-z0-9._:/+=-]{1,128}$/;
const TRACEPARENT_RE = /^[\da-f]{2}-([\da-f]{32})-[\da-f]{16}-[\da-f]{2}$/;

/** The incoming X-Request-Id if it is sane (≤128 safe characters), else a fresh UUID. */
export function requestIdOf(req: Pick<Request, 'headers'>): string {
  const h = req.headers['x-request-id'];
  const v = Array.isArray(h) ? h[0] : h;
  return v && REQUEST_ID_RE.test(v) ? v : randomUUID();
}

/**
 * Trace id of the request: the active OpenTelemetry span's (when tracing is on), else the one in an
 * incoming W3C `traceparent` header (so logs correlate across nodes even with tracing off).
 */
export function traceIdOf(req: Pick<Request, 'headers'>): string | undefined {
  const span = trace.getSpan(context.active());
  const sc = span?.spanContext();
  if (sc && sc.traceId !== '00000000000000000000000000000000') return sc.traceId;
  const tp = req.headers['traceparent'];
  const m = typeof tp === 'string' ? TRACEPARENT_RE.exec(tp.trim().toLowerCase()) : null;
  return m && m[1] !== '00000000000000000000000000000000' ? m[1] : undefined;
}

export interface RequestLoggerOptions {
  /** Paths logged at debug instead of info (probes and scrapes are noisy). */
  quietPaths?: string[];
}

/**
 * Express middleware: assigns the request id (X-Request-Id in, echoed back out; generated if absent),
 * puts `requestId`, `traceId` and a child logger `log` in res.locals, and logs one line when the
 * response finishes: {reqId, traceId, method, route, path, status, durationMs}. 5xx at error,
 * 4xx at warn, the rest at info (quiet paths at debug).
 */
export function requestLogger(logger: Logger, opts: RequestLoggerOptions = {}) {
  const quiet = new Set(opts.quietPaths ?? ['/livez', '/readyz', '/readyz/leader', '/metrics']);
  return (req: Request, res: Response, next: NextFunction): void => {
    const start = process.hrtime.bigint();
    // Reuse the id the API's request context already chose (res.locals.requestId), if any.
    const reqId = typeof res.locals.requestId === 'string' ? res.locals.requestId : requestIdOf(req);
    const traceId = (res.locals.traceId as string | undefined) ?? traceIdOf(req);
    res.setHeader('X-Request-Id', reqId);
    res.locals.requestId = reqId;
    if (traceId) res.locals.traceId = traceId;
    res.locals.log = logger.child({ reqId, ...(traceId ? { traceId } : {}) });
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      const route = (req as Request & { route?: { path?: unknown } }).route;
      const line = {
        reqId,
        ...(traceId ? { traceId } : {}),
        method: req.method,
        route: route?.path !== undefined ? (req.baseUrl ?? '') + String(route.path) : undefined,
        path: req.originalUrl.split('?')[0],
        status: res.statusCode,
        durationMs: Math.round(Number(process.hrtime.bigint() - start) / 1e4) / 100,
        ...(res.writableFinished ? {} : { aborted: true }),
      };
      const status = res.statusCode;
      const level =
        quiet.has(line.path ?? '') && status < 500
          ? 'debug'
          : status >= 500
            ? 'error'
            : status >= 400
              ? 'warn'
              : 'info';
      logger[level](line, 'request');
    };
    res.on('finish', finish);
    res.on('close', finish);
    next();
  };
}

/** The Status fields the Raft event logger diffs (a src/raft/types.ts `Status` is assignable). */
export interface RaftLogView {
  id: string;
  role: string;
  leaderId: string | null;
  term: number;
  membership: { voters: readonly string[]; learners: readonly string[] };
}

export interface RaftEventLogger {
  /** Logs what changed since the previous call: role, term, leader, membership. */
  observe(s: RaftLogView): void;
  snapshot(
    operation: 'take' | 'install' | 'send',
    info: { index: number; bytes?: number; seconds?: number; peer?: string; error?: unknown },
  ): void;
}

export function createRaftEventLogger(logger: Logger): RaftEventLogger {
  let prev: { role: string; leaderId: string | null; term: number; members: string } | null = null;
  const membersKey = (m: RaftLogView['membership']) =>
    `${[...m.voters].sort().join(',')}|${[...m.learners].sort().join(',')}`;
  return {
    observe(s) {
      const members = membersKey(s.membership);
      const p = prev;
      prev = { role: s.role, leaderId: s.leaderId, term: s.term, members };
      if (!p) {
        logger.info(
          {
            event: 'raft.start',
            role: s.role,
            term: s.term,
            leaderId: s.leaderId,
            voters: s.membership.voters,
            learners: s.membership.learners,
          },
          'raft started',
        );
        return;
      }
      if (s.role !== p.role) {
        if (s.role === 'Candidate' || s.role === 'PreCandidate') {
          logger.info(
            { event: 'raft.election', role: s.role, term: s.term, from: p.role },
            `starting ${s.role === 'PreCandidate' ? 'pre-vote' : 'election'} in term ${s.term}`,
          );
        } else {
          logger.info(
            { event: 'raft.role', role: s.role, from: p.role, term: s.term },
            `role changed from ${p.role} to ${s.role} in term ${s.term}`,
          );
        }
      } else if (s.role === 'Candidate' && s.term !== p.term) {
        logger.info(
          { event: 'raft.election', role: s.role, term: s.term, from: p.role },
          `starting election in term ${s.term}`,
        );
      }
      if (s.leaderId !== p.leaderId || (s.leaderId !== null && s.term !== p.term)) {
        if (s.leaderId === null)
          logger.info(
            { event: 'raft.leader', leaderId: null, previous: p.leaderId, term: s.term },
            'leader lost',
          );
        else
          logger.info(
            { event: 'raft.leader', leaderId: s.leaderId, previous: p.leaderId, term: s.term },
            `leader is ${s.leaderId} in term ${s.term}`,
          );
      }
      if (members !== p.members) {
        logger.info(
          { event: 'raft.membership', voters: s.membership.voters, learners: s.membership.learners },
          'membership changed',
        );
      }
    },
    snapshot(operation, info) {
      const { error, ...rest } = info;
      if (error !== undefined) {
        logger.warn(
          { event: `raft.snapshot.${operation}`, ...rest, err: error },
          `snapshot ${operation} failed`,
        );
      } else {
        logger.info(
          { event: `raft.snapshot.${operation}`, ...rest },
          `snapshot ${operation} at index ${info.index}`,
        );
      }
    },
  };
}
