// Child processes for integration tests: start with args/env, collect output (for failure
// messages), wait for exit, stop with a signal. Every started process is registered so that a test
// file that fails half-way still leaves no orphans (killAll runs on exit).
import { spawn, type ChildProcess } from 'node:child_process';

export interface SpawnOptions {
  /** Program to run; defaults to node itself. */
  command?: string;
  args: string[];
  env?: Record<string, string | undefined>;
  cwd?: string;
  /** Name used in messages ("n1", "operator", ...). */
  name?: string;
  /** Keep at most this many characters of output (the tail). */
  maxOutputChars?: number;
  /** Echo the child's output to this process's stderr as it arrives (TIMESTORE_TEST_ECHO=1 does the same). */
  echo?: boolean;
}

export interface ExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export class TestProcess {
  readonly child: ChildProcess;
  readonly name: string;
  private out = '';
  private readonly maxChars: number;
  readonly exited: Promise<ExitInfo>;
  exitInfo: ExitInfo | null = null;

  constructor(opts: SpawnOptions) {
    this.name = opts.name ?? opts.args.join(' ').slice(0, 60);
    this.maxChars = opts.maxOutputChars ?? 200_000;
    const env: Record<string, string> = {};
    for (const [k, v] of Object.entries({ ...process.env, ...(opts.env ?? {}) }))
      if (v !== undefined) env[k] = v;
    this.child = spawn(opts.command ?? process.execPath, opts.args, {
      cwd: opts.cwd,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const echo = opts.echo ?? process.env.TIMESTORE_TEST_ECHO === '1';
    const collect = (chunk: Buffer) => {
      const s = chunk.toString('utf8');
      this.out += s;
      if (this.out.length > this.maxChars) this.out = this.out.slice(-this.maxChars);
      if (echo) process.stderr.write(`[${this.name}] ${s}`);
    };
    this.child.stdout?.on('data', collect);
    this.child.stderr?.on('data', collect);
    this.exited = new Promise<ExitInfo>((resolve) => {
      this.child.once('exit', (code, signal) => {
        this.exitInfo = { code, signal };
        resolve(this.exitInfo);
      });
      // A spawn failure (ENOENT) emits 'error' and maybe never 'exit'.
      this.child.once('error', (err) => {
        this.out += `\n[spawn error] ${String(err)}\n`;
        this.exitInfo ??= { code: -1, signal: null };
        resolve(this.exitInfo);
      });
    });
    live.add(this);
    void this.exited.then(() => live.delete(this));
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  get running(): boolean {
    return this.exitInfo === null;
  }

  /** Everything the process wrote to stdout and stderr so far (tail-capped). */
  output(): string {
    return this.out;
  }

  /** A short description with the output tail, for assertion messages. */
  describe(tailChars = 4000): string {
    const state = this.exitInfo
      ? `exited code=${this.exitInfo.code} signal=${this.exitInfo.signal}`
      : 'running';
    return `process ${this.name} (pid ${this.pid}, ${state}); output tail:\n${this.out.slice(-tailChars)}`;
  }

  /**
   * Send a signal and wait for the exit. If the process is still alive after timeoutMs, SIGKILL it
   * and reject (a process that ignores SIGTERM is a bug the test should see).
   */
  async stop(signal: NodeJS.Signals = 'SIGTERM', timeoutMs = 20_000): Promise<ExitInfo> {
    if (!this.running) return this.exitInfo!;
    this.child.kill(signal);
    const timer = setTimeout(() => this.child.kill('SIGKILL'), timeoutMs);
    try {
      const info = await this.exited;
      if (signal !== 'SIGKILL' && info.signal === 'SIGKILL') {
        throw new Error(
          `${this.name} did not exit within ${timeoutMs} ms of ${signal}; killed.\n${this.describe()}`,
        );
      }
      return info;
    } finally {
      clearTimeout(timer);
    }
  }

  /** Hard crash: SIGKILL, no cleanup in the child. */
  kill(): Promise<ExitInfo> {
    return this.stop('SIGKILL');
  }

  /** Wait until a line of output matches, or fail with the output so far. */
  async waitForOutput(re: RegExp, timeoutMs = 30_000): Promise<RegExpMatchArray> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const m = this.out.match(re);
      if (m) return m;
      if (!this.running) throw new Error(`${this.name} exited before printing ${re}.\n${this.describe()}`);
      if (Date.now() > deadline)
        throw new Error(`${this.name} did not print ${re} within ${timeoutMs} ms.\n${this.describe()}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

const live = new Set<TestProcess>();

export function spawnProcess(opts: SpawnOptions): TestProcess {
  return new TestProcess(opts);
}

/** SIGKILL every process started by this test file that is still running. */
export function killAll(): void {
  for (const p of live) {
    try {
      p.child.kill('SIGKILL');
    } catch {
      // already gone
    }
  }
}

process.once('exit', killAll);

/** Wait for an exit with a bound (does not signal). */
export async function waitForExit(p: TestProcess, timeoutMs = 20_000): Promise<ExitInfo> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`${p.name} did not exit within ${timeoutMs} ms.\n${p.describe()}`)),
      timeoutMs,
    );
  });
  try {
    return await Promise.race([p.exited, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
