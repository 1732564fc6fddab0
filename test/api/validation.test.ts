// Every validation rule: bad input gets a 4xx application/problem+json naming the bad field and what
// was expected, the node keeps running, and nothing is written.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { get, request, startNodeProcess, type NodeProcess } from '../helpers/index.js';
import { assertProblem, readAll } from './support.js';

let node: NodeProcess;
const MAX_BODY = 64 * 1024;
before(async () => {
  node = await startNodeProcess({ id: 'n1', args: ['--max-body-bytes', String(MAX_BODY)] });
});
after(async () => {
  await node?.stop();
});

const good = { deviceId: 'dev', timestamp: '2024-05-01T12:00:00Z', value: 1 };
const postRaw = (body: string, contentType: string | null = 'application/json') =>
  request('POST', `${node.url}/api/timeseries`, {
    body,
    headers: contentType ? { 'content-type': contentType } : {},
  });
const postJson = (v: unknown) => postRaw(JSON.stringify(v));

interface Case {
  name: string;
  send: () => ReturnType<typeof postRaw>;
  status: number;
  field?: string | RegExp;
}

const bodyCases: Case[] = [
  {
    name: 'missing deviceId',
    send: () => postJson({ timestamp: good.timestamp, value: 1 }),
    status: 400,
    field: 'deviceId',
  },
  { name: 'empty deviceId', send: () => postJson({ ...good, deviceId: '' }), status: 400, field: 'deviceId' },
  {
    name: 'numeric deviceId',
    send: () => postJson({ ...good, deviceId: 42 }),
    status: 400,
    field: 'deviceId',
  },
  {
    name: 'deviceId over 256 bytes',
    send: () => postJson({ ...good, deviceId: 'é'.repeat(129) }),
    status: 400,
    field: 'deviceId',
  },
  {
    name: 'missing value',
    send: () => postJson({ deviceId: 'dev', timestamp: good.timestamp }),
    status: 400,
    field: 'value',
  },
  { name: 'string value', send: () => postJson({ ...good, value: '1.5' }), status: 400, field: 'value' },
  { name: 'null value', send: () => postJson({ ...good, value: null }), status: 400, field: 'value' },
  { name: 'boolean value', send: () => postJson({ ...good, value: true }), status: 400, field: 'value' },
  {
    name: 'NaN value (not JSON)',
    send: () => postRaw('{"deviceId":"dev","timestamp":"2024-05-01T12:00:00Z","value":NaN}'),
    status: 400,
    field: 'body',
  },
  {
    name: 'Infinity value (overflowing literal)',
    send: () => postRaw('{"deviceId":"dev","timestamp":"2024-05-01T12:00:00Z","value":1e999}'),
    status: 400,
    field: 'value',
  },
  {
    name: 'missing timestamp',
    send: () => postJson({ deviceId: 'dev', value: 1 }),
    status: 400,
    field: 'timestamp',
  },
  {
    name: 'unparseable timestamp',
    send: () => postJson({ ...good, timestamp: 'yesterday' }),
    status: 400,
    field: 'timestamp',
  },
  {
    name: 'timestamp without time zone',
    send: () => postJson({ ...good, timestamp: '2024-05-01T12:00:00' }),
    status: 400,
    field: 'timestamp',
  },
  {
    name: 'impossible date',
    send: () => postJson({ ...good, timestamp: '2024-02-30T00:00:00Z' }),
    status: 400,
    field: 'timestamp',
  },
  {
    name: 'out-of-range year',
    send: () => postJson({ ...good, timestamp: '9999-01-01T00:00:00Z' }),
    status: 400,
    field: 'timestamp',
  },
  {
    name: 'numeric timestamp without precision',
    send: () => postJson({ ...good, timestamp: 1714564800 }),
    status: 400,
    field: 'precision',
  },
  {
    name: 'unknown precision',
    send: () => postJson({ ...good, timestamp: 1714564800, precision: 'min' }),
    status: 400,
    field: 'precision',
  },
  {
    name: 'epoch out of range',
    send: () => postJson({ ...good, timestamp: 1e30, precision: 's' }),
    status: 400,
    field: 'timestamp',
  },
  { name: 'bad id', send: () => postJson({ ...good, id: 'not-a-uuid' }), status: 400, field: 'id' },
  {
    name: 'non-string tag value',
    send: () => postJson({ ...good, tags: { a: 1 } }),
    status: 400,
    field: 'tags.a',
  },
  {
    name: 'too many tags',
    send: () =>
      postJson({ ...good, tags: Object.fromEntries(Array.from({ length: 33 }, (_, i) => [`k${i}`, 'v'])) }),
    status: 400,
    field: 'tags',
  },
  {
    name: 'attributes not an object',
    send: () => postJson({ ...good, attributes: [1, 2] }),
    status: 400,
    field: 'attributes',
  },
  {
    name: 'attributes too deep',
    send: () =>
      postJson({ ...good, attributes: { a: { b: { c: { d: { e: { f: { g: { h: { i: 1 } } } } } } } } } }),
    status: 400,
    field: 'attributes',
  },
  // 30k levels fit under the body limit and would overflow a recursive validator's stack (a 500).
  {
    name: 'attributes nested 30k deep',
    send: () =>
      postRaw(
        `{"deviceId":"dev","timestamp":"2024-05-01T12:00:00Z","value":1,"attributes":{"a":${'['.repeat(30_000)}${']'.repeat(30_000)}}}`,
      ),
    status: 400,
    field: 'attributes',
  },
  {
    name: 'tags nested 30k deep',
    send: () =>
      postRaw(
        `[{"deviceId":"dev","timestamp":"2024-05-01T12:00:00Z","value":1,"tags":${'['.repeat(30_000)}${']'.repeat(30_000)}}]`,
      ),
    status: 400,
    field: '[0].tags',
  },
  {
    name: '__proto__ key in attributes (would be dropped silently)',
    send: () =>
      postRaw(
        '{"deviceId":"dev","timestamp":"2024-05-01T12:00:00Z","value":1,"attributes":{"a":{"__proto__":{"x":1}}}}',
      ),
    status: 400,
    field: 'attributes.a.__proto__',
  },
  {
    name: 'attributes too large',
    send: () => postJson({ ...good, attributes: { blob: 'x'.repeat(17_000) } }),
    status: 400,
    field: 'attributes',
  },
  {
    name: 'unknown field',
    send: () => postJson({ ...good, deviceID: 'typo' }),
    status: 400,
    field: 'deviceID',
  },
  { name: 'body is a JSON string', send: () => postJson('hello'), status: 400, field: 'body' },
  { name: 'body is null', send: () => postRaw('null'), status: 400, field: 'body' },
  { name: 'empty array', send: () => postJson([]), status: 400, field: 'body' },
  {
    name: 'bad item in a batch (whole batch rejected)',
    send: () => postJson([good, { ...good, value: 'x' }, good]),
    status: 400,
    field: '[1].value',
  },
  {
    name: 'bad line in NDJSON',
    send: () => postRaw(`${JSON.stringify(good)}\n{"deviceId":""}\n`, 'application/x-ndjson'),
    status: 400,
    field: /^line 2/,
  },
  {
    name: 'malformed NDJSON line',
    send: () => postRaw(`${JSON.stringify(good)}\n{nope\n`, 'application/x-ndjson'),
    status: 400,
    field: 'line 2',
  },
  { name: 'malformed JSON', send: () => postRaw('{"deviceId": "dev", '), status: 400, field: 'body' },
  {
    // 0xC3 0x28 is an invalid two-byte sequence: decoding it to U+FFFD would store another device id.
    name: 'invalid UTF-8 in a string',
    send: () =>
      request('POST', `${node.url}/api/timeseries`, {
        body: Buffer.concat([
          Buffer.from('{"deviceId":"dev'),
          Buffer.from([0xc3, 0x28]),
          Buffer.from('","timestamp":"2024-05-01T12:00:00Z","value":1}'),
        ]),
        headers: { 'content-type': 'application/json' },
      }),
    status: 400,
    field: 'body',
  },
  { name: 'empty body with JSON content type', send: () => postRaw(''), status: 400 },
  { name: 'wrong content type', send: () => postRaw(JSON.stringify(good), 'text/plain'), status: 415 },
  {
    name: 'form content type',
    send: () => postRaw('deviceId=dev&value=1', 'application/x-www-form-urlencoded'),
    status: 415,
  },
  { name: 'no content type', send: () => postRaw(JSON.stringify(good), null), status: 415 },
  {
    name: 'unsupported charset',
    send: () => postRaw(JSON.stringify(good), 'application/json; charset=latin-7'),
    status: 415,
  },
  {
    name: 'oversized body',
    send: () => postRaw(JSON.stringify([good]).padEnd(MAX_BODY + 10, ' ')),
    status: 413,
  },
  {
    name: 'oversized NDJSON body',
    send: () =>
      postRaw(`${JSON.stringify(good)}\n`.repeat(Math.ceil(MAX_BODY / 50) + 10), 'application/x-ndjson'),
    status: 413,
  },
  {
    name: 'query parameter on POST',
    send: () => request('POST', `${node.url}/api/timeseries?dryRun=1`, { json: good }),
    status: 400,
    field: 'dryRun',
  },
];

