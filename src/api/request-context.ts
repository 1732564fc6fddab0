// Per-request context: the request id (X-Request-Id in and out, also put on the write command for
// tracing across nodes) and an AbortSignal that fires when the client goes away.
import { randomUUID } from 'node:crypto';
import type { NextFunction, Request, Response } from 'express';

// Accept a caller's id only if it is a plain token, so it is safe to echo and log.
const REQUEST_ID = /^[A-Za-z0-9._:/+=-]{1,128}$/;

export function requestContext(req: Request, res: Response, next: NextFunction): void {
  const incoming = req.get('x-request-id');
  const id = incoming && REQUEST_ID.test(incoming) ? incoming : randomUUID();
  res.locals.requestId = id;
  res.setHeader('X-Request-Id', id);
  next();
}

/** An AbortSignal that aborts when the connection closes before the response was sent. */
export function clientSignal(res: Response): AbortSignal {
  const existing = res.locals.abortSignal as AbortSignal | undefined;
  if (existing) return existing;
  const ac = new AbortController();
  res.once('close', () => {
    if (!res.writableFinished) ac.abort(new Error('client closed the connection'));
  });
  res.locals.abortSignal = ac.signal;
  return ac.signal;
}

export function requestIdOf(res: Response): string {
  return res.locals.requestId as string;
}
