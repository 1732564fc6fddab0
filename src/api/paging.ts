// Paging metadata travels in headers so the body stays the original API's plain JSON array:
// X-Next-Cursor (the opaque cursor) and Link: <url>; rel="next" (the same request with that cursor).
import type { Request, Response } from 'express';
import { clampTimestamp } from '../tsdb/schemas.js';

export function setNextPage(req: Request, res: Response, nextCursor: string | null): void {
  if (nextCursor === null) return;
  res.setHeader('X-Next-Cursor', nextCursor);
  const url = new URL(req.originalUrl, 'http://placeholder');
  url.searchParams.set('cursor', nextCursor);
  res.setHeader('Link', `<${url.pathname}${url.search}>; rel="next"`);
}

/**
 * Cursors of aggregated results. The engine's aggregate() has no cursor: the next page is the same
 * query with the time range narrowed past the last bucket returned, which buckets aligned to the
 * epoch make exact. Prefixed so a listing cursor is never mistaken for one.
 */
const PREFIX = 'agg.';

export function encodeAggregateCursor(boundMicros: number): string {
  // The bound of a bucket at the edge of the time range may lie beyond it; nothing is stored there.
  const b = clampTimestamp(boundMicros);
  return PREFIX + Buffer.from(JSON.stringify({ b })).toString('base64url');
}

export function decodeAggregateCursor(cursor: string): number | null {
  if (!cursor.startsWith(PREFIX)) return null;
  try {
    const v = JSON.parse(Buffer.from(cursor.slice(PREFIX.length), 'base64url').toString('utf8')) as {
      b?: unknown;
    };
    return typeof v.b === 'number' && Number.isSafeInteger(v.b) ? v.b : null;
  } catch {
    return null;
  }
}
