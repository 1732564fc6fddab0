// HTTP transport between Raft peers.
//
// Client side (RaftTransport): one keep-alive undici Client per peer for appends (HTTP/1.1
// pipelining keeps them in order on one connection, several in flight), and one Pool per peer for
// everything else (votes, TimeoutNow, snapshot chunks, forwarded writes, read-index requests), so a
// slow append never delays an election. Dead peers are backed off exponentially; the core is told
// (reportUnreachable) and retries through its own heartbeats. Responses are turned back into
// messages and stepped into the core.
//
// Server side (raftRouter): /raft/vote, /raft/append, /raft/timeout-now, /raft/message and the
// snapshot endpoints; every body is validated with zod; bad input gets a 4xx problem+json.
import { mark, timelineOn } from '../../observability/timeline.js';
import { createHash } from 'node:crypto';
import { open, stat } from 'node:fs/promises';
import { MemberRemovedError } from './removal.js';
import express, { type Request, type Response, type NextFunction, type Router } from 'express';
import { Pool } from 'undici';
import { z } from 'zod';
import type { Message, NodeId } from '../../raft/types.js';
import { PeerChannel } from './peer-stream.js';
import {
  WireError,
  anyMessageFromWire,
  appendFromWire,
  appendRequestSchema,
  appendResponseFromWire,
  appendResponseSchema,
  appendResponseToWire,
  appendToWire,
  messageToOneWay,
  snapshotInstallSchema,
  timeoutNowSchema,
  voteFromWire,
  voteRequestSchema,
  voteResponseFromWire,
  voteResponseSchema,
  voteResponseToWire,
  voteToWire,
} from './wire.js';

export interface Logger {
  debug(obj: unknown, msg?: string): void;
  info(obj: unknown, msg?: string): void;
  warn(obj: unknown, msg?: string): void;
  error(obj: unknown, msg?: string): void;
}

export const silentLogger: Logger = { debug() {}, info() {}, warn() {}, error() {} };

/** A request body that is already JSON text (sent as it is, not serialized again). */
export class JsonText {
  constructor(readonly text: string) {}
}

export class PeerError extends Error {
  constructor(
    message: string,
    readonly status: number | null,
    readonly body?: unknown,
  ) {
    super(message);
    this.name = 'PeerError';
  }
}

export interface SnapshotSource {
  path: string;
  size: number;
  sha256: string;
}

export interface TransportOptions {
  selfId: NodeId;
  /** Current URL of a member (from the log's config contexts / --peers). */
  resolveUrl: (id: NodeId) => string | undefined;
  /** A response (or one-way message) received from a peer: step it into the core. */
  deliver: (m: Message) => void;
  /** Shared secret sent to peers on every request (--cluster-secret; see peer-auth.ts). */
  clusterSecret?: string;
  /** A member answered 410 `removed`: it applied this node's removal (src/node/raft/removal.ts). */
  onRemoved?: (peer: NodeId) => void;
  reportUnreachable: (id: NodeId) => void;
  reportSnapshot: (id: NodeId, ok: boolean) => void;
  /** The local snapshot file for a snapshot index, or null when it is gone. */
  snapshotSource: (index: number) => Promise<SnapshotSource | null>;
  /** Request timeout for Raft RPCs, ms. */
  rpcTimeoutMs?: number;
  snapshotChunkBytes?: number;
  /** Append requests in flight per peer (pipelined on one connection). Default 2. */
  appendWindow?: number;
  /** Round trip of one append request that got an answer (metrics). */
  observeAppend?: (peer: NodeId, seconds: number) => void;
  /** A forward() answered (ok: 200) or failed, carrying this many writes (metrics). */
  observeForward?: (ok: boolean, writes: number) => void;
  logger?: Logger;
}

type AppendMsg = Extract<Message, { type: 'append' }>;

/** Most entry bytes merged into one append request. */
const MAX_MERGED_BYTES = 4 * 1024 * 1024;

