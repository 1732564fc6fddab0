// Property-based fuzzing of a running node, driven by its /openapi.json: every operation in the
// document (plus the peer endpoints, which are not in it) gets requests generated from its declared
// schemas and mutated into bad input. Endpoints added later are covered without new code.
//
// Expectations (the project's rule "bad input never changes state and never crashes a node"):
//   - never a 5xx;
//   - every 4xx is application/problem+json with a matching `status`;
//   - input that is certainly invalid gets a 4xx and leaves the state unchanged (a fingerprint of
//     every stored entry);
//   - the process stays alive: /livez answers 200 after every batch.
import { request as httpRequest } from 'node:http';
import { connect as netConnect } from 'node:net';
import { createHash } from 'node:crypto';
import fc from 'fast-check';

export type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
type Schema = Record<string, any>;

export interface Operation {
  method: string;
  path: string;
  /** From the OpenAPI document, or a peer endpoint known from the transport. */
  source: 'openapi' | 'peer';
  pathParams: Array<{ name: string; schema: Schema }>;
  queryParams: Array<{ name: string; schema: Schema; required: boolean; style?: string; explode?: boolean }>;
  /** Content type → schema of the body. */
  body: Record<string, Schema>;
  /** Whether a successful call may change state. */
  mutating: boolean;
}

/** Peer (node-to-node) endpoints; fuzzed with invalid input only (valid Raft messages legitimately change Raft state). */
export const peerEndpoints: Array<{ method: string; path: string }> = [
  { method: 'post', path: '/raft/vote' },
  { method: 'post', path: '/raft/append' },
  { method: 'post', path: '/raft/timeout-now' },
  { method: 'post', path: '/raft/message' },
  { method: 'post', path: '/raft/forward' },
  { method: 'post', path: '/raft/read-index' },
  { method: 'post', path: '/raft/commit-index' },
  { method: 'post', path: '/raft/snapshot' },
  { method: 'post', path: '/cluster/join' },
  { method: 'post', path: '/cluster/remove' },
  { method: 'post', path: '/cluster/transfer-leadership' },
  { method: 'get', path: '/raft/status' },
  { method: 'get', path: '/cluster/members' },
];

// ------------------------------------------------------------------------------------------------
// The document
// ------------------------------------------------------------------------------------------------

export class Spec {
  constructor(readonly doc: Schema) {}

  /** Resolve "#/a/b" and the nested form "#/components/schemas/X#/$defs/Y". */
  resolve(schema: Schema | undefined, seen = 0): Schema {
    let s = schema ?? {};
    while (s && typeof s.$ref === 'string' && seen < 50) {
      seen++;
      let target: any = this.doc;
      for (const part of s.$ref.split('#').filter(Boolean)) {
        for (const seg of part.split('/').filter(Boolean))
          target = target?.[seg.replace(/~1/g, '/').replace(/~0/g, '~')];
      }
      const { $ref: _r, ...rest } = s;
      s = { ...(target ?? {}), ...rest };
    }
    return s;
  }

  operations(includePeers = true): Operation[] {
    const ops: Operation[] = [];
    for (const [path, item] of Object.entries<Schema>(this.doc.paths ?? {})) {
      for (const [method, op] of Object.entries<Schema>(item)) {
        if (!['get', 'post', 'put', 'patch', 'delete'].includes(method)) continue;
        const params: Schema[] = [...(item.parameters ?? []), ...(op.parameters ?? [])].map((p) =>
          this.resolve(p),
        );
        const body: Record<string, Schema> = {};
        const rb = this.resolve(op.requestBody);
        for (const [ct, media] of Object.entries<Schema>(rb.content ?? {})) body[ct] = media.schema ?? {};
        ops.push({
          method,
          path,
          source: 'openapi',
          pathParams: params
            .filter((p) => p.in === 'path')
            .map((p) => ({ name: p.name, schema: p.schema ?? {} })),
          queryParams: params
            .filter((p) => p.in === 'query')
            .map((p) => ({
              name: p.name,
              schema: p.schema ?? {},
              required: !!p.required,
              style: p.style ?? 'form',
              explode: p.explode,
            })),
          body,
          mutating: method !== 'get',
        });
      }
    }
    if (includePeers) {
      for (const p of peerEndpoints) {
        if (ops.some((o) => o.path === p.path && o.method === p.method)) continue;
        ops.push({
          method: p.method,
          path: p.path,
          source: 'peer',
          pathParams: [],
          queryParams: [],
          body: {},
          mutating: p.method !== 'get',
        });
      }
    }
    return ops;
  }

  // ---------------------------------------------------------------------------------------------
  // JSON Schema → arbitrary of (mostly) valid values
  // ---------------------------------------------------------------------------------------------

