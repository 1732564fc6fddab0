import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Command, Point, WriteOp } from '../../src/tsdb/model.js';

/** A fresh temp directory, removed by the returned cleanup. */
export function tempDir(prefix = 'timestore-data-'): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

export function put(point: Point): WriteOp {
  return { op: 'put', point };
}

export function del(id: string): WriteOp {
  return { op: 'delete', id };
}

export function cmd(...ops: WriteOp[]): Command {
  return { ops };
}

/** A UUID whose bytes sort in n's order (n < 2^48), handy for readable expectations. */
export function uid(n: number): string {
  const h = n.toString(16).padStart(12, '0');
  return `00000000-0000-7000-8000-${h}`;
}

export const T0 = Date.UTC(2026, 0, 1) * 1000;