/**
 * Merge queued appends to one peer into as few requests as possible, in order:
 * - an append whose entries continue the previous one's (same term) is appended to it;
 * - an empty append (heartbeat / commit notice) whose prevLogIndex is already covered is folded in;
 * leaderCommit and readCtx become the maximum (an answer echoing round c confirms all rounds ≤ c,
 * and the merged request is sent after all of them were started).
 */
export function mergeAppends(queue: AppendMsg[]): AppendMsg[] {
  const out: AppendMsg[] = [];
  let bytes = 0;
  for (const m of queue) {
    const last = out[out.length - 1];
    if (last && last.term === m.term) {
      const end = last.prevLogIndex + last.entries.length;
      if (m.entries.length === 0 && m.prevLogIndex <= end) {
        last.leaderCommit = Math.max(last.leaderCommit, m.leaderCommit);
        last.readCtx = Math.max(last.readCtx, m.readCtx);
        continue;
      }
      const size = m.entries.reduce((n, e) => n + e.data.length, 0);
      if (last.entries.length === 0 && m.prevLogIndex >= last.prevLogIndex) {
        // A heartbeat followed by an append: the append does the heartbeat's job too.
        out[out.length - 1] = {
          ...m,
          leaderCommit: Math.max(last.leaderCommit, m.leaderCommit),
          readCtx: Math.max(last.readCtx, m.readCtx),
        };
        bytes = size;
        continue;
      }
      if (
        m.prevLogIndex === end &&
        m.prevLogTerm === (last.entries[last.entries.length - 1]?.term ?? last.prevLogTerm) &&
        bytes + size <= MAX_MERGED_BYTES
      ) {
        last.entries = last.entries.concat(m.entries);
        last.leaderCommit = Math.max(last.leaderCommit, m.leaderCommit);
        last.readCtx = Math.max(last.readCtx, m.readCtx);
        bytes += size;
        continue;
      }
    }
    out.push({ ...m });
    bytes = m.entries.reduce((n, e) => n + e.data.length, 0);
  }
  return out;
}

class Peer {
  append: PeerChannel;
  /** Forwarded writes to this peer (made on first use: only followers forward, to the leader). */
  private forwardConn: PeerChannel | null = null;
  pool: Pool;
  downUntil = 0;
  backoffMs = 0;
  snapshotInFlight = false;
  /** Appends waiting while one is in flight; merged into one request when it returns. */
  appendQueue: AppendMsg[] = [];
  appendInFlight = 0;
  private readonly connectTimeoutMs: number;

  constructor(
    readonly id: NodeId,
    readonly url: string,
    timeoutMs: number,
    private readonly headers: Record<string, string>,
  ) {
    this.connectTimeoutMs = Math.max(500, timeoutMs);
    const common = {
      keepAliveTimeout: 30_000,
      keepAliveMaxTimeout: 60_000,
      connectTimeout: Math.max(500, timeoutMs),
    };
    this.append = new PeerChannel(url, {
      connectTimeoutMs: common.connectTimeout,
      // Below the peer's HTTP keep-alive timeout (5 s), so we close an idle connection before it does.
      idleTimeoutMs: 4_000,
      headers,
    });
    this.pool = new Pool(url, {
      ...common,
      connections: 64,
      pipelining: 1,
      headersTimeout: 0,
      bodyTimeout: 0,
    });
  }
  /**
   * A connection of its own: a forward waits a whole commit round on the leader, and appends to
   * the same peer (this node leading again later) must not queue behind it.
   */
  forward(): PeerChannel {
    return (this.forwardConn ??= new PeerChannel(this.url, {
      connectTimeoutMs: this.connectTimeoutMs,
      idleTimeoutMs: 4_000,
      headers: this.headers,
    }));
  }

  close(): void {
    this.append.close();
    this.forwardConn?.close();
    void this.pool.destroy().catch(() => {});
  }
}

export class RaftTransport {
  private peers = new Map<NodeId, Peer>();
  private readonly timeoutMs: number;
  private readonly log: Logger;
  private closed = false;
  /** Append requests actually sent (after merging), and their total round-trip time. */
  merged = 0;
  appendRttMs = 0;
  appendRtts = 0;
  private readonly appendWindow: number;

