// Free TCP ports for test processes. The OS picks an unused port (listen on 0); we release it and
// hand the number out. Another process may grab it in between, so callers that spawn servers should
// retry on EADDRINUSE (see startNodeProcess); handing out each port once per test process narrows the race.
import { createServer } from 'node:net';

const handedOut = new Set<number>();

export async function freePort(host = '127.0.0.1'): Promise<number> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const port = await new Promise<number>((resolve, reject) => {
      const srv = createServer();
      srv.unref();
      srv.once('error', reject);
      srv.listen(0, host, () => {
        const addr = srv.address();
        const p = typeof addr === 'object' && addr ? addr.port : 0;
        srv.close(() => resolve(p));
      });
    });
    if (port && !handedOut.has(port)) {
      handedOut.add(port);
      return port;
    }
  }
  throw new Error(`freePort: could not find an unused port on ${host} after 20 attempts`);
}

/** n distinct free ports (e.g. one per node of a test cluster). */
export async function freePorts(n: number, host = '127.0.0.1'): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) out.push(await freePort(host));
  return out;
}
