import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import {
  InvalidCommandError,
  InvalidQueryError,
  MAX_QUERY_LIMIT,
  openDataStore,
  type SqliteDataStore,
} from '../../src/storage/data/index.js';
import type { Point, PointQuery } from '../../src/tsdb/model.js';
import { cmd, del, put, T0, tempDir, uid } from './helpers.js';

function withStore(fn: (s: SqliteDataStore, dir: string) => void | Promise<void>) {
  return async () => {
    const { dir, cleanup } = tempDir();
    const s = openDataStore(join(dir, 'data.db'));
    try {
      await fn(s, dir);
    } finally {
      s.close();
      cleanup();
    }
  };
}

function pt(n: number, deviceId = 'dev-a', ts = T0 + n, value = n): Point {
  return { id: uid(n), deviceId, ts, value };
}

/** Every page of a query, following nextCursor to the end. */
function allPages(s: SqliteDataStore, q: Omit<PointQuery, 'cursor'>): Point[][] {
  const pages: Point[][] = [];
  let cursor: string | undefined;
  for (let guard = 0; guard < 10_000; guard++) {
    const page = s.query({ ...q, cursor });
    pages.push(page.points);
    if (page.nextCursor === null) return pages;
    cursor = page.nextCursor;
  }
  throw new Error('paging did not terminate');
}

test(
  'a new store is empty at index 0, in WAL mode with synchronous=FULL',
  withStore((s) => {
    assert.equal(s.appliedIndex(), 0);
    assert.equal(s.count(), 0);
    assert.deepEqual(s.query({ order: 'asc', limit: 10 }), { points: [], nextCursor: null });
    assert.equal(s.get(uid(1)), undefined);
    const db = (s as unknown as { db: Database.Database }).db;
    assert.equal(db.pragma('journal_mode', { simple: true }), 'wal');
    assert.equal(db.pragma('synchronous', { simple: true }), 2);
  }),
);

test(
  'put and get round trip: canonical UUID, sorted tags, attributes, text ids',
  withStore((s) => {
    const upper = '0190ABCD-0000-7000-8000-00000000000A';
    const [r] = s.applyBatch([
      {
        index: 1,
        command: cmd(
          put({
            id: upper,
            deviceId: 'dev-a',
            ts: T0,
            value: 1.5,
            tags: { z: '1', a: '2' },
            attributes: { fw: '1.2', n: [1, 2], u: undefined },
          }),
          put({ id: 'legacy-id-7', deviceId: 'dev-b', ts: T0 + 1, value: -0.25 }),
        ),
      },
    ]);
    const expected: Point = {
      id: upper.toLowerCase(),
      deviceId: 'dev-a',
      ts: T0,
      value: 1.5,
      tags: { a: '2', z: '1' },
      attributes: { fw: '1.2', n: [1, 2] },
    };
    assert.deepEqual(r, {
      index: 1,
      points: [expected, { id: 'legacy-id-7', deviceId: 'dev-b', ts: T0 + 1, value: -0.25 }],
      deleted: [],
    });
    assert.deepEqual(s.get(upper), expected);
    assert.deepEqual(s.get(upper.toLowerCase()), expected);
    assert.deepEqual(Object.keys(s.get(upper)!.tags!), ['a', 'z']);
    assert.deepEqual(s.get('legacy-id-7'), {
      id: 'legacy-id-7',
      deviceId: 'dev-b',
      ts: T0 + 1,
      value: -0.25,
    });
    assert.equal(s.get('nope'), undefined);
    assert.equal(s.get(''), undefined);
    assert.equal(s.count(), 2);
    assert.equal(s.appliedIndex(), 1);
  }),
);