  constructor(private readonly opts: TransportOptions) {
    this.timeoutMs = opts.rpcTimeoutMs ?? 5_000;
    this.appendWindow = Math.max(1, opts.appendWindow ?? 2);
    this.log = opts.logger ?? silentLogger;
  }

  private peer(id: NodeId): Peer | undefined {
    const url = this.opts.resolveUrl(id);
    if (!url) return undefined;
    let p = this.peers.get(id);
    if (p && p.url !== url) {
      p.close();
      p = undefined;
    }
    if (!p) {
      p = new Peer(id, url, this.timeoutMs, this.authHeaders());
      this.peers.set(id, p);
    }
    return p;
  }

  /** Forget a member's connections (after it was removed). */
  forget(id: NodeId): void {
    this.peers.get(id)?.close();
    this.peers.delete(id);
  }

  private markDown(p: Peer, err: unknown): void {
    const now = Date.now();
    const wasUp = p.downUntil <= now && p.backoffMs === 0;
    p.backoffMs = Math.min(p.backoffMs === 0 ? 50 : p.backoffMs * 2, 1_000);
    p.downUntil = now + p.backoffMs;
    if (wasUp) this.log.warn({ peer: p.id, err: String((err as Error)?.message ?? err) }, 'peer unreachable');
    this.opts.reportUnreachable(p.id);
  }

  private markUp(p: Peer): void {
    if (p.backoffMs !== 0) this.log.info({ peer: p.id }, 'peer reachable again');
    p.backoffMs = 0;
    p.downUntil = 0;
  }

  /** Send messages from a Ready (after they were persisted). Never throws; never blocks. */
  send(messages: Message[]): void {
    if (this.closed) return;
    for (const m of messages) {
      const p = this.peer(m.to);
      if (!p) {
        this.log.debug({ to: m.to, type: m.type }, 'no address for peer; message dropped');
        continue;
      }
      if (m.type === 'snapshot') {
        void this.sendSnapshot(p, m);
        continue;
      }
      if (m.type === 'append') {
        // One append request in flight per peer; what the core produces meanwhile is merged
        // into the next request (group commit on the followers: one fsync per request).
        p.appendQueue.push(m);
        this.pumpAppends(p);
        continue;
      }
      void this.sendOne(p, m);
    }
  }

  private async sendOne(p: Peer, m: Message): Promise<void> {
    try {
      switch (m.type) {
        case 'vote': {
          const body = await this.post(p, 'pool', '/raft/vote', voteToWire(m), this.timeoutMs);
          const r = voteResponseSchema.parse(body);
          if (!r.ignored) this.opts.deliver(voteResponseFromWire(r, p.id, this.opts.selfId, m.preVote));
          break;
        }
        case 'append': {
          const t0 = performance.now();
          const body = await this.post(p, 'append', '/raft/append', appendToWire(m), this.timeoutMs);
          const rtt = performance.now() - t0;
          this.appendRttMs += rtt;
          this.appendRtts++;
          this.opts.observeAppend?.(p.id, rtt / 1000);
          const r = appendResponseSchema.parse(body);
          if (timelineOn) mark(`got-${p.id}`, r.matchIndex ?? -1);
          if (!r.ignored) this.opts.deliver(appendResponseFromWire(r, p.id, this.opts.selfId));
          break;
        }
        case 'timeoutNow':
          await this.post(
            p,
            'pool',
            '/raft/timeout-now',
            { term: m.term, leaderId: m.from, to: m.to },
            this.timeoutMs,
          );
          break;
        default:
          await this.post(p, 'pool', '/raft/message', messageToOneWay(m), this.timeoutMs);
      }
      this.markUp(p);
    } catch (err) {
      if (this.closed) return;
      if (err instanceof PeerError && err.status === 410) return this.opts.onRemoved?.(p.id);
      if (err instanceof PeerError && err.status !== null) {
        this.log.warn(
          { peer: p.id, type: m.type, status: err.status, body: err.body },
          'peer rejected a message',
        );
        return;
      }
      this.markDown(p, err);
    }
  }

