// A local cluster of real node processes on 127.0.0.1 for the cluster tests: start, find the
// leader, SIGKILL / SIGTERM / SIGSTOP / restart / wipe members, run a steady write load and check
// that acknowledged writes are everywhere. Waits are generous (2 shared cores); no wall-clock
// thresholds are asserted.
import { rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import {
  freePorts,
  tempDir,
  spawnProcess,
  waitForHttp,
  eventually,
  get,
  post,
  repoRoot,
  type TestProcess,
} from '../helpers/index.js';

/** The entry point the processes run: the real CLI, from source. */
function entryArgs(): string[] {
  return ['--import', 'tsx', resolve(repoRoot, 'cmd', 'timestore.ts')];
}

export interface ClusterOptions {
  nodes?: number;
  electionTimeoutMs?: number;
  heartbeatMs?: number;
  env?: Record<string, string>;
}

export class ClusterNode {
  proc: TestProcess | null = null;
  stopped = false;
  /** Environment of this node only, over the cluster's (e.g. a failpoint armed on one node). */
  env: Record<string, string> = {};
  constructor(
    readonly cluster: Cluster,
    readonly id: string,
    readonly port: number,
    readonly dataDir: string,
    public extraArgs: string[],
  ) {}

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  get running(): boolean {
    return this.proc !== null && this.proc.running;
  }

  async start(): Promise<void> {
    const c = this.cluster;
    const args = [
      ...entryArgs(),
      'node',
      '--id',
      this.id,
      '--listen',
      `127.0.0.1:${this.port}`,
      '--data-dir',
      this.dataDir,
      '--election-timeout-ms',
      String(c.electionTimeoutMs),
      '--heartbeat-ms',
      String(c.heartbeatMs),
      '--log-level',
      process.env.TIMESTORE_TEST_LOG_LEVEL ?? 'info',
      ...this.extraArgs,
    ];
    this.proc = spawnProcess({ args, env: { ...c.env, ...this.env }, name: this.id, cwd: repoRoot });
    this.stopped = false;
    await waitForHttp(`${this.url}/raft/status`, {
      process: this.proc,
      timeoutMs: 90_000,
      ready: (s) => s === 200,
    });
  }

  async kill(): Promise<void> {
    await this.proc?.kill();
  }

  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    await this.proc?.stop(signal, 60_000);
  }

  pause(): void {
    this.proc?.child.kill('SIGSTOP');
    this.stopped = true;
  }

  resume(): void {
    this.proc?.child.kill('SIGCONT');
    this.stopped = false;
  }

  wipe(): void {
    rmSync(this.dataDir, { recursive: true, force: true });
  }

  async status(): Promise<Status> {
    const r = await get<Status>(`${this.url}/raft/status`, { timeoutMs: 10_000 });
    if (r.status !== 200) throw new Error(`${this.id} /raft/status: HTTP ${r.status} ${r.text}`);
    return r.json;
  }

  output(): string {
    return this.proc?.output() ?? '';
  }
}

export interface Status {
  state: string;
  leaderId: string | null;
  nodeId: string;
  term: number;
  commitIndex: number;
  appliedIndex: number;
  lastIndex: number;
  firstIndex: number;
  snapshotIndex: number;
  members: Array<{ id: string; url: string | null; voter: boolean; matchIndex?: number; lag?: number }>;
  removed?: unknown;
}

export class Cluster {
  nodes: ClusterNode[] = [];
  readonly electionTimeoutMs: number;
  readonly heartbeatMs: number;
  readonly env: Record<string, string>;

  constructor(opts: ClusterOptions = {}) {
    this.electionTimeoutMs = opts.electionTimeoutMs ?? 500;
    this.heartbeatMs = opts.heartbeatMs ?? 100;
    this.env = { TIMESTORE_REQUEST_TIMEOUT_MS: '8000', ...(opts.env ?? {}) };
  }

  static async start(opts: ClusterOptions = {}): Promise<Cluster> {
    const c = new Cluster(opts);
    const n = opts.nodes ?? 3;
    const ports = await freePorts(n);
    const peers = ports.map((p, i) => `n${i + 1}=http://127.0.0.1:${p}`).join(',');
    for (let i = 0; i < n; i++) {
      c.nodes.push(
        new ClusterNode(c, `n${i + 1}`, ports[i]!, join(tempDir(`ts-cluster-n${i + 1}-`), 'data'), [
          '--peers',
          peers,
        ]),
      );
    }
    await Promise.all(c.nodes.map((node) => node.start()));
    await c.leader();
    return c;
  }

  /** Add a node that is not started yet (e.g. one that will --join). */
  async addNode(id: string, extraArgs: string[]): Promise<ClusterNode> {
    const [port] = await freePorts(1);
    const node = new ClusterNode(this, id, port!, join(tempDir(`ts-cluster-${id}-`), 'data'), extraArgs);
    this.nodes.push(node);
    return node;
  }

  node(id: string): ClusterNode {
    const n = this.nodes.find((x) => x.id === id);
    if (!n) throw new Error(`no node ${id}`);
    return n;
  }

  live(): ClusterNode[] {
    return this.nodes.filter((n) => n.running && !n.stopped);
  }

