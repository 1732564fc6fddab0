// A cluster of real `timestore node` processes on 127.0.0.1 whose peer traffic goes through the
// fault proxies (proxy.ts). Clients talk to the nodes directly. Nodes can be killed (SIGKILL) and
// restarted on the same data dir, paused (SIGSTOP) and resumed (SIGCONT).
import { rmSync, writeFileSync } from 'node:fs';
import { NodeProcess, freePorts, tempDir } from '../helpers/index.js';
import { FaultNetwork } from './proxy.js';
import { call } from './http-client.js';

export interface RaftStatus {
  state: 'Leader' | 'Follower' | 'Candidate' | string;
  leaderId: string | null;
  nodeId: string;
  term: number;
  commitIndex: number;
  appliedIndex: number;
  members?: unknown;
}

export interface ClusterOptions {
  nodes: number;
  electionTimeoutMs?: number;
  heartbeatMs?: number;
  /** Extra flags for every node. */
  args?: string[];
  /** Log level of the nodes (their output is kept in memory for failure reports). */
  logLevel?: string;
  /** Print node output as it arrives. */
  echo?: boolean;
  /** Run this script (with the same flags, no `node` subcommand) instead of cmd/timestore.ts: tests of the harness. */
  script?: string;
  env?: Record<string, string>;
  /**
   * Arm a slow disk in every real node: each raft.db persist (a Ready with entries or hard state)
   * blocks the node's event loop this many ms more, but only while setSlowDisk(id, true) holds
   * (failpoint raft.before-persist, gated by a file per node; see src/node/failpoints.ts).
   */
  slowDiskMs?: number;
}

/** A node process started from another entry point (the harness's own fake node). */
class ScriptNodeProcess extends NodeProcess {
  constructor(
    opts: ConstructorParameters<typeof NodeProcess>[0],
    private readonly script: string,
    private readonly extra: string[],
  ) {
    super(opts);
  }
  override argv(): string[] {
    return [
      '--import',
      'tsx',
      this.script,
      '--id',
      this.id,
      '--listen',
      `${this.host}:${this.port}`,
      '--data-dir',
      this.dataDir,
      ...this.extra,
    ];
  }
}

export class ChaosCluster {
  readonly ids: string[];
  readonly net: FaultNetwork;
  readonly procs = new Map<string, NodeProcess>();
  private readonly paused = new Set<string>();
  private readonly down = new Set<string>();
  /** Nodes removed from the membership by the nemesis (to be joined back). */
  private readonly removed = new Set<string>();

  private readonly ports: Record<string, number> = {};
  private root = '';
  private readonly slowDisks = new Set<string>();

  private constructor(readonly opts: ClusterOptions) {
    this.ids = Array.from({ length: opts.nodes }, (_, i) => `n${i + 1}`);
    this.net = new FaultNetwork(this.ids);
  }

  /** Start the cluster; a start that loses a port race (EADDRINUSE) is retried on new ports. */
  static async start(opts: ClusterOptions): Promise<ChaosCluster> {
    for (let attempt = 1; ; attempt++) {
      const c = new ChaosCluster(opts);
      try {
        await c.startOnce();
        return c;
      } catch (err) {
        await c.stop().catch(() => {});
        const inUse = /EADDRINUSE/.test(String((err as Error)?.message ?? err));
        if (!inUse || attempt >= 3) throw err;
      }
    }
  }