  /**
   * Send queued appends, at most `appendWindow` requests in flight per peer, pipelined in order on
   * one connection (HTTP/1.1 pipelining keeps them ordered; the follower steps them in order).
   * Everything queued when a slot frees up is merged into one request.
   */
  private pumpAppends(p: Peer): void {
    while (p.appendInFlight < this.appendWindow && p.appendQueue.length > 0 && !this.closed) {
      const batch = mergeAppends(p.appendQueue.splice(0));
      const m = batch.shift()!;
      p.appendQueue.unshift(...batch);
      if (p.downUntil > Date.now() && m.entries.length > 0) {
        // In backoff: the core probes again after reportUnreachable.
        this.opts.reportUnreachable(p.id);
        continue;
      }
      p.appendInFlight++;
      this.merged++;
      void this.sendOne(p, m).finally(() => {
        p.appendInFlight--;
        if (p.backoffMs > 0 && p.downUntil > Date.now()) {
          // The peer just failed: what is queued is stale by the time it is back.
          p.appendQueue = p.appendQueue.filter((q) => q.entries.length === 0).slice(-1);
        }
        this.pumpAppends(p);
      });
    }
  }

  private authHeaders(): Record<string, string> {
    return this.opts.clusterSecret ? { authorization: `Bearer ${this.opts.clusterSecret}` } : {};
  }

  private async post(
    p: Peer,
    via: 'append' | 'pool',
    path: string,
    body: unknown,
    timeoutMs: number,
  ): Promise<unknown> {
    let status: number;
    let text: string;
    if (via === 'append') {
      // Written to the socket before this returns (see pipelined-connection.ts for why not undici).
      ({ status, body: text } = await p.append.request(path, JSON.stringify(body), timeoutMs));
    } else {
      const res = await p.pool.request({
        method: 'POST',
        path,
        headers: { 'content-type': 'application/json', ...this.authHeaders() },
        body: JSON.stringify(body),
        headersTimeout: timeoutMs,
        bodyTimeout: timeoutMs,
      });
      status = res.statusCode;
      text = await res.body.text();
    }
    const parsed = parseAnswer(text);
    if (status >= 300) throw new PeerError(`${path} on ${p.id}: HTTP ${status}`, status, parsed);
    return parsed;
  }

  /**
   * A forwarded write (or a batch of them, forward-batcher.ts) to the leader, body already JSON:
   * the leader's status and parsed answer. Written to the socket before this returns, on a
   * pipelined connection rather than undici (which waits a loop turn before writing on a reused
   * connection; see pipelined-connection.ts). Throws PeerError (status null) without an answer.
   * Counted through observeForward; undici requests are counted by the node's diagnostics-channel
   * subscriber instead (src/node/observability.ts), which also gives them a span: with tracing on
   * forwards go through request() (replicated-service.ts).
   */
  async forward(
    leader: NodeId,
    body: string,
    writes: number,
    timeoutMs: number,
  ): Promise<{ status: number; body: unknown }> {
    const p = this.peer(leader);
    if (!p) throw new PeerError(`no address for member ${leader}`, null);
    let res;
    try {
      res = await p.forward().request('/raft/forward', body, timeoutMs);
    } catch (err) {
      this.opts.observeForward?.(false, writes);
      throw new PeerError(`POST /raft/forward on ${leader}: ${(err as Error).message}`, null);
    }
    this.opts.observeForward?.(res.status === 200, writes);
    return { status: res.status, body: parseAnswer(res.body) };
  }

