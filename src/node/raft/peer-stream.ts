// The sending side of a peer stream: appends (leader → follower) and forwards (follower → leader)
// as length-prefixed frames on one upgraded connection (frames: peer-stream-frames.ts), instead of
// one HTTP request and response per message.
//
// Why: after the express-free fast paths, what a replication round trip still paid in Node was the
// HTTP message itself: a request head to build and parse, an IncomingMessage and a ServerResponse
// with their events, a response head with a fresh X-Request-Id, on both sides of every append and
// forward (bench:timeline: ~45 µs from a follower's headers to its parsed body, ~70 µs to write
// its answer). etcd's rafthttp streams messages the same way.
//
// PeerChannel is what the transport uses: the stream when the peer speaks it, else (an older
// member, or TIMESTORE_PEER_STREAM=0) HTTP/1.1 pipelining as before. A peer that refuses the
// upgrade gets the refused requests again over HTTP (they were never sent: frames wait for the
// 101), and HTTP for the next minute.
import type { Socket } from 'node:net';
import {
  ConnectionError,
  HEAD_END,
  OrderedConnection,
  parseResponseHead,
  PipelinedConnection,
  type PipelinedConnectionOptions,
  type PipelinedResponse,
} from './pipelined-connection.js';
import {
  CHANNELS,
  encodeRequest,
  FrameReader,
  isStreamPath,
  STREAM_PATH,
  STREAM_PROTOCOL,
} from './peer-stream-frames.js';

/** Largest answer frame accepted (answers are small; a forward batch's is one result per command). */
const MAX_ANSWER_BYTES = 64 * 1024 * 1024;

/** The peer answered the upgrade with something else than 101 (it predates streams, or refuses). */
export class StreamRefusedError extends ConnectionError {
  constructor(readonly status: number) {
    super(`peer refused the stream upgrade: HTTP ${status}`);
    this.name = 'StreamRefusedError';
  }
}

/** Requests to one peer on one stream, answered in order. */
export class StreamConnection extends OrderedConnection {
  private open = false;
  /** Frames written before the upgrade was answered. */
  private queued: Buffer[] = [];
  private head: Buffer = Buffer.alloc(0);
  private reader = new FrameReader(MAX_ANSWER_BYTES, 2);
  private readonly upgrade: string;

  constructor(url: string, opts: PipelinedConnectionOptions) {
    super(url, opts, 'peer stream');
    this.upgrade =
      `GET ${STREAM_PATH} HTTP/1.1\r\nHost: ${this.host}:${this.port}\r\nConnection: Upgrade\r\n` +
      `Upgrade: ${STREAM_PROTOCOL}\r\n${this.extraHead}\r\n`;
  }

  /** Sends `body` as a POST to `path` would be; the frame is on the socket (or queued) on return. */
  request(path: string, body: string, timeoutMs: number): Promise<PipelinedResponse> {
    if (!isStreamPath(path)) return Promise.reject(new Error(`peer stream: ${path} is not carried`));
    return this.send(`POST ${path}`, encodeRequest(CHANNELS[path], body), timeoutMs);
  }

  protected override onOpen(s: Socket): void {
    s.write(this.upgrade);
  }

  protected write(s: Socket, frame: string | Buffer): void {
    if (this.open) s.write(frame);
    else this.queued.push(frame as Buffer);
  }

  protected override onDrop(): void {
    this.open = false;
    this.queued = [];
    this.head = Buffer.alloc(0);
    this.reader = new FrameReader(MAX_ANSWER_BYTES, 2);
  }

  protected parse(s: Socket, chunk: Buffer): void {
    if (!this.open) {
      this.head = this.head.length === 0 ? chunk : Buffer.concat([this.head, chunk]);
      const end = this.head.indexOf(HEAD_END);
      if (end < 0) {
        if (this.head.length > 16 * 1024)
          this.destroy(new ConnectionError('malformed upgrade answer from peer'));
        return;
      }
      const head = parseResponseHead(this.head.toString('latin1', 0, end));
      if (!head) return this.destroy(new ConnectionError('malformed upgrade answer from peer'));
      if (head.status !== 101) return this.destroy(new StreamRefusedError(head.status));
      this.open = true;
      chunk = this.head.subarray(end + 4);
      this.head = Buffer.alloc(0);
      const queued = this.queued;
      this.queued = [];
      if (queued.length > 0) {
        s.cork();
        for (const f of queued) s.write(f);
        s.uncork();
      }
      if (chunk.length === 0) return;
    }
    const frames = this.reader.push(chunk);
    if (!Array.isArray(frames)) return this.destroy(new ConnectionError(`peer stream: ${frames.error}`));
    for (const f of frames)
      if (!this.answered({ status: f.readUInt16BE(0), body: f.toString('utf8', 2) })) return;
  }
}

/** Whether peers are sent appends and forwards on streams (TIMESTORE_PEER_STREAM=0: HTTP only). */
export function peerStreamsEnabled(): boolean {
  return process.env.TIMESTORE_PEER_STREAM !== '0';
}

/** How long a peer that refused the upgrade is spoken to over HTTP before the stream is tried again. */
const REFUSED_RETRY_MS = 60_000;

/** One peer's ordered request channel: a stream when the peer speaks it, HTTP pipelining otherwise. */
export class PeerChannel {
  private stream: StreamConnection | null = null;
  private http: PipelinedConnection | null = null;
  private refusedUntil = 0;

  constructor(
    private readonly url: string,
    private readonly opts: PipelinedConnectionOptions,
    private readonly useStream = peerStreamsEnabled(),
  ) {}

  /** Whether the next request goes on a stream (tests, status). */
  get streaming(): boolean {
    return this.useStream && Date.now() >= this.refusedUntil;
  }

  request(path: string, body: string, timeoutMs: number): Promise<PipelinedResponse> {
    if (!this.streaming) return this.viaHttp().request(path, body, timeoutMs);
    const s = (this.stream ??= new StreamConnection(this.url, this.opts));
    return s.request(path, body, timeoutMs).catch((err: unknown) => {
      if (!(err instanceof StreamRefusedError)) throw err;
      // Never sent: the frame waited for the upgrade. Requests refused together are retried in
      // the order they were made (their rejections run in that order).
      this.refusedUntil = Date.now() + REFUSED_RETRY_MS;
      if (this.stream === s) this.stream = null;
      return this.viaHttp().request(path, body, timeoutMs);
    });
  }

  close(): void {
    this.stream?.close();
    this.http?.close();
  }

  private viaHttp(): PipelinedConnection {
    return (this.http ??= new PipelinedConnection(this.url, this.opts));
  }
}
