// Contract tests of every endpoint against a real `timestore node` process (real HTTP, real SQLite).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { del, get, post, request, startNodeProcess, type NodeProcess } from '../helpers/index.js';
import { readAll, assertProblem, type EntryJson } from './support.js';

let node: NodeProcess;
before(async () => {
  node = await startNodeProcess({ id: 'n1' });
});
after(async () => {
  await node?.stop();
});

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

describe('POST /api/timeseries', () => {
  it('stores one entry and answers 201 with the seed shape and a generated UUIDv7 id', async () => {
    const res = await post<EntryJson>(`${node.url}/api/timeseries`, {
      deviceId: 'post-1',
      timestamp: '2024-05-01T12:00:00Z',
      value: 21.5,
    });
    assert.equal(res.status, 201, res.text);
    assert.match(res.contentType, /^application\/json/);
    assert.match(res.json.id, UUID);
    assert.equal(res.json.id[14], '7', 'generated ids are UUIDv7');
    assert.deepEqual(res.json, {
      id: res.json.id,
      deviceId: 'post-1',
      timestamp: '2024-05-01T12:00:00.000Z',
      value: 21.5,
    });
    assert.equal(res.headers.get('location'), `/api/timeseries/${res.json.id}`);
  });

  it('keeps a client id (lower-cased), microseconds, tags and attributes', async () => {
    const id = '0190B3A0-7D2C-7CC1-9A43-5D36F0E3A1B2';
    const body = {
      id,
      deviceId: 'post-2',
      timestamp: '2024-05-01T14:00:00.1234567+02:00',
      value: -1e-9,
      tags: { site: 'north' },
      attributes: { fw: '1.2', nested: { a: [1, null, true] } },
    };
    const res = await post<EntryJson>(`${node.url}/api/timeseries`, body);
    assert.equal(res.status, 201, res.text);
    const expected = {
      id: id.toLowerCase(),
      deviceId: 'post-2',
      timestamp: '2024-05-01T12:00:00.123456Z',
      value: -1e-9,
      tags: { site: 'north' },
      attributes: body.attributes,
    };
    assert.deepEqual(res.json, expected);
    const back = await get<EntryJson>(`${node.url}/api/timeseries/${id.toLowerCase()}`);
    assert.equal(back.status, 200, back.text);
    assert.deepEqual(back.json, expected);
  });

  it('accepts epoch numbers with an explicit precision', async () => {
    for (const [timestamp, precision] of [
      [1714564800, 's'],
      [1714564800000, 'ms'],
      [1714564800000000, 'us'],
      [1714564800000000000, 'ns'],
    ] as const) {
      const res = await post<EntryJson>(`${node.url}/api/timeseries`, {
        deviceId: 'epoch',
        timestamp,
        precision,
        value: 1,
      });
      assert.equal(res.status, 201, res.text);
      assert.equal(res.json.timestamp, '2024-05-01T12:00:00.000Z');
    }
    const us = await post<EntryJson>(`${node.url}/api/timeseries`, {
      deviceId: 'epoch',
      timestamp: 1714564800123456,
      precision: 'us',
      value: 1,
    });
    assert.equal(us.json.timestamp, '2024-05-01T12:00:00.123456Z');
  });

  it('writes a JSON array batch atomically and answers with the stored entries in order', async () => {
    const batch = [1, 2, 3].map((i) => ({
      deviceId: 'batch',
      timestamp: `2024-05-01T00:00:0${i}Z`,
      value: i,
    }));
    const res = await post<EntryJson[]>(`${node.url}/api/timeseries`, batch);
    assert.equal(res.status, 201, res.text);
    assert.deepEqual(
      res.json.map((e) => e.value),
      [1, 2, 3],
    );
    assert.equal(new Set(res.json.map((e) => e.id)).size, 3);
  });

  it('writes an NDJSON batch', async () => {
    const text = [
      '{"deviceId":"ndjson","timestamp":"2024-05-01T00:00:01Z","value":1}',
      '',
      '{"deviceId":"ndjson","timestamp":"2024-05-01T00:00:02Z","value":2}',
      '',
    ].join('\n');
    const res = await request<EntryJson[]>('POST', `${node.url}/api/timeseries`, {
      body: text,
      headers: { 'content-type': 'application/x-ndjson' },
    });
    assert.equal(res.status, 201, res.text);
    assert.equal(res.json.length, 2);
    const all = await readAll(`${node.url}/api/timeseries/device/ndjson`);
    assert.deepEqual(
      all.map((e) => e.value),
      [1, 2],
    );
  });

  it('re-posting the same id replaces the entry (idempotent retries)', async () => {
    const id = '0190b3a0-0000-7000-8000-00000000abcd';
    const first = { id, deviceId: 'idem', timestamp: '2024-05-01T00:00:00Z', value: 1 };
    const a = await post(`${node.url}/api/timeseries`, first);
    const b = await post(`${node.url}/api/timeseries`, first);
    assert.equal(a.status, 201);
    assert.equal(b.status, 201);
    assert.deepEqual(a.json, b.json);
    assert.equal((await readAll(`${node.url}/api/timeseries/device/idem`)).length, 1);
    // Same id with new content (e.g. a corrected re-upload) replaces, even across devices and times.
    const c = await post<EntryJson>(`${node.url}/api/timeseries`, {
      ...first,
      deviceId: 'idem-2',
      value: 2,
      timestamp: '2024-06-01T00:00:00Z',
    });
    assert.equal(c.status, 201);
    assert.equal((await readAll(`${node.url}/api/timeseries/device/idem`)).length, 0);
    const got = await get<EntryJson>(`${node.url}/api/timeseries/${id}`);
    assert.deepEqual(got.json, { id, deviceId: 'idem-2', timestamp: '2024-06-01T00:00:00.000Z', value: 2 });
  });
});