test(
  'writing an existing id replaces it, also moving it to another device and time',
  withStore((s) => {
    s.applyBatch([{ index: 1, command: cmd(put(pt(1)), put(pt(2))) }]);
    const moved: Point = { id: uid(1), deviceId: 'dev-b', ts: T0 - 5_000_000, value: 99, tags: { k: 'v' } };
    s.applyBatch([{ index: 2, command: cmd(put(moved)) }]);
    assert.equal(s.count(), 2);
    assert.deepEqual(s.get(uid(1)), moved);
    assert.deepEqual(s.query({ deviceId: 'dev-a', order: 'asc', limit: 10 }).points, [pt(2)]);
    assert.deepEqual(s.query({ deviceId: 'dev-b', order: 'asc', limit: 10 }).points, [moved]);
    // an identical re-upload is a no-op for the state
    s.applyBatch([{ index: 3, command: cmd(put(moved)) }]);
    assert.equal(s.count(), 2);
    assert.deepEqual(s.get(uid(1)), moved);
    // replacing drops tags/attributes that the new version does not have
    s.applyBatch([{ index: 4, command: cmd(put({ ...moved, tags: undefined })) }]);
    assert.deepEqual(s.get(uid(1)), { id: uid(1), deviceId: 'dev-b', ts: moved.ts, value: 99 });
  }),
);

test(
  'deletes report only ids they actually removed',
  withStore((s) => {
    s.applyBatch([{ index: 1, command: cmd(put(pt(1)), put(pt(2))) }]);
    const [r] = s.applyBatch([
      { index: 2, command: cmd(del(uid(1).toUpperCase()), del(uid(9)), del('not-a-uuid')) },
    ]);
    assert.deepEqual(r, { index: 2, points: [], deleted: [uid(1)] });
    assert.equal(s.get(uid(1)), undefined);
    assert.equal(s.count(), 1);
  }),
);

test(
  'repeated ids in one batch apply in op order',
  withStore((s) => {
    const [r1, r2] = s.applyBatch([
      {
        index: 1,
        command: cmd(
          put(pt(1)),
          put({ ...pt(1), value: 10 }),
          del(uid(1)),
          put({ ...pt(1), value: 11, deviceId: 'dev-z' }),
        ),
      },
      { index: 2, command: cmd(del(uid(1)), del(uid(1)), put(pt(2))) },
    ]);
    assert.deepEqual(r1!.deleted, [uid(1)]);
    assert.deepEqual(r2!.deleted, [uid(1)]);
    assert.equal(s.get(uid(1)), undefined);
    assert.deepEqual(s.get(uid(2)), pt(2));
    assert.equal(s.count(), 1);
  }),
);

test(
  'replay: indices at or below appliedIndex are skipped; null commands advance the index',
  withStore((s) => {
    s.applyBatch([
      { index: 1, command: cmd(put(pt(1))) },
      { index: 2, command: null },
    ]);
    assert.equal(s.appliedIndex(), 2);
    // replaying index 1 with different content changes nothing
    assert.deepEqual(s.applyBatch([{ index: 1, command: cmd(del(uid(1)), put(pt(5))) }]), []);
    assert.deepEqual(s.get(uid(1)), pt(1));
    assert.equal(s.get(uid(5)), undefined);
    // a batch straddling appliedIndex applies only the new part
    const res = s.applyBatch([
      { index: 2, command: cmd(put(pt(6))) },
      { index: 3, command: cmd(put(pt(3))) },
      { index: 3, command: cmd(put(pt(7))) },
      { index: 5, command: null },
    ]);
    assert.deepEqual(
      res.map((r) => r.index),
      [3, 5],
    );
    assert.equal(s.appliedIndex(), 5);
    assert.equal(s.get(uid(6)), undefined);
    assert.equal(s.get(uid(7)), undefined);
    assert.deepEqual(s.get(uid(3)), pt(3));
    assert.deepEqual(s.applyBatch([]), []);
  }),
);

