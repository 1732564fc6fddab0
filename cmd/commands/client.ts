// Shared bits of the thin REST client commands (write, query, status): --url, and turning a
// problem+json answer into a readable error.
import { ConfigError, type FlagSpec } from '../../src/node/config.js';

export const urlFlag: FlagSpec = {
  name: 'url',
  valueName: 'url',
  description: 'URL of any node',
  default: 'http://127.0.0.1:5001',
};

export function baseUrl(raw: string): string {
  try {
    const u = new URL(raw);
    if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error();
    return raw.replace(/\/+$/, '');
  } catch {
    throw new ConfigError(`--url: expected an http(s) URL such as http://127.0.0.1:5001; got "${raw}"`);
  }
}

export class HttpError extends Error {}

/** fetch + JSON, with problem+json and connection errors turned into one-line messages. */
export async function call(
  method: string,
  url: string,
  body?: { text: string; contentType: string },
): Promise<{ status: number; headers: Headers; json: unknown }> {
  let res: Response;
  try {
    res = await fetch(url, {
      method,
      ...(body ? { body: body.text, headers: { 'content-type': body.contentType } } : {}),
      signal: AbortSignal.timeout(60_000),
    });
  } catch (err) {
    const cause = (err as { cause?: { code?: string; message?: string } }).cause;
    throw new HttpError(`${method} ${url}: ${cause?.code ?? cause?.message ?? (err as Error).message}`);
  }
  const text = await res.text();
  let json: unknown = undefined;
  try {
    json = text ? JSON.parse(text) : undefined;
  } catch {
    json = text;
  }
  if (res.status >= 400) {
    const p = json as
      { title?: string; detail?: string; errors?: Array<{ field: string; message: string }> } | undefined;
    const fields = p?.errors?.map((e) => `\n  ${e.field}: ${e.message}`).join('') ?? '';
    throw new HttpError(
      `${method} ${url}: HTTP ${res.status} ${p?.title ?? ''}${p?.detail ? `: ${p.detail}` : ''}${fields}`,
    );
  }
  return { status: res.status, headers: res.headers, json };
}

/** Run a client command: usage errors exit 2, HTTP/connection errors exit 1, with a message. */
export async function runClient(fn: () => Promise<void>): Promise<number> {
  try {
    await fn();
    return 0;
  } catch (err) {
    if (err instanceof HttpError) {
      process.stderr.write(`timestore: ${err.message}\n`);
      return 1;
    }
    throw err;
  }
}
