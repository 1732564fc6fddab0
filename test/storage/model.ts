// A plain in-memory model of the data store, written as directly as possible from the contract,
// for the property tests to compare the SQLite engine against.
import type {
  AggregateBucket,
  AggregateQuery,
  Command,
  Point,
  PointPage,
  PointQuery,
} from '../../src/tsdb/model.js';
import type { ApplyResult } from '../../src/storage/data-store.js';
import {
  canonicalId,
  compareIdKeys,
  decodeCursor,
  encodeCursor,
  idToKey,
} from '../../src/storage/data/keys.js';

function sortTags(t: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(t).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

export function normalize(p: Point): Point {
  const out: Point = {
    id: canonicalId(p.id),
    deviceId: p.deviceId,
    ts: p.ts,
    value: p.value === 0 ? 0 : p.value,
  };
  if (p.tags !== undefined) out.tags = sortTags(p.tags);
  if (p.attributes !== undefined)
    out.attributes = JSON.parse(JSON.stringify(p.attributes)) as Record<string, unknown>;
  return out;
}

export function keyOrder(a: Point, b: Point): number {
  return a.ts - b.ts || compareIdKeys(idToKey(a.id), idToKey(b.id));
}

export class ModelStore {
  points = new Map<string, Point>();
  applied = 0;

  applyBatch(batch: Array<{ index: number; command: Command | null }>): ApplyResult[] {
    const results: ApplyResult[] = [];
    for (const { index, command } of batch) {
      if (index <= this.applied) continue;
      this.applied = index;
      const r: ApplyResult = { index, points: [], deleted: [] };
      for (const op of command?.ops ?? []) {
        if (op.op === 'put') {
          const p = normalize(op.point);
          this.points.set(p.id, p);
          r.points.push(p);
        } else {
          const id = canonicalId(op.id);
          if (this.points.delete(id)) r.deleted.push(id);
        }
      }
      results.push(r);
    }
    return results;
  }

  all(): Point[] {
    return [...this.points.values()].sort((a, b) => a.deviceId.localeCompare(b.deviceId) || keyOrder(a, b));
  }

  query(q: PointQuery): PointPage {
    const from = q.from ?? -Infinity;
    const to = q.to ?? Infinity;
    const sign = q.order === 'asc' ? 1 : -1;
    let rows = [...this.points.values()]
      .filter((p) => (q.deviceId === undefined || p.deviceId === q.deviceId) && p.ts >= from && p.ts < to)
      .sort((a, b) => sign * keyOrder(a, b));
    if (q.cursor) {
      const c = decodeCursor(q.cursor);
      rows = rows.filter((p) => sign * (p.ts - c.ts || compareIdKeys(idToKey(p.id), c.key)) > 0);
    }
    const page = rows.slice(0, q.limit);
    const last = page[page.length - 1];
    return {
      points: page,
      nextCursor: rows.length > q.limit && last ? encodeCursor(last.ts, idToKey(last.id)) : null,
    };
  }

  aggregate(q: AggregateQuery): AggregateBucket[] {
    const from = q.from ?? -Infinity;
    const to = q.to ?? Infinity;
    const rows = [...this.points.values()]
      .filter((p) => p.deviceId === q.deviceId && p.ts >= from && p.ts < to)
      .sort(keyOrder);
    const groups = new Map<number, Point[]>();
    for (const p of rows) {
      const start = p.ts - (((p.ts % q.bucket) + q.bucket) % q.bucket);
      let g = groups.get(start);
      if (!g) groups.set(start, (g = []));
      g.push(p);
    }
    const starts = [...groups.keys()].sort((a, b) => (q.order === 'asc' ? a - b : b - a)).slice(0, q.limit);
    return starts.map((start) => {
      const g = groups.get(start)!;
      const vals = g.map((p) => p.value);
      const sum = vals.reduce((a, b) => a + b, 0);
      const all = {
        count: g.length,
        sum,
        avg: sum / g.length,
        min: Math.min(...vals),
        max: Math.max(...vals),
        first: g[0]!.value,
        last: g[g.length - 1]!.value,
      };
      return { start, values: Object.fromEntries(q.fns.map((f) => [f, all[f]])) };
    });
  }
}
