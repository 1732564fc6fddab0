// How the API maps what a TimeStoreService raises: unavailability is a 503 with Retry-After, a lost
// leader a 503 naming the leader, a bug a 500 with the request id — never a crash. In-process with
// a stub service, because a real single node cannot be made to lose its quorum.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Router } from 'express';
import { createApp } from '../../src/api/index.js';
import { listen, type HttpServerHandle } from '../../src/node/http-server.js';
import { NotLeaderError, ServiceUnavailableError, type TimeStoreService } from '../../src/node/service.js';
import { get, post } from '../helpers/index.js';
import { assertProblem } from './support.js';

let failWith: unknown = null;
let writes = 0;
const service: TimeStoreService = {
  async write(command) {
    if (failWith) throw failWith;
    writes++;
    return { index: writes, points: command.ops.flatMap((op) => (op.op === 'put' ? [op.point] : [])) };
  },
  async read() {
    if (failWith) throw failWith;
    return { points: [], nextCursor: null } as never;
  },
};

let server: HttpServerHandle;
before(async () => {
  const extra = Router();
  extra.get('/raft/status', (_req, res) => {
    res.json({ state: 'Leader' });
  });
  extra.get('/livez', (_req, res) => {
    res.json({ status: 'ok', from: 'probes' });
  });
  const app = createApp({
    service,
    nodeId: 'stub',
    extraRouters: [extra],
    openapiPaths: { '/raft/status': { get: { responses: { 200: { description: 'status' } } } } },
  });
  server = await listen(app, { host: '127.0.0.1', port: 0 });
});
after(async () => {
  await server?.close();
});

const entry = { deviceId: 'd', timestamp: '2024-05-01T00:00:00Z', value: 1 };

describe('service errors', () => {
  it('ServiceUnavailableError → 503 with Retry-After', async () => {
    failWith = new ServiceUnavailableError('no leader elected within 5 s', 3);
    const w = await post(`${server.url}/api/timeseries`, entry);
    assertProblem(w, 503);
    assert.equal(w.headers.get('retry-after'), '3');
    assert.match(w.json.detail, /no leader/);
    const r = await get(`${server.url}/api/timeseries`);
    assertProblem(r, 503);
    assert.ok(r.headers.get('retry-after'));
  });

  it('NotLeaderError → 503 naming the leader', async () => {
    failWith = new NotLeaderError('n2', 'http://10.0.0.2:5001');
    const r = await get(`${server.url}/api/timeseries?consistency=leader`);
    assertProblem(r, 503);
    assert.equal(r.json.leaderId, 'n2');
    assert.equal(r.json.leaderUrl, 'http://10.0.0.2:5001');
  });

  it('an unexpected error → 500 problem with the request id; the server keeps serving', async () => {
    failWith = new Error('boom');
    const r = await get(`${server.url}/api/timeseries`, { headers: { 'x-request-id': 'oops-1' } });
    assertProblem(r, 500);
    assert.match(r.json.detail, /oops-1/);
    assert.doesNotMatch(r.text, /boom/, 'internal messages are not leaked');
    failWith = null;
    assert.equal((await post(`${server.url}/api/timeseries`, entry)).status, 201);
  });

  it('validation runs before the service: a bad write never reaches it', async () => {
    failWith = null;
    const before = writes;
    assertProblem(await post(`${server.url}/api/timeseries`, { ...entry, value: 'NaN' }), 400, 'value');
    assert.equal(writes, before);
  });
});

describe('extra routers', () => {
  it('are mounted, can replace /livez, and are documented through openapiPaths', async () => {
    assert.deepEqual((await get(`${server.url}/raft/status`)).json, { state: 'Leader' });
    assert.deepEqual((await get(`${server.url}/livez`)).json, { status: 'ok', from: 'probes' });
    const doc = (await get(`${server.url}/openapi.json`)).json;
    assert.ok(doc.paths['/raft/status'].get);
    assert.ok(doc.paths['/api/timeseries'].post);
  });
});
