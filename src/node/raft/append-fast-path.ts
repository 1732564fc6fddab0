// POST /raft/append without express, on every member: the request a follower serves most, once per
// replication round trip. express 5 costs ~0.2 ms of CPU per request on the benchmark machine (see
// docs/BENCHMARKS.md), paid on the critical path of every write at low concurrency.
//
// Same checks as raftRouter's /raft/append (the same zod schema, `to`, entry indexes), the same
// answer body and headers as express's res.json, the same request metric; a request that is not a
// plain JSON POST, or whose body does not pass those checks, is replayed into the express app, which
// answers it as before (400 problem+json for a bad message).
import type { RequestListener } from 'node:http';
import {
  durationObserver,
  onResponseEnd,
  plainJsonPost,
  readBody,
  replayRequest,
  sendJson as send,
  type DurationHistogram,
} from '../http-server.js';
import type { Message } from '../../raft/types.js';
import { problemBody, type RaftRpcHandler } from './transport.js';

const PROBLEM_TYPE = 'application/problem+json; charset=utf-8';
import { appendFromWire, appendRequestSchema, appendResponseToWire } from './wire.js';
import { carriesSecret } from './peer-auth.js';
import { MemberRemovedError } from './removal.js';
import { mark, timelineOn } from '../../observability/timeline.js';

export interface AppendFastPathOptions {
  /** raftRouter's JSON body limit. */
  maxBodyBytes: number;
  /** --cluster-secret: a request without it goes to express, whose peerAuth answers 401. */
  clusterSecret?: string;
  metrics?: {
    requestDuration: DurationHistogram;
    requestsInFlight: { inc(): void; dec(): void };
  };
}

export function withAppendFastPath(
  h: RaftRpcHandler,
  opts: AppendFastPathOptions,
  next: RequestListener,
): RequestListener {
  const observeDuration = durationObserver(opts.metrics?.requestDuration, '/raft/append');
  return (req, res) => {
    if (timelineOn && req.url === '/raft/append') mark('ahdr', -1);
    if (req.url !== '/raft/append' || !plainJsonPost(req, opts.maxBodyBytes)) return next(req, res);
    if (opts.clusterSecret && !carriesSecret(req.headers.authorization, opts.clusterSecret))
      return next(req, res);
    const start = process.hrtime.bigint();
    readBody(req, (body) => {
      const m = parseAppend(body, h.selfId);
      if (m === null) return replayRequest(req, res, body, next);
      if (timelineOn) mark('arecv', m.entries.length > 0 ? m.entries[m.entries.length - 1]!.index : -1);
      opts.metrics?.requestsInFlight.inc();
      onResponseEnd(res, () => {
        opts.metrics?.requestsInFlight.dec();
        observeDuration(res.statusCode, Number(process.hrtime.bigint() - start) / 1e9);
      });
      h.handleRequest(m).then(
        (resp) => {
          send(
            res,
            200,
            'application/json; charset=utf-8',
            resp && resp.type === 'appendResponse'
              ? appendResponseToWire(resp)
              : { term: h.currentTerm(), success: false, ignored: true },
          );
          if (timelineOn) mark('aans', -1);
        },
        (err: unknown) =>
          err instanceof MemberRemovedError
            ? // As raftRouter answers a removed member: it retires on this answer (removal.ts).
              send(
                res,
                410,
                PROBLEM_TYPE,
                problemBody(410, 'Member removed', err.message, { reason: 'removed', nodeId: err.nodeId }),
              )
            : // As raftRouter's handler reports a failure of the node.
              send(
                res,
                503,
                PROBLEM_TYPE,
                problemBody(503, 'Raft unavailable', String((err as Error)?.message ?? err)),
              ),
      );
    });
  };
}

/** The append message, or null when raftRouter would not accept the body as it is. */
function parseAppend(body: Buffer, self: string): Extract<Message, { type: 'append' }> | null {
  let raw: unknown;
  try {
    raw = JSON.parse(body.toString('utf8'));
  } catch {
    return null;
  }
  const b = appendRequestSchema.safeParse(raw);
  if (!b.success || (b.data.to !== undefined && b.data.to !== self)) return null;
  try {
    return appendFromWire(b.data, self);
  } catch {
    return null;
  }
}