  arbitrary(schema0: Schema | undefined, depth = 0): fc.Arbitrary<Json> {
    const s = this.resolve(schema0);
    if (depth > 4) return fc.constant(null);
    if (s.const !== undefined) return fc.constant(s.const);
    if (Array.isArray(s.enum)) return fc.constantFrom(...(s.enum as Json[]));
    const alts = s.oneOf ?? s.anyOf;
    if (Array.isArray(alts) && alts.length && s.properties) {
      // An object with a rule between its fields (e.g. a numeric timestamp needs "precision"):
      // each alternative narrows the object's own properties.
      const { oneOf: _o, anyOf: _a, ...own } = s;
      return fc.oneof(
        ...alts.map((a0: Schema) => {
          const a = this.resolve(a0);
          const properties = { ...own.properties };
          for (const [k, v] of Object.entries<Schema>(a.properties ?? {}))
            properties[k] = { ...this.resolve(properties[k]), ...v };
          const required = [...new Set([...(own.required ?? []), ...(a.required ?? [])])];
          return this.arbitrary({ ...own, properties, required }, depth);
        }),
      );
    }
    if (Array.isArray(alts) && alts.length)
      return fc.oneof(...alts.map((a: Schema) => this.arbitrary(a, depth + 1)));
    if (Array.isArray(s.allOf) && s.allOf.length)
      return this.arbitrary({ ...s, allOf: undefined, ...this.resolve(s.allOf[0]) }, depth);
    const type = Array.isArray(s.type) ? s.type[0] : s.type;
    switch (type) {
      case 'string':
        return this.stringArb(s);
      case 'integer':
        return fc.integer({ min: s.minimum ?? -1e6, max: s.maximum ?? 1e6 });
      case 'number':
        return fc.double({
          min: s.minimum ?? s.exclusiveMinimum ?? -1e9,
          max: s.maximum ?? s.exclusiveMaximum ?? 1e9,
          minExcluded: s.minimum === undefined && s.exclusiveMinimum !== undefined,
          maxExcluded: s.maximum === undefined && s.exclusiveMaximum !== undefined,
          noNaN: true,
          noDefaultInfinity: true,
        });
      case 'boolean':
        return fc.boolean();
      case 'null':
        return fc.constant(null);
      case 'array': {
        const min = s.minItems ?? 0;
        return fc.array(this.arbitrary(s.items, depth + 1), {
          minLength: min,
          maxLength: Math.max(min, Math.min(s.maxItems ?? 4, 4)),
        });
      }
      case 'object':
      default: {
        if (type === undefined && !s.properties) return fc.constant(null);
        const props = (s.properties ?? {}) as Record<string, Schema>;
        const required = new Set<string>(s.required ?? []);
        const rec = fc.record(
          Object.fromEntries(Object.entries(props).map(([k, v]) => [k, this.arbitrary(v, depth + 1)])),
          { requiredKeys: [...required].filter((k) => k in props) },
        ) as fc.Arbitrary<Record<string, Json>>;
        if (
          s.additionalProperties &&
          typeof s.additionalProperties === 'object' &&
          Object.keys(props).length === 0
        ) {
          return fc.dictionary(
            fc.string({ minLength: 1, maxLength: 8 }),
            this.arbitrary(s.additionalProperties, depth + 1),
            { maxKeys: 3 },
          ) as fc.Arbitrary<Json>;
        }
        return rec as fc.Arbitrary<Json>;
      }
    }
  }

  private stringArb(s: Schema): fc.Arbitrary<Json> {
    if (s.format === 'uuid') return fc.uuid();
    if (s.format === 'date-time')
      return fc
        .date({
          min: new Date('1970-01-01T00:00:00Z'),
          max: new Date('2200-01-01T00:00:00Z'),
          noInvalidDate: true,
        })
        .map((d) => d.toISOString());
    if (typeof s.pattern === 'string') {
      try {
        return fc
          .stringMatching(new RegExp(s.pattern))
          .filter((x) => x.length <= (s.maxLength ?? 64) && x.length >= (s.minLength ?? 0));
      } catch {
        // fall through
      }
    }
    return fc.string({ minLength: s.minLength ?? 0, maxLength: Math.min(s.maxLength ?? 24, 24) });
  }
}

// ------------------------------------------------------------------------------------------------
// Requests
// ------------------------------------------------------------------------------------------------

export interface FuzzRequest {
  method: string;
  /** Path with query string, already encoded. */
  url: string;
  headers: Record<string, string>;
  body?: Buffer;
  /** A mutation name, or 'generated' for a request built from the schemas. */
  kind: string;
  /** True when the request is certainly invalid: it must get a 4xx and change nothing. */
  invalid: boolean;
  /** Send the body in pieces with pauses (slow client). */
  slow?: { chunks: number; pauseMs: number };
}

const enc = encodeURIComponent;

function buildUrl(op: Operation, pathValues: Record<string, string>, query: Array<[string, string]>): string {
  let p = op.path;
  for (const [k, v] of Object.entries(pathValues)) p = p.replace(`{${k}}`, enc(v));
  const qs = query.map(([k, v]) => `${enc(k)}=${enc(v)}`).join('&');
  return qs ? `${p}?${qs}` : p;
}

function asQueryString(v: Json): string {
  return typeof v === 'string' ? v : JSON.stringify(v);
}

