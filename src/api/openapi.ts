// The OpenAPI 3.1 document, generated from the zod schemas in src/tsdb/schemas.ts (components via
// z.toJSONSchema; query parameters from the query schemas' fields), so the document cannot drift
// from what the handlers validate. Other routers add their paths through `extraPaths`.
import { z } from 'zod';
import {
  apiSchemas,
  consistencyQuerySchema,
  deviceQuerySchema,
  limits,
  listQuerySchema,
} from '../tsdb/schemas.js';
import { ndjsonTypes } from './body.js';
import { problemTypes } from './problem.js';

export type OpenApiPathItem = Record<string, unknown>;
export type OpenApiDocument = Record<string, unknown> & { paths: Record<string, OpenApiPathItem> };

const ref = (id: string) => ({ $ref: `#/components/schemas/${id}` });

function components(): Record<string, unknown> {
  const { schemas } = z.toJSONSchema(apiSchemas, {
    io: 'input',
    unrepresentable: 'any',
    uri: (id) => `#/components/schemas/${id}`,
  });
  // Components are embedded in one document: drop the per-schema $schema/$id of standalone output.
  for (const s of Object.values(schemas) as Array<Record<string, unknown>>) {
    delete s.$schema;
    delete s.$id;
  }
  return hoistShared(schemas as Record<string, unknown>);
}

/**
 * zod puts schemas it sees more than once without an id under `__shared.$defs` and refers to them
 * as `#/components/schemas/__shared#/$defs/x`, which is not a valid reference inside one OpenAPI
 * document. Point such refs at an identical named component (e.g. a second copy of JsonValue) or
 * hoist the definition to a component of its own.
 */
function hoistShared(schemas: Record<string, unknown>): Record<string, unknown> {
  const shared = (schemas.__shared as { $defs?: Record<string, unknown> } | undefined)?.$defs;
  delete schemas.__shared;
  if (!shared) return schemas;
  const prefix = '#/components/schemas/__shared#/$defs/';
  const selfRefFree = (json: string, selfRef: string) => json.split(`"${selfRef}"`).join('"#self"');
  const target = new Map<string, string>();
  for (const [name, def] of Object.entries(shared)) {
    const mine = selfRefFree(JSON.stringify(def), prefix + name);
    const same = Object.entries(schemas).find(
      ([id, s]) => selfRefFree(JSON.stringify(s), `#/components/schemas/${id}`) === mine,
    );
    target.set(name, same ? same[0] : `Shared_${name}`);
  }
  let text = JSON.stringify(schemas);
  const rewrite = (t: string) =>
    t.replace(
      /"#\/components\/schemas\/__shared#\/\$defs\/([^"]+)"/g,
      (_m, n: string) => `"#/components/schemas/${target.get(n) ?? n}"`,
    );
  text = rewrite(text);
  const out = JSON.parse(text) as Record<string, unknown>;
  for (const [name, def] of Object.entries(shared)) {
    const id = target.get(name)!;
    if (!(id in out)) out[id] = JSON.parse(rewrite(JSON.stringify(def)));
  }
  return out;
}

/** OpenAPI parameters from the fields of a zod object schema (query parameters). */
function queryParameters(schema: z.ZodType): unknown[] {
  const json = z.toJSONSchema(schema, { io: 'input', unrepresentable: 'any' }) as {
    properties?: Record<string, Record<string, unknown>>;
    required?: string[];
  };
  return Object.entries(json.properties ?? {}).map(([name, s]) => {
    const { description, ...rest } = s;
    return { name, in: 'query', required: json.required?.includes(name) ?? false, description, schema: rest };
  });
}

function problem(status: number, description: string) {
  return { [status]: { description, content: { 'application/problem+json': { schema: ref('Problem') } } } };
}

