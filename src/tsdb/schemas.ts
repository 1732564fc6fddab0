// The request and response shapes of the HTTP API, as zod schemas: the one source of truth for the
// TypeScript types, the validation of every request, and the OpenAPI document (src/api/openapi.ts
// feeds these to z.toJSONSchema). Change a shape here and all three follow.
//
// Wire shapes keep the original Time Store API: an entry is {id, deviceId, timestamp, value} with
// `timestamp` an RFC 3339 string; tags and attributes are optional additions.
import { z } from 'zod';
import type { AggregateBucket, AggregateFn, Point } from './model.js';
import { structuralHazard } from './json-hazard.js';
import { aggregateListPattern, durationPattern, numericTimestampRule, rfc3339Pattern } from './patterns.js';
import {
  EPOCH_PRECISIONS,
  MAX_TIMESTAMP_US,
  MIN_TIMESTAMP_US,
  formatRfc3339,
  parseEpoch,
  parseRfc3339,
  type EpochPrecision,
} from './time.js';

export const precisions = EPOCH_PRECISIONS as readonly ['s', 'ms', 'us', 'ns'];
export type Precision = EpochPrecision;

/** The TimestampError message (it names the input and the expected form), or null when fine. */
function timeError(fn: () => number): string | null {
  try {
    fn();
    return null;
  } catch (err) {
    return (err as Error).message;
  }
}

const durationUnits = { us: 1, ms: 1e3, s: 1e6, m: 6e7, h: 3.6e9, d: 8.64e10, w: 6.048e11 };

/** Durations for aggregation buckets: a whole number and a unit (us, ms, s, m, h, d, w). */
function parseDurationMicros(s: string): number | null {
  const m = /^(\d+)(us|ms|s|m|h|d|w)$/.exec(s.trim());
  if (!m) return null;
  const unit = durationUnits[m[2] as keyof typeof durationUnits];
  const v = Number(m[1]) * unit;
  return Number.isSafeInteger(v) ? v : null;
}

// ---------------------------------------------------------------------------------------------
// Limits (documented in the OpenAPI document through the schemas below)
// ---------------------------------------------------------------------------------------------

/** The schemas that become components of the OpenAPI document (src/api/openapi.ts). */
export const apiSchemas = z.registry<{ id: string }>();

export const limits = {
  deviceIdBytes: 256,
  tags: 32,
  tagKeyBytes: 128,
  tagValueBytes: 256,
  /** Size of `attributes` as compact JSON. */
  attributesBytes: 16 * 1024,
  /** Nesting depth of `attributes` (the object itself is depth 1). */
  attributesDepth: 8,
  /** Entries in one POST (JSON array or NDJSON). */
  batchEntries: 10_000,
  defaultLimit: 100,
  maxLimit: 10_000,
} as const;

export const aggregateFns = [
  'count',
  'sum',
  'avg',
  'min',
  'max',
  'first',
  'last',
] as const satisfies readonly AggregateFn[];
export const consistencyLevels = ['linearizable', 'leader', 'none'] as const;

const utf8Bytes = (s: string) => Buffer.byteLength(s, 'utf8');

// ---------------------------------------------------------------------------------------------
// Entry (request)
// ---------------------------------------------------------------------------------------------

const uuidMessage = 'expected a UUID such as 0190b3a0-7d2c-7cc1-9a43-5d36f0e3a1b2';
export const idSchema = z.guid({ error: uuidMessage }).meta({
  description:
    'Entry id (UUID). Generated (UUIDv7, time-ordered) when absent. Writing an id that exists replaces that entry.',
  examples: ['0190b3a0-7d2c-7cc1-9a43-5d36f0e3a1b2'],
});

export const deviceIdSchema = z
  .string({ error: 'expected a non-empty string' })
  .min(1, { error: 'expected a non-empty string' })
  .refine((s) => utf8Bytes(s) <= limits.deviceIdBytes, {
    error: `expected at most ${limits.deviceIdBytes} bytes of UTF-8`,
  })
  .meta({
    description: `Device (series) id: a non-empty string of at most ${limits.deviceIdBytes} UTF-8 bytes.`,
    examples: ['sensor-42'],
  });