function isExplodedObject(spec: Spec, q: Operation['queryParams'][number]): boolean {
  return spec.resolve(q.schema).type === 'object' && q.style === 'form' && q.explode !== false;
}

/** The query parameter names as they appear in a URL (an exploded object's fields, by name). */
export function queryNames(spec: Spec, op: Operation): string[] {
  return op.queryParams.flatMap((q) =>
    isExplodedObject(spec, q) ? Object.keys(spec.resolve(q.schema).properties ?? {}) : [q.name],
  );
}

/** A request from the declared schemas (valid as far as the schemas can say; may still be rejected). */
export function generatedRequest(spec: Spec, op: Operation): fc.Arbitrary<FuzzRequest> {
  const pathArb = fc.record(
    Object.fromEntries(op.pathParams.map((p) => [p.name, spec.arbitrary(p.schema).map(asQueryString)])),
  ) as fc.Arbitrary<Record<string, string>>;
  const queryArb = fc
    .tuple(
      ...op.queryParams.map((q) => {
        const s = spec.resolve(q.schema);
        // A form-exploded object parameter (fields valid only together) is its fields as pairs.
        const v: fc.Arbitrary<Array<[string, string]>> = isExplodedObject(spec, q)
          ? spec
              .arbitrary(s)
              .map((o) =>
                Object.entries((o ?? {}) as Record<string, Json>).map(
                  ([k, x]) => [k, asQueryString(x)] as [string, string],
                ),
              )
          : (s.type === 'integer'
              ? fc.integer({ min: s.minimum ?? 0, max: s.maximum ?? 1000 }).map(String)
              : spec.arbitrary(s).map(asQueryString)
            ).map((x) => [[q.name, x]] as Array<[string, string]>);
        return q.required ? v : fc.option(v, { nil: undefined }).map((x) => x ?? []);
      }),
    )
    .map((xs) => xs.flat());
  const cts = Object.keys(op.body);
  const bodyArb: fc.Arbitrary<{ ct?: string; body?: Buffer }> = cts.includes('application/json')
    ? spec
        .arbitrary(op.body['application/json'])
        .map((b) => ({ ct: 'application/json', body: Buffer.from(JSON.stringify(b)) }))
    : cts.length
      ? spec
          .arbitrary(op.body[cts[0]!])
          .map((b) => ({ ct: cts[0]!, body: Buffer.from(typeof b === 'string' ? b : JSON.stringify(b)) }))
      : fc.constant({});
  return fc.tuple(pathArb, queryArb, bodyArb).map(([pv, q, b]): FuzzRequest => ({
    method: op.method.toUpperCase(),
    url: buildUrl(op, pv, q),
    headers: b.ct ? { 'content-type': b.ct } : ({} as Record<string, string>),
    body: b.body,
    kind: 'generated',
    invalid: false,
  }));
}

/** Deeply nested JSON text without building it recursively. */
function deepJson(depth: number, open = '[', close = ']'): string {
  return open.repeat(depth) + close.repeat(depth);
}

const absurdTimestamps: Json[] = [
  '0000-00-00T00:00:00Z',
  '-271821-04-20T00:00:00Z',
  '275760-09-13T00:00:00.001Z',
  '99999-12-31T23:59:59Z',
  '2026-02-30T00:00:00Z',
  '2026-13-01T00:00:00Z',
  '2026-01-01T24:00:00Z',
  '2026-01-01T00:00:00',
  '2026-01-01',
  'yesterday',
  '',
  '1e400',
  -1e300,
  1e300,
  Number.MAX_VALUE,
  -Number.MAX_VALUE,
  2 ** 63,
  true,
  null,
  [],
  {},
];

/**
 * Well-formed forwarded commands (POST /raft/forward) carrying what the public API refuses: each
 * must be a 400 and store nothing. Sent once each, besides being drawn among the mutations.
 */
export function invalidForwards(): FuzzRequest[] {
  const point = {
    id: '0190b3a0-7d2c-7cc1-9a43-5d36f0e3a1b2',
    deviceId: 'fwd',
    ts: 1_767_225_600_000_000,
    value: 1,
  };
  const deep = JSON.parse(deepJson(20, '{"a":', '}').replace(/\{"a":\}/, '{}'));
  const commands: unknown[] = [
    ...[
      { id: 'not-a-uuid' },
      { deviceId: 'x'.repeat(1000) },
      { deviceId: '' },
      { attributes: deep },
      { attributes: JSON.parse('{"__proto__": {"polluted": true}}') },
      { tags: Object.fromEntries(Array.from({ length: 100 }, (_, i) => [`t${i}`, 'v'])) },
      { ts: 2 ** 53 },
      { ts: -(2 ** 53) },
      { ts: 1.5 },
      { value: '1' },
      { extra: true },
    ].map((patch: Record<string, unknown>) => ({ ops: [{ op: 'put', point: { ...point, ...patch } }] })),
    ...['not-a-uuid', '', 42].map((id) => ({ ops: [{ op: 'delete', id }] })),
    { ops: [] },
    { ops: Array.from({ length: 10_001 }, () => ({ op: 'put', point })) },
  ];
  // Attributes deep enough to overflow a recursive validator (zod's z.json() does at ~10k levels),
  // as text: JSON.stringify itself would overflow on such a value.
  const deepText = (d: number) =>
    `{"command":{"ops":[{"op":"put","point":${JSON.stringify(point).replace(/\}$/, `,"attributes":${deepJson(d, '{"a":', '}').replace(/\{"a":\}/, '{}')}}`)}}]}}`;
  const bodies = [
    ...commands.map((command) => JSON.stringify({ command })),
    deepText(10_000),
    deepText(100_000),
  ];
  return bodies.map((body) => ({
    method: 'POST',
    url: '/raft/forward',
    headers: { 'content-type': 'application/json' },
    body: Buffer.from(body),
    kind: 'peer-forward-invalid',
    invalid: true,
  }));
}