const unavailable = problem(
  503,
  'No leader or no quorum within the bounded wait, or the node is shutting down; retry after Retry-After seconds. ' +
    'Type `urn:timestore:problem:storage-corrupt` (with `file`): this node found its data file damaged and serves no data; use another node.',
);
const badQuery = problem(
  400,
  'A query or path parameter is invalid; `errors` names each one and what was expected.',
);
const methodNotAllowed = problem(405, 'The path exists but not with this method (see the Allow header).');
const internal = problem(500, 'A bug: the node could not handle a valid request. Carries the request id.');

const pagingHeaders = {
  'X-Next-Cursor': {
    description: 'Cursor of the next page; absent on the last page.',
    schema: { type: 'string' },
  },
  Link: {
    description: 'The next page as `<url>; rel="next"`; absent on the last page.',
    schema: { type: 'string' },
  },
  'X-Request-Id': {
    description: 'The request id (echoes a valid incoming X-Request-Id).',
    schema: { type: 'string' },
  },
};

export interface OpenApiOptions {
  version: string;
  extraPaths?: Record<string, OpenApiPathItem>;
}

export function buildOpenApiDocument(opts: OpenApiOptions): OpenApiDocument {
  const consistencyParams = queryParameters(consistencyQuerySchema);
  const paths: Record<string, OpenApiPathItem> = {
    '/api/timeseries': {
      post: {
        operationId: 'writeEntries',
        tags: ['TimeSeries'],
        summary: 'Write one entry, or a batch',
        description:
          `Writes one entry (a JSON object; answers with the stored entry) or a batch (a JSON array, or ${ndjsonTypes[0]} with one entry per line; answers with the stored entries in order) atomically, at most ${limits.batchEntries} entries. ` +
          'Ids are generated (UUIDv7) when absent; writing an id that exists replaces that entry, so retries are idempotent. ' +
          'Acknowledged only once committed and durable. Time is stored in integer microseconds: finer input is truncated. Unknown fields are rejected.',
        requestBody: {
          required: true,
          content: {
            'application/json': {
              schema: {
                oneOf: [
                  ref('EntryInput'),
                  { type: 'array', items: ref('EntryInput'), minItems: 1, maxItems: limits.batchEntries },
                ],
              },
            },
            [ndjsonTypes[0]!]: {
              schema: { type: 'string', description: 'One EntryInput JSON object per line.' },
            },
          },
        },
        responses: {
          201: {
            description:
              'Stored: the entry (for an object body) or the entries (for an array or NDJSON body).',
            headers: {
              Location: {
                description: 'URL of the stored entry (single-entry writes).',
                schema: { type: 'string' },
              },
            },
            content: { 'application/json': { schema: { oneOf: [ref('Entry'), ref('EntryList')] } } },
          },
          ...problem(
            400,
            'Malformed JSON, or invalid entries: `errors` names each bad field ([i].field for batch item i, "line n.field" for NDJSON) and what was expected. Nothing was written.',
          ),
          ...methodNotAllowed,
          ...problem(413, "The body exceeds the node's --max-body-bytes. Nothing was written."),
          ...problem(
            415,
            'Content-Type is not application/json or application/x-ndjson. Nothing was written.',
          ),
          ...unavailable,
          ...internal,
        },
      },
      get: {
        operationId: 'listEntries',
        tags: ['TimeSeries'],
        summary: 'List entries (all devices), one page at a time',
        description: `Entries in time order, ${limits.defaultLimit} per page by default (at most ${limits.maxLimit}). The body is a plain JSON array (as in the original API); the next page's cursor is in the X-Next-Cursor and Link headers.`,
        parameters: queryParameters(listQuerySchema),
        responses: {
          200: {
            description: 'One page of entries.',
            headers: pagingHeaders,
            content: { 'application/json': { schema: ref('EntryList') } },
          },
          ...badQuery,
          ...methodNotAllowed,
          ...unavailable,
          ...internal,
        },
      },
    },
    '/api/timeseries/device/{deviceId}': {
      get: {
        operationId: 'deviceEntries',
        tags: ['TimeSeries'],
        summary: 'Entries of one device, or aggregates over time buckets',
        description:
          "Without `aggregate`: the device's entries in time order, paged like GET /api/timeseries. " +
          'With `aggregate` and `interval`: one object per non-empty bucket (aligned to the Unix epoch) with the requested functions, paged with the same headers.',
        parameters: [
          {
            name: 'deviceId',
            in: 'path',
            required: true,
            description: 'The device id (URL-encoded).',
            schema: { type: 'string', minLength: 1 },
          },
          ...queryParameters(deviceQuerySchema),
        ],
        responses: {
          200: {
            description: 'Entries (EntryList), or buckets (AggregateBucketList) when `aggregate` is given.',
            headers: pagingHeaders,
            content: {
              'application/json': { schema: { oneOf: [ref('EntryList'), ref('AggregateBucketList')] } },
            },
          },
          ...badQuery,
          ...methodNotAllowed,
          ...unavailable,
          ...internal,
        },
      },
    },
    '/api/timeseries/{id}': {
      get: {
        operationId: 'getEntry',
        tags: ['TimeSeries'],
        summary: 'One entry by id',
        parameters: [
          { name: 'id', in: 'path', required: true, schema: { type: 'string', format: 'uuid' } },
          ...consistencyParams,
        ],
        responses: {
          200: { description: 'The entry.', content: { 'application/json': { schema: ref('Entry') } } },
          ...badQuery,
          ...problem(404, 'No entry has this id.'),
          ...methodNotAllowed,
          ...unavailable,
          ...internal,
        },
      },
      delete: {
        operationId: 'deleteEntry',
        tags: ['TimeSeries'],
        summary: 'Delete one entry by id (idempotent: 204 whether or not it existed)',
        parameters: [{ name: 'id', in: 'path', required: true, schema: { type: 'string', format: 'uuid' } }],
        responses: {
          204: { description: 'Deleted (or never existed).' },
          ...badQuery,
          ...methodNotAllowed,
          ...unavailable,
          ...internal,
        },
      },
    },
    '/livez': {
      get: {
        operationId: 'livez',
        tags: ['Health'],
        summary: 'Liveness: the process serves HTTP',
        responses: {
          200: { description: 'Alive.', content: { 'application/json': { schema: ref('Livez') } } },
          ...methodNotAllowed,
        },
      },
    },
    '/openapi.json': {
      get: {
        operationId: 'openapi',
        tags: ['Docs'],
        summary: 'This document',
        responses: { 200: { description: 'The OpenAPI 3.1 document.', content: { 'application/json': {} } } },
      },
    },
    '/swagger': {
      get: {
        operationId: 'swagger',
        tags: ['Docs'],
        summary: 'Swagger UI for this document',
        responses: { 200: { description: 'HTML.', content: { 'text/html': {} } } },
      },
    },
    ...(opts.extraPaths ?? {}),
  };

  return {
    openapi: '3.1.0',
    jsonSchemaDialect: 'https://json-schema.org/draft/2020-12/schema',
    info: {
      title: 'TimeStore',
      version: opts.version,
      description:
        "A Raft-replicated time-series database on SQLite. The TimeSeries endpoints keep the original Time Store API's JSON shapes. " +
        `Every error is RFC 9457 application/problem+json; problem types: ${Object.values(problemTypes)
          .map((p) => `${p.type} (${p.status})`)
          .join(', ')}. ` +
        `Read consistency is chosen per request with ?consistency= (linearizable by default).`,
      license: { name: 'Apache-2.0', identifier: 'Apache-2.0' },
    },
    tags: [
      { name: 'TimeSeries', description: 'Write and read time-series entries.' },
      { name: 'Health', description: 'Liveness and readiness.' },
      { name: 'Docs', description: 'API documentation.' },
    ],
    paths,
    components: { schemas: components() },
  };
}
