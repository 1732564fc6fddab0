// HTTP routes of a replicated node besides the Raft RPCs: GET /raft/status, the internal
// follower→leader endpoints (forwarded writes, read index, commit index) and membership
// (POST /cluster/join, /cluster/remove, /cluster/transfer-leadership). Membership requests sent to
// a follower are passed on to the leader.
import { InvalidCommandError } from '../../storage/data/index.js';
import { createReadStream } from 'node:fs';
import express, { type Request, type Response, type Router } from 'express';
import { z } from 'zod';
import type { Command } from '../../tsdb/model.js';
import { commandSchema, forwardRequestSchema } from '../../tsdb/schemas.js';
import { ServiceUnavailableError } from '../service.js';
import { ProposalFailedError, type RaftDriver } from './driver.js';
import type { ReplicatedService } from './replicated-service.js';
import { PeerError, problem, problemBody, type Logger, silentLogger } from './transport.js';

const nodeIdSchema = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/, {
  error: 'expected a node id (letters, digits, ".", "_", "-")',
});
const urlSchema = z
  .string()
  .refine(
    (s) => {
      try {
        const u = new URL(s);
        return u.protocol === 'http:' || u.protocol === 'https:';
      } catch {
        return false;
      }
    },
    { error: 'expected an http(s) URL' },
  )
  .transform((s) => s.replace(/\/+$/, ''));

export const joinSchema = z.object({ id: nodeIdSchema, url: urlSchema });
export const removeSchema = z.object({ id: nodeIdSchema });
export const transferSchema = z.object({ to: nodeIdSchema.optional() });

export interface StatusBody {
  state: 'Leader' | 'Follower' | 'Candidate';
  role: string;
  leaderId: string | null;
  leaderUrl: string | null;
  nodeId: string;
  term: number;
  commitIndex: number;
  appliedIndex: number;
  lastIndex: number;
  firstIndex: number;
  snapshotIndex: number;
  /** Set when a membership change removed this node: how it learnt it (see removal.ts). */
  removed: { how: 'applied' | 'peer'; index?: number; peer?: string } | null;
  members: Array<{
    id: string;
    url: string | null;
    voter: boolean;
    matchIndex?: number;
    lag?: number;
    state?: string;
    active?: boolean;
  }>;
}

export function statusBody(d: RaftDriver): StatusBody {
  const st = d.status();
  const progress = new Map((st.progress ?? []).map((p) => [p.id, p]));
  const state = st.role === 'Leader' ? 'Leader' : st.role === 'Follower' ? 'Follower' : 'Candidate';
  const storage = d.storageInfo();
  return {
    state,
    role: st.role,
    leaderId: st.leaderId,
    leaderUrl: st.leaderId ? (d.urlOf(st.leaderId) ?? null) : null,
    nodeId: d.selfId,
    term: st.term,
    commitIndex: st.commitIndex,
    appliedIndex: d.appliedIndex(),
    lastIndex: st.lastIndex,
    firstIndex: storage.firstIndex,
    snapshotIndex: storage.snapshotIndex,
    removed: d.removed,
    members: d.members().map((m) => {
      const p = progress.get(m.id);
      if (!p || st.role !== 'Leader') return m;
      const match = m.id === d.selfId ? st.lastIndex : p.match;
      return {
        ...m,
        matchIndex: match,
        lag: Math.max(0, st.lastIndex - match),
        state: p.state,
        active: p.recentActive || m.id === d.selfId,
      };
    }),
  };
}

/** The problem+json answer for an error of a peer endpoint: status, title, detail and extra members. */
export interface ErrorProblem {
  status: number;
  title: string;
  detail: string;
  extra?: Record<string, unknown>;
  retryAfterSeconds?: number;
}

export function errorProblem(err: unknown): ErrorProblem {
  if (err instanceof z.ZodError) {
    const errors = err.issues.slice(0, 20).map((i) => ({
      field: i.path.map(String).join('.') || 'body',
      message: i.message,
    }));
    return {
      status: 400,
      title: 'Invalid request',
      detail: errors.map((e) => `${e.field}: ${e.message}`).join('; '),
      extra: { errors },
    };
  }
  if (err instanceof InvalidCommandError)
    return { status: 400, title: 'Invalid command', detail: err.message };
  if (err instanceof ProposalFailedError)
    return {
      status: err.retryable ? 503 : 409,
      title: err.retryable ? 'Not possible right now' : 'Rejected',
      detail: err.message,
      extra: { leaderId: err.leaderId },
      retryAfterSeconds: 1,
    };
  if (err instanceof ServiceUnavailableError)
    return {
      status: 503,
      title: 'Service unavailable',
      detail: err.message,
      retryAfterSeconds: err.retryAfterSeconds,
    };
  if (err instanceof PeerError)
    return { status: 503, title: 'Leader unreachable', detail: err.message, retryAfterSeconds: 1 };
  return { status: 500, title: 'Internal error', detail: String((err as Error)?.message ?? err) };
}