/** Mutations of a valid-looking request into certainly-invalid (or hostile) ones. */
export function mutatedRequest(spec: Spec, op: Operation, maxBodyBytes: number): fc.Arbitrary<FuzzRequest> {
  const method = op.method.toUpperCase();
  const base = generatedRequest(spec, op);
  const takesBody = Object.keys(op.body).length > 0 || op.source === 'peer';
  const json = (kind: string, text: string | Buffer, invalid = true, ct = 'application/json') =>
    base.map((r) => ({
      ...r,
      kind,
      invalid,
      headers: { ...r.headers, 'content-type': ct },
      body: Buffer.isBuffer(text) ? text : Buffer.from(text),
    }));
  const entryish = (patch: (e: Record<string, Json>) => void) =>
    fc
      .record({
        value: fc.double({ noNaN: true, noDefaultInfinity: true }),
        deviceId: fc.string({ minLength: 1, maxLength: 10 }),
      })
      .map(({ value, deviceId }) => {
        const e: Record<string, Json> = {
          deviceId: deviceId || 'd',
          timestamp: '2026-01-01T00:00:00Z',
          value,
        };
        patch(e);
        return e;
      });
  const bodyMutations: Array<fc.Arbitrary<FuzzRequest>> = [];
  if (takesBody) {
    bodyMutations.push(
      // malformed JSON
      fc
        .constantFrom(
          '{',
          '{"deviceId":',
          '[1,2',
          '{"a":1,}',
          "{'a':1}",
          'nul',
          '{"a":1}{"b":2}',
          '\u0000',
          '{"deviceId":"x" "value":1}',
          ']',
          '"',
        )
        .chain((t) => json('malformed-json', t)),
      fc
        .string({ maxLength: 40 })
        .filter((t) => {
          try {
            JSON.parse(t);
            return false;
          } catch {
            return true;
          }
        })
        .chain((t) => json('malformed-json', t)),
      // NaN / Infinity literals (not JSON)
      fc
        .constantFrom('NaN', 'Infinity', '-Infinity')
        .chain((lit) =>
          json('nan-infinity', `{"deviceId":"d","timestamp":"2026-01-01T00:00:00Z","value":${lit}}`),
        ),
      // numbers that overflow to Infinity when parsed
      json('nan-infinity', '{"deviceId":"d","timestamp":"2026-01-01T00:00:00Z","value":1e400}'),
      // wrong JSON types at top level and in fields
      fc
        .constantFrom<Json>(null, true, 42, 'a string', [], [null], [[]], [1, 2, 3])
        .chain((v) => json('wrong-type', JSON.stringify(v))),
      fc
        .tuple(
          fc.constantFrom('deviceId', 'timestamp', 'value', 'id', 'tags', 'attributes', 'precision'),
          fc.constantFrom<Json>(null, true, [], {}, 12, 'x', [1], { a: { b: 1 } }),
        )
        // Only combinations that are certainly the wrong type (an object is right for tags/attributes,
        // a string for deviceId, a number for value).
        .filter(([field, v]) => {
          const isObj = v !== null && typeof v === 'object' && !Array.isArray(v);
          if (field === 'tags' || field === 'attributes') return !isObj;
          if (field === 'deviceId') return typeof v !== 'string';
          if (field === 'value') return typeof v !== 'number';
          return true;
        })
        .chain(([field, v]) =>
          entryish((e) => (e[field] = v)).chain((e) => json('wrong-type', JSON.stringify(e))),
        ),
      // unknown fields, prototype pollution keys
      fc
        .constantFrom('__proto__', 'constructor', 'prototype', 'extra', '')
        .chain((k) =>
          entryish(() => {}).chain((e) =>
            json(
              'unknown-field',
              JSON.stringify(e).replace(/^\{/, `{${JSON.stringify(k)}:{"polluted":true},`),
            ),
          ),
        ),
      // missing required fields
      fc
        .constantFrom('deviceId', 'timestamp', 'value')
        .chain((k) => entryish((e) => delete e[k]).chain((e) => json('missing-field', JSON.stringify(e)))),
      // absurd timestamps
      fc
        .constantFrom(...absurdTimestamps)
        .chain((ts) =>
          entryish((e) => (e.timestamp = ts)).chain((e) => json('absurd-timestamp', JSON.stringify(e))),
        ),
      fc
        .constantFrom<Json>(1e300, -1e300, 2 ** 63, 1e20, -1e20)
        .chain((ts) =>
          fc
            .constantFrom('s', 'ms', 'us', 'ns')
            .chain((p) =>
              entryish((e) => ((e.timestamp = ts), (e.precision = p))).chain((e) =>
                json('absurd-timestamp', JSON.stringify(e)),
              ),
            ),
        ),
      // numeric timestamp without precision
      entryish((e) => (e.timestamp = 1700000000)).chain((e) => json('absurd-timestamp', JSON.stringify(e))),
      // invalid unicode: lone surrogates (valid JSON escapes), raw invalid UTF-8 bytes
      fc
        .constantFrom('\\ud800', '\\udfff', 'a\\ud83d', '\\udc00\\ud800')
        .chain((u) =>
          json('invalid-unicode', `{"deviceId":"dev${u}","timestamp":"2026-01-01T00:00:00Z","value":1}`),
        ),
      fc
        .constantFrom([0xff], [0xc0, 0xaf], [0xed, 0xa0, 0x80], [0xf8, 0x88, 0x80, 0x80, 0x80], [0x80])
        .chain((bytes) =>
          json(
            'invalid-unicode',
            Buffer.concat([
              Buffer.from('{"deviceId":"dev'),
              Buffer.from(bytes),
              Buffer.from('","timestamp":"2026-01-01T00:00:00Z","value":1}'),
            ]),
          ),
        ),
      // deeply nested bodies (top level and inside attributes)
      fc.integer({ min: 50, max: 100_000 }).chain((d) => json('deep-nesting', deepJson(d))),
      fc
        .integer({ min: 9, max: 5000 })
        .chain((d) =>
          json(
            'deep-nesting',
            `{"deviceId":"d","timestamp":"2026-01-01T00:00:00Z","value":1,"attributes":{"a":${deepJson(d, '{"a":', '}').replace(/\{"a":\}/, '{}')}}}`,
          ),
        ),
      // huge bodies: just over the limit and far over it
      fc
        .constantFrom(maxBodyBytes + 1, maxBodyBytes * 3)
        .chain((n) =>
          json(
            'huge-body',
            `{"deviceId":"d","timestamp":"2026-01-01T00:00:00Z","value":1,"attributes":{"x":"${'x'.repeat(n)}"}}`,
          ),
        ),
      // oversized batch (more entries than allowed), and an empty batch
      json(
        'oversized-batch',
        JSON.stringify(
          Array.from({ length: 10_001 }, (_, i) => ({
            deviceId: 'b',
            timestamp: '2026-01-01T00:00:00Z',
            value: i,
          })),
        ),
      ),
      json('oversized-batch', '[]'),
      // a batch with one bad entry among good ones: nothing may be written
      fc
        .integer({ min: 0, max: 4 })
        .chain((bad) =>
          json(
            'bad-batch-item',
            JSON.stringify(
              Array.from({ length: 5 }, (_, i) =>
                i === bad
                  ? { deviceId: '', timestamp: 'x', value: 'y' }
                  : { deviceId: 'b', timestamp: '2026-01-01T00:00:00Z', value: i },
              ),
            ),
          ),
        ),
      // wrong or missing content type
      fc
        .constantFrom(
          'text/plain',
          'application/xml',
          'multipart/form-data; boundary=x',
          'application/x-www-form-urlencoded',
          'application/json; charset=utf-16',
          '',
        )
        .chain((ct) =>
          json(
            'wrong-content-type',
            '{"deviceId":"d","timestamp":"2026-01-01T00:00:00Z","value":1}',
            ct !== '',
            ct,
          ),
        ),
      // empty body with a JSON content type
      json('empty-body', ''),
      // NDJSON with a bad line
      json(
        'ndjson-bad-line',
        '{"deviceId":"d","timestamp":"2026-01-01T00:00:00Z","value":1}\n{oops}\n',
        true,
        'application/x-ndjson',
      ),
    );
  }
  if (op.path === '/raft/forward')
    bodyMutations.push(fc.constantFrom(...invalidForwards()).map((r) => ({ ...r, method })));
  const paramMutations: Array<fc.Arbitrary<FuzzRequest>> = [];
  if (op.queryParams.length) {
    paramMutations.push(
      fc
        .tuple(
          fc.constantFrom(...queryNames(spec, op).filter((n) => n !== 'cursor')),
          fc.constantFrom(
            '',
            '-1',
            '0',
            '1e400',
            'NaN',
            'Infinity',
            '99999999999999999999',
            '\u0000',
            '%',
            'x'.repeat(5000),
            '2026-13-45',
            '[]',
            '{"a":1}',
          ),
        )
        .chain(([name, v]) =>
          base.map((r) => {
            // Keep one value per parameter: replace the generated one if any.
            const u = new URL(r.url, 'http://x');
            u.searchParams.delete(name);
            u.searchParams.set(name, v);
            return {
              ...r,
              url: `${u.pathname}?${u.searchParams.toString()}`,
              kind: 'bad-query',
              invalid: false,
            } as FuzzRequest;
          }),
        ),
      // repeated parameters
      fc.constantFrom(...queryNames(spec, op)).chain((name) =>
        base.map((r) => ({
          ...r,
          url: `${r.url}${r.url.includes('?') ? '&' : '?'}${enc(name)}=1&${enc(name)}=2`,
          kind: 'repeated-query',
          invalid: false,
        })),
      ),
      // unknown parameter (the query schemas are strict)
      base.map((r) => ({
        ...r,
        url: `${r.url}${r.url.includes('?') ? '&' : '?'}bogus=1`,
        kind: 'unknown-query',
        invalid: true,
      })),
    );
  }
  if (op.pathParams.length) {
    paramMutations.push(
      fc
        .constantFrom(
          '%00',
          '%ZZ',
          '..%2F..%2Fetc%2Fpasswd',
          'x'.repeat(10_000),
          '%F0%28%8C%BC',
          '%ED%A0%80',
          encodeURIComponent('🦄'.repeat(100)),
          '%20',
        )
        .map((raw) => {
          let p = op.path;
          for (const pp of op.pathParams) p = p.replace(`{${pp.name}}`, raw);
          return { method, url: p, headers: {}, kind: 'bad-path', invalid: false } as FuzzRequest;
        }),
    );
  }
  // Methods the path does not have
  paramMutations.push(
    fc
      .constantFrom('PUT', 'PATCH', 'DELETE', 'POST', 'GET')
      .filter((m) => m !== method)
      .chain((m) => base.map((r) => ({ ...r, method: m, kind: 'other-method', invalid: false }))),
  );
  return fc.oneof(...bodyMutations, ...paramMutations);
}

// ------------------------------------------------------------------------------------------------
// Sending and judging
// ------------------------------------------------------------------------------------------------

export interface FuzzResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
  error?: string;
}

