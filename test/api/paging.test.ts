// Cursor paging through a few hundred entries: every entry exactly once, in order, both directions,
// for the list endpoint, the device endpoint and aggregates.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { get, post, startNodeProcess, type HttpResponse, type NodeProcess } from '../helpers/index.js';
import type { EntryJson } from './support.js';

let node: NodeProcess;
const N = 300;
const written: EntryJson[] = [];

before(async () => {
  node = await startNodeProcess({ id: 'n1' });
  // 3 devices; several entries share a timestamp so ties must be broken by id without loss.
  const batch = Array.from({ length: N }, (_, i) => ({
    deviceId: `dev-${i % 3}`,
    timestamp: new Date(Date.UTC(2024, 0, 1) + Math.floor(i / 2) * 1000).toISOString(),
    value: i,
  }));
  for (let i = 0; i < N; i += 100) {
    const res = await post<EntryJson[]>(`${node.url}/api/timeseries`, batch.slice(i, i + 100));
    assert.equal(res.status, 201, res.text);
    written.push(...res.json);
  }
});
after(async () => {
  await node?.stop();
});

async function pages(path: string, limit: number): Promise<{ items: EntryJson[]; pages: number }> {
  const items: EntryJson[] = [];
  let next: string | null = `${path}${path.includes('?') ? '&' : '?'}limit=${limit}`;
  let pages = 0;
  const seenCursors = new Set<string>();
  while (next) {
    const res: HttpResponse<EntryJson[]> = await get<EntryJson[]>(`${node.url}${next}`);
    assert.equal(res.status, 200, res.text);
    assert.ok(res.json.length <= limit);
    items.push(...res.json);
    pages++;
    const cursor = res.headers.get('x-next-cursor');
    const link = res.headers.get('link');
    if (cursor) {
      assert.ok(!seenCursors.has(cursor), 'a cursor repeats: paging would loop');
      seenCursors.add(cursor);
      const m = /^<([^>]+)>; rel="next"$/.exec(link ?? '');
      assert.ok(m, `Link header: ${link}`);
      assert.equal(new URL(m[1]!, node.url).searchParams.get('cursor'), cursor);
      next = m[1]!;
    } else {
      assert.equal(link, null);
      next = null;
    }
    assert.ok(pages < 1000);
  }
  return { items, pages };
}

const key = (e: EntryJson) => `${e.timestamp}|${e.id}`;

function assertOrdered(items: EntryJson[], order: 'asc' | 'desc') {
  for (let i = 1; i < items.length; i++) {
    const a = items[i - 1]!;
    const b = items[i]!;
    const cmp =
      a.timestamp < b.timestamp ? -1 : a.timestamp > b.timestamp ? 1 : a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
    assert.ok(order === 'asc' ? cmp < 0 : cmp > 0, `out of order at ${i}: ${key(a)} then ${key(b)}`);
  }
}

describe('cursor paging', () => {
  for (const order of ['asc', 'desc'] as const) {
    for (const limit of [1, 7, 100, 1000]) {
      if (limit === 1 && order === 'desc') continue; // 300 round trips once is enough
      it(`GET /api/timeseries order=${order} limit=${limit}: no duplicates, no gaps`, async () => {
        const { items, pages: n } = await pages(`/api/timeseries?order=${order}`, limit);
        assert.equal(items.length, N);
        assert.equal(new Set(items.map((e) => e.id)).size, N, 'duplicates');
        assert.deepEqual(new Set(items.map((e) => e.id)), new Set(written.map((e) => e.id)));
        assertOrdered(items, order);
        // The last page may be empty when N is a multiple of the limit (the store cannot know without looking).
        assert.ok(n >= Math.ceil(N / limit) && n <= Math.ceil(N / limit) + 1, `pages: ${n}`);
      });
    }
  }

  it('the default page size is 100', async () => {
    const res = await get<EntryJson[]>(`${node.url}/api/timeseries`);
    assert.equal(res.json.length, 100);
    assert.ok(res.headers.get('x-next-cursor'));
  });

  for (const order of ['asc', 'desc'] as const) {
    it(`device endpoint order=${order}: every entry of the device exactly once`, async () => {
      const expected = written.filter((e) => e.deviceId === 'dev-1');
      const { items } = await pages(`/api/timeseries/device/dev-1?order=${order}`, 13);
      assert.equal(items.length, expected.length);
      assert.deepEqual(new Set(items.map((e) => e.id)), new Set(expected.map((e) => e.id)));
      assert.ok(items.every((e) => e.deviceId === 'dev-1'));
      assertOrdered(items, order);
    });
  }

  it('paging within a time range stays within it', async () => {
    const from = '2024-01-01T00:00:10Z';
    const to = '2024-01-01T00:01:00Z';
    const { items } = await pages(`/api/timeseries?from=${from}&to=${to}`, 9);
    const expected = written.filter(
      (e) => e.timestamp >= '2024-01-01T00:00:10.000Z' && e.timestamp < '2024-01-01T00:01:00.000Z',
    );
    assert.equal(items.length, expected.length);
    assert.deepEqual(new Set(items.map((e) => e.id)), new Set(expected.map((e) => e.id)));
  });

  for (const order of ['asc', 'desc'] as const) {
    it(`aggregate buckets page with cursors too (order=${order})`, async () => {
      // dev-0 has entries at every 1.5 s on average over 150 s: 10 s buckets → 15 buckets.
      const all = await get<Array<{ start: string; count: number }>>(
        `${node.url}/api/timeseries/device/dev-0?aggregate=count&interval=10s&order=${order}&limit=1000`,
      );
      assert.equal(all.status, 200, all.text);
      const { items } = await pages(
        `/api/timeseries/device/dev-0?aggregate=count&interval=10s&order=${order}`,
        4,
      );
      assert.deepEqual(items, all.json);
      assert.equal(
        all.json.reduce((s, b) => s + b.count, 0),
        written.filter((e) => e.deviceId === 'dev-0').length,
      );
    });
  }
});
