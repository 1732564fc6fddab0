// /openapi.json: a valid-looking OpenAPI 3.1 document that lists every route the node serves, with
// problem responses, and whose $refs all resolve.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { get, request, startNodeProcess, type NodeProcess } from '../helpers/index.js';

let node: NodeProcess;
let doc: any;
before(async () => {
  node = await startNodeProcess({ id: 'n1' });
  const res = await get(`${node.url}/openapi.json`);
  assert.equal(res.status, 200);
  assert.match(res.contentType, /^application\/json/);
  doc = res.json;
});
after(async () => {
  await node?.stop();
});

const routes: Array<[string, string]> = [
  ['post', '/api/timeseries'],
  ['get', '/api/timeseries'],
  ['get', '/api/timeseries/device/{deviceId}'],
  ['get', '/api/timeseries/{id}'],
  ['delete', '/api/timeseries/{id}'],
  ['get', '/livez'],
  ['get', '/openapi.json'],
  ['get', '/swagger'],
];

function refs(v: unknown, out: string[] = []): string[] {
  if (Array.isArray(v)) v.forEach((x) => refs(x, out));
  else if (v && typeof v === 'object') {
    for (const [k, x] of Object.entries(v)) {
      if (k === '$ref' && typeof x === 'string') out.push(x);
      else refs(x, out);
    }
  }
  return out;
}

describe('OpenAPI document', () => {
  it('is OpenAPI 3.1 with info, paths and components', () => {
    assert.match(doc.openapi, /^3\.1\.\d+$/);
    assert.equal(typeof doc.info.title, 'string');
    assert.equal(typeof doc.info.version, 'string');
    assert.equal(typeof doc.paths, 'object');
    for (const id of ['EntryInput', 'Entry', 'EntryList', 'Problem', 'AggregateBucket'])
      assert.ok(doc.components.schemas[id], id);
  });

  it('lists every route, each with an operationId and responses', () => {
    for (const [method, path] of routes) {
      const op = doc.paths[path]?.[method];
      assert.ok(op, `${method.toUpperCase()} ${path} missing`);
      assert.equal(typeof op.operationId, 'string');
      assert.ok(Object.keys(op.responses).length > 0);
    }
    const ids = routes.map(([m, p]) => doc.paths[p][m].operationId);
    assert.equal(new Set(ids).size, ids.length, 'operationIds are unique');
  });

  it('documents the problem responses of the API routes as application/problem+json', () => {
    const expect: Record<string, string[]> = {
      'post /api/timeseries': ['400', '405', '413', '415', '503'],
      'get /api/timeseries': ['400', '503'],
      'get /api/timeseries/device/{deviceId}': ['400', '503'],
      'get /api/timeseries/{id}': ['400', '404', '503'],
      'delete /api/timeseries/{id}': ['400', '503'],
    };
    for (const [key, codes] of Object.entries(expect)) {
      const [method, path] = key.split(' ') as [string, string];
      const responses = doc.paths[path][method].responses;
      for (const code of codes) {
        assert.ok(responses[code], `${key} lacks ${code}`);
        assert.deepEqual(responses[code].content['application/problem+json'].schema, {
          $ref: '#/components/schemas/Problem',
        });
      }
    }
  });

  it('documents the query parameters the handlers accept (limit default and max)', () => {
    const params = doc.paths['/api/timeseries'].get.parameters as Array<{
      name: string;
      in: string;
      schema: any;
    }>;
    const names = params.map((p) => p.name).sort();
    assert.deepEqual(names, [
      'consistency',
      'cursor',
      'deviceId',
      'from',
      'limit',
      'order',
      'precision',
      'to',
    ]);
    const limit = params.find((p) => p.name === 'limit')!;
    assert.equal(limit.schema.default, 100);
    assert.equal(limit.schema.maximum, 10000);
    const deviceParams = doc.paths['/api/timeseries/device/{deviceId}'].get.parameters as Array<any>;
    const device = deviceParams.map((p) => p.name);
    assert.ok(device.includes('deviceId') && device.includes('from'));
    // aggregate and interval are valid only together: one form-exploded object with both required.
    const aggregation = deviceParams.find((p) => p.name === 'aggregation');
    assert.equal(aggregation.style, 'form');
    assert.equal(aggregation.explode, true);
    assert.deepEqual(aggregation.schema.required, ['aggregate', 'interval']);
    assert.ok(!device.includes('aggregate') && !device.includes('interval'));
  });

  it('time, aggregate and interval parameters carry the patterns the server checks', () => {
    const params = doc.paths['/api/timeseries/device/{deviceId}'].get.parameters as Array<any>;
    const schemaOf = (name: string) => params.find((p) => p.name === name)?.schema;
    const agg = params.find((p) => p.name === 'aggregation').schema.properties;
    const matches = (schema: { pattern: string }, s: string) => new RegExp(schema.pattern).test(s);
    for (const name of ['from', 'to']) {
      assert.ok(matches(schemaOf(name), '2024-05-01T12:00:00.123456Z'), name);
      assert.ok(!matches(schemaOf(name), ''), `${name} allows the empty string`);
      assert.ok(!matches(schemaOf(name), '2024-02-30T00:00:00Z'), `${name} allows 30 February`);
    }
    assert.ok(matches(agg.aggregate, 'avg,max') && !matches(agg.aggregate, 'avg,,median'));
    assert.ok(matches(agg.interval, '1h') && !matches(agg.interval, '0s') && !matches(agg.interval, ''));
    // A numeric entry timestamp needs its precision: an anyOf over the entry's fields.
    const entry = doc.components.schemas.EntryInput;
    assert.ok(Array.isArray(entry.anyOf));
    assert.ok(entry.anyOf.some((a: any) => a.required?.includes('precision')));
  });

  it('every $ref resolves inside the document', () => {
    for (const ref of refs(doc)) {
      assert.match(ref, /^#\/components\/schemas\/[A-Za-z0-9_]+$/, ref);
      assert.ok(doc.components.schemas[ref.split('/').pop()!], `${ref} does not resolve`);
    }
  });

  it('the entry input schema matches the validation (required fields, no extras)', () => {
    const s = doc.components.schemas.EntryInput;
    assert.deepEqual([...s.required].sort(), ['deviceId', 'timestamp', 'value']);
    assert.equal(s.additionalProperties, false);
  });

  it('/openapi.json rejects other methods with 405', async () => {
    assert.equal((await request('POST', `${node.url}/openapi.json`)).status, 405);
  });
});