export function send(base: URL, r: FuzzRequest, timeoutMs = 30_000): Promise<FuzzResponse> {
  return new Promise((resolve) => {
    const headers: Record<string, string | number> = { ...r.headers };
    if (r.body) headers['content-length'] = r.body.length;
    const req = httpRequest(
      {
        host: base.hostname,
        port: base.port,
        method: r.method,
        path: r.url,
        headers,
        agent: false,
        timeout: timeoutMs,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (d: Buffer) => chunks.push(d));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body: Buffer.concat(chunks).toString('utf8'),
          }),
        );
        res.on('error', (e) =>
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: '', error: String(e) }),
        );
      },
    );
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', (e) => resolve({ status: 0, headers: {}, body: '', error: String(e) }));
    if (!r.body) return void req.end();
    if (!r.slow) return void req.end(r.body);
    const { chunks, pauseMs } = r.slow;
    const size = Math.ceil(r.body.length / chunks);
    let i = 0;
    const next = () => {
      if (req.destroyed) return;
      const piece = r.body!.subarray(i * size, (i + 1) * size);
      i++;
      if (i >= chunks || piece.length === 0) req.end(piece);
      else {
        req.write(piece);
        setTimeout(next, pauseMs);
      }
    };
    next();
  });
}

/** What is wrong with a response, or null. Problems prefixed "accepted:" are invalid input that
 * was taken (2xx): a contract gap rather than a crash; the rest are hard failures. */