  /**
   * A request to a peer other than a Raft message (forwarded write, read index, join, ...).
   * Throws PeerError (status null when the peer could not be reached).
   */
  async request(
    target: { id?: NodeId; url?: string },
    method: 'GET' | 'POST',
    path: string,
    body: unknown,
    opts: { timeoutMs?: number; signal?: AbortSignal; headers?: Record<string, string> } = {},
  ): Promise<{ status: number; body: unknown; headers: Record<string, string | string[] | undefined> }> {
    let client: Pool;
    let ephemeral = false;
    if (target.id) {
      const p = this.peer(target.id);
      if (!p) throw new PeerError(`no address for member ${target.id}`, null);
      client = p.pool;
    } else if (target.url) {
      client = new Pool(target.url, { connections: 1 });
      ephemeral = true;
    } else throw new Error('request: no target');
    const timeoutMs = opts.timeoutMs ?? this.timeoutMs;
    try {
      const res = await client.request({
        method,
        path,
        headers: {
          ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
          ...this.authHeaders(),
          ...(opts.headers ?? {}),
        },
        body: body instanceof JsonText ? body.text : body !== undefined ? JSON.stringify(body) : undefined,
        headersTimeout: timeoutMs,
        bodyTimeout: timeoutMs,
        signal: opts.signal,
      });
      return { status: res.statusCode, body: parseAnswer(await res.body.text()), headers: res.headers };
    } catch (err) {
      if (err instanceof PeerError) throw err;
      throw new PeerError(`${method} ${path} on ${target.id ?? target.url}: ${(err as Error).message}`, null);
    } finally {
      if (ephemeral) void client.close().catch(() => {});
    }
  }

  // ---------------------------------------------------------------- snapshots (leader side)
  private async sendSnapshot(p: Peer, m: Extract<Message, { type: 'snapshot' }>): Promise<void> {
    if (p.snapshotInFlight) return;
    p.snapshotInFlight = true;
    const started = Date.now();
    try {
      const src = await this.opts.snapshotSource(m.snapshot.index);
      if (!src) throw new Error(`no snapshot file for index ${m.snapshot.index}`);
      const q = `leaderId=${encodeURIComponent(this.opts.selfId)}&index=${m.snapshot.index}&size=${src.size}&sha256=${src.sha256}`;
      const st = await this.request({ id: p.id }, 'GET', `/raft/snapshot/status?${q}`, undefined);
      if (st.status !== 200) throw new PeerError(`snapshot status: HTTP ${st.status}`, st.status, st.body);
      let offset = Number((st.body as { offset?: number })?.offset ?? 0);
      if (!(offset >= 0 && offset <= src.size)) offset = 0;
      const chunk = this.opts.snapshotChunkBytes ?? 1 << 20;
      const fh = await open(src.path, 'r');
      try {
        const buf = Buffer.alloc(chunk);
        while (offset < src.size) {
          const { bytesRead } = await fh.read(buf, 0, Math.min(chunk, src.size - offset), offset);
          if (bytesRead <= 0) throw new Error('snapshot file shrank while sending');
          const data = buf.subarray(0, bytesRead);
          const res = await p.pool.request({
            method: 'PUT',
            path: `/raft/snapshot/chunk?${q}&offset=${offset}`,
            headers: {
              'content-type': 'application/octet-stream',
              ...this.authHeaders(),
              'x-chunk-sha256': createHash('sha256').update(data).digest('hex'),
            },
            body: data,
            headersTimeout: 30_000,
            bodyTimeout: 30_000,
          });
          const text = await res.body.text();
          if (res.statusCode === 409) {
            // The receiver has a different amount: continue from where it is.
            const off = Number((JSON.parse(text) as { offset?: number }).offset);
            offset = off >= 0 && off <= src.size ? off : 0;
            continue;
          }
          if (res.statusCode !== 200)
            throw new PeerError(`snapshot chunk: HTTP ${res.statusCode} ${text}`, res.statusCode);
          offset += bytesRead;
        }
      } finally {
        await fh.close();
      }
      const res = await this.request(
        { id: p.id },
        'POST',
        '/raft/snapshot/install',
        {
          term: m.term,
          leaderId: this.opts.selfId,
          snapshot: m.snapshot,
          size: src.size,
          sha256: src.sha256,
        },
        { timeoutMs: 120_000 },
      );
      if (res.status !== 200)
        throw new PeerError(`snapshot install: HTTP ${res.status}`, res.status, res.body);
      const r = appendResponseSchema.safeParse(res.body);
      this.log.info(
        { peer: p.id, index: m.snapshot.index, bytes: src.size, ms: Date.now() - started },
        'snapshot sent',
      );
      this.opts.reportSnapshot(p.id, true);
      if (r.success && !r.data.ignored)
        this.opts.deliver(appendResponseFromWire(r.data, p.id, this.opts.selfId));
    } catch (err) {
      if (!this.closed) {
        this.log.warn(
          { peer: p.id, index: m.snapshot.index, err: String((err as Error).message) },
          'snapshot send failed',
        );
        this.opts.reportSnapshot(p.id, false);
      }
    } finally {
      p.snapshotInFlight = false;
    }
  }