const timestampMessage =
  'expected an RFC 3339 date-time with a time zone (e.g. 2024-05-01T12:00:00.123456Z) or an epoch number with "precision"';
export const timestampInputSchema = z
  .union(
    [
      z
        .string()
        .superRefine((s, ctx) => {
          const err = timeError(() => parseRfc3339(s));
          if (err) ctx.addIssue({ code: 'custom', message: err });
        })
        // A pattern rather than format: date-time, whose years 0001..9999 reach past the µs range.
        .meta({ pattern: rfc3339Pattern }),
      z.number(),
    ],
    { error: timestampMessage },
  )
  .meta({
    description:
      'RFC 3339 date-time with a time zone, or a number of seconds/milliseconds/microseconds/nanoseconds since the Unix epoch together with "precision". Stored as integer microseconds: finer digits are truncated.',
    examples: ['2024-05-01T12:00:00.123456Z'],
  });

export const precisionSchema = z
  .enum(precisions, { error: `expected one of ${precisions.join(', ')}` })
  .meta({
    description:
      'Unit of a numeric timestamp: s, ms, us or ns since the Unix epoch. Required when timestamp is a number.',
  });

export const valueSchema = z
  .number({ error: 'expected a finite number (a JSON number, not a string, null, NaN or Infinity)' })
  .meta({ description: 'The measurement: a finite double.', examples: [21.5] });

export const tagsSchema = z
  .record(
    z
      .string()
      .min(1, { error: 'tag names must be non-empty' })
      .refine((k) => utf8Bytes(k) <= limits.tagKeyBytes, {
        error: `tag names must be at most ${limits.tagKeyBytes} bytes`,
      }),
    z.string({ error: 'expected a string tag value' }).refine((v) => utf8Bytes(v) <= limits.tagValueBytes, {
      error: `expected a tag value of at most ${limits.tagValueBytes} bytes`,
    }),
    { error: 'expected an object of string values, e.g. {"site": "north"}' },
  )
  .refine((t) => Object.keys(t).length <= limits.tags, { error: `expected at most ${limits.tags} tags` })
  .meta({
    description: `Indexed string labels (low cardinality): at most ${limits.tags} tags, names up to ${limits.tagKeyBytes} bytes, values up to ${limits.tagValueBytes} bytes.`,
    examples: [{ site: 'north' }],
  });

/** Any JSON value (attributes' values); its own component so the document's $refs stay simple. */
type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };
export const jsonValueSchema: z.ZodType<JsonValue> = z.lazy(() =>
  z.union([
    z.string(),
    z.number(),
    z.boolean(),
    z.null(),
    z.array(jsonValueSchema),
    z.record(z.string(), jsonValueSchema),
  ]),
);
apiSchemas.add(jsonValueSchema, { id: 'JsonValue' });

function jsonDepth(v: unknown): number {
  if (v === null || typeof v !== 'object') return 0;
  let max = 0;
  for (const x of Object.values(v as object)) max = Math.max(max, jsonDepth(x));
  return 1 + max;
}

export const attributesSchema = z
  .record(z.string(), z.json(), { error: 'expected a JSON object' })
  .superRefine((a, ctx) => {
    const depth = jsonDepth(a);
    if (depth > limits.attributesDepth)
      ctx.addIssue({
        code: 'custom',
        message: `expected at most ${limits.attributesDepth} levels of nesting, got ${depth}`,
      });
    const bytes = utf8Bytes(JSON.stringify(a));
    if (bytes > limits.attributesBytes)
      ctx.addIssue({
        code: 'custom',
        message: `expected at most ${limits.attributesBytes} bytes as JSON, got ${bytes}`,
      });
  })
  .meta({
    description: `Free-form JSON object stored with the entry: at most ${limits.attributesBytes} bytes as JSON and ${limits.attributesDepth} levels deep.`,
    examples: [{ firmware: '1.2.0' }],
  });

/** One entry as a client sends it. Unknown fields are rejected, so a misspelt field is not silently dropped. */
export const entryInputSchema = z
  .strictObject(
    {
      id: idSchema.optional(),
      deviceId: deviceIdSchema,
      timestamp: timestampInputSchema,
      precision: precisionSchema.optional(),
      value: valueSchema,
      tags: tagsSchema.optional(),
      attributes: attributesSchema.optional(),
    },
    { error: (iss) => (iss.code === 'unrecognized_keys' ? undefined : 'expected a JSON object (an entry)') },
  )
  .meta({ description: 'A time-series entry to write.', ...numericTimestampRule() })
  .register(apiSchemas, { id: 'EntryInput' });