export function judge(r: FuzzRequest, res: FuzzResponse): string | null {
  if (res.status === 0) {
    // The server may cut off a huge or slow upload after answering 413/408; anything else is suspicious.
    if (r.kind === 'huge-body' && /EPIPE|ECONNRESET/.test(res.error ?? '')) return null;
    return `no response: ${res.error}`;
  }
  if (res.status >= 500) return `HTTP ${res.status}: ${res.body.slice(0, 300)}`;
  if (res.status >= 400) {
    const ct = String(res.headers['content-type'] ?? '');
    if (!ct.includes('application/problem+json'))
      return `HTTP ${res.status} with content-type "${ct}" (expected application/problem+json)`;
    let p: any;
    try {
      p = JSON.parse(res.body);
    } catch {
      return `HTTP ${res.status}: problem body is not JSON: ${res.body.slice(0, 200)}`;
    }
    if (p?.status !== res.status) return `HTTP ${res.status}: problem.status is ${p?.status}`;
    if (typeof p?.title !== 'string') return `HTTP ${res.status}: problem without a title`;
  } else if (r.invalid) {
    return `accepted: invalid input (${r.kind}) accepted with HTTP ${res.status}: ${res.body.slice(0, 200)}`;
  }
  return null;
}

/** A fingerprint of all stored entries (ids and values), read with paging. */
export async function fingerprint(base: URL): Promise<{ count: number; hash: string }> {
  const h = createHash('sha256');
  let count = 0;
  let cursor: string | undefined;
  for (let page = 0; page < 1000; page++) {
    const q = `limit=10000&consistency=none${cursor ? `&cursor=${enc(cursor)}` : ''}`;
    const res = await send(base, {
      method: 'GET',
      url: `/api/timeseries?${q}`,
      headers: {},
      kind: 'fingerprint',
      invalid: false,
    });
    if (res.status !== 200) throw new Error(`fingerprint: HTTP ${res.status} ${res.body.slice(0, 200)}`);
    const entries = JSON.parse(res.body) as Array<Record<string, unknown>>;
    for (const e of entries)
      h.update(
        JSON.stringify([e.id, e.deviceId, e.timestamp, e.value, e.tags ?? null, e.attributes ?? null]),
      );
    count += entries.length;
    const next = res.headers['x-next-cursor'];
    cursor = Array.isArray(next) ? next[0] : next;
    if (!cursor) break;
  }
  return { count, hash: h.digest('hex') };
}