  private async startOnce(): Promise<void> {
    const opts = this.opts;
    // Proxies first: their ephemeral ports are then taken when the nodes' ports are chosen.
    await this.net.listen();
    const portList = await freePorts(opts.nodes);
    portList.forEach((p, i) => (this.ports[`n${i + 1}`] = p));
    this.net.setTargets(this.ports);
    const ports = this.ports;
    const root = (this.root = tempDir('timestore-chaos-'));
    for (const id of this.ids) {
      const args = [
        '--election-timeout-ms',
        String(opts.electionTimeoutMs ?? 1000),
        '--heartbeat-ms',
        String(opts.heartbeatMs ?? 100),
        ...(opts.nodes > 1 ? ['--peers', this.net.peersFor(id)] : []),
        // The membership fault removes a running node and later joins the same process back.
        '--on-removed',
        'stay',
        ...(opts.args ?? []),
      ];
      const env: Record<string, string> = {
        ...(this.slowDiskArmed
          ? {
              TIMESTORE_FAILPOINTS: `raft.before-persist=sleep:${opts.slowDiskMs}`,
              TIMESTORE_FAILPOINTS_GATE: this.slowDiskGate(id),
            }
          : {}),
        ...(opts.env ?? {}),
      };
      if (opts.echo) env.TIMESTORE_TEST_ECHO = '1';
      const nopts = { id, port: ports[id]!, dataDir: `${root}/${id}`, args, env, startTimeoutMs: 90_000 };
      const node = opts.script ? new ScriptNodeProcess(nopts, opts.script, args) : new NodeProcess(nopts);
      this.procs.set(id, node);
    }
    // Start all before waiting on any: a node may not report live until it sees its peers.
    const prevLevel = process.env.TIMESTORE_TEST_LOG_LEVEL;
    process.env.TIMESTORE_TEST_LOG_LEVEL = opts.logLevel ?? 'warn';
    try {
      await Promise.all(this.ids.map((id) => this.procs.get(id)!.start()));
    } finally {
      if (prevLevel === undefined) delete process.env.TIMESTORE_TEST_LOG_LEVEL;
      else process.env.TIMESTORE_TEST_LOG_LEVEL = prevLevel;
    }
  }

  /** Whether the nodes were started able to have a slow disk (real nodes, slowDiskMs given). */
  get slowDiskArmed(): boolean {
    return !this.opts.script && (this.opts.slowDiskMs ?? 0) > 0;
  }

  private slowDiskGate(id: string): string {
    return `${this.root}/${id}.slow-disk`;
  }

  /** Turn the slow disk of one node on or off (the node keeps running). */
  setSlowDisk(id: string, on: boolean): void {
    if (on) writeFileSync(this.slowDiskGate(id), '');
    else rmSync(this.slowDiskGate(id), { force: true });
    if (on) this.slowDisks.add(id);
    else this.slowDisks.delete(id);
  }

  url(id: string): string {
    return `http://127.0.0.1:${this.ports[id]}`;
  }

  isUp(id: string): boolean {
    return !this.down.has(id);
  }
  isPaused(id: string): boolean {
    return this.paused.has(id);
  }

  async kill(id: string): Promise<void> {
    const p = this.procs.get(id)!;
    this.down.add(id);
    this.paused.delete(id);
    await p.kill();
    this.net.resetConnectionsOf(id);
  }

  async restart(id: string): Promise<void> {
    const p = this.procs.get(id)!;
    const prevLevel = process.env.TIMESTORE_TEST_LOG_LEVEL;
    process.env.TIMESTORE_TEST_LOG_LEVEL = this.opts.logLevel ?? 'warn';
    try {
      await p.start();
    } finally {
      if (prevLevel === undefined) delete process.env.TIMESTORE_TEST_LOG_LEVEL;
      else process.env.TIMESTORE_TEST_LOG_LEVEL = prevLevel;
    }
    this.down.delete(id);
  }

  pause(id: string): void {
    if (this.down.has(id)) return;
    this.procs.get(id)!.proc.child.kill('SIGSTOP');
    this.paused.add(id);
  }

  resume(id: string): void {
    if (!this.paused.has(id)) return;
    this.procs.get(id)!.proc.child.kill('SIGCONT');
    this.paused.delete(id);
  }

  /** Processes that exited although we did not kill them (crashes). */
  crashed(): Array<{ id: string; describe: string }> {
    const out: Array<{ id: string; describe: string }> = [];
    for (const id of this.ids) {
      const p = this.procs.get(id)!;
      if (!this.down.has(id) && p.proc && !p.proc.running) out.push({ id, describe: p.describe() });
    }
    return out;
  }

  async status(id: string, timeoutMs = 2000): Promise<RaftStatus | null> {
    if (this.down.has(id) || this.paused.has(id)) return null;
    const r = await call('GET', `${this.url(id)}/raft/status`, undefined, timeoutMs);
    return r.outcome === 'ok' ? (r.json as RaftStatus) : null;
  }