export type EntryInput = z.input<typeof entryInputSchema>;

/** What an entry becomes once validated: a Point without its id when the client gave none. */
export type ValidEntry = Omit<Point, 'id'> & { id?: string };

/** Validate one entry and convert it to the engine's shape (µs timestamp, lower-case id). */
export const entryToPointSchema = entryInputSchema.transform((e, ctx): ValidEntry => {
  let ts: number;
  if (typeof e.timestamp === 'string') {
    ts = parseRfc3339(e.timestamp); // validated by the field schema
  } else {
    if (!e.precision) {
      ctx.addIssue({
        code: 'custom',
        path: ['precision'],
        message: `required when timestamp is a number: one of ${precisions.join(', ')}`,
      });
      return z.NEVER;
    }
    const precision = e.precision;
    const numeric = e.timestamp;
    const err = timeError(() => parseEpoch(numeric, precision));
    if (err) {
      ctx.addIssue({ code: 'custom', path: ['timestamp'], message: err });
      return z.NEVER;
    }
    ts = parseEpoch(numeric, precision);
  }
  const out: ValidEntry = { deviceId: e.deviceId, ts, value: e.value };
  if (e.id !== undefined) out.id = e.id.toLowerCase();
  if (e.tags !== undefined) out.tags = e.tags;
  if (e.attributes !== undefined) out.attributes = e.attributes as Record<string, unknown>;
  return out;
});

// ---------------------------------------------------------------------------------------------
// Commands between nodes (a follower forwards writes to the leader: POST /raft/forward)
// ---------------------------------------------------------------------------------------------

// A peer endpoint must refuse what the public API refuses, or a forged or buggy peer request could
// store what no client may write. So a forwarded point is checked with the entry's own field
// schemas; only the time is already in the engine's form (integer µs).
const tsMessage = `expected an integer number of microseconds since the epoch within ±(2^53-1)`;
export const pointSchema = z.strictObject(
  {
    id: idSchema,
    deviceId: deviceIdSchema,
    ts: z
      .number({ error: tsMessage })
      .int({ error: tsMessage })
      .min(MIN_TIMESTAMP_US, { error: tsMessage })
      .max(MAX_TIMESTAMP_US, { error: tsMessage }),
    value: valueSchema,
    tags: tagsSchema.optional(),
    attributes: attributesSchema.optional(),
  },
  { error: (iss) => (iss.code === 'unrecognized_keys' ? undefined : 'expected a point object') },
);

export const writeOpSchema = z.discriminatedUnion(
  'op',
  [
    z.strictObject({ op: z.literal('put'), point: pointSchema }),
    z.strictObject({ op: z.literal('delete'), id: idSchema }),
  ],
  { error: 'expected {"op": "put", "point": {...}} or {"op": "delete", "id": "<uuid>"}' },
);

/** Levels of a command above an entry's fields: command → ops → [i] → point. */
const commandLevelsAboveEntry = 3;

/**
 * A state-machine command as peers send it: at most as many ops as one public write may carry.
 * The raw value is first checked without recursion (json-hazard.ts): a 10k-deep attribute would
 * otherwise overflow the stack inside zod, and a "__proto__" key would vanish.
 */
export const commandSchema = z
  .unknown()
  .superRefine((raw, ctx) => {
    // As for a public entry: the entry (depth 1), attributes (2), then attributesDepth levels.
    const hazard = structuralHazard(raw, commandLevelsAboveEntry + limits.attributesDepth + 2);
    if (!hazard) return;
    ctx.addIssue({
      code: 'custom',
      path: hazard.path,
      message:
        hazard.reason === 'proto'
          ? 'the key "__proto__" is not allowed'
          : `nested too deeply: attributes may have at most ${limits.attributesDepth} levels`,
    });
  })
  .pipe(
    z.object({
      requestId: z.string().max(200).optional(),
      ops: z
        .array(writeOpSchema, { error: 'expected an array of ops' })
        .min(1, { error: 'expected at least one op' })
        .max(limits.batchEntries, { error: `expected at most ${limits.batchEntries} ops` }),
    }),
  );