test(
  'bad commands throw, write nothing, and leave the store usable',
  withStore((s) => {
    s.applyBatch([{ index: 1, command: cmd(put(pt(1))) }]);
    const bad: Array<[unknown, RegExp]> = [
      [{ ...pt(2), value: NaN }, /ops\[1\]: value must be a finite number; got NaN/],
      [{ ...pt(2), value: '3' }, /value must be a finite number/],
      [{ ...pt(2), deviceId: '' }, /deviceId must be a non-empty string/],
      [{ ...pt(2), deviceId: 'x'.repeat(257) }, /deviceId is longer than 256 bytes/],
      [{ ...pt(2), ts: 1.5 }, /ts must be an integer/],
      [{ ...pt(2), ts: 2 ** 53 }, /ts must be an integer/],
      [{ ...pt(2), id: '' }, /id must be a non-empty string/],
      [{ ...pt(2), id: 7 }, /id must be a non-empty string; got number/],
      [{ ...pt(2), id: 'a\ud800' }, /id is not well-formed Unicode/],
      [{ ...pt(2), deviceId: 'dev\udc00' }, /deviceId is not well-formed Unicode/],
      [{ ...pt(2), tags: { a: 1 } }, /tags\.a must be a string/],
      [{ ...pt(2), tags: ['x'] }, /tags must be an object/],
      [{ ...pt(2), attributes: 'x' }, /attributes must be a JSON object/],
      [{ ...pt(2), attributes: { n: 1n } }, /attributes are not serializable/],
    ];
    for (const [point, re] of bad) {
      assert.throws(
        () => s.applyBatch([{ index: 2, command: cmd(put(pt(3, 'new-device')), put(point as Point)) }]),
        (e: unknown) => e instanceof InvalidCommandError && re.test(e.message),
        String(re),
      );
    }
    assert.throws(
      () => s.applyBatch([{ index: 2, command: { ops: [{ op: 'upsert' } as never] } }]),
      /op must be "put" or "delete"; got "upsert"/,
    );
    assert.throws(() => s.applyBatch([{ index: 0, command: null }]), /index must be a positive integer/);
    assert.throws(() => s.applyBatch([{ index: 2, command: {} as never }]), /ops array/);
    assert.equal(s.appliedIndex(), 1);
    assert.equal(s.count(), 1);
    assert.deepEqual(s.query({ deviceId: 'new-device', order: 'asc', limit: 5 }).points, []);
    s.applyBatch([{ index: 2, command: cmd(put(pt(2, 'new-device'))) }]);
    assert.deepEqual(s.get(uid(2)), pt(2, 'new-device'));
  }),
);

test(
  'a failing transaction rolls back devices, tagsets and the time base too',
  withStore((s, dir) => {
    const db = (s as unknown as { db: Database.Database }).db;
    // Make the applied-index update fail after the points were inserted.
    db.exec(
      `CREATE TRIGGER boom BEFORE UPDATE ON meta WHEN NEW.value = 666 BEGIN SELECT RAISE(ABORT, 'boom'); END;`,
    );
    assert.throws(
      () => s.applyBatch([{ index: 666, command: cmd(put({ ...pt(1, 'ghost'), tags: { t: 'x' } })) }]),
      /boom/,
    );
    db.exec('DROP TRIGGER boom');
    assert.equal(s.appliedIndex(), 0);
    assert.equal(s.count(), 0);
    s.applyBatch([
      { index: 1, command: cmd(put({ ...pt(2, 'real', T0 + 10 * 86_400_000_000), tags: { t: 'y' } })) },
    ]);
    s.close();
    const again = openDataStore(join(dir, 'data.db'));
    try {
      assert.deepEqual(again.get(uid(2)), { ...pt(2, 'real', T0 + 10 * 86_400_000_000), tags: { t: 'y' } });
      assert.deepEqual(
        again.query({ order: 'asc', limit: 10 }).points.map((p) => p.deviceId),
        ['real'],
      );
    } finally {
      again.close();
    }
  }),
);

test(
  'paging: limit 1, exact multiples, ties on ts broken by id, asc and desc',
  withStore((s) => {
    // 7 points at the same ts and 3 more later: ties must page by id without loss or repeats.
    const points = [
      ...[5, 3, 9, 1, 7, 2, 8].map((n) => pt(n, 'dev-a', T0)),
      pt(20, 'dev-a', T0 + 1),
      pt(21, 'dev-a', T0 + 2),
      pt(22, 'dev-a', T0 + 2),
    ];
    s.applyBatch([{ index: 1, command: cmd(...points.map(put)) }]);
    const asc = [1, 2, 3, 5, 7, 8, 9, 20, 21, 22].map((n) => uid(n));
    for (const limit of [1, 2, 3, 5, 10, 11, MAX_QUERY_LIMIT]) {
      for (const deviceId of ['dev-a', undefined]) {
        const pagesAsc = allPages(s, { deviceId, order: 'asc', limit });
        assert.deepEqual(
          pagesAsc.flat().map((p) => p.id),
          asc,
          `asc limit ${limit}`,
        );
        assert.ok(
          pagesAsc.every((p) => p.length > 0 && p.length <= limit),
          'no empty or oversized pages',
        );
        assert.equal(pagesAsc.length, Math.ceil(asc.length / limit));
        const pagesDesc = allPages(s, { deviceId, order: 'desc', limit });
        assert.deepEqual(
          pagesDesc.flat().map((p) => p.id),
          [...asc].reverse(),
          `desc limit ${limit}`,
        );
      }
    }
  }),
);

