// A lean path for the hottest request, a single-entry `POST /api/timeseries` with a plain JSON body,
// in front of the express app.
//
// Why: measured on the benchmark machine (bench/cluster), express 5 itself costs about 0.2 ms of CPU
// per request before any handler work (node:http alone: ~0.04 ms), and on a Raft leader that was
// half of all the CPU a replicated write takes. This path does only what the express route does for
// that request: read the body, check UTF-8, JSON.parse, validate with the SAME zod schema
// (entryToPointSchema via validSingleEntry), write through the service, and answer with the same
// status, headers and body, recording the same request metrics and request log line.
//
// Anything else goes to express unchanged: another method, path, query string, content type or
// encoding, a traceparent header, tracing turned on, a node that is not eligible, a body that is
// not exactly one valid entry, and a write the service rejects. On a Raft follower the service
// forwards the write to the leader (batched, forward-batcher.ts), observed in the node's peer scope
// as inside express. A request whose body was already read is replayed into express from the
// bytes read, so express sees the same request and produces the same answer (problem+json for bad
// input, 503 when there is no leader, ...). A failed write is not retried: express gets the error
// to report (FAST_WRITE_ERROR) instead of writing again.
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, RequestListener, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import {
  durationObserver,
  onResponseEnd,
  plainJsonPost,
  readBody,
  replayRequest as replay,
  type DurationHistogram,
} from '../node/http-server.js';
import { Cancellation } from '../node/cancellation.js';
import type { TimeStoreService } from '../node/service.js';
import type { Command, Point } from '../tsdb/model.js';
import { pointToEntry } from '../tsdb/schemas.js';
import { uuidv7 } from '../tsdb/uuidv7.js';
import { FAST_WRITE_ERROR, validSingleEntry } from './routes/timeseries.js';
import { mark, timelineOn } from '../observability/timeline.js';

const REQUEST_ID = /^[A-Za-z0-9._:/+=-]{1,128}$/;
const utf8 = new TextDecoder('utf-8', { fatal: true });

export interface FastWriteMetrics {
  requestDuration: DurationHistogram;
  requestsInFlight: { inc(): void; dec(): void };
  ingestedPoints: {
    inc(labels: { format: string }, value?: number): void;
    labels?(labels: { format: string }): { inc(value?: number): void };
  };
}

export interface FastWriteOptions {
  service: TimeStoreService;
  maxBodyBytes: number;
  /** Whether this node takes the fast path now. */
  eligible: () => boolean;
  /**
   * Runs the write as a request of this node for what it sends to peers (a follower's forward:
   * its span and timestore_forwarded_writes_total), as express's middleware does.
   */
  inPeerScope?: (fn: () => void) => void;
  metrics?: FastWriteMetrics;
  /** Gets the same "request" line as the express request logger (info). */
  requestLogger?: Logger;
  /** Gets the same "request" line as the app's own debug log. */
  appLogger?: Logger;
}

/** Wraps the express app: the fast path where it applies, the app for everything else. */
export function withFastWrite(opts: FastWriteOptions, app: RequestListener): RequestListener {
  const hot: Hot = {
    observeDuration: durationObserver(opts.metrics?.requestDuration, '/api/timeseries'),
    ingested: opts.metrics?.ingestedPoints.labels?.({ format: 'json' }) ?? {
      inc: (v) => opts.metrics?.ingestedPoints.inc({ format: 'json' }, v),
    },
  };
  return (req, res) => {
    const id = req.headers['x-request-id'];
    if (
      req.url !== '/api/timeseries' ||
      !plainJsonPost(req, opts.maxBodyBytes) ||
      (id !== undefined && !REQUEST_ID.test(id as string)) ||
      !opts.eligible()
    )
      return app(req, res);
    const start = process.hrtime.bigint();
    readBody(req, (body) => {
      if (timelineOn) mark('req', -1);
      const entry = parseSingleEntry(body);
      if (entry === null) return replay(req, res, body, app);
      if (opts.inPeerScope) opts.inPeerScope(() => void write(opts, hot, req, res, body, entry, start, app));
      else void write(opts, hot, req, res, body, entry, start, app);
    });
  };
}

function parseSingleEntry(body: Buffer): ReturnType<typeof validSingleEntry> {
  let text: string;
  try {
    text = utf8.decode(body);
  } catch {
    return null;
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    return null;
  }
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) return null;
  return validSingleEntry(raw);
}

/** The metrics' labelled children, looked up once (labels are hashed on every observe otherwise). */
interface Hot {
  observeDuration: (status: number, seconds: number) => void;
  ingested: { inc(value?: number): void };
}

async function write(
  opts: FastWriteOptions,
  hot: Hot,
  req: IncomingMessage,
  res: ServerResponse,
  body: Buffer,
  entry: NonNullable<ReturnType<typeof validSingleEntry>>,
  start: bigint,
  app: RequestListener,
): Promise<void> {
  const incoming = req.headers['x-request-id'] as string | undefined;
  const requestId = incoming ?? randomUUID();
  const point: Point = { ...entry, id: entry.id ?? uuidv7() };
  const command: Command = { requestId, ops: [{ op: 'put', point }] };
  // What the express route passes (clientSignal): the client closed before the answer.
  const ac = new Cancellation();
  res.once('close', () => {
    if (!res.writableFinished) ac.abort(new Error('client closed the connection'));
  });
  opts.metrics?.requestsInFlight.inc();
  let result;
  try {
    result = await opts.service.write(command, { signal: ac.signal });
  } catch (err) {
    opts.metrics?.requestsInFlight.dec();
    // Express reports it (status, problem+json, metrics, logs) exactly as for its own write.
    const r = replay(req, res, body, app, { 'x-request-id': requestId });
    (r as IncomingMessage & { [FAST_WRITE_ERROR]?: unknown })[FAST_WRITE_ERROR] = err;
    return;
  }
  if (timelineOn) mark('resumed', result.index);
  hot.ingested.inc(1);
  const stored = pointToEntry(result.points.length === 1 ? result.points[0]! : point);
  const json = JSON.stringify(stored);
  onResponseEnd(res, () => {
    opts.metrics?.requestsInFlight.dec();
    const ns = process.hrtime.bigint() - start;
    hot.observeDuration(res.statusCode, Number(ns) / 1e9);
    if (opts.requestLogger?.isLevelEnabled('info'))
      opts.requestLogger.info(
        {
          reqId: requestId,
          method: 'POST',
          route: '/api/timeseries',
          path: '/api/timeseries',
          status: res.statusCode,
          durationMs: Math.round(Number(ns) / 1e4) / 100,
          ...(res.writableFinished ? {} : { aborted: true }),
        },
        'request',
      );
    if (opts.appLogger?.isLevelEnabled('debug'))
      opts.appLogger.debug(
        {
          method: 'POST',
          route: '/api/timeseries',
          status: res.statusCode,
          durationMs: Number(ns) / 1e6,
          requestId,
        },
        'request',
      );
  });
  // Header order and values as express sends them (requestContext, the route, res.json). writeHead
  // with a flat list sends the same lines as setHeader one by one, without storing and validating
  // each in the header map (measured ~30 µs of the write's answer at one client).
  res.writeHead(201, [
    'X-Request-Id',
    requestId,
    'Location',
    `/api/timeseries/${stored.id}`,
    'Content-Type',
    'application/json; charset=utf-8',
    'Content-Length',
    String(Buffer.byteLength(json)),
  ]);
  res.end(json);
  if (timelineOn) mark('ans', result.index);
}
