// The last middleware: turns anything thrown by a handler or a body parser into problem+json.
// Bad input maps to 4xx; service errors to 503 with Retry-After; only a genuine bug is a 500.
import type { ErrorRequestHandler, RequestHandler } from 'express';
import type { Logger } from 'pino';
import { NotLeaderError, ServiceUnavailableError } from '../node/service.js';
import { HttpProblem, problemTypes, sendProblem } from './problem.js';

/** Errors raised by express's body parsers (body-parser/raw-body) carry a `type`. */
interface BodyParserError extends Error {
  type?: string;
  status?: number;
  expose?: boolean;
  limit?: number;
  length?: number;
  charset?: string;
  encoding?: string;
}

export function notFoundHandler(): RequestHandler {
  return (req, _res, next) => {
    next(
      new HttpProblem('notFound', `no route for ${req.method} ${req.path}; see /openapi.json for the API`),
    );
  };
}

export function errorHandler(opts: { logger?: Logger; maxBodyBytes: number }): ErrorRequestHandler {
  return (err: unknown, req, res, _next) => {
    const requestId = res.locals.requestId as string | undefined;
    // The client is gone (aborted request or closed connection): nobody to answer.
    if (!res.headersSent && (res.destroyed || req.socket.destroyed)) {
      opts.logger?.debug({ requestId, err: String(err) }, 'client went away');
      return;
    }
    if (res.headersSent) {
      opts.logger?.warn({ requestId, err }, 'error after the response started; closing the connection');
      req.socket.destroy();
      return;
    }

    if (err instanceof HttpProblem) {
      sendProblem(res, err.problem, err.headers);
      return;
    }
    if (err instanceof ServiceUnavailableError) {
      const retry = Math.max(1, Math.ceil(err.retryAfterSeconds));
      sendProblem(
        res,
        { ...problemTypes.unavailable, detail: err.message },
        { 'Retry-After': String(retry) },
      );
      return;
    }
    if (err instanceof NotLeaderError) {
      sendProblem(
        res,
        { ...problemTypes.notLeader, detail: err.message, leaderId: err.leaderId, leaderUrl: err.leaderUrl },
        { 'Retry-After': '1' },
      );
      return;
    }

    // data.db was found damaged (src/storage/integrity): nothing is served from it. Another node
    // can answer; this one does once restarted (a Raft member rebuilds the file on start).
    if ((err as Error | undefined)?.name === 'StorageCorruptError') {
      const file = (err as Error & { file?: string }).file;
      opts.logger?.warn({ requestId, err: (err as Error).message }, 'request refused: storage is corrupt');
      sendProblem(
        res,
        {
          ...problemTypes.storageCorrupt,
          detail: `${(err as Error).message}; this node serves no data until it is repaired: use another node`,
          ...(file ? { file } : {}),
        },
        { 'Retry-After': '30' },
      );
      return;
    }

    // The engine's own input errors (InvalidQueryError, InvalidCommandError) mean the caller sent
    // something the API's validation let through, e.g. a forged or stale cursor: still a 400.
    // Matched by name because src/api does not depend on src/storage.
    const name = (err as Error | undefined)?.name;
    if (name === 'InvalidQueryError' || name === 'InvalidCommandError') {
      const message = (err as Error).message;
      const field = /cursor/i.test(message) ? 'cursor' : name === 'InvalidQueryError' ? 'query' : 'body';
      sendProblem(res, { ...problemTypes.validation, detail: message, errors: [{ field, message }] });
      return;
    }

    const bp = err as BodyParserError;
    switch (bp?.type) {
      case 'entity.parse.failed':
        sendProblem(res, {
          ...problemTypes.malformedJson,
          detail: `the body is not valid JSON: ${bp.message}`,
          errors: [{ field: 'body', message: `expected valid JSON: ${bp.message}` }],
        });
        return;
      case 'entity.verify.failed':
        sendProblem(res, {
          ...problemTypes.malformedJson,
          detail: `${bp.message}; expected UTF-8 encoded JSON`,
          errors: [{ field: 'body', message: `expected UTF-8: ${bp.message}` }],
        });
        return;
      case 'entity.too.large':
        sendProblem(res, {
          ...problemTypes.payloadTooLarge,
          detail: `the body${bp.length ? ` (${bp.length} bytes)` : ''} exceeds this node's limit of ${opts.maxBodyBytes} bytes (--max-body-bytes); split it into smaller batches`,
        });
        return;
      case 'encoding.unsupported':
        sendProblem(res, {
          ...problemTypes.unsupportedMediaType,
          detail: `Content-Encoding "${bp.encoding}" is not supported; expected identity, gzip, deflate or br`,
        });
        return;
      case 'charset.unsupported':
        sendProblem(res, {
          ...problemTypes.unsupportedMediaType,
          detail: `charset "${bp.charset}" is not supported; expected utf-8`,
        });
        return;
      case 'request.aborted':
        return;
      default:
        break;
    }
    // Other 4xx from express internals (e.g. a malformed URI escape): say so, don't call it a bug.
    if (typeof bp?.status === 'number' && bp.status >= 400 && bp.status < 500 && bp.expose !== false) {
      sendProblem(res, {
        type: 'about:blank',
        title: bp.name || 'Bad request',
        status: bp.status,
        detail: bp.message,
      });
      return;
    }

    opts.logger?.error({ requestId, err, method: req.method, url: req.originalUrl }, 'unhandled error');
    sendProblem(res, {
      ...problemTypes.internal,
      detail: `the node failed to handle this request; quote request id ${requestId} when reporting it`,
    });
  };
}