describe('GET endpoints', () => {
  it('GET /api/timeseries returns a plain JSON array of entries (seed-compatible)', async () => {
    const res = await get<EntryJson[]>(`${node.url}/api/timeseries`);
    assert.equal(res.status, 200, res.text);
    assert.ok(Array.isArray(res.json));
    assert.ok(res.json.length > 0);
    for (const e of res.json) {
      assert.equal(typeof e.id, 'string');
      assert.equal(typeof e.deviceId, 'string');
      assert.equal(typeof e.timestamp, 'string');
      assert.equal(typeof e.value, 'number');
    }
  });

  it('GET /api/timeseries filters by deviceId and time range [from, to)', async () => {
    const dev = 'range';
    for (let i = 0; i < 10; i++)
      await post(`${node.url}/api/timeseries`, {
        deviceId: dev,
        timestamp: `2024-05-01T00:00:0${i}Z`,
        value: i,
      });
    const all = await readAll(`${node.url}/api/timeseries?deviceId=${dev}`);
    assert.deepEqual(
      all.map((e) => e.value),
      [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
    );
    const mid = await get<EntryJson[]>(
      `${node.url}/api/timeseries/device/${dev}?from=2024-05-01T00:00:02Z&to=2024-05-01T00:00:05Z`,
    );
    assert.deepEqual(
      mid.json.map((e) => e.value),
      [2, 3, 4],
    );
    const epoch = await get<EntryJson[]>(
      `${node.url}/api/timeseries/device/${dev}?from=1714521602000&to=1714521605000&precision=ms&order=desc`,
    );
    assert.deepEqual(
      epoch.json.map((e) => e.value),
      [4, 3, 2],
    );
  });

  it('GET /api/timeseries/device/{deviceId} handles URL-encoded ids and unknown devices', async () => {
    const dev = 'site/α 1';
    await post(`${node.url}/api/timeseries`, { deviceId: dev, timestamp: '2024-05-01T00:00:00Z', value: 7 });
    const res = await get<EntryJson[]>(`${node.url}/api/timeseries/device/${encodeURIComponent(dev)}`);
    assert.equal(res.status, 200, res.text);
    assert.deepEqual(
      res.json.map((e) => [e.deviceId, e.value]),
      [[dev, 7]],
    );
    const none = await get(`${node.url}/api/timeseries/device/nobody-here`);
    assert.equal(none.status, 200);
    assert.deepEqual(none.json, []);
  });

  it('aggregates a device over epoch-aligned buckets', async () => {
    const dev = 'agg';
    const batch = [
      ['2024-05-01T10:05:00Z', 1],
      ['2024-05-01T10:55:00Z', 3],
      ['2024-05-01T12:10:00Z', 10],
    ].map(([timestamp, value]) => ({ deviceId: dev, timestamp, value }));
    assert.equal((await post(`${node.url}/api/timeseries`, batch)).status, 201);
    const res = await get(
      `${node.url}/api/timeseries/device/${dev}?aggregate=avg,max,count,first,last&interval=1h`,
    );
    assert.equal(res.status, 200, res.text);
    assert.deepEqual(res.json, [
      {
        start: '2024-05-01T10:00:00.000Z',
        end: '2024-05-01T11:00:00.000Z',
        avg: 2,
        max: 3,
        count: 2,
        first: 1,
        last: 3,
      },
      {
        start: '2024-05-01T12:00:00.000Z',
        end: '2024-05-01T13:00:00.000Z',
        avg: 10,
        max: 10,
        count: 1,
        first: 10,
        last: 10,
      },
    ]);
    const desc = await get<Array<{ start: string }>>(
      `${node.url}/api/timeseries/device/${dev}?aggregate=sum&interval=1d&order=desc`,
    );
    assert.deepEqual(desc.json, [
      { start: '2024-05-01T00:00:00.000Z', end: '2024-05-02T00:00:00.000Z', sum: 14 },
    ]);
  });

  it('GET /api/timeseries/{id} returns 404 problem for an unknown id', async () => {
    const res = await get(`${node.url}/api/timeseries/0190b3a0-0000-7000-8000-000000000404`);
    assertProblem(res, 404);
  });

  it('reads accept every consistency level by name', async () => {
    for (const c of ['linearizable', 'leader', 'none']) {
      assert.equal((await get(`${node.url}/api/timeseries?consistency=${c}&limit=1`)).status, 200);
    }
  });
});

describe('DELETE /api/timeseries/{id}', () => {
  it('deletes, and is idempotent', async () => {
    const created = await post<EntryJson>(`${node.url}/api/timeseries`, {
      deviceId: 'del',
      timestamp: '2024-05-01T00:00:00Z',
      value: 1,
    });
    const url = `${node.url}/api/timeseries/${created.json.id}`;
    assert.equal((await del(url)).status, 204);
    assertProblem(await get(url), 404);
    assert.equal((await del(url)).status, 204);
    assert.deepEqual(await readAll(`${node.url}/api/timeseries/device/del`), []);
  });
});

describe('health, docs and request ids', () => {
  it('GET /livez', async () => {
    const res = await get(`${node.url}/livez`);
    assert.equal(res.status, 200);
    assert.equal(res.json.status, 'ok');
    assert.equal(res.json.nodeId, 'n1');
  });

  it('GET /swagger serves the UI', async () => {
    const res = await get(`${node.url}/swagger/`);
    assert.equal(res.status, 200);
    assert.match(res.text, /swagger-ui/i);
  });

  it('echoes a valid X-Request-Id and generates one otherwise', async () => {
    const mine = await get(`${node.url}/livez`, { headers: { 'x-request-id': 'req-abc.123' } });
    assert.equal(mine.headers.get('x-request-id'), 'req-abc.123');
    const gen = await get(`${node.url}/livez`, { headers: { 'x-request-id': 'bad id with spaces' } });
    assert.match(gen.headers.get('x-request-id') ?? '', /^[0-9a-f-]{36}$/);
    const problem = await get(`${node.url}/nowhere`, { headers: { 'x-request-id': 'trace-me' } });
    assert.equal(problem.json.requestId, 'trace-me');
  });
});