function sendError(res: Response, err: unknown): void {
  const p = errorProblem(err);
  if (p.retryAfterSeconds !== undefined) res.setHeader('Retry-After', String(p.retryAfterSeconds));
  problem(res, p.status, p.title, p.detail, p.extra);
}

/** The answer to a forward: 200 with its body, or a problem (421 when this node is not the leader). */
export type ForwardAnswer =
  | { ok: true; body: unknown }
  | { ok: false; status: number; title: string; detail: string; extra?: Record<string, unknown> };

/**
 * The leader's answer to `POST /raft/forward` whose body passed forwardRequestSchema: the single
 * command's result (its errors are thrown, as the route's other errors), or a batch's results,
 * one result or problem per command. Shared by the express route and forward-fast-path.ts.
 */
export async function answerForward(
  d: RaftDriver,
  service: ReplicatedService,
  body: z.infer<typeof forwardRequestSchema>,
): Promise<ForwardAnswer> {
  if (d.role !== 'Leader')
    return {
      ok: false,
      status: 421,
      title: 'Not the leader',
      detail: `this node is not the leader (leader: ${d.leaderId ?? 'unknown'})`,
      extra: { leaderId: d.leaderId },
    };
  const ack = body.ack;
  if (body.command) return { ok: true, body: await service.handleForward(body.command as Command, ack) };
  // A batch (forward-batcher.ts): every command is proposed in this turn, so they share one
  // Raft Ready (one fsync, one append per follower); each gets its own result or problem.
  const asProblem = (err: unknown) => {
    const p = errorProblem(err);
    return problemBody(p.status, p.title, p.detail, p.extra);
  };
  const results = await Promise.all(
    body.commands!.map((raw) => {
      const c = commandSchema.safeParse(raw);
      if (!c.success) return asProblem(c.error);
      return service.handleForward(c.data as Command, ack).then((r): unknown => r, asProblem);
    }),
  );
  return { ok: true, body: { results } };
}

/** Largest body of the follower → leader and membership endpoints (a batch of forwarded writes). */
export const CLUSTER_MAX_BODY_BYTES = 64 * 1024 * 1024;

export interface ClusterRouterOptions {
  driver: RaftDriver;
  service: ReplicatedService;
  logger?: Logger;
}