/** Most commands in one forwarded batch (src/node/raft/forward-batcher.ts keeps below it). */
export const MAX_FORWARD_BATCH = 256;

/** POST /raft/forward: one command, or a batch of them (each answered on its own). */
export const forwardRequestSchema = z
  .object({
    command: commandSchema.optional(),
    // Each command of a batch is validated on its own (commandSchema, by the route): one bad
    // command is answered 400 alone and does not fail the commands sent with it.
    commands: z
      .array(z.unknown(), { error: 'expected an array of commands' })
      .min(1, { error: 'expected at least one command' })
      .max(MAX_FORWARD_BATCH, { error: `expected at most ${MAX_FORWARD_BATCH} commands` })
      .optional(),
    // When the leader answers (replicated-service.ts): "committed" (the default, and all an older
    // leader knows) once the entry is committed; "durable" once it is durable in the leader's own
    // log, with `"durable": true` in the answer, where the forwarding follower's own copy makes
    // the quorum (RaftNode.learnDurableOnLeader). An older leader ignores the field.
    ack: z.enum(['committed', 'durable'], { error: 'expected "committed" or "durable"' }).optional(),
  })
  .refine((b) => (b.command === undefined) !== (b.commands === undefined), {
    error: 'expected exactly one of "command" (one command) and "commands" (a batch)',
  });

// ---------------------------------------------------------------------------------------------
// Entry (response)
// ---------------------------------------------------------------------------------------------

export const entrySchema = z
  .object({
    id: z.string().meta({ format: 'uuid' }),
    deviceId: z.string(),
    timestamp: z.string().meta({ format: 'date-time', description: 'RFC 3339, UTC, microsecond precision.' }),
    value: z.number(),
    tags: z.record(z.string(), z.string()).optional(),
    attributes: z.record(z.string(), jsonValueSchema).optional(),
  })
  .meta({
    description: 'A stored entry (the original Time Store shape plus optional tags and attributes).',
    examples: [
      {
        id: '0190b3a0-7d2c-7cc1-9a43-5d36f0e3a1b2',
        deviceId: 'sensor-42',
        timestamp: '2024-05-01T12:00:00.123456Z',
        value: 21.5,
      },
    ],
  })
  .register(apiSchemas, { id: 'Entry' });

export type Entry = z.infer<typeof entrySchema>;

export function pointToEntry(p: Point): Entry {
  const e: Entry = { id: p.id, deviceId: p.deviceId, timestamp: formatRfc3339(p.ts), value: p.value };
  if (p.tags && Object.keys(p.tags).length > 0) e.tags = p.tags;
  if (p.attributes !== undefined) e.attributes = p.attributes as Entry['attributes'];
  return e;
}

export const entryListSchema = z
  .array(entrySchema)
  .meta({ description: 'One page of entries.' })
  .register(apiSchemas, { id: 'EntryList' });

// ---------------------------------------------------------------------------------------------
// Query parameters
// ---------------------------------------------------------------------------------------------

const timeParamMessage =
  'expected an RFC 3339 date-time (e.g. 2024-05-01T00:00:00Z) or an epoch number with "precision"';
// The document's pattern is the RFC 3339 form only: an epoch number is valid only together with
// "precision", a rule between two parameters that a parameter's schema cannot state.
const timeParam = (description: string) =>
  z.string({ error: timeParamMessage }).meta({ description, pattern: rfc3339Pattern });

