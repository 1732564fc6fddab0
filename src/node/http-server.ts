// The node's HTTP server: listen, and shut down gracefully — stop accepting connections, let
// in-flight requests finish (bounded), then close what is left. Signal handling (SIGTERM/SIGINT)
// turns a signal into that shutdown plus the caller's cleanup, and exits 0.
import { randomUUID } from 'node:crypto';
import { createServer, IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { RequestListener } from 'node:http';
import type { Logger } from 'pino';
import { tracingEnabledFromEnv } from '../observability/tracing.js';

export interface HttpServerHandle {
  server: Server;
  host: string;
  port: number;
  /** http://host:port as bound (an IPv6 host in brackets). */
  url: string;
  /** Requests being handled right now. */
  inFlight(): number;
  /**
   * Stop accepting, wait for in-flight requests up to graceMs, then drop the remaining connections.
   * Idempotent: later calls return the same promise.
   */
  close(graceMs?: number): Promise<void>;
}

/** What the server hands upgrade requests to (the peer streams, src/node/raft/peer-stream-server.ts). */
export interface UpgradeHandler {
  onUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void;
  /** Ends every upgraded connection at once (shutdown): their peers see a lost connection. */
  closeAll(): void;
}

/**
 * Answers an upgrade request that is not taken with a problem+json and closes the connection
 * (401 also says which scheme: the peer endpoints' Bearer secret).
 */
export function refuseUpgrade(socket: Duplex, status: 401 | 404, title: string, detail: string): void {
  const body = JSON.stringify({ type: 'about:blank', title, status, detail });
  socket.end(
    `HTTP/1.1 ${status} ${status === 401 ? 'Unauthorized' : 'Not Found'}\r\n` +
      'Content-Type: application/problem+json; charset=utf-8\r\n' +
      (status === 401 ? 'WWW-Authenticate: Bearer realm="timestore-cluster"\r\n' : '') +
      `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
  );
}

export interface ListenOptions {
  host: string;
  port: number;
  logger?: Logger;
  /** Idle keep-alive timeout; above typical load-balancer idle timeouts would be wrong, so keep it short. */
  keepAliveTimeoutMs?: number;
  /** Whole-request timeout (headers and body): a client still sending after it gets 408 and a close. */
  requestTimeoutMs?: number;
  /** Upgrade requests; without it every upgrade is answered 404 (an older peer then uses HTTP). */
  upgrade?: UpgradeHandler;
}

export async function listen(handler: RequestListener, opts: ListenOptions): Promise<HttpServerHandle> {
  const requestTimeout = opts.requestTimeoutMs ?? 120_000;
  const server = createServer(
    {
      requestTimeout,
      // Node checks for expired requests only this often (30 s by default): keep it a fraction of
      // the timeout so a trickling client is cut off near the timeout, not up to 30 s later.
      connectionsCheckingInterval: Math.max(50, Math.min(1_000, Math.floor(requestTimeout / 4))),
    },
    handler,
  );
  server.keepAliveTimeout = opts.keepAliveTimeoutMs ?? 5_000;
  let active = 0;
  const sockets = new Set<Socket>();
  server.on('connection', (s) => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  });
  server.on('request', (_req, res) => {
    active++;
    res.once('close', () => active--);
  });
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.on('error', () => socket.destroy());
    if (opts.upgrade) return opts.upgrade.onUpgrade(req, socket, head);
    refuseUpgrade(
      socket,
      404,
      'Not found',
      `this node takes no upgrade to ${String(req.headers.upgrade)} at ${req.url}`,
    );
  });
  // A malformed request line or header must not take the process down; answer 400 and move on.
  server.on('clientError', (err: NodeJS.ErrnoException, socket) => {
    if (err.code === 'ECONNRESET' || !socket.writable) {
      socket.destroy();
      return;
    }
    // A client that did not send its whole request in time (a stalled or trickled body) gets 408:
    // the server does not hold a connection and a half-read body for a client that never finishes.
    const timedOut = err.code === 'ERR_HTTP_REQUEST_TIMEOUT' || err.code === 'ERR_HTTP_HEADERS_TIMEOUT';
    if (timedOut) opts.logger?.info({ code: err.code }, 'request not received in time; answering 408');
    const [status, reason] = timedOut ? [408, 'Request Timeout'] : [400, 'Bad Request'];
    const body = JSON.stringify(
      timedOut
        ? {
            type: 'urn:timestore:problem:request-timeout',
            title: 'Request timeout',
            status,
            detail: `the request (headers and body) did not arrive within ${requestTimeout} ms (--body-timeout-ms); nothing was stored`,
          }
        : {
            type: 'urn:timestore:problem:bad-request',
            title: 'Bad request',
            status,
            detail: `unparseable HTTP request: ${err.code ?? err.message}`,
          },
    );
    socket.end(
      `HTTP/1.1 ${status} ${reason}\r\nContent-Type: application/problem+json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
    );
  });

  await new Promise<void>((resolve, reject) => {
    const onError = (err: Error) => reject(err);
    server.once('error', onError);
    server.listen(opts.port, opts.host, () => {
      server.off('error', onError);
      resolve();
    });
  });
  const addr = server.address() as AddressInfo;
  const host = addr.address;
  const url = `http://${host.includes(':') ? `[${host}]` : host}:${addr.port}`;

  let closing: Promise<void> | null = null;
  const close = (graceMs = 10_000): Promise<void> => {
    closing ??= new Promise<void>((resolve) => {
      // Upgraded connections are no longer requests the server waits for: end them now.
      opts.upgrade?.closeAll();
      const closed = new Promise<void>((r) => server.close(() => r()));
      // Keep-alive connections that are idle now, or become idle after their last response, are closed
      // so that server.close() can complete; busy ones finish their request first.
      server.closeIdleConnections();
      const sweep = setInterval(() => server.closeIdleConnections(), 50);
      const force = setTimeout(() => {
        opts.logger?.warn(
          { inFlight: active, connections: sockets.size },
          `in-flight requests did not finish within ${graceMs} ms; closing their connections`,
        );
        server.closeAllConnections();
        for (const s of sockets) s.destroy();
      }, graceMs);
      void closed.then(() => {
        clearInterval(sweep);
        clearTimeout(force);
        resolve();
      });
    });
    return closing;
  };

  return { server, host, port: addr.port, url, inFlight: () => active, close };
}

