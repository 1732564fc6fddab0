// The HTTP API of a TimeStore node: createApp() builds the express app from a TimeStoreService, so
// the same app serves a single node and a Raft member. The node mounts its own routers (Raft peer
// RPCs, /readyz, /metrics) through `extraRouters`, before the 404 handler.
import express, { type RequestHandler, type Router } from 'express';
import swaggerUi from 'swagger-ui-express';
import type { Logger } from 'pino';
import type { TimeStoreService } from '../node/service.js';
import { errorHandler, notFoundHandler } from './errors.js';
import { countRejection, type ApiMetrics } from './metrics.js';
import { buildOpenApiDocument, type OpenApiPathItem } from './openapi.js';
import { requestContext } from './request-context.js';
import { healthRouter } from './routes/health.js';
import { timeseriesRouter } from './routes/timeseries.js';
import { methodNotAllowed } from './routes/method-not-allowed.js';

export const DEFAULT_MAX_BODY_BYTES = 4 * 1024 * 1024;

export type ExtraRouter = Router | RequestHandler | { path: string; router: Router | RequestHandler };

export interface ResponseInfo {
  method: string;
  /** The matched route pattern (e.g. /api/timeseries/:id), or the path when no route matched. */
  route: string;
  status: number;
  durationMs: number;
  requestId: string;
}

export interface CreateAppOptions {
  service: TimeStoreService;
  nodeId: string;
  /** Reported by /livez and in the OpenAPI document. */
  version?: string;
  /** Largest accepted request body (413 above it); default 4 MiB. */
  maxBodyBytes?: number;
  /** Request logs (debug) and errors (error). Without one the app logs nothing. */
  logger?: Logger;
  /**
   * Routers mounted after the API routes and before the built-in /livez and the 404 handler (e.g.
   * /raft/*, /readyz, /metrics). Mounted before /livez so a node's own probes router can replace it.
   */
  extraRouters?: ExtraRouter[];
  /** Middleware mounted first, after the request id is set (request metrics, tracing, request logs). */
  middleware?: RequestHandler[];
  /** OpenAPI path items documenting the extra routers' paths. */
  openapiPaths?: Record<string, OpenApiPathItem>;
  /** Called when each response finishes (metrics hook). */
  onResponse?: (info: ResponseInfo) => void;
  /** Counters of ingested points and rejected inputs (e.g. createMetrics().api); none by default. */
  metrics?: ApiMetrics;
}

export function createApp(opts: CreateAppOptions): express.Express {
  const maxBodyBytes = opts.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
  const version = opts.version ?? '0.0.0';
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  // Plain key=value parsing: nested objects from a[b]=c are not a feature of this API.
  app.set('query parser', 'simple');

  app.use(requestContext);
  app.use((req, res, next) => {
    const start = process.hrtime.bigint();
    res.once('finish', () => {
      const durationMs = Number(process.hrtime.bigint() - start) / 1e6;
      const route = (req.route?.path as string | undefined) ?? req.path;
      const info: ResponseInfo = {
        method: req.method,
        route,
        status: res.statusCode,
        durationMs,
        requestId: res.locals.requestId as string,
      };
      opts.logger?.debug(info, 'request');
      opts.onResponse?.(info);
      if (opts.metrics) countRejection(opts.metrics, res);
    });
    next();
  });

  for (const mw of opts.middleware ?? []) app.use(mw);

  app.use(
    timeseriesRouter({
      service: opts.service,
      maxBodyBytes,
      ...(opts.metrics ? { metrics: opts.metrics } : {}),
    }),
  );

  const doc = buildOpenApiDocument({
    version,
    ...(opts.openapiPaths ? { extraPaths: opts.openapiPaths } : {}),
  });
  app
    .route('/openapi.json')
    .get((_req, res) => {
      res.json(doc);
    })
    .all(methodNotAllowed(['GET']));
  app.use('/swagger', swaggerUi.serve, swaggerUi.setup(doc, { customSiteTitle: 'TimeStore API' }));

  for (const extra of opts.extraRouters ?? []) {
    if (typeof extra === 'function') app.use(extra);
    else app.use(extra.path, extra.router);
  }
  app.use(healthRouter({ nodeId: opts.nodeId, version }));

  app.use(notFoundHandler());
  app.use(errorHandler({ maxBodyBytes, ...(opts.logger ? { logger: opts.logger } : {}) }));
  return app;
}
