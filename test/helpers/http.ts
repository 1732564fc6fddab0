// Small HTTP client for tests (global fetch): one call returns status, headers, text and parsed
// JSON, and waitForHttp polls a URL until the server answers.
import type { TestProcess } from './process.js';

export interface HttpResponse<T = unknown> {
  status: number;
  headers: Headers;
  text: string;
  /** Parsed body when it is JSON (application/json, application/problem+json, ...), else undefined. */
  json: T;
  contentType: string;
}

export interface RequestOptions {
  /** Serialized as JSON with content-type application/json. */
  json?: unknown;
  /** Raw body (string or bytes); set content-type yourself in headers. */
  body?: string | Uint8Array;
  headers?: Record<string, string>;
  timeoutMs?: number;
}

export async function request<T = any>(
  method: string,
  url: string,
  opts: RequestOptions = {},
): Promise<HttpResponse<T>> {
  const headers: Record<string, string> = { ...(opts.headers ?? {}) };
  let body: string | Uint8Array | undefined = opts.body;
  if (opts.json !== undefined) {
    body = JSON.stringify(opts.json);
    headers['content-type'] ??= 'application/json';
  }
  const res = await fetch(url, {
    method,
    headers,
    body,
    signal: AbortSignal.timeout(opts.timeoutMs ?? 30_000),
  });
  const text = await res.text();
  const contentType = res.headers.get('content-type') ?? '';
  let json: any = undefined;
  if (/json/i.test(contentType) && text.length > 0) {
    try {
      json = JSON.parse(text);
    } catch {
      json = undefined;
    }
  }
  return { status: res.status, headers: res.headers, text, json, contentType };
}

export const get = <T = any>(url: string, opts?: RequestOptions) => request<T>('GET', url, opts);
export const post = <T = any>(url: string, json: unknown, opts?: RequestOptions) =>
  request<T>('POST', url, { ...opts, json });
export const del = <T = any>(url: string, opts?: RequestOptions) => request<T>('DELETE', url, opts);

export interface WaitOptions {
  timeoutMs?: number;
  intervalMs?: number;
  /** Fail fast (with its output) if this process exits while waiting. */
  process?: TestProcess;
  /** Accept the answer when this returns true; default: any status below 500. */
  ready?: (status: number, body: string) => boolean;
}

/** Poll url until it answers (default: any HTTP status < 500). Generous default timeout: CI has 2 shared cores. */
export async function waitForHttp(url: string, opts: WaitOptions = {}): Promise<void> {
  const timeoutMs = opts.timeoutMs ?? 60_000;
  const deadline = Date.now() + timeoutMs;
  const ready = opts.ready ?? ((status) => status < 500);
  let last = 'no answer yet';
  for (;;) {
    if (opts.process && !opts.process.running) {
      throw new Error(`waiting for ${url}: process exited.\n${opts.process.describe()}`);
    }
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(5_000) });
      const body = await res.text();
      if (ready(res.status, body)) return;
      last = `HTTP ${res.status}: ${body.slice(0, 200)}`;
    } catch (err) {
      last = String((err as Error).cause ?? err);
    }
    if (Date.now() > deadline) {
      throw new Error(
        `${url} did not become ready within ${timeoutMs} ms (last: ${last})${opts.process ? `\n${opts.process.describe()}` : ''}`,
      );
    }
    await new Promise((r) => setTimeout(r, opts.intervalMs ?? 100));
  }
}

/** Poll an async condition until it returns a truthy value. */
export async function eventually<T>(
  fn: () => Promise<T | undefined | null | false>,
  what: string,
  timeoutMs = 30_000,
  intervalMs = 100,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastErr: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (err) {
      lastErr = err;
    }
    if (Date.now() > deadline)
      throw new Error(
        `timed out after ${timeoutMs} ms waiting for ${what}${lastErr ? `: ${String(lastErr)}` : ''}`,
      );
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}