export function clusterRouter({ driver: d, service, logger }: ClusterRouterOptions): Router {
  const log = logger ?? silentLogger;
  const r = express.Router();
  const json = express.json({ limit: CLUSTER_MAX_BODY_BYTES, type: () => true });
  const wrap =
    (fn: (req: Request, res: Response) => Promise<unknown> | unknown) =>
    async (req: Request, res: Response) => {
      try {
        await fn(req, res);
      } catch (err) {
        if (!res.headersSent) sendError(res, err);
      }
    };

  /** Pass a membership request on to the leader (or 503 when there is none). */
  const toLeader = async (req: Request, res: Response): Promise<boolean> => {
    if (d.role === 'Leader') return false;
    const deadline = Date.now() + service.timeoutMs;
    while (!d.leaderId && Date.now() < deadline) await d.waitChange(100);
    if (!d.leaderId) throw new ServiceUnavailableError('no leader', 1);
    if (d.leaderId === d.selfId) return false;
    const out = await d.transport.request({ id: d.leaderId }, 'POST', req.path, req.body ?? {}, {
      timeoutMs: service.timeoutMs,
    });
    res.status(out.status);
    const ct = out.headers['content-type'];
    if (typeof ct === 'string') res.type(ct);
    res.send(typeof out.body === 'string' ? out.body : JSON.stringify(out.body ?? {}));
    return true;
  };

  r.get(
    '/raft/status',
    wrap((_req, res) => res.json(statusBody(d))),
  );

  // ---- internal: follower → leader (also served without express: forward-fast-path.ts)
  r.post(
    '/raft/forward',
    json,
    wrap(async (req, res) => {
      const a = await answerForward(d, service, forwardRequestSchema.parse(req.body));
      if (!a.ok) return problem(res, a.status, a.title, a.detail, a.extra);
      res.json(a.body);
    }),
  );

  r.post(
    '/raft/read-index',
    json,
    wrap(async (_req, res) => {
      if (d.role !== 'Leader')
        return problem(res, 421, 'Not the leader', `leader: ${d.leaderId ?? 'unknown'}`, {
          leaderId: d.leaderId,
        });
      res.json({ index: await service.handleReadIndex() });
    }),
  );

  r.post(
    '/raft/commit-index',
    json,
    wrap((_req, res) => {
      if (d.role !== 'Leader')
        return problem(res, 421, 'Not the leader', `leader: ${d.leaderId ?? 'unknown'}`, {
          leaderId: d.leaderId,
        });
      res.json({ index: d.status().commitIndex });
    }),
  );

  // ---- a member rebuilding its damaged data.db fetches a snapshot (src/node/raft/data-recovery.ts)
  r.get(
    '/raft/snapshot/latest',
    wrap(async (_req, res) => {
      const snap = await d.snapshotForPeer();
      if (!snap) return problem(res, 404, 'No snapshot', `${d.selfId} has no snapshot file to offer`);
      res.setHeader('content-type', 'application/octet-stream');
      res.setHeader('content-length', String(snap.size));
      res.setHeader('x-timestore-snapshot-sha256', snap.sha256);
      res.setHeader('x-timestore-snapshot-meta', Buffer.from(JSON.stringify(snap.meta)).toString('base64'));
      await new Promise<void>((resolve, reject) => {
        const stream = createReadStream(snap.path);
        stream.once('error', reject);
        res.once('close', () => {
          stream.destroy();
          resolve();
        });
        stream.pipe(res);
      });
    }),
  );

  // ---- membership
  r.post(
    '/cluster/join',
    json,
    wrap(async (req, res) => {
      const b = joinSchema.parse(req.body);
      if (await toLeader(req, res)) return;
      const m = d.status().membership;
      if (m.voters.includes(b.id) || m.learners.includes(b.id)) {
        const known = d.urlOf(b.id);
        if (known && known !== b.url) {
          return problem(
            res,
            409,
            'Member exists',
            `${b.id} is already a member with URL ${known}; remove it first`,
          );
        }
        return res.json({ ok: true, alreadyMember: true, members: d.members() });
      }
      d.setAddress(b.id, b.url);
      const { index } = await d.proposeConfChange({ type: 'addLearner', nodeId: b.id, context: b.url });
      log.info({ node: b.id, url: b.url, index }, 'added a learner');
      res.json({ ok: true, index, members: d.members() });
    }),
  );

  r.post(
    '/cluster/remove',
    json,
    wrap(async (req, res) => {
      const b = removeSchema.parse(req.body);
      if (await toLeader(req, res)) return;
      if (b.id === d.selfId) {
        // Removing the leader: hand leadership over first, then the new leader removes us.
        const t = d.transferLeadership();
        if (!t.ok) return problem(res, 409, 'Cannot remove the leader', t.error);
        const deadline = Date.now() + service.timeoutMs;
        while ((d.role === 'Leader' || !d.leaderId) && Date.now() < deadline) await d.waitChange(100);
        if (await toLeader(req, res)) return;
        throw new ServiceUnavailableError('leadership transfer did not complete', 1);
      }
      const m = d.status().membership;
      if (!m.voters.includes(b.id) && !m.learners.includes(b.id)) {
        return res.json({ ok: true, notMember: true, members: d.members() });
      }
      const { index } = await d.proposeConfChange({ type: 'remove', nodeId: b.id });
      log.info({ node: b.id, index }, 'removed a member');
      res.json({ ok: true, index, members: d.members() });
    }),
  );

  r.post(
    '/cluster/transfer-leadership',
    json,
    wrap(async (req, res) => {
      const b = transferSchema.parse(req.body ?? {});
      if (await toLeader(req, res)) return;
      const t = d.transferLeadership(b.to);
      if (!t.ok) return problem(res, 409, 'Transfer not possible', t.error);
      const deadline = Date.now() + service.timeoutMs;
      while (d.leaderId === d.selfId && Date.now() < deadline) await d.waitChange(100);
      if (d.leaderId === d.selfId)
        throw new ServiceUnavailableError(`leadership did not move to ${t.to} in time`, 1);
      res.json({ ok: true, leaderId: d.leaderId, to: t.to });
    }),
  );

  r.get(
    '/cluster/members',
    wrap((_req, res) => res.json({ members: statusBody(d).members })),
  );

  return r;
}
