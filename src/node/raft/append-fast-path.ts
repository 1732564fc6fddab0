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
import { problemBody, zodDetail, type RaftRpcHandler } from './transport.js';
import { problemTypes } from '../../api/problem.js';
import { appendFromWire, appendRequestSchema, appendResponseToWire } from './wire.js';
import { carriesSecret } from './peer-auth.js';
import { MemberRemovedError } from './removal.js';
import { mark, timelineOn } from '../../observability/timeline.js';

const PROBLEM_TYPE = 'application/problem+json; charset=utf-8';

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
      void appendAnswer(h, m).then((a) => {
        send(res, a.status, a.type, a.body);
        if (timelineOn) mark('aans', -1);
      });
    });
  };
}

/** A peer's answer: status, content type and the value to send as JSON. */
export interface PeerAnswer {
  status: number;
  type: string;
  body: unknown;
}

const JSON_TYPE = 'application/json; charset=utf-8';

/**
 * The answer to an append message, as raftRouter gives it (shared with the peer stream,
 * peer-stream-server.ts). Never rejects.
 */
export function appendAnswer(
  h: RaftRpcHandler,
  m: Extract<Message, { type: 'append' }>,
): Promise<PeerAnswer> {
  return h.handleRequest(m).then(
    (resp): PeerAnswer => ({
      status: 200,
      type: JSON_TYPE,
      body:
        resp && resp.type === 'appendResponse'
          ? appendResponseToWire(resp)
          : { term: h.currentTerm(), success: false, ignored: true },
    }),
    (err: unknown): PeerAnswer =>
      err instanceof MemberRemovedError
        ? // As raftRouter answers a removed member: it retires on this answer (removal.ts).
          {
            status: 410,
            type: PROBLEM_TYPE,
            body: problemBody(410, 'Member removed', err.message, { reason: 'removed', nodeId: err.nodeId }),
          }
        : // As raftRouter's handler reports a failure of the node.
          {
            status: 503,
            type: PROBLEM_TYPE,
            body: problemBody(503, 'Raft unavailable', String((err as Error)?.message ?? err)),
          },
  );
}

/** The append message, or null when raftRouter would not accept the body as it is. */
export function parseAppend(body: Buffer, self: string): Extract<Message, { type: 'append' }> | null {
  const r = checkAppend(body, self);
  return 'type' in r ? r : null;
}

/**
 * The append message, or the 400 problem's title and detail raftRouter (or, for a body that is not
 * JSON, express's JSON parser) would refuse the body with.
 */
export function checkAppend(
  body: Buffer,
  self: string,
): Extract<Message, { type: 'append' }> | { title: string; detail: string; problemType?: string } {
  let raw: unknown;
  try {
    raw = JSON.parse(body.toString('utf8'));
  } catch (err) {
    return {
      title: problemTypes.malformedJson.title,
      detail: `the body is not valid JSON: ${(err as Error).message}`,
      problemType: problemTypes.malformedJson.type,
    };
  }
  const invalid = (detail: string) => ({ title: 'Invalid Raft message', detail });
  const b = appendRequestSchema.safeParse(raw);
  if (!b.success) return invalid(zodDetail(b.error));
  if (b.data.to !== undefined && b.data.to !== self)
    return invalid(`message is addressed to ${b.data.to}, this node is ${self}`);
  try {
    return appendFromWire(b.data, self);
  } catch (err) {
    return invalid((err as Error).message);
  }
}
