// One keep-alive HTTP/1.1 connection with pipelining, for the hot Raft path (AppendEntries).
//
// Why not undici here: undici (6.29+) delays every request on a reused idle connection by one
// event-loop turn (setImmediate, "idle socket validation", GHSA-35p6-xmwp-9g52), and hands the body
// over in later turns still. On the leader that moved the append's bytes to *after* its own raft.db
// fsync (the Ready is handled synchronously), so the "send while fsyncing" overlap did not happen,
// and each round trip paid two or three extra loop turns. Here request() writes to the socket
// synchronously (libuv tries the write at once), and a response is resolved in the same 'data'
// callback that completes it.
//
// Scope on purpose: requests to our own peers only (POST with a JSON string body, answers from
// Node's HTTP server), responses framed by Content-Length or chunked encoding. Anything else
// (malformed status line or framing, a response with nothing pending) destroys the connection and
// fails what is pending; the Raft core retries through its own heartbeats.
import { connect, type Socket } from 'node:net';
import { mark, timelineOn } from '../../observability/timeline.js';

export interface PipelinedResponse {
  status: number;
  body: string;
}

export class ConnectionError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConnectionError';
  }
}

interface Pending {
  resolve: (r: PipelinedResponse) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
}

export interface PipelinedConnectionOptions {
  connectTimeoutMs: number;
  /** Close the connection after this long without requests (below the server's keep-alive timeout). */
  idleTimeoutMs?: number;
  /** Extra request headers sent with every request (e.g. the cluster secret's Authorization). */
  headers?: Record<string, string>;
}

/** The blank line that ends an HTTP head. */
export const HEAD_END = Buffer.from('\r\n\r\n');
const CRLF = Buffer.from('\r\n');

/** Parses one response head: status code and the framing headers. Pure. */
export function parseResponseHead(
  head: string,
): { status: number; contentLength: number | null; chunked: boolean; close: boolean } | null {
  const lines = head.split('\r\n');
  const m = /^HTTP\/1\.[01] (\d{3})(?: |$)/.exec(lines[0] ?? '');
  if (!m) return null;
  let contentLength: number | null = null;
  let chunked = false;
  let close = lines[0]!.startsWith('HTTP/1.0');
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i]!;
    const c = line.indexOf(':');
    if (c <= 0) return null;
    const name = line.slice(0, c).trim().toLowerCase();
    const value = line.slice(c + 1).trim();
    if (name === 'content-length') {
      if (!/^\d+$/.test(value)) return null;
      contentLength = Number(value);
    } else if (name === 'transfer-encoding')
      chunked = value
        .toLowerCase()
        .split(/\s*,\s*/)
        .includes('chunked');
    else if (name === 'connection') close = value.toLowerCase() === 'close';
  }
  return { status: Number(m[1]), contentLength, chunked, close };
}

/**
 * What an ordered request connection to one peer shares, whatever its framing: one socket at a
 * time, requests answered in the order they were written, a timeout per request that drops the
 * connection (and fails everything pending on it), an idle close, a new socket on the next request.
 * Subclasses frame: `write` puts a request's bytes on the socket, `parse` takes what arrives and
 * hands each answer to `answered`.
 */
export abstract class OrderedConnection {
  protected socket: Socket | null = null;
  private pending: Pending[] = [];
  private closed = false;
  private idleTimer: NodeJS.Timeout | null = null;
  protected readonly host: string;
  protected readonly port: number;
  /** `Name: value\r\n` lines of opts.headers, built once, for the request (or upgrade) head. */
  protected readonly extraHead: string;

  constructor(
    url: string,
    protected readonly opts: PipelinedConnectionOptions,
    what: string,
  ) {
    const u = new URL(url);
    if (u.protocol !== 'http:') throw new Error(`${what}: expected an http:// URL, got ${url}`);
    this.host = u.hostname.replace(/^\[|\]$/g, '');
    this.port = Number(u.port || 80);
    this.extraHead = Object.entries(opts.headers ?? {})
      .map(([k, v]) => `${k}: ${v}\r\n`)
      .join('');
  }

  /** Requests written and not answered yet. */
  get inFlight(): number {
    return this.pending.length;
  }

  close(): void {
    this.closed = true;
    this.destroy(new ConnectionError('connection closed'));
  }

  /** Bytes to write when a new socket is opened, before any request (nothing by default). */
  protected onOpen(_s: Socket): void {}
  protected abstract write(s: Socket, bytes: string | Buffer): void;
  protected abstract parse(s: Socket, chunk: Buffer): void;

  /** Sends one request; `what` names it in a timeout's message. */
  protected send(what: string, bytes: string | Buffer, timeoutMs: number): Promise<PipelinedResponse> {
    if (this.closed) return Promise.reject(new ConnectionError('connection closed'));
    const s = this.socket ?? this.openSocket();
    return new Promise<PipelinedResponse>((resolve, reject) => {
      const timer = setTimeout(
        () => this.destroy(new ConnectionError(`no answer to ${what} within ${timeoutMs} ms`)),
        Math.max(1, timeoutMs),
      );
      this.pending.push({ resolve, reject, timer });
      if (this.idleTimer) {
        clearTimeout(this.idleTimer);
        this.idleTimer = null;
      }
      this.write(s, bytes);
    });
  }