test(
  'paging: time range is [from, to), empty and inverted ranges, unknown device',
  withStore((s) => {
    s.applyBatch([
      { index: 1, command: cmd(...[0, 1, 2, 3, 4].map((n) => put(pt(n, 'dev-a', T0 + n * 10)))) },
    ]);
    const ids = (q: Partial<PointQuery>) =>
      s.query({ order: 'asc', limit: 100, ...q }).points.map((p) => p.value);
    assert.deepEqual(ids({ from: T0 + 10, to: T0 + 40 }), [1, 2, 3]);
    assert.deepEqual(ids({ from: T0 + 11, to: T0 + 40 }), [2, 3]);
    assert.deepEqual(ids({ from: T0 + 10, to: T0 + 41 }), [1, 2, 3, 4]);
    assert.deepEqual(ids({ to: T0 + 10 }), [0]);
    assert.deepEqual(ids({ from: T0 + 40 }), [4]);
    assert.deepEqual(ids({ from: T0 + 20, to: T0 + 20 }), []);
    assert.deepEqual(ids({ from: T0 + 30, to: T0 + 20 }), []);
    assert.deepEqual(ids({ deviceId: 'nobody' }), []);
    assert.deepEqual(ids({ order: 'desc', from: T0 + 10, to: T0 + 40 }), [3, 2, 1]);
    // a cursor outside the range just continues inside it
    const first = s.query({ order: 'asc', limit: 2, from: T0 + 10, to: T0 + 40 });
    assert.deepEqual(
      s
        .query({ order: 'asc', limit: 2, from: T0 + 10, to: T0 + 40, cursor: first.nextCursor! })
        .points.map((p) => p.value),
      [3],
    );
  }),
);

test(
  'paging: a global query merges devices in (ts, id) order',
  withStore((s) => {
    const points: Point[] = [];
    let n = 0;
    for (let d = 0; d < 7; d++)
      for (let i = 0; i < 9; i++) points.push(pt(n++, `dev-${d}`, T0 + ((i * 7 + d * 3) % 11), n));
    s.applyBatch([{ index: 1, command: cmd(...points.map(put)) }]);
    const expected = [...points].sort((a, b) => a.ts - b.ts || (a.id < b.id ? -1 : 1)).map((p) => p.id);
    for (const limit of [1, 4, 63, 64]) {
      assert.deepEqual(
        allPages(s, { order: 'asc', limit })
          .flat()
          .map((p) => p.id),
        expected,
      );
      assert.deepEqual(
        allPages(s, { order: 'desc', limit })
          .flat()
          .map((p) => p.id),
        [...expected].reverse(),
      );
      assert.deepEqual(
        allPages(s, { order: 'asc', limit, from: T0 + 3, to: T0 + 8 })
          .flat()
          .map((p) => p.id),
        [...points]
          .filter((p) => p.ts >= T0 + 3 && p.ts < T0 + 8)
          .sort((a, b) => a.ts - b.ts || (a.id < b.id ? -1 : 1))
          .map((p) => p.id),
      );
    }
  }),
);

test(
  'query validation: limits, order, range and cursors name the problem',
  withStore((s) => {
    const bad: Array<[Partial<PointQuery>, RegExp]> = [
      [{ limit: 0 }, /limit must be an integer in 1\.\.10000; got 0/],
      [{ limit: MAX_QUERY_LIMIT + 1 }, /limit must be an integer/],
      [{ limit: 1.5 }, /limit/],
      [{ order: 'up' as never }, /order must be "asc" or "desc"; got "up"/],
      [{ from: 1.5 }, /from must be an integer/],
      [{ to: Infinity }, /to must be an integer/],
      [{ cursor: 'not a cursor!' }, /cursor "not a cursor!" is not valid/],
      [{ cursor: 'AAAA' }, /cursor "AAAA" is not valid \(too short\)/],
      [{ cursor: Buffer.alloc(26).toString('base64url') }, /unknown version 0/],
    ];
    for (const [q, re] of bad) {
      assert.throws(
        () => s.query({ order: 'asc', limit: 10, ...q }),
        (e: unknown) => e instanceof InvalidQueryError && re.test(e.message),
        String(re),
      );
    }
  }),
);

