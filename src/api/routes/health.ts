// Liveness: answers as long as the process serves HTTP. Readiness (/readyz: leader known, caught up)
// belongs to the node and is mounted by it as an extra router.
import { Router } from 'express';
import { methodNotAllowed } from './method-not-allowed.js';

export function healthRouter(opts: { nodeId: string; version: string }): Router {
  const router = Router();
  router
    .route('/livez')
    .get((_req, res) => {
      res.json({ status: 'ok', nodeId: opts.nodeId, version: opts.version });
    })
    .all(methodNotAllowed(['GET']));
  return router;
}