  /** The leader all live nodes agree on (waits until they do). */
  async leader(among: ClusterNode[] = this.live(), timeoutMs = 60_000): Promise<ClusterNode> {
    return eventually(
      async () => {
        const sts = await Promise.all(among.map((n) => n.status().catch(() => null)));
        const leaders = sts.filter((s) => s?.state === 'Leader');
        if (leaders.length !== 1) return null;
        const id = leaders[0]!.nodeId;
        if (!sts.every((s) => s && s.leaderId === id && s.term === leaders[0]!.term)) return null;
        return this.node(id);
      },
      `a leader agreed on by ${among.map((n) => n.id).join(', ')}`,
      timeoutMs,
      100,
    );
  }

  async followers(): Promise<ClusterNode[]> {
    const l = await this.leader();
    return this.live().filter((n) => n !== l);
  }

  /** Wait until every given node has applied at least the leader's commit index. */
  async converge(nodes: ClusterNode[] = this.live(), timeoutMs = 90_000): Promise<number> {
    const l = await this.leader();
    const target = (await l.status()).commitIndex;
    await eventually(
      async () => {
        const sts = await Promise.all(nodes.map((n) => n.status().catch(() => null)));
        return sts.every((s) => s && s.appliedIndex >= target);
      },
      `nodes ${nodes.map((n) => n.id).join(', ')} to apply index ${target}`,
      timeoutMs,
      100,
    );
    return target;
  }

  async close(): Promise<void> {
    // A test that failed before stopping its load would otherwise leave it writing to dead nodes
    // forever, and the test file would never end.
    await stopWriteLoads();
    for (const n of this.nodes) if (n.stopped) n.resume();
    await Promise.all(this.nodes.map((n) => n.proc?.kill().catch(() => {})));
  }
}

export interface WriteOutcome {
  id: string | null;
  ok: boolean;
  status: number | string;
  node: string;
}

let seq = 0;

/** One write; never throws (connection errors are outcomes too). */
export async function writeOne(node: ClusterNode, timeoutMs = 30_000): Promise<WriteOutcome> {
  const i = ++seq;
  try {
    const r = await post(
      `${node.url}/api/timeseries`,
      { deviceId: `dev-${i % 8}`, timestamp: new Date(1_700_000_000_000 + i * 1000).toISOString(), value: i },
      { timeoutMs },
    );
    const ok = r.status >= 200 && r.status < 300;
    return { id: ok ? (r.json as { id: string }).id : null, ok, status: r.status, node: node.id };
  } catch (err) {
    return {
      id: null,
      ok: false,
      status: String((err as Error).cause ?? (err as Error).message),
      node: node.id,
    };
  }
}

const liveLoads = new Set<WriteLoad>();

/** Stops every WriteLoad still running (Cluster.close calls it). */
export async function stopWriteLoads(): Promise<void> {
  await Promise.all([...liveLoads].map((l) => l.stop()));
}

/** Steady write load: `clients` loops, each writing to targets() in turn until stop(). */
export class WriteLoad {
  readonly outcomes: WriteOutcome[] = [];
  private running = true;
  private loops: Promise<void>[] = [];

  constructor(
    targets: () => ClusterNode[],
    clients = 4,
    private readonly pauseMs = 5,
  ) {
    liveLoads.add(this);
    for (let c = 0; c < clients; c++) {
      this.loops.push(
        (async () => {
          let k = c;
          while (this.running) {
            const ts = targets();
            if (ts.length === 0) {
              await new Promise((r) => setTimeout(r, 50));
              continue;
            }
            const o = await writeOne(ts[k++ % ts.length]!);
            this.outcomes.push(o);
            if (!o.ok) await new Promise((r) => setTimeout(r, 50));
            else if (this.pauseMs > 0) await new Promise((r) => setTimeout(r, this.pauseMs));
          }
        })(),
      );
    }
  }

  acked(): string[] {
    return this.outcomes.filter((o) => o.ok).map((o) => o.id!);
  }

  failed(): WriteOutcome[] {
    return this.outcomes.filter((o) => !o.ok);
  }

  /** Wait until at least n more writes were acknowledged. */
  async waitAcked(n: number, timeoutMs = 90_000): Promise<void> {
    const target = this.acked().length + n;
    await eventually(
      async () => this.acked().length >= target,
      `${n} more acknowledged writes`,
      timeoutMs,
      50,
    );
  }

  get isRunning(): boolean {
    return this.running;
  }

  async stop(): Promise<void> {
    this.running = false;
    liveLoads.delete(this);
    await Promise.all(this.loops);
  }
}

/** Ids (from `ids`) that `node` does not have locally. */
export async function missingOn(node: ClusterNode, ids: string[]): Promise<string[]> {
  const missing: string[] = [];
  const batch = 32;
  for (let i = 0; i < ids.length; i += batch) {
    const part = ids.slice(i, i + batch);
    const rs = await Promise.all(
      part.map((id) => get(`${node.url}/api/timeseries/${id}?consistency=none`, { timeoutMs: 30_000 })),
    );
    rs.forEach((r, j) => {
      if (r.status !== 200) missing.push(part[j]!);
    });
  }
  return missing;
}
