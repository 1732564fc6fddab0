// The time-series endpoints of the original Time Store API, with paging, time ranges, aggregation
// and batch writes. Handlers validate everything before touching the service (bad input never
// changes state) and reach the database only through TimeStoreService, so they work unchanged on a
// single node and on a Raft member.
import { Router, type Request, type Response } from 'express';
import type { z } from 'zod';
import type { TimeStoreService } from '../../node/service.js';
import type { Command, Point, WriteOp } from '../../tsdb/model.js';
import {
  bucketToJson,
  consistencyQuerySchema,
  deviceIdSchema,
  deviceQuerySchema,
  entryToPointSchema,
  entryInputSchema,
  idSchema,
  limits,
  listQuerySchema,
  pointToEntry,
  resolveTimeRange,
  writeQuerySchema,
  type FieldError,
  type ValidEntry,
} from '../../tsdb/schemas.js';
import { uuidv7 } from '../../tsdb/uuidv7.js';
import { entryBody } from '../body.js';
import type { ApiMetrics } from '../metrics.js';
import { fieldPath, HttpProblem, zodFieldErrors } from '../problem.js';
import { clientSignal, requestIdOf } from '../request-context.js';
import { decodeAggregateCursor, encodeAggregateCursor, setNextPage } from '../paging.js';
import { methodNotAllowed } from './method-not-allowed.js';
import { structuralHazard } from '../../tsdb/json-hazard.js';

const entryFields = Object.keys(entryInputSchema.shape);

/**
 * Set by the fast write path (src/api/fast-write.ts) on a request it hands over after its write
 * failed: the route reports that error instead of writing a second time.
 */
export const FAST_WRITE_ERROR = Symbol('fastWriteError');

/**
 * One entry exactly as the route accepts it (the same checks as parseEntries for a single JSON
 * entry), or null when the route would answer anything but a write (the fast path then falls back).
 */
export function validSingleEntry(raw: unknown): ValidEntry | null {
  if (structuralHazard(raw, limits.attributesDepth + 2)) return null;
  const r = entryToPointSchema.safeParse(raw);
  return r.success ? r.data : null;
}

export interface TimeseriesRouterOptions {
  service: TimeStoreService;
  maxBodyBytes: number;
  metrics?: ApiMetrics;
}

