// HTTP calls of the chaos clients, classified the way a Jepsen client does:
//   ok       2xx;
//   failed   the request certainly had no effect: the connection was refused or never completed
//            (nothing was sent),
//            or the node answered a 4xx (rejected before proposing);
//   unknown  anything else after the request may have left: timeout, reset, 5xx (a 503 after a
//            proposal timed out may still commit later).
// Reads have no effect, so for them "failed" and "unknown" both just mean "no information".
import { Agent, request } from 'undici';

export type Outcome = 'ok' | 'failed' | 'unknown';

export interface CallResult {
  outcome: Outcome;
  status?: number;
  json?: unknown;
  headers?: Record<string, string | string[] | undefined>;
  error?: string;
}

const agent = new Agent({ keepAliveTimeout: 4_000, connect: { timeout: 2_000 } });

export async function call(
  method: 'GET' | 'POST',
  url: string,
  body: unknown,
  timeoutMs: number,
): Promise<CallResult> {
  const ac = new AbortController();
  const timer = setTimeout(() => ac.abort(new Error('client timeout')), timeoutMs);
  try {
    const res = await request(url, {
      method,
      dispatcher: agent,
      signal: ac.signal,
      headers: body === undefined ? {} : { 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
      headersTimeout: timeoutMs,
      bodyTimeout: timeoutMs,
    });
    const text = await res.body.text();
    let json: unknown;
    try {
      json = text.length ? JSON.parse(text) : undefined;
    } catch {
      json = undefined;
    }
    const status = res.statusCode;
    const outcome: Outcome =
      status >= 200 && status < 300 ? 'ok' : status >= 400 && status < 500 ? 'failed' : 'unknown';
    return { outcome, status, json, headers: res.headers as CallResult['headers'] };
  } catch (err) {
    const e = err as { code?: string; cause?: { code?: string }; message?: string };
    const code = e.code ?? e.cause?.code;
    // Refused: nothing reached a server, so the call cannot have had an effect.
    if (code === 'ECONNREFUSED' || code === 'UND_ERR_CONNECT_TIMEOUT')
      return { outcome: 'failed', error: code };
    return { outcome: 'unknown', error: code ?? e.message ?? String(err) };
  } finally {
    clearTimeout(timer);
  }
}

export async function closeAgent(): Promise<void> {
  await agent.close();
}
