// A real `timestore node` process for integration tests: free port, unique data dir, waits for
// /livez, and can be stopped gracefully, crashed (SIGKILL) and restarted on the same data dir.
// Multi-node tests start several with extra args (e.g. ['--peers', ...]); see startNodeProcess.
import { fileURLToPath } from 'node:url';
import { dirname, resolve } from 'node:path';
import { freePort } from './ports.js';
import { tempDir } from './tmp.js';
import { spawnProcess, type ExitInfo, type TestProcess } from './process.js';
import { waitForHttp } from './http.js';

export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const cliPath = resolve(repoRoot, 'cmd', 'timestore.ts');

/** argv to run the CLI from source: node --import tsx cmd/timestore.ts ... */
export function cliArgs(...args: string[]): string[] {
  return ['--import', 'tsx', cliPath, ...args];
}

export interface NodeProcessOptions {
  id?: string;
  /** Port to listen on; a free one when absent. */
  port?: number;
  host?: string;
  /** Data directory; a fresh temp dir when absent. */
  dataDir?: string;
  /** Extra CLI args after the defaults (e.g. --peers, --max-body-bytes). */
  args?: string[];
  env?: Record<string, string | undefined>;
  /** What to wait for after start; default `/livez`. Use null to not wait. */
  readyPath?: string | null;
  startTimeoutMs?: number;
}

export class NodeProcess {
  proc!: TestProcess;
  readonly id: string;
  readonly port: number;
  readonly host: string;
  readonly dataDir: string;
  readonly url: string;

  constructor(private readonly opts: NodeProcessOptions & { port: number; dataDir: string }) {
    this.id = opts.id ?? 'n1';
    this.port = opts.port;
    this.host = opts.host ?? '127.0.0.1';
    this.dataDir = opts.dataDir;
    this.url = `http://${this.host}:${this.port}`;
  }

  /** The argv (after node's own flags) this node runs with. */
  argv(): string[] {
    return cliArgs(
      'node',
      '--id',
      this.id,
      '--listen',
      `${this.host}:${this.port}`,
      '--data-dir',
      this.dataDir,
      '--log-level',
      process.env.TIMESTORE_TEST_LOG_LEVEL ?? 'info',
      ...(this.opts.args ?? []),
    );
  }

  async start(): Promise<this> {
    this.proc = spawnProcess({ args: this.argv(), env: this.opts.env, name: this.id, cwd: repoRoot });
    const readyPath = this.opts.readyPath === undefined ? '/livez' : this.opts.readyPath;
    if (readyPath !== null) {
      await waitForHttp(this.url + readyPath, {
        process: this.proc,
        timeoutMs: this.opts.startTimeoutMs ?? 60_000,
        ready: (status) => status === 200,
      });
    }
    return this;
  }

  /** Graceful stop (SIGTERM by default); resolves with the exit code/signal. */
  stop(signal: NodeJS.Signals = 'SIGTERM', timeoutMs?: number): Promise<ExitInfo> {
    return this.proc.stop(signal, timeoutMs);
  }

  /** Crash: SIGKILL. */
  kill(): Promise<ExitInfo> {
    return this.proc.kill();
  }

  /** Start again on the same port and data dir (after stop or kill). */
  async restart(): Promise<this> {
    if (this.proc?.running) await this.stop();
    return this.start();
  }

  output(): string {
    return this.proc.output();
  }

  describe(): string {
    return this.proc.describe();
  }
}

/** Start one node on a free port with a fresh data dir (unless given) and wait until /livez answers 200. */
export async function startNodeProcess(opts: NodeProcessOptions = {}): Promise<NodeProcess> {
  const dataDir = opts.dataDir ?? tempDir(`timestore-${opts.id ?? 'n1'}-`);
  // A port from freePort may be taken by someone else before the child binds it: retry with a new one.
  for (let attempt = 1; ; attempt++) {
    const port = opts.port ?? (await freePort(opts.host));
    const node = new NodeProcess({ ...opts, port, dataDir });
    try {
      return await node.start();
    } catch (err) {
      const inUse = /EADDRINUSE/.test(node.proc?.output() ?? '');
      if (node.proc?.running) await node.kill();
      if (!inUse || opts.port !== undefined || attempt >= 3) throw err;
    }
  }
}
