// Peer authentication: with --cluster-secret set, every /raft/* and /cluster/* request must carry
// `Authorization: Bearer <secret>` (the transport sends it to peers); anything else is a 401
// problem+json and reaches no handler. Without a secret the endpoints are open, as before, and the
// peer port must then not be reachable from outside the cluster network.
//
// Exempt: GET /raft/status and GET /cluster/members, which change nothing and are what people and
// monitoring (`timestore status`, dashboards) read. The secret is compared in constant time (as
// SHA-256 digests, so lengths do not leak either).
import { createHash, timingSafeEqual } from 'node:crypto';
import type { NextFunction, Request, Response } from 'express';
import { problem } from './transport.js';

const readOnly = new Set(['GET /raft/status', 'GET /cluster/members']);

const digest = (s: string) => createHash('sha256').update(s, 'utf8').digest();

/** Whether a request needs the secret (a peer or membership endpoint that is not read-only). */
export function needsPeerAuth(method: string, path: string): boolean {
  if (!path.startsWith('/raft/') && !path.startsWith('/cluster/')) return false;
  return !readOnly.has(`${method === 'HEAD' ? 'GET' : method} ${path}`);
}

/** Whether an Authorization header value carries the secret. */
export function carriesSecret(authorization: string | undefined, secret: string): boolean {
  const m = /^Bearer (\S+)$/.exec(authorization ?? '');
  return m !== null && timingSafeEqual(digest(m[1]!), digest(secret));
}

export function peerAuth(secret: string | undefined) {
  return (req: Request, res: Response, next: NextFunction): void => {
    if (!secret || !needsPeerAuth(req.method, req.path)) return next();
    if (carriesSecret(req.get('authorization'), secret)) return next();
    res.setHeader('WWW-Authenticate', 'Bearer realm="timestore-cluster"');
    problem(
      res,
      401,
      'Unauthorized',
      `${req.method} ${req.path} is a peer endpoint: it needs "Authorization: Bearer <cluster secret>" (--cluster-secret) ${req.get('authorization') ? 'with the right secret' : 'and the request has none'}`,
    );
  };
}