  close(): void {
    this.closed = true;
    for (const p of this.peers.values()) p.close();
    this.peers.clear();
  }
}

/** sha256 of a whole file (hex), streaming. */
export async function fileSha256(path: string): Promise<{ size: number; sha256: string }> {
  const h = createHash('sha256');
  const fh = await open(path, 'r');
  try {
    const buf = Buffer.alloc(1 << 20);
    let pos = 0;
    for (;;) {
      const { bytesRead } = await fh.read(buf, 0, buf.length, pos);
      if (bytesRead === 0) break;
      h.update(buf.subarray(0, bytesRead));
      pos += bytesRead;
    }
    return { size: (await stat(path)).size, sha256: h.digest('hex') };
  } finally {
    await fh.close();
  }
}

// ==================================================================== server side

/** What the server side needs from the node (implemented by the driver). */
export interface RaftRpcHandler {
  selfId: NodeId;
  /** Step a request into the core; resolve with the response it produced (null: none). */
  handleRequest(m: Message): Promise<Message | null>;
  /** Step a one-way message. */
  deliver(m: Message): void;
  currentTerm(): number;
  snapshots: SnapshotReceiverApi;
  /** Install a fully received snapshot: restore data.db, step the snapshot into the core. */
  installSnapshot(m: Extract<Message, { type: 'snapshot' }>, path: string): Promise<Message | null>;
}

export interface SnapshotReceiverApi {
  status(leaderId: string, index: number, size: number, sha256: string): Promise<{ offset: number }>;
  chunk(
    leaderId: string,
    index: number,
    size: number,
    sha256: string,
    offset: number,
    data: Buffer,
    chunkSha: string,
  ): Promise<{ offset: number; conflict?: boolean }>;
  complete(leaderId: string, index: number, size: number, sha256: string): Promise<string>;
}

/** A peer's answer body: its JSON, the text itself when it is not JSON, undefined when empty. */
function parseAnswer(text: string): unknown {
  if (!text) return undefined;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return text;
  }
}

/** An RFC 9457 problem object, as problem() sends it (also an entry of a batch answer). */

export function problemBody(
  status: number,
  title: string,
  detail: string,
  extra: Record<string, unknown> = {},
): Record<string, unknown> {
  return { type: 'about:blank', title, status, detail, ...extra };
}

export function problem(
  res: Response,
  status: number,
  title: string,
  detail: string,
  extra: Record<string, unknown> = {},
): void {
  res
    .status(status)
    .type('application/problem+json')
    .send(JSON.stringify(problemBody(status, title, detail, extra)));
}

/** A zod error as one line: `field: message; ...` (the detail of a 400 "Invalid Raft message"). */
export function zodDetail(err: z.ZodError): string {
  return err.issues.map((i) => `${i.path.join('.') || 'body'}: ${i.message}`).join('; ');
}

const snapQuery = z.object({
  leaderId: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/),
  index: z.coerce.number().int().min(1),
  size: z.coerce.number().int().min(0),
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
  offset: z.coerce.number().int().min(0).optional(),
});