const get400 = (path: string, field: string | RegExp, status = 400): Case => ({
  name: `GET ${path}`,
  send: () => get(`${node.url}${path}`),
  status,
  field,
});

const queryCases: Case[] = [
  get400('/api/timeseries?limit=0', 'limit'),
  get400('/api/timeseries?limit=10001', 'limit'),
  get400('/api/timeseries?limit=ten', 'limit'),
  get400('/api/timeseries?limit=1&limit=2', 'limit'),
  get400('/api/timeseries?order=sideways', 'order'),
  get400('/api/timeseries?from=last-week', 'from'),
  get400('/api/timeseries?to=2024-13-01T00:00:00Z', 'to'),
  get400('/api/timeseries?from=1714564800', 'precision'),
  get400('/api/timeseries?consistency=eventual', 'consistency'),
  get400('/api/timeseries?cursor=not-a-cursor', 'cursor'),
  get400('/api/timeseries?deviceId=', 'deviceId'),
  get400('/api/timeseries?colour=blue', 'colour'),
  get400('/api/timeseries/device/dev?aggregate=median&interval=1h', 'aggregate'),
  get400('/api/timeseries/device/dev?aggregate=avg', 'interval'),
  get400('/api/timeseries/device/dev?interval=1h', 'aggregate'),
  get400('/api/timeseries/device/dev?aggregate=avg&interval=soon', 'interval'),
  get400('/api/timeseries/device/dev?aggregate=avg&interval=0s', 'interval'),
  get400('/api/timeseries/device/dev?aggregate=avg&interval=1h&cursor=xyz', 'cursor'),
  get400(`/api/timeseries/device/${'d'.repeat(300)}`, 'deviceId'),
  get400('/api/timeseries/not-a-uuid', 'id'),
  get400('/api/timeseries/0190b3a0-0000-7000-8000-000000000001?consistency=maybe', 'consistency'),
];