  /** The oldest pending request's answer; false (and the connection dropped) if none was pending. */
  protected answered(r: PipelinedResponse): boolean {
    const p = this.pending.shift();
    if (!p) {
      this.destroy(new ConnectionError('answer from peer with no request pending'));
      return false;
    }
    clearTimeout(p.timer);
    p.resolve(r);
    if (this.pending.length === 0 && this.opts.idleTimeoutMs && !this.idleTimer) {
      this.idleTimer = setTimeout(() => {
        this.idleTimer = null;
        if (this.pending.length === 0) this.destroy(new ConnectionError('idle'));
      }, this.opts.idleTimeoutMs);
      this.idleTimer.unref();
    }
    return true;
  }

  private openSocket(): Socket {
    const s = connect({ host: this.host, port: this.port, noDelay: true, keepAlive: true });
    this.socket = s;
    const connectTimer = setTimeout(
      () => this.destroy(new ConnectionError(`connect to ${this.host}:${this.port} timed out`), s),
      this.opts.connectTimeoutMs,
    );
    s.once('connect', () => clearTimeout(connectTimer));
    this.onOpen(s);
    s.on('data', (chunk: Buffer) => {
      if (s !== this.socket) return;
      if (timelineOn) mark('data', -1);
      this.parse(s, chunk);
    });
    s.on('error', (err) => this.destroy(new ConnectionError(`${this.host}:${this.port}: ${err.message}`), s));
    s.on('close', () => {
      clearTimeout(connectTimer);
      this.destroy(new ConnectionError(`${this.host}:${this.port} closed the connection`), s);
    });
    return s;
  }

  /** Drops the socket (if it is still the current one) and fails every pending request. */
  protected destroy(err: Error, which: Socket | null = this.socket): void {
    if (which !== this.socket || !which) return;
    this.socket = null;
    this.onDrop();
    which.destroy();
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.idleTimer = null;
    const pending = this.pending;
    this.pending = [];
    for (const p of pending) {
      clearTimeout(p.timer);
      p.reject(err);
    }
  }

  /** Forget per-socket parser state (the socket was dropped). */
  protected onDrop(): void {}
}

/** HTTP/1.1 requests, pipelined. */
export class PipelinedConnection extends OrderedConnection {
  private buf: Buffer = Buffer.alloc(0);

  constructor(url: string, opts: PipelinedConnectionOptions) {
    super(url, opts, 'pipelined connection');
  }

  /** POST a JSON body; the bytes are on the socket (or queued for connect) when this returns. */
  request(path: string, body: string, timeoutMs: number): Promise<PipelinedResponse> {
    const head =
      `POST ${path} HTTP/1.1\r\nHost: ${this.host}:${this.port}\r\nContent-Type: application/json\r\n` +
      this.extraHead +
      `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n`;
    return this.send(`POST ${path}`, head + body, timeoutMs);
  }

  protected write(s: Socket, bytes: string | Buffer): void {
    s.write(bytes);
  }

  protected override onDrop(): void {
    this.buf = Buffer.alloc(0);
  }

  protected parse(_s: Socket, chunk: Buffer): void {
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    for (;;) {
      const headEnd = this.buf.indexOf(HEAD_END);
      if (headEnd < 0) return;
      const head = parseResponseHead(this.buf.toString('latin1', 0, headEnd));
      if (!head) return this.destroy(new ConnectionError('malformed HTTP response from peer'));
      if (head.status < 200) {
        // 1xx: informational, the real response follows.
        this.buf = this.buf.subarray(headEnd + 4);
        continue;
      }
      let body: string;
      let rest: Buffer;
      if (head.chunked) {
        const r = decodeChunked(this.buf, headEnd + 4);
        if (r === 'incomplete') return;
        if (r === null) return this.destroy(new ConnectionError('malformed chunked response from peer'));
        body = r.body;
        rest = this.buf.subarray(r.end);
      } else {
        const len = head.contentLength ?? 0;
        if (this.buf.length < headEnd + 4 + len) return;
        body = this.buf.toString('utf8', headEnd + 4, headEnd + 4 + len);
        rest = this.buf.subarray(headEnd + 4 + len);
      }
      this.buf = rest;
      if (!this.answered({ status: head.status, body })) return;
      if (head.close) return this.destroy(new ConnectionError('peer closed the connection'));
    }
  }
}

/** Decodes a chunked body starting at `from`; 'incomplete' when more bytes are needed. Pure. */
export function decodeChunked(
  buf: Buffer,
  from: number,
): { body: string; end: number } | 'incomplete' | null {
  const parts: Buffer[] = [];
  let pos = from;
  for (;;) {
    const lineEnd = buf.indexOf(CRLF, pos);
    if (lineEnd < 0) return 'incomplete';
    const sizeText = buf.toString('latin1', pos, lineEnd).split(';')[0]!.trim();
    if (!/^[0-9a-fA-F]+$/.test(sizeText)) return null;
    const size = parseInt(sizeText, 16);
    if (size === 0) {
      // Trailers (none expected) end with an empty line.
      const end = buf.indexOf(HEAD_END, lineEnd);
      if (buf.length >= lineEnd + 4 && buf[lineEnd + 2] === 13 && buf[lineEnd + 3] === 10)
        return { body: Buffer.concat(parts).toString('utf8'), end: lineEnd + 4 };
      if (end < 0) return 'incomplete';
      return { body: Buffer.concat(parts).toString('utf8'), end: end + 4 };
    }
    if (buf.length < lineEnd + 2 + size + 2) return 'incomplete';
    parts.push(buf.subarray(lineEnd + 2, lineEnd + 2 + size));
    pos = lineEnd + 2 + size + 2;
  }
}
