// An in-memory DataStore with the contract's semantics (replace by id, (ts, id) order, opaque
// cursors, epoch-aligned aggregation): for fast in-process tests of the API and the node without
// SQLite, and as a reference model. Not durable, not for production.
import type { ApplyResult, DataStore } from '../../src/storage/data-store.js';
import type {
  AggregateBucket,
  AggregateQuery,
  Command,
  Point,
  PointPage,
  PointQuery,
} from '../../src/tsdb/model.js';

export class MemoryDataStore implements DataStore {
  private points = new Map<string, Point>();
  private applied = 0;

  appliedIndex(): number {
    return this.applied;
  }

  applyBatch(batch: Array<{ index: number; command: Command | null }>): ApplyResult[] {
    const out: ApplyResult[] = [];
    for (const { index, command } of batch) {
      if (index <= this.applied) continue;
      const res: ApplyResult = { index, points: [], deleted: [] };
      for (const op of command?.ops ?? []) {
        if (op.op === 'put') {
          const p = structuredClone(op.point);
          this.points.set(p.id, p);
          res.points.push(structuredClone(p));
        } else if (this.points.delete(op.id)) {
          res.deleted.push(op.id);
        }
      }
      this.applied = index;
      out.push(res);
    }
    return out;
  }

  get(id: string): Point | undefined {
    const p = this.points.get(id);
    return p && structuredClone(p);
  }

  private sorted(q: { deviceId?: string; from?: number; to?: number; order: 'asc' | 'desc' }): Point[] {
    const list = [...this.points.values()].filter(
      (p) =>
        (q.deviceId === undefined || p.deviceId === q.deviceId) &&
        (q.from === undefined || p.ts >= q.from) &&
        (q.to === undefined || p.ts < q.to),
    );
    list.sort((a, b) => a.ts - b.ts || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    if (q.order === 'desc') list.reverse();
    return list;
  }

  query(q: PointQuery): PointPage {
    let list = this.sorted(q);
    if (q.cursor) {
      let c: { ts: number; id: string };
      try {
        c = JSON.parse(Buffer.from(q.cursor, 'base64url').toString()) as { ts: number; id: string };
      } catch {
        throw new TypeError(`invalid cursor ${JSON.stringify(q.cursor)}`);
      }
      const after = (p: Point) =>
        q.order === 'asc'
          ? p.ts > c.ts || (p.ts === c.ts && p.id > c.id)
          : p.ts < c.ts || (p.ts === c.ts && p.id < c.id);
      list = list.filter(after);
    }
    const page = list.slice(0, q.limit);
    const last = page[page.length - 1];
    const nextCursor =
      list.length > q.limit && last
        ? Buffer.from(JSON.stringify({ ts: last.ts, id: last.id })).toString('base64url')
        : null;
    return { points: page.map((p) => structuredClone(p)), nextCursor };
  }

  aggregate(q: AggregateQuery): AggregateBucket[] {
    const buckets = new Map<number, Point[]>();
    for (const p of this.sorted({ ...q, order: 'asc' })) {
      const start = Math.floor(p.ts / q.bucket) * q.bucket;
      const b = buckets.get(start) ?? [];
      b.push(p);
      buckets.set(start, b);
    }
    const starts = [...buckets.keys()].sort((a, b) => (q.order === 'asc' ? a - b : b - a)).slice(0, q.limit);
    return starts.map((start) => {
      const ps = buckets.get(start)!;
      const vals = ps.map((p) => p.value);
      const sum = vals.reduce((a, b) => a + b, 0);
      const all = {
        count: ps.length,
        sum,
        avg: sum / ps.length,
        min: Math.min(...vals),
        max: Math.max(...vals),
        first: vals[0]!,
        last: vals[vals.length - 1]!,
      };
      const values: AggregateBucket['values'] = {};
      for (const fn of q.fns) values[fn] = all[fn];
      return { start, values };
    });
  }

  count(): number {
    return this.points.size;
  }

  async snapshotTo(_path: string): Promise<{ index: number; bytes: number }> {
    throw new Error('MemoryDataStore does not write snapshots');
  }

  restoreFrom(_path: string): void {
    throw new Error('MemoryDataStore does not restore snapshots');
  }

  fileSizes(): { db: number; wal: number } {
    return { db: 0, wal: 0 };
  }

  close(): void {}
}