export function raftRouter(h: RaftRpcHandler, opts: { maxBodyBytes?: number; logger?: Logger } = {}): Router {
  const r = express.Router();
  const json = express.json({ limit: opts.maxBodyBytes ?? 256 * 1024 * 1024, type: () => true });
  const log = opts.logger ?? silentLogger;

  const handle =
    (fn: (req: Request, res: Response) => Promise<void> | void) =>
    async (req: Request, res: Response, next: NextFunction) => {
      try {
        await fn(req, res);
      } catch (err) {
        if (err instanceof z.ZodError) return problem(res, 400, 'Invalid Raft message', zodDetail(err));
        if (err instanceof WireError) return problem(res, 400, 'Invalid Raft message', err.message);
        if (err instanceof MemberRemovedError)
          return problem(res, 410, 'Member removed', err.message, { reason: 'removed', nodeId: err.nodeId });
        if (res.headersSent) return next(err);
        log.error({ err: String((err as Error)?.stack ?? err), path: req.path }, 'raft endpoint failed');
        problem(res, 503, 'Raft unavailable', String((err as Error)?.message ?? err));
      }
    };

  const checkTo = (to: string | undefined) => {
    if (to !== undefined && to !== h.selfId)
      throw new WireError(`message is addressed to ${to}, this node is ${h.selfId}`);
  };

  r.post(
    '/raft/vote',
    json,
    handle(async (req, res) => {
      const b = voteRequestSchema.parse(req.body);
      checkTo(b.to);
      const m = voteFromWire(b, h.selfId);
      const resp = await h.handleRequest(m);
      if (resp && resp.type === 'voteResponse') res.json(voteResponseToWire(resp));
      else {
        if (resp) h.deliver(resp);
        res.json({ term: h.currentTerm(), voteGranted: false, preVote: m.preVote, ignored: true });
      }
    }),
  );

  r.post(
    '/raft/append',
    json,
    handle(async (req, res) => {
      const b = appendRequestSchema.parse(req.body);
      checkTo(b.to);
      const m = appendFromWire(b, h.selfId);
      const resp = await h.handleRequest(m);
      if (resp && resp.type === 'appendResponse') res.json(appendResponseToWire(resp));
      else res.json({ term: h.currentTerm(), success: false, ignored: true });
    }),
  );

  r.post(
    '/raft/timeout-now',
    json,
    handle((req, res) => {
      const b = timeoutNowSchema.parse(req.body);
      checkTo(b.to);
      h.deliver({ type: 'timeoutNow', from: b.leaderId, to: h.selfId, term: b.term });
      res.json({ term: h.currentTerm() });
    }),
  );

  r.post(
    '/raft/message',
    json,
    handle((req, res) => {
      const m = anyMessageFromWire(req.body, h.selfId);
      h.deliver(m);
      res.json({ term: h.currentTerm() });
    }),
  );

  r.get(
    '/raft/snapshot/status',
    handle(async (req, res) => {
      const q = snapQuery.parse(req.query);
      res.json(await h.snapshots.status(q.leaderId, q.index, q.size, q.sha256));
    }),
  );

  r.put(
    '/raft/snapshot/chunk',
    express.raw({ type: () => true, limit: 64 * 1024 * 1024 }),
    handle(async (req, res) => {
      const q = snapQuery.parse(req.query);
      const chunkSha = z
        .string()
        .regex(/^[0-9a-f]{64}$/)
        .parse(req.headers['x-chunk-sha256']);
      if (!Buffer.isBuffer(req.body)) throw new WireError('expected an application/octet-stream body');
      const out = await h.snapshots.chunk(
        q.leaderId,
        q.index,
        q.size,
        q.sha256,
        q.offset ?? 0,
        req.body,
        chunkSha,
      );
      if (out.conflict)
        return problem(res, 409, 'Snapshot offset mismatch', `the receiver has ${out.offset} bytes`, {
          offset: out.offset,
        });
      res.json(out);
    }),
  );

  r.post(
    '/raft/snapshot/install',
    json,
    handle(async (req, res) => {
      const b = snapshotInstallSchema.parse(req.body);
      const path = await h.snapshots.complete(b.leaderId, b.snapshot.index, b.size, b.sha256);
      const resp = await h.installSnapshot(
        { type: 'snapshot', from: b.leaderId, to: h.selfId, term: b.term, snapshot: b.snapshot },
        path,
      );
      if (resp && resp.type === 'appendResponse') res.json(appendResponseToWire(resp));
      else res.json({ term: h.currentTerm(), success: false, ignored: true });
    }),
  );

  return r;
}