const routeCases: Case[] = [
  { name: 'unknown route', send: () => get(`${node.url}/api/nope`), status: 404 },
  { name: 'unknown root route', send: () => get(`${node.url}/`), status: 404 },
  {
    name: 'PUT /api/timeseries',
    send: () => request('PUT', `${node.url}/api/timeseries`, { json: good }),
    status: 405,
  },
  {
    name: 'DELETE /api/timeseries',
    send: () => request('DELETE', `${node.url}/api/timeseries`),
    status: 405,
  },
  {
    name: 'POST /api/timeseries/device/x',
    send: () => request('POST', `${node.url}/api/timeseries/device/x`, { json: good }),
    status: 405,
  },
  {
    name: 'PATCH /api/timeseries/{id}',
    send: () =>
      request('PATCH', `${node.url}/api/timeseries/0190b3a0-0000-7000-8000-000000000001`, { json: good }),
    status: 405,
  },
  { name: 'POST /livez', send: () => request('POST', `${node.url}/livez`), status: 405 },
  {
    name: 'DELETE with a bad id',
    send: () => request('DELETE', `${node.url}/api/timeseries/xyz`),
    status: 400,
    field: 'id',
  },
  {
    name: 'malformed percent-encoding',
    send: () => get(`${node.url}/api/timeseries/device/%E0%A4%A`),
    status: 400,
  },
];

