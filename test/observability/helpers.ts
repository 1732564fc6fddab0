// Shared helpers of the observability tests: an express server on 127.0.0.1 with an ephemeral port.
import type { Server } from 'node:http';
import { createServer as netServer } from 'node:net';
import type { Express } from 'express';

export async function listen(app: Express): Promise<{ server: Server; url: string; port: number; close(): Promise<void> }> {
  const server = await new Promise<Server>((resolve, reject) => {
    const s = app.listen(0, '127.0.0.1', (err?: Error) => (err ? reject(err) : resolve(s)));
  });
  const addr = server.address();
  if (!addr || typeof addr === 'string') throw new Error('no address');
  return {
    server,
    port: addr.port,
    url: `http://127.0.0.1:${addr.port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** A TCP port that was free a moment ago (for binaries that cannot report an ephemeral port). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = netServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      const port = a && typeof a !== 'string' ? a.port : 0;
      s.close(() => resolve(port));
    });
  });
}

/** Polls `fn` until it returns a non-undefined value; gives up after `attempts` tries. */
export async function eventually<T>(fn: () => Promise<T | undefined>, what: string, attempts = 300, everyMs = 100): Promise<T> {
  let last: unknown;
  for (let i = 0; i < attempts; i++) {
    try {
      const v = await fn();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    await new Promise((r) => setTimeout(r, everyMs));
  }
  throw new Error(`gave up waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`);
}