export const readQueryShape = {
  from: timeParam(
    'Inclusive lower time bound: RFC 3339, or an epoch number in the unit given by "precision".',
  ).optional(),
  to: timeParam(
    'Exclusive upper time bound: RFC 3339, or an epoch number in the unit given by "precision".',
  ).optional(),
  precision: precisionSchema.optional().meta({ description: 'Unit of numeric from/to: s, ms, us or ns.' }),
  order: z
    .enum(['asc', 'desc'], { error: 'expected asc or desc' })
    .default('asc')
    .meta({ description: 'Time order of the results.' }),
  limit: z.coerce
    .number({ error: `expected a whole number between 1 and ${limits.maxLimit}` })
    .int({ error: `expected a whole number between 1 and ${limits.maxLimit}` })
    .min(1, { error: `expected a whole number between 1 and ${limits.maxLimit}` })
    .max(limits.maxLimit, { error: `expected at most ${limits.maxLimit}` })
    .default(limits.defaultLimit)
    .meta({ description: `Page size: default ${limits.defaultLimit}, at most ${limits.maxLimit}.` }),
  cursor: z.string({ error: 'expected the cursor once' }).min(1).max(4096).optional().meta({
    description:
      'Opaque cursor from the previous page (X-Next-Cursor header or the Link rel="next" URL). Keep the other parameters the same.',
  }),
  consistency: z
    .enum(consistencyLevels, { error: `expected one of ${consistencyLevels.join(', ')}` })
    .default('linearizable')
    .meta({
      description:
        "Read consistency: linearizable (default; sees every acknowledged write), leader (the leader's state without a quorum round), none (this node's state, possibly stale).",
    }),
};

export const listQuerySchema = z.strictObject({
  ...readQueryShape,
  deviceId: deviceIdSchema.optional().meta({ description: 'Only entries of this device.' }),
});

export const deviceQuerySchema = z
  .strictObject({
    ...readQueryShape,
    aggregate: z
      .string({ error: 'expected a comma-separated list' })
      .transform((s, ctx) => {
        const fns = s
          .split(',')
          .map((f) => f.trim())
          .filter(Boolean);
        const bad = fns.filter((f) => !(aggregateFns as readonly string[]).includes(f));
        if (fns.length === 0 || bad.length > 0) {
          ctx.addIssue({
            code: 'custom',
            message: `expected a comma-separated list of ${aggregateFns.join(', ')}${bad.length ? `; unknown: ${bad.join(', ')}` : ''}`,
          });
          return z.NEVER;
        }
        return [...new Set(fns)] as AggregateFn[];
      })
      .optional()
      .meta({
        description: `Aggregate instead of listing: comma-separated functions from ${aggregateFns.join(', ')} (requires "interval").`,
        examples: ['avg,max'],
        pattern: aggregateListPattern(aggregateFns),
      }),
    interval: z
      .string({ error: 'expected a duration such as 1h' })
      .transform((s, ctx) => {
        const us = parseDurationMicros(s);
        if (us === null || us <= 0) {
          ctx.addIssue({
            code: 'custom',
            message: `expected a positive duration such as 500ms, 10s, 5m, 1h or 1d; got "${s}"`,
          });
          return z.NEVER;
        }
        return us;
      })
      .optional()
      .meta({
        description:
          'Bucket width for "aggregate": a duration such as 10s, 5m, 1h, 1d (units us, ms, s, m, h, d, w). Buckets are aligned to the Unix epoch.',
        examples: ['1h'],
        pattern: durationPattern(Object.keys(durationUnits)),
      }),
  })
  .superRefine((q, ctx) => {
    if (q.aggregate && q.interval === undefined)
      ctx.addIssue({
        code: 'custom',
        path: ['interval'],
        message: 'required with "aggregate" (e.g. interval=1h)',
      });
    if (q.interval !== undefined && !q.aggregate)
      ctx.addIssue({
        code: 'custom',
        path: ['aggregate'],
        message: 'required with "interval" (e.g. aggregate=avg,max)',
      });
  });

export const consistencyQuerySchema = z.strictObject({ consistency: readQueryShape.consistency });

export const writeQuerySchema = z.strictObject({});

