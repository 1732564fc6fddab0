// The fast single-entry write path (src/api/fast-write.ts) answers exactly like the express route:
// two real node processes, one with the fast path (default) and one without (TIMESTORE_FAST_WRITE=0),
// get the same requests, good and bad, on one keep-alive connection each; status, header names and
// bodies must match (ids, request ids and dates aside). Then, in process, a write the service
// rejects is reported by express's error handler without a second write.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { Pool } from 'undici';
import { startNodeProcess, type NodeProcess } from '../helpers/index.js';
import { createApp } from '../../src/api/index.js';
import { withFastWrite } from '../../src/api/fast-write.js';
import { listen } from '../../src/node/http-server.js';
import { ServiceUnavailableError, type TimeStoreService } from '../../src/node/service.js';

const nodes: NodeProcess[] = [];
after(async () => {
  for (const n of nodes) if (n.proc.running) await n.stop();
});

interface Req {
  what: string;
  path?: string;
  contentType?: string;
  body: string | Buffer;
  headers?: Record<string, string>;
}

const entry = (extra: Record<string, unknown> = {}) =>
  JSON.stringify({ deviceId: 'dev-1', timestamp: '2024-05-01T12:00:00.123456Z', value: 21.5, ...extra });

const cases: Req[] = [
  { what: 'a plain entry', body: entry() },
  {
    what: 'with tags, attributes and an upper-case id',
    body: entry({
      id: '0190B3A0-7D2C-7CC1-9A43-5D36F0E3A1B2',
      tags: { a: 'b' },
      attributes: { x: [1, { y: null }] },
    }),
  },
  { what: 'epoch timestamp with precision', body: entry({ timestamp: 1714564800123, precision: 'ms' }) },
  {
    what: 'a UTF-8 device id and a BOM',
    body: Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(entry({ deviceId: 'capteur-é-😀' }))]),
  },
  { what: 'a value that is a string', body: entry({ value: 'x' }) },
  { what: 'an unknown field', body: entry({ colour: 'red' }) },
  { what: 'epoch without precision', body: entry({ timestamp: 1714564800 }) },
  { what: 'malformed JSON', body: '{"deviceId":' },
  { what: 'invalid UTF-8', body: Buffer.from([0x7b, 0x22, 0xff, 0x22, 0x3a, 0x31, 0x7d]) },
  { what: 'a top-level number', body: '42' },
  { what: 'an array of one', body: `[${entry()}]` },
  { what: 'an empty array', body: '[]' },
  {
    what: 'a __proto__ key',
    body: '{"deviceId":"d","timestamp":"2024-05-01T12:00:00Z","value":1,"__proto__":{"x":1}}',
  },
  {
    what: 'attributes nested too deeply',
    body: entry({ attributes: JSON.parse('{"a":'.repeat(40) + '1' + '}'.repeat(40)) }),
  },
  { what: 'a query parameter', path: '/api/timeseries?consistency=none', body: entry() },
  { what: 'NDJSON', contentType: 'application/x-ndjson', body: `${entry()}\n${entry({ value: 2 })}\n` },
  { what: 'no content type', contentType: '', body: entry() },
  { what: 'a caller request id', headers: { 'x-request-id': 'caller-id-1' }, body: entry() },
  { what: 'a bad caller request id', headers: { 'x-request-id': 'bad id!' }, body: entry() },
  { what: 'another plain entry after all that', body: entry({ value: 3 }) },
];

/** What must be equal between the two paths: ids, request ids and dates replaced by placeholders. */
function normalize(status: number, headers: Record<string, string | string[] | undefined>, body: string) {
  const scrub = (s: string) =>
    s
      .replace(/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/g, '<uuid>')
      .replace(/"requestId":"[^"]*"/g, '"requestId":"<id>"');
  const h = Object.entries(headers)
    .filter(([k]) => k !== 'date')
    .map(([k, v]) => `${k}: ${k === 'content-length' ? '<n>' : scrub(String(v))}`);
  return { status, headers: h, body: scrub(body) };
}

test('fast path and express answer every request alike', async () => {
  const fast = await startNodeProcess({ id: 'fast' });
  nodes.push(fast);
  const slow = await startNodeProcess({ id: 'slow', env: { TIMESTORE_FAST_WRITE: '0' } });
  nodes.push(slow);
  const results: Record<string, ReturnType<typeof normalize>[]> = {};
  for (const n of [fast, slow]) {
    const pool = new Pool(n.url, { connections: 1 });
    results[n.id] = [];
    for (const c of cases) {
      const headers: Record<string, string> = { ...(c.headers ?? {}) };
      const ct = c.contentType ?? 'application/json';
      if (ct) headers['content-type'] = ct;
      const res = await pool.request({
        method: 'POST',
        path: c.path ?? '/api/timeseries',
        headers,
        body: c.body,
      });
      const text = await res.body.text();
      results[n.id]!.push(normalize(res.statusCode, res.headers, text));
    }
    await pool.close();
  }
  cases.forEach((c, i) => assert.deepEqual(results.fast![i], results.slow![i], c.what));
  assert.equal(results.fast![0]!.status, 201);
  assert.equal(results.fast![4]!.status, 400);
  // The caller's request id is echoed by both.
  assert.ok(results.fast![17]!.headers.includes('x-request-id: caller-id-1'));
  // The same metrics: request durations by route and status, ingested points.
  const metric = async (n: NodeProcess, re: RegExp) => {
    const text = await (await fetch(`${n.url}/metrics`)).text();
    return text
      .split('\n')
      .filter((l) => re.test(l))
      .sort();
  };
  const re =
    /^timestore_(http_request_duration_seconds_count\{method="POST"|ingested_points_total|rejected_inputs_total)/;
  assert.deepEqual(await metric(fast, re), await metric(slow, re));
  // Both stored the same entries.
  const list = async (n: NodeProcess) =>
    (
      (await (await fetch(`${n.url}/api/timeseries?limit=100`)).json()) as Array<{
        deviceId: string;
        value: number;
      }>
    )
      .map((e) => `${e.deviceId}=${e.value}`)
      .sort();
  assert.deepEqual(await list(fast), await list(slow));
});

test('a write the service rejects is reported by express, and not written twice', async () => {
  let writes = 0;
  const service: TimeStoreService = {
    write: async () => {
      writes++;
      throw new ServiceUnavailableError('no leader', 3);
    },
    read: async () => {
      throw new Error('unused');
    },
  } as unknown as TimeStoreService;
  const app = createApp({ service, nodeId: 't' });
  const http = await listen(withFastWrite({ service, maxBodyBytes: 1 << 20, eligible: () => true }, app), {
    host: '127.0.0.1',
    port: 0,
  });
  try {
    const pool = new Pool(http.url, { connections: 1 });
    for (let i = 0; i < 2; i++) {
      const res = await pool.request({
        method: 'POST',
        path: '/api/timeseries',
        headers: { 'content-type': 'application/json' },
        body: entry(),
      });
      const body = JSON.parse(await res.body.text());
      assert.equal(res.statusCode, 503);
      assert.equal(res.headers['retry-after'], '3');
      assert.match(String(res.headers['content-type']), /problem\+json/);
      assert.match(body.detail, /no leader/);
    }
    assert.equal(writes, 2, 'one write per request');
    await pool.close();
  } finally {
    await http.close(1_000);
  }
});