describe('validation', () => {
  for (const c of [...bodyCases, ...queryCases, ...routeCases]) {
    it(`${c.name} → ${c.status}`, async () => {
      const res = await c.send();
      assertProblem(res, c.status, c.field);
    });
  }

  it('"to" before "from" is an empty range: 200 and no entries, like from == to', async () => {
    for (const path of [
      '/api/timeseries?from=2024-05-02T00:00:00Z&to=2024-05-01T00:00:00Z',
      '/api/timeseries/device/d1?from=2024-05-02T00:00:00Z&to=2024-05-01T00:00:00Z&aggregate=count&interval=1h',
    ]) {
      const res = await get(`${node.url}${path}`);
      assert.equal(res.status, 200, `${path}: ${res.text}`);
      assert.deepEqual(res.json, []);
    }
  });

  it('a bucket wider than the time left before the supported range is cut to it, not a 500', async () => {
    // Found by schemathesis: interval=9913w puts the epoch-aligned bucket of a 1700 point before
    // 1684-07-28, which could not be formatted.
    const w = await request('POST', `${node.url}/api/timeseries`, {
      json: { deviceId: 'edge-of-time', timestamp: '1700-01-01T00:00:00Z', value: 1 },
    });
    assert.equal(w.status, 201, w.text);
    for (const order of ['asc', 'desc']) {
      const res = await get(
        `${node.url}/api/timeseries/device/edge-of-time?aggregate=count&interval=9913w&order=${order}&limit=1`,
      );
      assert.equal(res.status, 200, res.text);
      assert.deepEqual(res.json, [
        { start: '1684-07-28T00:12:25.259009Z', end: '1780-01-06T00:00:00.000Z', count: 1 },
      ]);
    }
    // Leave the store as the other tests expect it (they check that nothing was written).
    const del = await request('DELETE', `${node.url}/api/timeseries/${(w.json as { id: string }).id}`);
    assert.equal(del.status, 204);
  });

  it('405 answers carry Allow', async () => {
    const res = await request('PUT', `${node.url}/api/timeseries`, { json: good });
    assert.match(res.headers.get('allow') ?? '', /GET.*POST|POST.*GET/);
  });

  it('a field error says what was expected', async () => {
    const res = await postJson({ deviceId: '', timestamp: 'nope', value: 'x' });
    assertProblem(res, 400);
    const byField = Object.fromEntries(
      (res.json.errors as Array<{ field: string; message: string }>).map((e) => [e.field, e.message]),
    );
    assert.match(byField.deviceId!, /non-empty string/);
    assert.match(byField.timestamp!, /RFC 3339/);
    assert.match(byField.value!, /finite number/);
  });

  it('nothing was written by any rejected request, and the node is still up', async () => {
    assert.deepEqual(await readAll(`${node.url}/api/timeseries`), []);
    assert.equal((await get(`${node.url}/livez`)).status, 200);
    assert.ok(node.proc.running, node.describe());
    assert.doesNotMatch(node.output(), /"level":"(error|fatal)"/, 'no request may log an error');
  });
});
