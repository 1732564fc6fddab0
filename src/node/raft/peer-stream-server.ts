// The receiving side of peer streams (peer-stream.ts): `GET /raft/stream` with
// `Upgrade: timestore-raft-stream/1` turns the connection into frames (peer-stream-frames.ts);
// each request frame is answered as a POST of its body to its endpoint would be, by the same code
// as the express-free fast paths (appendAnswer, forwardAnswer), in the order the frames came.
//
// Checks as on the HTTP endpoints: the cluster secret (on the upgrade request: a 401 there, as
// peerAuth answers), the same zod schemas and body limits per frame (a bad body gets the 400
// problem, an oversized one 413, and the stream goes on). A frame longer than every limit ends
// the stream: its bytes cannot be skipped safely.
import type { Duplex } from 'node:stream';
import { forwardRequestSchema } from '../../tsdb/schemas.js';
import {
  durationObserver,
  refuseUpgrade,
  type DurationHistogram,
  type UpgradeHandler,
} from '../http-server.js';
import { appendAnswer, checkAppend, type PeerAnswer } from './append-fast-path.js';
import type { RaftDriver } from './driver.js';
import { forwardAnswer } from './forward-fast-path.js';
import { carriesSecret } from './peer-auth.js';
import {
  encodeAnswer,
  FrameReader,
  PATH_OF_CHANNEL,
  STREAM_PATH,
  STREAM_PROTOCOL,
} from './peer-stream-frames.js';
import type { ReplicatedService } from './replicated-service.js';
import { errorProblem } from './routes.js';
import { problemBody } from './transport.js';
import { problemTypes } from '../../api/problem.js';
import { mark, timelineOn } from '../../observability/timeline.js';

const PROBLEM_TYPE = 'application/problem+json; charset=utf-8';

export interface PeerStreamServerOptions {
  driver: RaftDriver;
  service: ReplicatedService;
  /** raftRouter's body limit (appends). */
  appendMaxBytes: number;
  /** clusterRouter's body limit (forwards). */
  forwardMaxBytes: number;
  clusterSecret?: string;
  metrics?: {
    requestDuration: DurationHistogram;
    requestsInFlight: { inc(): void; dec(): void };
  };
}