test(
  'aggregate: epoch-aligned buckets, clipping to [from, to), asc/desc, limit, chosen fns',
  withStore((s) => {
    const B = 10;
    // values 0..29 at ts -15..14 (relative to a bucket-aligned T0), so buckets straddle zero
    const points = Array.from({ length: 30 }, (_, i) => pt(i, 'dev-a', T0 - 15 + i, i));
    s.applyBatch([{ index: 1, command: cmd(...points.map(put), put(pt(100, 'dev-b', T0, 1000))) }]);
    const all = s.aggregate({
      deviceId: 'dev-a',
      bucket: B,
      fns: ['count', 'sum', 'avg', 'min', 'max', 'first', 'last'],
      order: 'asc',
      limit: 100,
    });
    assert.deepEqual(all, [
      {
        start: T0 - 20,
        values: { count: 5, sum: 0 + 1 + 2 + 3 + 4, avg: 2, min: 0, max: 4, first: 0, last: 4 },
      },
      { start: T0 - 10, values: { count: 10, sum: 95, avg: 9.5, min: 5, max: 14, first: 5, last: 14 } },
      { start: T0, values: { count: 10, sum: 195, avg: 19.5, min: 15, max: 24, first: 15, last: 24 } },
      { start: T0 + 10, values: { count: 5, sum: 135, avg: 27, min: 25, max: 29, first: 25, last: 29 } },
    ]);
    const desc = s.aggregate({
      deviceId: 'dev-a',
      bucket: B,
      fns: ['count', 'last'],
      order: 'desc',
      limit: 2,
    });
    assert.deepEqual(desc, [
      { start: T0 + 10, values: { count: 5, last: 29 } },
      { start: T0, values: { count: 10, last: 24 } },
    ]);
    // from/to clip the first and last buckets; starts stay aligned
    const clipped = s.aggregate({
      deviceId: 'dev-a',
      bucket: B,
      fns: ['count', 'first'],
      order: 'asc',
      limit: 100,
      from: T0 - 7,
      to: T0 + 3,
    });
    assert.deepEqual(clipped, [
      { start: T0 - 10, values: { count: 7, first: 8 } },
      { start: T0, values: { count: 3, first: 15 } },
    ]);
    // pre-epoch timestamps bucket by floor, not truncation toward zero
    s.applyBatch([
      {
        index: 2,
        command: cmd(
          put(pt(200, 'neg', -1, 1)),
          put(pt(201, 'neg', -10, 2)),
          put(pt(202, 'neg', -11, 3)),
          put(pt(203, 'neg', 0, 4)),
        ),
      },
    ]);
    assert.deepEqual(
      s
        .aggregate({ deviceId: 'neg', bucket: B, fns: ['count'], order: 'asc', limit: 10 })
        .map((b) => [b.start, b.values.count]),
      [
        [-20, 1],
        [-10, 2],
        [0, 1],
      ],
    );
    assert.deepEqual(
      s.aggregate({ deviceId: 'nobody', bucket: B, fns: ['count'], order: 'asc', limit: 10 }),
      [],
    );
    assert.throws(
      () => s.aggregate({ deviceId: 'dev-a', bucket: 0, fns: ['count'], order: 'asc', limit: 10 }),
      /bucket must be a positive integer/,
    );
    assert.throws(
      () => s.aggregate({ deviceId: 'dev-a', bucket: 10, fns: ['median' as never], order: 'asc', limit: 10 }),
      /fns must be a non-empty list/,
    );
    assert.throws(
      () => s.aggregate({ deviceId: 'dev-a', bucket: 10, fns: [], order: 'asc', limit: 10 }),
      /fns must be a non-empty list/,
    );
  }),
);

