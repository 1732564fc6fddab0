// Shared helpers of the API contract tests (one real node process per test file).
import assert from 'node:assert/strict';
import { get, type HttpResponse } from '../helpers/index.js';

export interface EntryJson {
  id: string;
  deviceId: string;
  timestamp: string;
  value: number;
  tags?: Record<string, string>;
  attributes?: Record<string, unknown>;
}

/** Every entry behind a list URL, following X-Next-Cursor to the end. */
export async function readAll(url: string, pageSize = 1000): Promise<EntryJson[]> {
  const out: EntryJson[] = [];
  let cursor: string | null = null;
  for (let pages = 0; pages < 10_000; pages++) {
    const u = new URL(url);
    u.searchParams.set('limit', String(pageSize));
    if (cursor) u.searchParams.set('cursor', cursor);
    const res = await get<EntryJson[]>(u.toString());
    assert.equal(res.status, 200, res.text);
    out.push(...res.json);
    cursor = res.headers.get('x-next-cursor');
    if (!cursor) return out;
  }
  throw new Error('too many pages');
}

/** Assert a response is an RFC 9457 problem with this status, and (optionally) that it names `field`. */
export function assertProblem(res: HttpResponse, status: number, field?: string | RegExp): void {
  const ctx = `HTTP ${res.status} ${res.text.slice(0, 500)}`;
  assert.equal(res.status, status, ctx);
  assert.match(res.contentType, /^application\/problem\+json/, ctx);
  const p = res.json as {
    type?: unknown;
    title?: unknown;
    status?: unknown;
    detail?: unknown;
    errors?: Array<{ field: string; message: string }>;
  };
  assert.equal(typeof p.type, 'string', ctx);
  assert.equal(typeof p.title, 'string', ctx);
  assert.equal(p.status, status, ctx);
  assert.equal(typeof p.detail, 'string', ctx);
  if (field !== undefined) {
    assert.ok(Array.isArray(p.errors) && p.errors.length > 0, `expected errors[] naming ${field}: ${ctx}`);
    const hit = p.errors.find((e) => (typeof field === 'string' ? e.field === field : field.test(e.field)));
    assert.ok(hit, `expected an error for field ${field}: ${ctx}`);
    assert.ok(hit.message.length > 0, ctx);
  }
}