export interface FuzzStats {
  requests: number;
  byKind: Record<string, number>;
  byStatus: Record<string, number>;
  byOperation: Record<string, number>;
  stateChecks: number;
  /** Certainly-invalid input answered with 2xx (by kind). */
  accepted: Array<{ op: string; kind: string; url: string; bodyPrefix: string; problem: string }>;
  failures: Array<{
    op: string;
    kind: string;
    method: string;
    url: string;
    bodyPrefix: string;
    problem: string;
  }>;
}

export function newStats(): FuzzStats {
  return {
    requests: 0,
    byKind: {},
    byStatus: {},
    byOperation: {},
    stateChecks: 0,
    accepted: [],
    failures: [],
  };
}

const inc = (m: Record<string, number>, k: string) => (m[k] = (m[k] ?? 0) + 1);

export interface FuzzOptions {
  baseUrl: string;
  /** Property runs per operation for generated and for mutated requests. */
  runsGenerated: number;
  runsMutated: number;
  maxBodyBytes: number;
  seed?: number;
  /** Stop collecting after this many failures. */
  maxFailures?: number;
  includePeers?: boolean;
  log?: (line: string) => void;
}

async function livez(base: URL): Promise<boolean> {
  const r = await send(
    base,
    { method: 'GET', url: '/livez', headers: {}, kind: 'livez', invalid: false },
    10_000,
  );
  return r.status === 200;
}

/** Fuzz every operation of the node's OpenAPI document (and the peer endpoints). */
export async function fuzzNode(opts: FuzzOptions): Promise<FuzzStats> {
  const base = new URL(opts.baseUrl);
  const docRes = await send(base, {
    method: 'GET',
    url: '/openapi.json',
    headers: {},
    kind: 'openapi',
    invalid: false,
  });
  if (docRes.status !== 200) throw new Error(`GET /openapi.json: HTTP ${docRes.status}`);
  const spec = new Spec(JSON.parse(docRes.body));
  const stats = newStats();
  const maxFailures = opts.maxFailures ?? 50;
  const record = (op: Operation, r: FuzzRequest, problem: string) => {
    if (problem.startsWith('accepted: ')) {
      if (stats.accepted.length < maxFailures)
        stats.accepted.push({
          op: `${op.method.toUpperCase()} ${op.path}`,
          kind: r.kind,
          url: r.url.slice(0, 200),
          bodyPrefix: (r.body ?? Buffer.alloc(0)).subarray(0, 200).toString('utf8'),
          problem: problem.slice(10),
        });
      return;
    }
    if (stats.failures.length < maxFailures)
      stats.failures.push({
        op: `${op.method.toUpperCase()} ${op.path}`,
        kind: r.kind,
        method: r.method,
        url: r.url.slice(0, 200),
        bodyPrefix: (r.body ?? Buffer.alloc(0)).subarray(0, 200).toString('utf8'),
        problem,
      });
  };
  for (const op of spec.operations(opts.includePeers ?? true)) {
    if (op.path === '/swagger') continue; // static UI assets
    const name = `${op.method.toUpperCase()} ${op.path}`;
    opts.log?.(`fuzzing ${name} (${op.source})`);
    const exec = async (r0: FuzzRequest) => {
      // Peer endpoints: many ignore their body, so entry-shaped junk is not "certainly invalid";
      // but nothing sent to them by the fuzzer may change the stored data.
      const r = op.source === 'peer' && r0.kind !== 'peer-forward-invalid' ? { ...r0, invalid: false } : r0;
      const before = r.invalid || op.mutating ? await fingerprint(base) : null;
      const res = await send(base, r);
      stats.requests++;
      inc(stats.byKind, r.kind);
      inc(stats.byStatus, String(res.status));
      inc(stats.byOperation, name);
      const problem = judge(r, res);
      if (problem) record(op, r, problem);
      // Rejected input must not change anything.
      if (
        before &&
        ((res.status >= 400 && res.status < 500) ||
          (op.source === 'peer' && r.kind !== 'peer-forward-invalid'))
      ) {
        stats.stateChecks++;
        const after = await fingerprint(base);
        if (after.hash !== before.hash)
          record(
            op,
            r,
            `state changed by a ${res.status >= 400 ? 'rejected ' : 'peer '}request (HTTP ${res.status}): ${before.count} → ${after.count} entries`,
          );
      }
      if (res.status === 0 || res.status >= 500) {
        if (!(await livez(base))) {
          record(op, r, 'node stopped answering /livez');
          throw new Error(`node down after ${r.kind} ${r.method} ${r.url.slice(0, 100)}`);
        }
      }
      return true;
    };
    // Generated requests are run for peer endpoints only if the document declares them.
    if (op.source === 'openapi' && opts.runsGenerated > 0) {
      await fc.assert(fc.asyncProperty(generatedRequest(spec, op), exec), {
        numRuns: opts.runsGenerated,
        seed: opts.seed,
        endOnFailure: true,
      });
    }
    if (opts.runsMutated > 0) {
      await fc.assert(fc.asyncProperty(mutatedRequest(spec, op, opts.maxBodyBytes), exec), {
        numRuns: opts.runsMutated,
        seed: opts.seed,
        endOnFailure: true,
      });
    }
    if (op.path === '/raft/forward') for (const r of invalidForwards()) await exec(r);
    if (!(await livez(base))) throw new Error(`node down after fuzzing ${name}`);
  }
  return stats;
}

