// Property: any sequence of batches of writes, replaces and deletes (with replays, no-op entries
// and reopens mixed in) leaves the SQLite engine in the same state as the in-memory model, judged
// by full contents, by every page of arbitrary queries, and by aggregates. And putResult (what a
// Raft leader answers at commit) is what applyBatch answers, for any put-only command.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import fc from 'fast-check';
import { openDataStore, putResult, type SqliteDataStore } from '../../src/storage/data/index.js';
import type { AggregateQuery, Command, Point, PointQuery, WriteOp } from '../../src/tsdb/model.js';
import { ModelStore } from './model.js';
import { T0, tempDir, uid } from './helpers.js';

const MAX = Number.MAX_SAFE_INTEGER;
const DEVICES = ['d0', 'd1', 'd2', 'sensor/ü'];
// Few ids so puts collide (replaces, moves) and deletes hit; text ids and upper-case UUIDs included.
const ID = fc.oneof(
  { weight: 6, arbitrary: fc.integer({ min: 0, max: 11 }).map((n) => uid(n)) },
  { weight: 1, arbitrary: fc.integer({ min: 0, max: 11 }).map((n) => uid(n).toUpperCase()) },
  { weight: 2, arbitrary: fc.constantFrom('a', 'b-1', 'Zed', 'ü', '😀', 'ffffffff') },
);
const TS = fc.oneof(
  { weight: 8, arbitrary: fc.integer({ min: -3, max: 25 }).map((n) => T0 + n) },
  { weight: 1, arbitrary: fc.constantFrom(-MAX, MAX, 0, -1, T0 + 2 ** 48) },
);
const VALUE = fc.oneof(
  fc.integer({ min: -1000, max: 1000 }),
  fc.double({ min: -1e6, max: 1e6, noNaN: true }),
);
const TAGS = fc.option(
  fc.dictionary(fc.constantFrom('site', 'zone', 'a'), fc.constantFrom('n', 's', ''), { maxKeys: 3 }),
  { nil: undefined },
);
const ATTRS = fc.option(
  fc.dictionary(fc.constantFrom('fw', 'x'), fc.jsonValue({ maxDepth: 2 }), { maxKeys: 2 }),
  { nil: undefined },
);

const POINT = fc
  .record({
    id: ID,
    deviceId: fc.constantFrom(...DEVICES),
    ts: TS,
    value: VALUE,
    tags: TAGS,
    attributes: ATTRS,
  })
  .map((p) => {
    const out: Point = { id: p.id, deviceId: p.deviceId, ts: p.ts, value: p.value };
    if (p.tags !== undefined) out.tags = p.tags;
    if (p.attributes !== undefined) out.attributes = p.attributes as Record<string, unknown>;
    return out;
  });
const OP: fc.Arbitrary<WriteOp> = fc.oneof(
  { weight: 3, arbitrary: POINT.map((point) => ({ op: 'put' as const, point })) },
  { weight: 1, arbitrary: ID.map((id) => ({ op: 'delete' as const, id })) },
);
const COMMAND: fc.Arbitrary<Command | null> = fc.oneof(
  { weight: 8, arbitrary: fc.array(OP, { maxLength: 8 }).map((ops) => ({ ops })) },
  { weight: 1, arbitrary: fc.constant(null) },
);
const QUERY: fc.Arbitrary<Omit<PointQuery, 'cursor'>> = fc.record({
  deviceId: fc.option(fc.constantFrom(...DEVICES, 'nobody'), { nil: undefined }),
  from: fc.option(TS, { nil: undefined }),
  to: fc.option(TS, { nil: undefined }),
  order: fc.constantFrom('asc' as const, 'desc' as const),
  limit: fc.integer({ min: 1, max: 6 }),
});

type Step =
  | { kind: 'batch'; commands: Array<Command | null>; replay: number }
  | { kind: 'query'; q: Omit<PointQuery, 'cursor'> }
  | { kind: 'reopen' };
const STEP: fc.Arbitrary<Step> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.record({
      kind: fc.constant('batch' as const),
      commands: fc.array(COMMAND, { minLength: 1, maxLength: 4 }),
      replay: fc.integer({ min: 0, max: 3 }),
    }),
  },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('query' as const), q: QUERY }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'reopen' as const }) },
);

function pagesOf(
  run: (cursor?: string) => { points: Point[]; nextCursor: string | null },
): Array<{ points: Point[]; nextCursor: string | null }> {
  const out = [];
  let cursor: string | undefined;
  for (let i = 0; i < 1000; i++) {
    const page = run(cursor);
    out.push(page);
    if (page.nextCursor === null) return out;
    cursor = page.nextCursor;
  }
  throw new Error('paging did not terminate');
}

function comparePaging(s: SqliteDataStore, m: ModelStore, q: Omit<PointQuery, 'cursor'>): void {
  const got = pagesOf((cursor) => s.query({ ...q, cursor }));
  const want = pagesOf((cursor) => m.query({ ...q, cursor }));
  assert.deepStrictEqual(got, want, `query ${JSON.stringify(q)}`);
}