/**
 * On SIGTERM or SIGINT run `shutdown` once and exit 0 (1 if it failed). A second signal while
 * shutting down exits 1 at once: the operator asked twice. Returns a function that uninstalls.
 */
export function exitOnSignals(
  shutdown: (signal: NodeJS.Signals) => Promise<void>,
  logger?: Logger,
  signals: NodeJS.Signals[] = ['SIGTERM', 'SIGINT'],
): () => void {
  let shuttingDown = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (shuttingDown) {
      logger?.warn({ signal }, 'second signal during shutdown; exiting now');
      process.exit(1);
    }
    shuttingDown = true;
    logger?.info({ signal }, 'shutting down');
    shutdown(signal).then(
      () => {
        logger?.info('shutdown complete');
        process.exit(0);
      },
      (err: unknown) => {
        logger?.error({ err }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  for (const s of signals) process.on(s, onSignal);
  return () => {
    for (const s of signals) process.off(s, onSignal);
  };
}

/**
 * Hands a request whose body was already read (by a fast path) to `handler` as a request carrying
 * the same bytes, so the handler sees the request as it came and answers it as it always would.
 */
export function replayRequest(
  req: IncomingMessage,
  res: ServerResponse,
  body: Buffer,
  handler: RequestListener,
  extraHeaders: Record<string, string> = {},
): IncomingMessage {
  const r = new IncomingMessage(req.socket);
  r.method = req.method!;
  r.url = req.url!;
  r.httpVersion = req.httpVersion;
  r.httpVersionMajor = req.httpVersionMajor;
  r.httpVersionMinor = req.httpVersionMinor;
  r.headers = { ...req.headers, ...extraHeaders };
  r.rawHeaders = req.rawHeaders;
  // Complete, as the parser marks a request whose body arrived: otherwise destroying it once read
  // (autoDestroy) counts as an abort and takes the shared socket down with it.
  r.complete = true;
  r.push(body);
  r.push(null);
  handler(r, res);
  return r;
}

/** Headers that keep a request off a fast path: it must be read and answered the general way. */
export function plainJsonPost(req: IncomingMessage, maxBodyBytes: number): boolean {
  const h = req.headers;
  if (
    req.method !== 'POST' ||
    h['content-type'] !== 'application/json' ||
    h['transfer-encoding'] !== undefined ||
    h['content-encoding'] !== undefined ||
    h.traceparent !== undefined ||
    h.expect !== undefined
  )
    return false;
  const length = Number(h['content-length']);
  return Number.isSafeInteger(length) && length > 0 && length <= maxBodyBytes;
}

/** Collects a request body; `done` gets it once complete (never if the client goes away). */
export function readBody(req: IncomingMessage, done: (body: Buffer) => void): void {
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.once('error', () => {
    // The client went away mid-body: nothing to answer.
  });
  req.once('end', () => done(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks)));
}

/** A request-duration histogram as the fast paths use it (prom-client's Histogram fits). */
export interface DurationHistogram {
  observe(labels: { method: string; route: string; status: string }, v: number): void;
  labels?(labels: { method: string; route: string; status: string }): { observe(v: number): void };
}

/**
 * `observe(status, seconds)` for POST `route`, through prom-client's labelled child per status,
 * kept: observing with a labels object hashes the labels on every request (a few µs each on the
 * benchmark's leader, per write).
 */
export function durationObserver(
  h: DurationHistogram | undefined,
  route: string,
): (status: number, seconds: number) => void {
  if (!h) return () => {};
  const byStatus = new Map<number, (v: number) => void>();
  return (status, seconds) => {
    let f = byStatus.get(status);
    if (!f) {
      const labels = { method: 'POST', route, status: String(status) };
      const child = h.labels?.(labels);
      f = child ? (v) => child.observe(v) : (v) => h.observe(labels, v);
      byStatus.set(status, f);
    }
    f(seconds);
  };
}

/** Calls `fn` once, when the response has finished or its connection closed, whichever is first. */
export function onResponseEnd(res: ServerResponse, fn: () => void): void {
  let done = false;
  const once = () => {
    if (done) return;
    done = true;
    fn();
  };
  res.on('finish', once);
  res.on('close', once);
}

/**
 * Answers `value` as JSON with express's res.json lines (X-Request-Id, Content-Type,
 * Content-Length), for the fast paths; nothing if the response was already sent or closed.
 */
export function sendJson(res: ServerResponse, status: number, type: string, value: unknown): void {
  if (res.headersSent || res.destroyed) return;
  const json = JSON.stringify(value);
  // A flat header list: the same lines as setHeader one by one, without the header map.
  res.writeHead(status, [
    'X-Request-Id',
    randomUUID(),
    'Content-Type',
    type,
    'Content-Length',
    String(Buffer.byteLength(json)),
  ]);
  res.end(json);
}

/**
 * Whether the hot requests take their express-free paths (fast-write.ts, append-fast-path.ts,
 * forward-fast-path.ts) and forwards their pipelined connection: not with tracing on (those paths
 * make no spans) nor with TIMESTORE_FAST_WRITE=0.
 */
export function fastPathsEnabled(): boolean {
  return process.env.TIMESTORE_FAST_WRITE !== '0' && !tracingEnabledFromEnv();
}