test(
  'extreme timestamps far from the time base store and page exactly',
  withStore((s) => {
    const MAX = Number.MAX_SAFE_INTEGER;
    const points = [pt(1, 'd', T0), pt(2, 'd', MAX), pt(3, 'd', -MAX), pt(4, 'd', 0), pt(5, 'd', MAX - 1)];
    s.applyBatch([{ index: 1, command: cmd(...points.map(put)) }]);
    for (const p of points) assert.deepEqual(s.get(p.id), p);
    assert.deepEqual(
      allPages(s, { deviceId: 'd', order: 'asc', limit: 2 })
        .flat()
        .map((p) => p.ts),
      [-MAX, 0, T0, MAX - 1, MAX],
    );
    assert.deepEqual(
      s.query({ order: 'asc', limit: 10, from: MAX - 1 }).points.map((p) => p.ts),
      [MAX - 1, MAX],
    );
    assert.deepEqual(
      s.query({ order: 'asc', limit: 10, to: -MAX + 1 }).points.map((p) => p.ts),
      [-MAX],
    );
    assert.deepEqual(
      s
        .aggregate({ deviceId: 'd', bucket: MAX, fns: ['count'], order: 'asc', limit: 10 })
        .map((b) => b.values.count),
      [1, 3, 1],
    );
  }),
);

test('reopen after close keeps points, devices, tags, the time base and the applied index', async () => {
  const { dir, cleanup } = tempDir();
  try {
    const path = join(dir, 'data.db');
    let s = openDataStore(path);
    const p1: Point = {
      ...pt(1, 'dev-a', T0 + 123_456),
      tags: { site: 'north' },
      attributes: { a: { b: [1] } },
    };
    s.applyBatch([{ index: 7, command: cmd(put(p1), put(pt(2, 'dev-b'))) }]);
    s.close();
    assert.throws(() => s.count(), /is closed/);
    s = openDataStore(path);
    assert.equal(s.appliedIndex(), 7);
    assert.deepEqual(s.get(uid(1)), p1);
    assert.equal(s.count(), 2);
    s.applyBatch([{ index: 8, command: cmd(put({ ...pt(3, 'dev-a', T0 + 5), tags: { site: 'north' } })) }]);
    assert.deepEqual(
      s.query({ deviceId: 'dev-a', order: 'asc', limit: 10 }).points.map((p) => p.id),
      [uid(3), uid(1)],
    );
    const db = (s as unknown as { db: Database.Database }).db;
    assert.equal(
      db.prepare('SELECT count(*) FROM tagsets').pluck().get(),
      1,
      'the same tag set is interned once',
    );
    s.close();
  } finally {
    cleanup();
  }
});

test(
  'snapshot and restore round trip',
  withStore(async (s, dir) => {
    s.applyBatch([{ index: 1, command: cmd(put(pt(1)), put({ ...pt(2, 'dev-b'), tags: { x: 'y' } })) }]);
    s.applyBatch([{ index: 2, command: cmd(del(uid(1)), put(pt(3))) }]);
    const snap = join(dir, 'snap.db');
    const meta = await s.snapshotTo(snap);
    assert.equal(meta.index, 2);
    assert.ok(meta.bytes > 0);
    assert.ok(!existsSync(`${snap}-wal`) && !existsSync(`${snap}.tmp`), 'the snapshot is one file');
    const before = allPages(s, { order: 'asc', limit: 100 }).flat();

    s.applyBatch([{ index: 3, command: cmd(put(pt(4)), del(uid(3)), put({ ...pt(2), value: 42 })) }]);
    assert.notDeepEqual(allPages(s, { order: 'asc', limit: 100 }).flat(), before);

    s.restoreFrom(snap);
    assert.equal(s.appliedIndex(), 2);
    assert.deepEqual(allPages(s, { order: 'asc', limit: 100 }).flat(), before);
    assert.equal(s.get(uid(4)), undefined);
    assert.deepEqual(s.get(uid(2)), { ...pt(2, 'dev-b'), tags: { x: 'y' } });
    // the store works normally afterwards, and index 3 is not considered applied any more
    s.applyBatch([{ index: 3, command: cmd(put({ ...pt(5, 'dev-new'), tags: { x: 'y' } })) }]);
    assert.equal(s.count(), 3);
    const db = (s as unknown as { db: Database.Database }).db;
    assert.equal(db.pragma('journal_mode', { simple: true }), 'wal');
    assert.ok(existsSync(snap), 'the snapshot file is left for its owner');
    // and restoring into a brand-new store works too
    const other = openDataStore(join(dir, 'other.db'));
    try {
      other.restoreFrom(snap);
      assert.deepEqual(allPages(other, { order: 'asc', limit: 1 }).flat(), before);
    } finally {
      other.close();
    }
  }),
);

