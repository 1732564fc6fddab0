// Request bodies: JSON (one entry or an array) and NDJSON (one entry per line), with the content
// type checked first (415) and the size bounded by maxBodyBytes (413) before anything is parsed.
import express, { type NextFunction, type Request, type RequestHandler, type Response } from 'express';
import { HttpProblem } from './problem.js';

export const jsonTypes = ['application/json'];
export const ndjsonTypes = [
  'application/x-ndjson',
  'application/ndjson',
  'application/jsonl',
  'application/jsonlines',
];

/** The kind of body a request carries, from its Content-Type. */
export type BodyKind = 'json' | 'ndjson';

function bodyKind(req: Request): BodyKind | null {
  if (req.is(['application/json', 'application/*+json'])) return 'json';
  if (req.is(ndjsonTypes)) return 'ndjson';
  return null;
}

// body-parser decodes invalid UTF-8 to U+FFFD silently, which would store a device id or tag that
// the client never sent; a fatal decoder turns it into a 400 instead.
const utf8 = new TextDecoder('utf-8', { fatal: true });
function strictUtf8(_req: unknown, _res: unknown, buf: Buffer): void {
  try {
    utf8.decode(buf);
  } catch {
    throw new Error('the body is not valid UTF-8');
  }
}

/**
 * Parse the body as JSON or NDJSON depending on Content-Type; anything else is a 415 naming the
 * accepted types. After this, req.body is the parsed JSON value, or for NDJSON the raw text with
 * res.locals.bodyKind === 'ndjson'.
 */
export function entryBody(maxBodyBytes: number): RequestHandler {
  // strict: false so a top-level primitive reaches validation, which explains what was expected.
  const json = express.json({ limit: maxBodyBytes, strict: false, type: () => true, verify: strictUtf8 });
  const text = express.text({ limit: maxBodyBytes, type: () => true, verify: strictUtf8 });
  return (req: Request, res: Response, next: NextFunction) => {
    const kind = bodyKind(req);
    if (kind === null) {
      const got = req.get('content-type');
      next(
        new HttpProblem(
          'unsupportedMediaType',
          `${got ? `Content-Type "${got}" is not accepted` : 'the request has no Content-Type'}; expected application/json (one entry or an array) or application/x-ndjson (one entry per line)`,
          {},
          { 'Accept-Post': [...jsonTypes, ...ndjsonTypes].join(', ') },
        ),
      );
      return;
    }
    res.locals.bodyKind = kind;
    (kind === 'json' ? json : text)(req, res, next);
  };
}