/** Resolve from/to (RFC 3339 or epoch with precision) to µs; returns issues for the caller to report. */
export function resolveTimeRange(q: { from?: string; to?: string; precision?: Precision }): {
  from?: number;
  to?: number;
  issues: Array<{ field: string; message: string }>;
} {
  const issues: Array<{ field: string; message: string }> = [];
  const one = (field: 'from' | 'to'): number | undefined => {
    const raw = q[field];
    if (raw === undefined) return undefined;
    if (/^[+-]?\d/.test(raw) && !/^\d{4}-/.test(raw)) {
      if (!q.precision) {
        issues.push({
          field: 'precision',
          message: `required when "${field}" is a number: one of ${precisions.join(', ')}`,
        });
        return undefined;
      }
      const precision = q.precision;
      const err = timeError(() => parseEpoch(raw, precision));
      if (err) issues.push({ field, message: err });
      return err ? undefined : parseEpoch(raw, precision);
    }
    const err = timeError(() => parseRfc3339(raw));
    if (err) issues.push({ field, message: `${err} (or an epoch number with "precision")` });
    return err ? undefined : parseRfc3339(raw);
  };
  // "to" before "from" is an empty range, answered like from == to (an empty page), not an error:
  // it is a rule between two parameters that the OpenAPI document could not state.
  return { from: one('from'), to: one('to'), issues };
}

// ---------------------------------------------------------------------------------------------
// Aggregation (response)
// ---------------------------------------------------------------------------------------------

export const bucketSchema = z
  .object({
    start: z.string().meta({ format: 'date-time', description: 'Bucket start (inclusive).' }),
    end: z.string().meta({ format: 'date-time', description: 'Bucket end (exclusive).' }),
    count: z.number().int().optional(),
    sum: z.number().nullable().optional(),
    avg: z.number().nullable().optional(),
    min: z.number().nullable().optional(),
    max: z.number().nullable().optional(),
    first: z.number().nullable().optional(),
    last: z.number().nullable().optional(),
  })
  .meta({
    description: 'One time bucket with the requested aggregates; empty buckets are left out.',
    examples: [
      { start: '2024-05-01T12:00:00.000000Z', end: '2024-05-01T13:00:00.000000Z', avg: 21.5, max: 23 },
    ],
  })
  .register(apiSchemas, { id: 'AggregateBucket' });

export type Bucket = z.infer<typeof bucketSchema>;
export const bucketListSchema = z.array(bucketSchema).register(apiSchemas, { id: 'AggregateBucketList' });

/** A time clamped to the supported range (µs). */
export function clampTimestamp(us: number): number {
  return Math.min(MAX_TIMESTAMP_US, Math.max(MIN_TIMESTAMP_US, us));
}

export function bucketToJson(b: AggregateBucket, widthMicros: number, fns: AggregateFn[]): Bucket {
  // A wide bucket aligned to the epoch can start before or end after the supported time range
  // (e.g. interval=9000w around 1700): it is shown cut to that range, where all its points are.
  const out: Bucket = {
    start: formatRfc3339(clampTimestamp(b.start)),
    end: formatRfc3339(clampTimestamp(b.start + widthMicros)),
  };
  for (const fn of fns) (out as Record<string, unknown>)[fn] = b.values[fn] ?? null;
  return out;
}

// ---------------------------------------------------------------------------------------------
// Errors (RFC 9457) and small documents
// ---------------------------------------------------------------------------------------------

export const fieldErrorSchema = z.object({
  field: z.string().meta({
    description:
      'The bad field: a body path (deviceId, tags.site, [3].value for batches), a query parameter or a path parameter.',
  }),
  message: z.string().meta({ description: 'What was expected.' }),
});

export const problemSchema = z
  .object({
    type: z.string().meta({ description: 'A URI identifying the problem type.' }),
    title: z.string(),
    status: z.number().int(),
    detail: z.string().optional(),
    instance: z.string().optional(),
    requestId: z.string().optional(),
    errors: z
      .array(fieldErrorSchema)
      .optional()
      .meta({ description: 'One item per bad field (validation problems only).' }),
    leaderId: z.string().nullable().optional(),
    leaderUrl: z.string().nullable().optional(),
  })
  .meta({
    description: 'RFC 9457 problem details (application/problem+json).',
    examples: [
      {
        type: 'urn:timestore:problem:validation',
        title: 'Invalid request',
        status: 400,
        detail: '1 invalid field',
        errors: [{ field: 'value', message: 'expected a finite number' }],
      },
    ],
  })
  .register(apiSchemas, { id: 'Problem' });

export type Problem = z.infer<typeof problemSchema>;
export type FieldError = z.infer<typeof fieldErrorSchema>;

export const livezSchema = z
  .object({ status: z.literal('ok'), nodeId: z.string(), version: z.string() })
  .register(apiSchemas, { id: 'Livez' });
