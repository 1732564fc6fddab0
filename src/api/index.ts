// Public surface of the API module.
export {
  createApp,
  DEFAULT_MAX_BODY_BYTES,
  type CreateAppOptions,
  type ExtraRouter,
  type ResponseInfo,
} from './app.js';
export { REJECTION_REASONS, type ApiMetrics } from './metrics.js';
export { buildOpenApiDocument, type OpenApiDocument, type OpenApiPathItem } from './openapi.js';
export { HttpProblem, problemTypes, sendProblem, zodFieldErrors } from './problem.js';
export { methodNotAllowed } from './routes/method-not-allowed.js';