export function timeseriesRouter({ service, maxBodyBytes, metrics }: TimeseriesRouterOptions): Router {
  const router = Router();

  router
    .route('/api/timeseries')
    .post(entryBody(maxBodyBytes), async (req, res) => {
      parseQuery(writeQuerySchema, req);
      const { entries, single } = parseEntries(req, res);
      const points: Point[] = entries.map((e) => ({ ...e, id: e.id ?? uuidv7() }));
      const ops: WriteOp[] = points.map((point) => ({ op: 'put', point }));
      const command: Command = { requestId: requestIdOf(res), ops };
      const failedBefore = (req as Request & { [FAST_WRITE_ERROR]?: unknown })[FAST_WRITE_ERROR];
      if (failedBefore !== undefined) throw failedBefore;
      const result = await service.write(command, { signal: clientSignal(res) });
      metrics?.ingestedPoints.inc({ format: res.locals.bodyKind as string }, points.length);
      // The stored points, as the engine returned them; ours if it returned none (same content).
      const stored = (result.points.length === points.length ? result.points : points).map(pointToEntry);
      if (single) {
        res.setHeader('Location', `/api/timeseries/${stored[0]!.id}`);
        res.status(201).json(stored[0]);
      } else {
        res.status(201).json(stored);
      }
    })
    .get(async (req, res) => {
      const q = parseQuery(listQuerySchema, req);
      const range = timeRange(q);
      const page = await service.read(
        q.consistency,
        (store) =>
          store.query({
            ...(q.deviceId !== undefined ? { deviceId: q.deviceId } : {}),
            ...range,
            order: q.order,
            limit: q.limit ?? limits.defaultLimit,
            ...(q.cursor !== undefined ? { cursor: q.cursor } : {}),
          }),
        { signal: clientSignal(res) },
      );
      setNextPage(req, res, page.nextCursor);
      res.json(page.points.map(pointToEntry));
    })
    .all(methodNotAllowed(['GET', 'POST']));

  router
    .route('/api/timeseries/device/:deviceId')
    .get(async (req, res) => {
      const deviceId = parseParam('deviceId', deviceIdSchema, req.params.deviceId);
      const q = parseQuery(deviceQuerySchema, req);
      const range = timeRange(q);
      const limit = q.limit ?? limits.defaultLimit;
      const signal = clientSignal(res);
      if (q.aggregate && q.interval !== undefined) {
        const fns = q.aggregate;
        const bucket = q.interval;
        if (q.cursor !== undefined) {
          const bound = decodeAggregateCursor(q.cursor);
          if (bound === null)
            throw HttpProblem.validation(
              [
                {
                  field: 'cursor',
                  message: 'expected a cursor returned by an earlier aggregate request (X-Next-Cursor)',
                },
              ],
              'query',
            );
          if (q.order === 'asc') range.from = Math.max(range.from ?? bound, bound);
          else range.to = Math.min(range.to ?? bound, bound);
        }
        const buckets = await service.read(
          q.consistency,
          (store) => store.aggregate({ deviceId, ...range, bucket, fns, order: q.order, limit }),
          { signal },
        );
        const last = buckets[buckets.length - 1];
        if (buckets.length === limit && last)
          setNextPage(req, res, encodeAggregateCursor(q.order === 'asc' ? last.start + bucket : last.start));
        res.json(buckets.map((b) => bucketToJson(b, bucket, fns)));
        return;
      }
      const page = await service.read(
        q.consistency,
        (store) =>
          store.query({
            deviceId,
            ...range,
            order: q.order,
            limit,
            ...(q.cursor !== undefined ? { cursor: q.cursor } : {}),
          }),
        { signal },
      );
      setNextPage(req, res, page.nextCursor);
      res.json(page.points.map(pointToEntry));
    })
    .all(methodNotAllowed(['GET']));

  router
    .route('/api/timeseries/:id')
    .get(async (req, res) => {
      const id = parseParam('id', idSchema, req.params.id).toLowerCase();
      const q = parseQuery(consistencyQuerySchema, req);
      const point = await service.read(q.consistency, (store) => store.get(id), {
        signal: clientSignal(res),
      });
      if (!point) throw new HttpProblem('notFound', `no entry with id ${id}`);
      res.json(pointToEntry(point));
    })
    .delete(async (req, res) => {
      const id = parseParam('id', idSchema, req.params.id).toLowerCase();
      parseQuery(writeQuerySchema, req);
      // Idempotent: deleting an id that does not exist is a success too (a retried delete must not fail).
      await service.write(
        { requestId: requestIdOf(res), ops: [{ op: 'delete', id }] },
        { signal: clientSignal(res) },
      );
      res.status(204).end();
    })
    .all(methodNotAllowed(['GET', 'DELETE']));

  return router;
}

// ---------------------------------------------------------------------------------------------