  async statuses(): Promise<Map<string, RaftStatus>> {
    const all = await Promise.all(this.ids.map(async (id) => [id, await this.status(id)] as const));
    const m = new Map<string, RaftStatus>();
    for (const [id, s] of all) if (s) m.set(id, s);
    return m;
  }

  /** The node that says it is leader in the highest term, if any. */
  async leader(): Promise<string | null> {
    let best: RaftStatus | null = null;
    for (const s of (await this.statuses()).values())
      if (s.state === 'Leader' && (!best || s.term > best.term)) best = s;
    return best?.nodeId ?? null;
  }

  async waitForLeader(timeoutMs = 60_000, among?: string[]): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const st = await this.statuses();
      for (const s of st.values())
        if (s.state === 'Leader' && (!among || among.includes(s.nodeId))) {
          // Confirmed by a majority of the reachable nodes?
          const agree = [...st.values()].filter((o) => o.leaderId === s.nodeId && o.term === s.term).length;
          if (agree * 2 > this.ids.length || this.ids.length === 1) return s.nodeId;
        }
      if (Date.now() > deadline)
        throw new Error(`no leader within ${timeoutMs} ms: ${JSON.stringify([...st.values()])}`);
      await sleep(200);
    }
  }

  /** Wait until every node is up, agrees on commitIndex and has applied it. */
  async waitConverged(timeoutMs = 120_000): Promise<Map<string, RaftStatus>> {
    const deadline = Date.now() + timeoutMs;
    let last = new Map<string, RaftStatus>();
    for (;;) {
      last = await this.statuses();
      if (last.size === this.ids.length) {
        const vals = [...last.values()];
        const c0 = vals[0]!.commitIndex;
        if (
          vals.every((s) => s.commitIndex === c0 && s.appliedIndex === c0) &&
          vals.some((s) => s.state === 'Leader')
        )
          return last;
      }
      if (Date.now() > deadline)
        throw new Error(
          `cluster did not converge within ${timeoutMs} ms: ${JSON.stringify([...last.values()])}`,
        );
      await sleep(300);
    }
  }

  /** Remove a member through the leader (POST /cluster/remove). */
  async removeMember(id: string): Promise<{ ok: boolean; detail: string }> {
    const leader = await this.leader();
    if (!leader) return { ok: false, detail: 'no leader' };
    const r = await call('POST', `${this.url(leader)}/cluster/remove`, { id }, 15_000);
    if (r.outcome === 'ok') this.removed.add(id);
    return { ok: r.outcome === 'ok', detail: `HTTP ${r.status ?? r.error}` };
  }

  /**
   * Join a removed node back (POST /cluster/join on the leader). The URL given is the proxy from
   * the current leader to the node: membership carries one URL per node, so after a rejoin every
   * member reaches that node through this one proxy (directed faults into it get coarser).
   */
  async rejoinMember(id: string, timeoutMs = 60_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let last = '';
    while (Date.now() < deadline) {
      const leader = await this.leader();
      if (leader && leader !== id) {
        const url = `http://127.0.0.1:${this.net.proxyPort(leader, id)}`;
        const r = await call('POST', `${this.url(leader)}/cluster/join`, { id, url }, 15_000);
        if (r.outcome === 'ok') {
          this.removed.delete(id);
          return;
        }
        last = `HTTP ${r.status ?? r.error}: ${JSON.stringify(r.json ?? '').slice(0, 200)}`;
      }
      await sleep(500);
    }
    throw new Error(`could not join ${id} back within ${timeoutMs} ms (${last})`);
  }

  /** Undo every fault: heal the network, resume paused nodes, restart killed ones, rejoin removed ones. */
  async healAll(): Promise<void> {
    this.net.heal();
    for (const id of [...this.slowDisks]) this.setSlowDisk(id, false);
    for (const id of [...this.paused]) this.resume(id);
    for (const id of [...this.down]) await this.restart(id);
    for (const id of [...this.removed]) await this.rejoinMember(id);
  }

  async stop(): Promise<void> {
    for (const id of [...this.paused]) this.resume(id);
    await Promise.all(
      this.ids.map(async (id) => {
        const p = this.procs.get(id);
        if (p?.proc?.running) await p.kill();
      }),
    );
    await this.net.close();
  }

  output(id: string): string {
    return this.procs.get(id)!.output();
  }
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