export function peerStreamServer(opts: PeerStreamServerOptions): UpgradeHandler {
  /** Open streams, and how to end each once its answers are out. */
  const streams = new Map<Duplex, () => void>();
  let closing = false;
  const observe = {
    '/raft/append': durationObserver(opts.metrics?.requestDuration, '/raft/append'),
    '/raft/forward': durationObserver(opts.metrics?.requestDuration, '/raft/forward'),
  };
  const maxFrame = 1 + Math.max(opts.appendMaxBytes, opts.forwardMaxBytes);

  const answer = (channel: number, body: Buffer): Promise<PeerAnswer> => {
    const path = PATH_OF_CHANNEL[channel];
    if (!path)
      return Promise.resolve(
        bad(400, 'Unknown channel', `channel ${channel} is not one of 1 (append), 2 (forward)`),
      );
    const limit = path === '/raft/append' ? opts.appendMaxBytes : opts.forwardMaxBytes;
    if (body.length > limit)
      return Promise.resolve(
        bad(413, 'Payload too large', `a ${path} body of ${body.length} bytes is over the limit of ${limit}`),
      );
    if (path === '/raft/append') {
      const m = checkAppend(body, opts.driver.selfId);
      if (!('type' in m)) return Promise.resolve(bad(400, m.title, m.detail, m.problemType));
      if (timelineOn) mark('arecv', m.entries.length > 0 ? m.entries[m.entries.length - 1]!.index : -1);
      return appendAnswer(opts.driver, m);
    }
    let raw: unknown;
    try {
      raw = JSON.parse(body.toString('utf8'));
    } catch (err) {
      return Promise.resolve(
        bad(
          400,
          problemTypes.malformedJson.title,
          `the body is not valid JSON: ${(err as Error).message}`,
          problemTypes.malformedJson.type,
        ),
      );
    }
    const parsed = forwardRequestSchema.safeParse(raw);
    if (!parsed.success) {
      // As clusterRouter's error handler answers the schema's error (routes.ts errorProblem).
      const p = errorProblem(parsed.error);
      return Promise.resolve({
        status: p.status,
        type: PROBLEM_TYPE,
        body: problemBody(p.status, p.title, p.detail, p.extra),
      });
    }
    return forwardAnswer(opts.driver, opts.service, parsed.data);
  };

  const serve = (socket: Duplex, head: Buffer): void => {
    const reader = new FrameReader(maxFrame, 1);
    // Answers leave in the order the requests came, whatever order they are ready in.
    const slots: { out: Buffer | null }[] = [];
    // end(), not destroy(): the answers just written may still be in the socket's buffer.
    const endIfIdle = () => {
      if (slots.length === 0 && !socket.writableEnded) socket.end();
    };
    streams.set(socket, endIfIdle);
    const flush = () => {
      if (slots.length === 0 || slots[0]!.out === null || socket.destroyed || socket.writableEnded) return;
      socket.cork();
      while (slots.length > 0 && slots[0]!.out !== null) socket.write(slots.shift()!.out!);
      socket.uncork();
      if (timelineOn) mark('aans', -1);
      if (closing) endIfIdle();
    };
    const onFrames = (chunk: Buffer) => {
      if (timelineOn) mark('ahdr', -1);
      const frames = reader.push(chunk);
      if (!Array.isArray(frames)) {
        socket.destroy();
        return;
      }
      for (const f of frames) {
        const start = process.hrtime.bigint();
        const channel = f[0]!;
        const slot: { out: Buffer | null } = { out: null };
        slots.push(slot);
        opts.metrics?.requestsInFlight.inc();
        const answered = closing
          ? Promise.resolve(bad(503, 'Shutting down', 'this member is shutting down; send it elsewhere'))
          : answer(channel, f.subarray(1));
        void answered.then((a) => {
          opts.metrics?.requestsInFlight.dec();
          const path = PATH_OF_CHANNEL[channel];
          if (path) observe[path](a.status, Number(process.hrtime.bigint() - start) / 1e9);
          slot.out = encodeAnswer(a.status, JSON.stringify(a.body));
          flush();
        });
      }
    };
    socket.on('data', onFrames);
    socket.on('error', () => socket.destroy());
    socket.once('close', () => streams.delete(socket));
    if (head.length > 0) onFrames(head);
  };

  return {
    onUpgrade(req, socket, head) {
      if (req.url !== STREAM_PATH || req.method !== 'GET' || req.headers.upgrade !== STREAM_PROTOCOL)
        return refuseUpgrade(
          socket,
          404,
          'Not found',
          `no upgrade to ${String(req.headers.upgrade)} at ${req.url}`,
        );
      if (opts.clusterSecret && !carriesSecret(req.headers.authorization, opts.clusterSecret))
        return refuseUpgrade(
          socket,
          401,
          'Unauthorized',
          `GET ${STREAM_PATH} is a peer endpoint: it needs "Authorization: Bearer <cluster secret>" (--cluster-secret)`,
        );
      (socket as Duplex & { setNoDelay?: (on: boolean) => void }).setNoDelay?.(true);
      socket.write(
        `HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: ${STREAM_PROTOCOL}\r\n\r\n`,
      );
      serve(socket, head);
    },
    closeAll() {
      // Frames being handled are answered first (a forward may be a commit round away); new ones
      // get 503. The HTTP server's grace period bounds the wait (it destroys what is left).
      closing = true;
      for (const endIfIdle of streams.values()) endIfIdle();
    },
  };
}

function bad(status: number, title: string, detail: string, problemType?: string): PeerAnswer {
  return {
    status,
    type: PROBLEM_TYPE,
    body: problemBody(status, title, detail, problemType ? { type: problemType } : {}),
  };
}