/** Send `head` on a raw socket and wait until the server closes it (or safetyMs passes). */
function stalled(
  base: URL,
  head: string,
  safetyMs: number,
): Promise<{ closedBy: 'server' | 'client-safety-timeout' | 'error'; response: string }> {
  return new Promise((resolve) => {
    let response = '';
    const socket = netConnect(Number(base.port), base.hostname, () => socket.write(head));
    const safety = setTimeout(() => {
      socket.destroy();
      resolve({ closedBy: 'client-safety-timeout', response });
    }, safetyMs);
    socket.on('data', (d: Buffer) => (response += d.toString('utf8')));
    socket.on('error', () => {});
    socket.on('close', () => {
      clearTimeout(safety);
      resolve({ closedBy: 'server', response });
    });
  });
}

/**
 * Slow clients: a body trickled in (well within the node's --body-timeout-ms), a body and headers
 * that stall. The node must answer the trickled ones normally, cut off the stalled ones with 408,
 * stay up and stay unchanged. `safetyMs` bounds how long this waits for the node to cut them off.
 */
export async function slowBodies(
  baseUrl: string,
  safetyMs = 300_000,
): Promise<{ requests: number; failures: string[] }> {
  const base = new URL(baseUrl);
  const failures: string[] = [];
  const good = Buffer.from(JSON.stringify({ deviceId: 'slow', timestamp: '2026-01-01T00:00:00Z', value: 1 }));
  const bad = Buffer.from('{"deviceId":"slow","timestamp":"2026-01-01T00:00:00Z","value":NaN}');
  let requests = 0;
  // Trickled valid body: stored normally.
  const r1 = await send(base, {
    method: 'POST',
    url: '/api/timeseries',
    headers: { 'content-type': 'application/json' },
    body: good,
    kind: 'slow-body',
    invalid: false,
    slow: { chunks: 8, pauseMs: 150 },
  });
  requests++;
  if (r1.status !== 201)
    failures.push(`trickled valid body: HTTP ${r1.status} ${r1.error ?? r1.body.slice(0, 200)}`);
  // Trickled invalid body: 400, nothing stored.
  const before = await fingerprint(base);
  const r2 = await send(base, {
    method: 'POST',
    url: '/api/timeseries',
    headers: { 'content-type': 'application/json' },
    body: bad,
    kind: 'slow-body',
    invalid: true,
    slow: { chunks: 8, pauseMs: 150 },
  });
  requests++;
  const p2 = judge(
    { method: 'POST', url: '/api/timeseries', headers: {}, kind: 'slow-body', invalid: true },
    r2,
  );
  if (p2) failures.push(`trickled invalid body: ${p2}`);
  // Stalled clients: a body announced as 1000 bytes of which 11 arrive, and headers that never end.
  // The node must answer 408 problem+json and close the connection by itself (after its
  // --body-timeout-ms); the client here only gives up after a generous safety margin.
  for (const [what, head] of [
    [
      'stalled body',
      'POST /api/timeseries HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"deviceId"',
    ],
    ['stalled headers', 'POST /api/timeseries HTTP/1.1\r\nHost: x\r\nContent-Type: applic'],
  ] as const) {
    const r = await stalled(base, head, safetyMs);
    requests++;
    if (r.closedBy !== 'server') failures.push(`${what}: the node did not end it (${r.closedBy})`);
    else if (!/^HTTP\/1\.1 408 /.test(r.response) || !/application\/problem\+json/.test(r.response))
      failures.push(`${what}: expected a 408 problem+json, got ${JSON.stringify(r.response.slice(0, 200))}`);
  }
  const after = await fingerprint(base);
  if (after.hash !== before.hash)
    failures.push(`state changed by an invalid or stalled slow body: ${before.count} → ${after.count}`);
  if (!(await livez(base))) failures.push('node down after slow bodies');
  return { requests, failures };
}
