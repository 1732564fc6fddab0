// POST /raft/forward without express, on the leader: the request every write sent to a follower
// becomes. Measured at one client writing through a follower (bench:timeline), express took
// ~0.32 ms from the forward's headers to the route's handler and about as long again to answer:
// more than the whole replication round trip the write waits for.
//
// Same checks and the same answers as clusterRouter's /raft/forward: the same zod schema
// (forwardRequestSchema, then commandSchema per batched command), the same answer builder
// (answerForward), the same problem for an error, the same request metric. Anything unusual is
// replayed into express, which answers it as before: a request that is not a plain JSON POST, one
// without the cluster secret, a body that does not pass the schema (400 there), or a node that is
// not the leader (421 there).
import type { RequestListener } from 'node:http';
import type { z } from 'zod';
import { forwardRequestSchema } from '../../tsdb/schemas.js';
import {
  durationObserver,
  onResponseEnd,
  plainJsonPost,
  readBody,
  replayRequest,
  sendJson,
  type DurationHistogram,
} from '../http-server.js';
import type { RaftDriver } from './driver.js';
import { carriesSecret } from './peer-auth.js';
import type { ReplicatedService } from './replicated-service.js';
import { answerForward, errorProblem } from './routes.js';
import { problemBody } from './transport.js';
import type { PeerAnswer } from './append-fast-path.js';
import { mark, timelineOn } from '../../observability/timeline.js';

export interface ForwardFastPathOptions {
  /** clusterRouter's JSON body limit (a larger body goes to express, which answers 413). */
  maxBodyBytes: number;
  /** --cluster-secret: a request without it goes to express, whose peerAuth answers 401. */
  clusterSecret?: string;
  metrics?: {
    requestDuration: DurationHistogram;
    requestsInFlight: { inc(): void; dec(): void };
  };
}

const JSON_TYPE = 'application/json; charset=utf-8';
const PROBLEM_TYPE = 'application/problem+json; charset=utf-8';

/** `/raft/forward`, with or without the sender's `?commands=N` (for its own metrics). */
function isForwardPath(url: string | undefined): boolean {
  return url === '/raft/forward' || (url !== undefined && url.startsWith('/raft/forward?'));
}

export function withForwardFastPath(
  d: RaftDriver,
  service: ReplicatedService,
  opts: ForwardFastPathOptions,
  next: RequestListener,
): RequestListener {
  const observeDuration = durationObserver(opts.metrics?.requestDuration, '/raft/forward');
  return (req, res) => {
    if (!isForwardPath(req.url) || !plainJsonPost(req, opts.maxBodyBytes) || d.role !== 'Leader')
      return next(req, res);
    if (timelineOn) mark('fwdhdr', -1);
    if (opts.clusterSecret && !carriesSecret(req.headers.authorization, opts.clusterSecret))
      return next(req, res);
    const start = process.hrtime.bigint();
    readBody(req, (bytes) => {
      let raw: unknown;
      try {
        raw = JSON.parse(bytes.toString('utf8'));
      } catch {
        return replayRequest(req, res, bytes, next);
      }
      const body = forwardRequestSchema.safeParse(raw);
      if (!body.success || d.role !== 'Leader') return replayRequest(req, res, bytes, next);
      opts.metrics?.requestsInFlight.inc();
      onResponseEnd(res, () => {
        opts.metrics?.requestsInFlight.dec();
        observeDuration(res.statusCode, Number(process.hrtime.bigint() - start) / 1e9);
      });
      void forwardAnswer(d, service, body.data).then((a) => {
        if (a.retryAfterSeconds !== undefined && !res.headersSent)
          res.setHeader('Retry-After', String(a.retryAfterSeconds));
        sendJson(res, a.status, a.type, a.body);
        if (timelineOn) mark('fwdsent', -1);
      });
    });
  };
}

/**
 * The leader's answer to a forward whose body passed forwardRequestSchema, as clusterRouter's route
 * and its error handler (routes.ts sendError) give it; shared with the peer stream
 * (peer-stream-server.ts). Never rejects.
 */
export function forwardAnswer(
  d: RaftDriver,
  service: ReplicatedService,
  body: z.infer<typeof forwardRequestSchema>,
): Promise<PeerAnswer & { retryAfterSeconds?: number }> {
  return answerForward(d, service, body).then(
    (a) =>
      a.ok
        ? { status: 200, type: JSON_TYPE, body: a.body }
        : { status: a.status, type: PROBLEM_TYPE, body: problemBody(a.status, a.title, a.detail, a.extra) },
    (err: unknown) => {
      const p = errorProblem(err);
      return {
        status: p.status,
        type: PROBLEM_TYPE,
        body: problemBody(p.status, p.title, p.detail, p.extra),
        ...(p.retryAfterSeconds !== undefined ? { retryAfterSeconds: p.retryAfterSeconds } : {}),
      };
    },
  );
}