/** Validate the body (one entry, an array, or NDJSON lines); collects every bad field before failing. */
function parseEntries(req: Request, res: Response): { entries: ValidEntry[]; single: boolean } {
  const kind = res.locals.bodyKind as 'json' | 'ndjson';
  const errors: FieldError[] = [];
  const entries: ValidEntry[] = [];
  const check = (raw: unknown, prefix: string) => {
    // Checked on the raw JSON, before zod: (1) zod and the depth check recurse, so a hostile
    // 100k-deep attribute would overflow the stack (a 500); (2) a "__proto__" key would be dropped
    // silently by object construction, losing data without telling the client.
    const hazard = structuralHazard(raw, limits.attributesDepth + 2);
    if (hazard) {
      const { path, reason } = hazard;
      errors.push({
        field:
          reason === 'proto'
            ? fieldPath(path, prefix)
            : fieldPath(path.slice(0, 1), prefix) || prefix || 'body',
        message:
          reason === 'proto'
            ? 'the key "__proto__" is not allowed'
            : path[0] === 'attributes'
              ? `expected at most ${limits.attributesDepth} levels of nesting`
              : 'nested too deeply: expected an entry object with the documented fields',
      });
      return;
    }
    const r = entryToPointSchema.safeParse(raw);
    if (r.success) entries.push(r.data);
    else errors.push(...zodFieldErrors(r.error, prefix, entryFields, raw));
  };

  if (kind === 'ndjson') {
    const text = typeof req.body === 'string' ? req.body : '';
    const lines = text.split('\n');
    let count = 0;
    for (let i = 0; i < lines.length; i++) {
      const line = lines[i]!.trim();
      if (line === '') continue;
      if (++count > limits.batchEntries) throw tooManyEntries();
      let value: unknown;
      try {
        value = JSON.parse(line);
      } catch (err) {
        errors.push({
          field: `line ${i + 1}`,
          message: `expected one JSON object per line: ${(err as Error).message}`,
        });
        continue;
      }
      check(value, `line ${i + 1}`);
    }
    if (count === 0 && errors.length === 0)
      throw HttpProblem.validation(
        [{ field: 'body', message: 'expected at least one entry (one JSON object per line)' }],
        'body',
      );
    if (errors.length > 0) throw HttpProblem.validation(errors, 'body');
    return { entries, single: false };
  }

  const body: unknown = req.body;
  if (Array.isArray(body)) {
    if (body.length === 0)
      throw HttpProblem.validation(
        [{ field: 'body', message: 'expected at least one entry in the array' }],
        'body',
      );
    if (body.length > limits.batchEntries) throw tooManyEntries();
    body.forEach((item, i) => check(item, `[${i}]`));
    if (errors.length > 0) throw HttpProblem.validation(errors, 'body');
    return { entries, single: false };
  }
  if (body === undefined)
    throw HttpProblem.validation(
      [{ field: 'body', message: 'expected an entry object or an array of entries; the body is empty' }],
      'body',
    );
  check(body, '');
  if (errors.length > 0) throw HttpProblem.validation(errors, 'body');
  return { entries, single: true };
}

function tooManyEntries(): HttpProblem {
  return HttpProblem.validation(
    [
      {
        field: 'body',
        message: `expected at most ${limits.batchEntries} entries per request; split the batch`,
      },
    ],
    'body',
  );
}

/** Parse req.query; a parameter given several times is an error (which one would win is a guess). */
function parseQuery<S extends z.ZodType>(schema: S, req: Request): z.output<S> {
  const query = req.query as Record<string, unknown>;
  const errors: FieldError[] = [];
  for (const [k, v] of Object.entries(query)) {
    if (typeof v !== 'string')
      errors.push({ field: k, message: 'expected the parameter once, as a plain value' });
  }
  if (errors.length > 0) throw HttpProblem.validation(errors, 'query');
  const r = schema.safeParse(query);
  if (!r.success) {
    const errs = zodFieldErrors(r.error).map((e) =>
      e.message.startsWith('unknown field') ? { ...e, message: 'unknown query parameter' } : e,
    );
    throw HttpProblem.validation(errs, 'query');
  }
  return r.data;
}

function parseParam<S extends z.ZodType>(name: string, schema: S, value: unknown): z.output<S> {
  const r = schema.safeParse(value);
  if (!r.success)
    throw HttpProblem.validation([{ field: name, message: r.error.issues[0]?.message ?? 'invalid' }], 'path');
  return r.data;
}

function timeRange(q: { from?: string; to?: string; precision?: 's' | 'ms' | 'us' | 'ns' }): {
  from?: number;
  to?: number;
} {
  const r = resolveTimeRange(q);
  if (r.issues.length > 0) throw HttpProblem.validation(r.issues, 'query');
  return { ...(r.from !== undefined ? { from: r.from } : {}), ...(r.to !== undefined ? { to: r.to } : {}) };
}