test(
  'a second snapshot to the same path replaces the first whole',
  withStore(async (s, dir) => {
    const snap = join(dir, 'snap.db');
    s.applyBatch([{ index: 1, command: cmd(put(pt(1))) }]);
    assert.equal((await s.snapshotTo(snap)).index, 1);
    s.applyBatch([{ index: 2, command: cmd(put(pt(2)), del(uid(1))) }]);
    assert.equal((await s.snapshotTo(snap)).index, 2);
    const other = openDataStore(join(dir, 'other.db'));
    try {
      other.restoreFrom(snap);
      assert.equal(other.appliedIndex(), 2);
      assert.deepEqual(other.query({ order: 'asc', limit: 10 }).points, [pt(2)]);
    } finally {
      other.close();
    }
  }),
);

test(
  'restore refuses files that are not data snapshots and keeps the store intact',
  withStore((s, dir) => {
    s.applyBatch([{ index: 1, command: cmd(put(pt(1))) }]);
    const garbage = join(dir, 'garbage.db');
    writeFileSync(garbage, 'this is not sqlite at all, not even close'.repeat(200));
    assert.throws(() => s.restoreFrom(garbage), /snapshot .*garbage\.db/);
    const foreign = join(dir, 'foreign.db');
    const f = new Database(foreign);
    f.exec('CREATE TABLE t(x)');
    f.close();
    assert.throws(() => s.restoreFrom(foreign), /not a TimeStore data snapshot of schema version 1/);
    assert.throws(() => s.restoreFrom(join(dir, 'missing.db')), /does not exist/);
    assert.deepEqual(s.get(uid(1)), pt(1));
    assert.equal(s.appliedIndex(), 1);
  }),
);

test(
  'a snapshot taken while writes continue is consistent with the index it records',
  withStore(async (s, dir) => {
    // Enough data that the online backup takes several steps, with writes landing between them.
    let index = 0;
    const batchOf = (i: number) =>
      cmd(
        ...Array.from({ length: 200 }, (_, k) =>
          put(pt(i * 1000 + k, `dev-${k % 10}`, T0 + i * 1000 + k, i)),
        ),
      );
    for (let i = 0; i < 50; i++) s.applyBatch([{ index: ++index, command: batchOf(index) }]);
    let stop = false;
    const writer = (async () => {
      while (!stop && index < 400) {
        s.applyBatch([{ index: ++index, command: batchOf(index) }]);
        await new Promise((r) => setImmediate(r));
      }
    })();
    const meta = await s.snapshotTo(join(dir, 'live.db'));
    stop = true;
    await writer;
    const copy = openDataStore(join(dir, 'copy.db'));
    try {
      copy.restoreFrom(join(dir, 'live.db'));
      assert.equal(copy.appliedIndex(), meta.index);
      assert.equal(copy.count(), meta.index * 200, 'exactly the batches up to the recorded index');
    } finally {
      copy.close();
    }
  }),
);

test('a leftover temp file from an interrupted restore is removed on open', async () => {
  const { dir, cleanup } = tempDir();
  try {
    const path = join(dir, 'data.db');
    const tmp = join(dir, '.data.db.restore-tmp');
    writeFileSync(tmp, 'half-copied snapshot');
    const s = openDataStore(path);
    assert.ok(!existsSync(tmp));
    s.close();
  } finally {
    cleanup();
  }
});

test(
  'fileSizes reports data.db and its WAL',
  withStore((s) => {
    s.applyBatch([{ index: 1, command: cmd(...Array.from({ length: 100 }, (_, i) => put(pt(i)))) }]);
    const sizes = s.fileSizes();
    assert.ok(sizes.db > 0);
    assert.ok(sizes.wal > 0, 'the write is in the WAL until a checkpoint');
  }),
);