function close(a: number | null | undefined, b: number | null | undefined): boolean {
  if (typeof a !== 'number' || typeof b !== 'number') return a === b;
  return Math.abs(a - b) <= 1e-9 * Math.max(1, Math.abs(a), Math.abs(b));
}

function compareAll(s: SqliteDataStore, m: ModelStore): void {
  assert.equal(s.count(), m.points.size);
  assert.equal(s.appliedIndex(), m.applied);
  for (const p of m.points.values()) assert.deepStrictEqual(s.get(p.id), p);
  for (const limit of [1, 3, 100]) {
    for (const order of ['asc', 'desc'] as const) {
      comparePaging(s, m, { order, limit });
      for (const deviceId of DEVICES) comparePaging(s, m, { deviceId, order, limit });
    }
  }
  for (const deviceId of DEVICES) {
    for (const bucket of [1, 4, 7, 2 ** 40]) {
      const q: AggregateQuery = {
        deviceId,
        bucket,
        fns: ['count', 'sum', 'avg', 'min', 'max', 'first', 'last'],
        order: 'asc',
        limit: 50,
      };
      const got = s.aggregate(q);
      const want = m.aggregate(q);
      assert.equal(got.length, want.length, JSON.stringify(q));
      got.forEach((g, i) => {
        const w = want[i]!;
        assert.equal(g.start, w.start);
        for (const fn of q.fns)
          assert.ok(
            close(g.values[fn], w.values[fn]),
            `${fn} ${g.values[fn]} vs ${w.values[fn]} in ${JSON.stringify(q)}`,
          );
      });
    }
  }
}

test('property: the engine matches an in-memory model under any writes, replaces, deletes, replays and reopens', async () => {
  const { dir, cleanup } = tempDir();
  let run = 0;
  try {
    fc.assert(
      fc.property(fc.array(STEP, { minLength: 1, maxLength: 25 }), (steps) => {
        const path = join(dir, `p${run++}.db`);
        let s = openDataStore(path);
        const m = new ModelStore();
        try {
          let next = 1;
          for (const step of steps) {
            if (step.kind === 'reopen') {
              s.close();
              s = openDataStore(path);
            } else if (step.kind === 'query') {
              comparePaging(s, m, step.q);
            } else {
              // Re-send up to `replay` already-applied indices (with junk content) ahead of the new ones.
              const batch: Array<{ index: number; command: Command | null }> = [];
              for (let r = Math.max(1, next - step.replay); r < next; r++)
                batch.push({ index: r, command: { ops: [{ op: 'delete', id: uid(0) }] } });
              for (const command of step.commands) batch.push({ index: next++, command });
              const got = s.applyBatch(batch);
              const want = m.applyBatch(batch);
              assert.deepStrictEqual(got, want);
            }
          }
          compareAll(s, m);
        } finally {
          s.close();
        }
      }),
      { numRuns: Number(process.env.TIMESTORE_PROPERTY_RUNS ?? 150) },
    );
  } finally {
    cleanup();
  }
});

test('property: snapshot then restore reproduces the exact state', async () => {
  const { dir, cleanup } = tempDir();
  let run = 0;
  try {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.array(COMMAND, { minLength: 1, maxLength: 3 }), { minLength: 1, maxLength: 6 }),
        async (batches) => {
          const a = openDataStore(join(dir, `a${run}.db`));
          const b = openDataStore(join(dir, `b${run}.db`));
          const snap = join(dir, `s${run++}.db`);
          try {
            const m = new ModelStore();
            let index = 1;
            for (const commands of batches) {
              const batch = commands.map((command) => ({ index: index++, command }));
              a.applyBatch(batch);
              m.applyBatch(batch);
            }
            b.applyBatch([
              {
                index: 1,
                command: { ops: [{ op: 'put', point: { id: uid(99), deviceId: 'old', ts: 0, value: 1 } }] },
              },
            ]);
            await a.snapshotTo(snap);
            b.restoreFrom(snap);
            compareAll(b, m);
          } finally {
            a.close();
            b.close();
          }
        },
      ),
      { numRuns: 40 },
    );
  } finally {
    cleanup();
  }
});

test("property: putResult predicts applyBatch's answer for every put-only command, whatever is stored", async () => {
  const { dir, cleanup } = tempDir();
  let run = 0;
  try {
    fc.assert(
      fc.property(fc.array(COMMAND, { minLength: 1, maxLength: 12 }), (commands) => {
        const s = openDataStore(join(dir, `p${run++}.db`));
        try {
          let index = 1;
          for (const command of commands) {
            if (command === null) continue;
            // As a Raft leader does: predicted from the command it proposed, applied from the
            // entry's JSON (a -0 value, say, does not survive JSON).
            const predicted = putResult(command, index);
            const [applied] = s.applyBatch([{ index, command: JSON.parse(JSON.stringify(command)) }]);
            if (command.ops.some((op) => op.op === 'delete')) assert.equal(predicted, null);
            else assert.deepStrictEqual(predicted, applied, JSON.stringify(command));
            index++;
          }
        } finally {
          s.close();
        }
      }),
      { numRuns: 150 },
    );
  } finally {
    cleanup();
  }
});
