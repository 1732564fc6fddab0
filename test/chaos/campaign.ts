// One chaos campaign: start a cluster behind the fault proxies, run the workloads while the
// nemesis injects faults, heal everything, let the cluster converge, then run the checkers.
import { performance } from 'node:perf_hooks';
import { Rng } from './random.js';
import { ChaosCluster, sleep } from './cluster.js';
import { Nemesis, defaultNemesis, faultKinds, type FaultKind, type NemesisOptions } from './nemesis.js';
import { Workload, defaultWorkload, type RegisterRecord, type WorkloadOptions } from './workload.js';
import { checkAppends, checkRegisters, type AppendCheck, type RegisterCheck } from './checks.js';
import { call } from './http-client.js';
import { partitions } from './proxy.js';

const partitionsIsolate = partitions.isolate;

export interface CampaignOptions {
  nodes: number;
  durationMs: number;
  seed: number;
  electionTimeoutMs?: number;
  heartbeatMs?: number;
  workload?: Partial<WorkloadOptions>;
  nemesis?: Partial<NemesisOptions>;
  faultKinds?: FaultKind[];
  log?: (line: string) => void;
  progressEveryMs?: number;
  logLevel?: string;
  echo?: boolean;
  checkTimeoutMs?: number;
  /** Harness self-tests: run this script instead of the real node (see fake-node.ts). */
  script?: string;
  env?: Record<string, string>;
  /** Extra time of each raft.db persist under the slow-disk fault (default 50 ms). */
  slowDiskMs?: number;
}

export interface CampaignResult {
  seed: number;
  nodes: number;
  minutes: number;
  faults: Record<string, number>;
  nemesisErrors: string[];
  operations: number;
  registerWritesAcknowledged: number;
  ok: number;
  failed: number;
  unknown: number;
  serverErrors: Record<string, number>;
  appends: AppendCheck | null;
  registers: RegisterCheck;
  crashes: string[];
  convergeError?: string;
  /** Did the run pass all checks? */
  valid: boolean;
  problems: string[];
}

export async function runCampaign(opts: CampaignOptions): Promise<CampaignResult> {
  const log = opts.log ?? (() => {});
  const rng = new Rng(opts.seed);
  const wopts: WorkloadOptions = { ...defaultWorkload, ...(opts.workload ?? {}) };
  log(`starting ${opts.nodes}-node cluster (seed ${opts.seed})`);
  const cluster = await ChaosCluster.start({
    nodes: opts.nodes,
    electionTimeoutMs: opts.electionTimeoutMs,
    heartbeatMs: opts.heartbeatMs,
    logLevel: opts.logLevel,
    echo: opts.echo,
    script: opts.script,
    env: opts.env,
    slowDiskMs: (opts.faultKinds ?? faultKinds).includes('slow-disk') ? (opts.slowDiskMs ?? 50) : 0,
  });
  const started = Date.now();
  try {
    const leader = await cluster.waitForLeader(90_000);
    log(`leader: ${leader}`);
    const workload = new Workload(
      wopts,
      rng.fork(),
      cluster.ids,
      (id) => cluster.url(id),
      () => cluster.ids.filter((id) => cluster.isUp(id)),
    );
    const nemesis = new Nemesis(cluster, rng.fork(), {
      ...defaultNemesis,
      ...(opts.nemesis ?? {}),
      kinds: opts.faultKinds,
      log,
    });
    workload.start();
    nemesis.start();
    const t0 = Date.now();
    let lastProgress = t0;
    while (Date.now() - t0 < opts.durationMs) {
      await sleep(Math.min(500, Math.max(0, opts.durationMs - (Date.now() - t0))));
      if (Date.now() - lastProgress >= (opts.progressEveryMs ?? 10_000)) {
        lastProgress = Date.now();
        const c = workload.counts();
        log(
          `[${Math.round((Date.now() - t0) / 1000)}s/${Math.round(opts.durationMs / 1000)}s] ops ${c.operations} ok ${c.ok} failed ${c.failed} unknown ${c.unknown}; fault: ${nemesis.current}`,
        );
      }
    }
    log('stopping nemesis');
    await nemesis.stop();
    // Heal before stopping the clients so their last calls can finish.
    await cluster.healAll();
    log('stopping clients');
    await workload.stop();
    const crashes = cluster.crashed().map((c) => `${c.id}: ${c.describe.slice(-2000)}`);
    // Restart crashed nodes so the final check can read them; the crash itself is a problem.
    for (const c of cluster.crashed()) await cluster.restart(c.id).catch(() => {});

    log('waiting for the cluster to converge');
    let convergeError: string | undefined;
    let appends: AppendCheck | null = null;
    try {
      const l = await cluster.waitForLeader(90_000);
      // A write in the current term makes every earlier entry committed everywhere it is kept.
      for (let i = 0; i < 30; i++) {
        const r = await call(
          'POST',
          `${cluster.url(l)}/api/timeseries`,
          { deviceId: 'barrier', timestamp: new Date().toISOString(), value: i },
          10_000,
        );
        if (r.outcome === 'ok') break;
        await sleep(1000);
      }
      await cluster.waitConverged(120_000);
      const devices = Array.from({ length: wopts.appendDevices }, (_, i) => `append-${i}`);
      appends = await checkAppends(
        workload.appends,
        cluster.ids.map((id) => ({ id, url: cluster.url(id) })),
        devices,
      );
    } catch (err) {
      convergeError = String((err as Error).message ?? err).slice(0, 2000);
    }
    log('checking register linearizability');
    const registers = checkRegisters(workload.registers, { timeoutMs: opts.checkTimeoutMs });
    const c = workload.counts();
    const problems: string[] = [];
    if (convergeError) problems.push(`did not converge: ${convergeError}`);
    if (appends) {
      if (appends.lost)
        problems.push(
          `${appends.lost} acknowledged appends lost: ${JSON.stringify(appends.lostDetail.slice(0, 5))}`,
        );
      if (appends.duplicated) problems.push(`${appends.duplicated} appends stored more than once`);
      if (appends.failedPresent)
        problems.push(`${appends.failedPresent} definitely-failed appends are stored`);
      if (appends.phantom) problems.push(`${appends.phantom} stored values nobody wrote`);
      if (appends.divergent)
        problems.push(`nodes hold different sets of values: ${JSON.stringify(appends.perNode)}`);
    }
    if (registers.violations)
      problems.push(
        `${registers.violations} register keys not linearizable:\n${registers.report.join('\n')}`,
      );
    if (registers.extraEntryReads)
      problems.push(`${registers.extraEntryReads} reads saw more than one entry in a register device`);
    if (crashes.length) problems.push(`nodes crashed on their own:\n${crashes.join('\n')}`);
    const status500 = workload.serverErrors.get(500);
    if (status500) problems.push(`${status500} responses with HTTP 500`);
    return {
      seed: opts.seed,
      nodes: opts.nodes,
      minutes: (Date.now() - started) / 60_000,
      faults: Object.fromEntries(nemesis.counts),
      nemesisErrors: nemesis.errors,
      ...c,
      registerWritesAcknowledged: workload.registers.filter((r) => r.type === 'write' && r.outcome === 'ok')
        .length,
      serverErrors: Object.fromEntries([...workload.serverErrors].map(([k, v]) => [String(k), v])),
      appends,
      registers,
      crashes,
      convergeError,
      valid: problems.length === 0 && registers.result !== 'illegal',
      problems,
    };
  } finally {
    await cluster.stop();
  }
}

export interface StaleReadDemoResult {
  records: RegisterRecord[];
  oldLeader: string;
  newLeader: string | null;
  readsFromOldLeader: number;
  registers: RegisterCheck;
}

/**
 * The planted stale-read bug: the register workload reads with consistency=none (a real, documented
 * weak read path, no code switch) from a leader that is then cut off from the others. While it is
 * isolated the majority elects a new leader and acknowledges new writes; the old leader keeps
 * answering reads from its stale state. The linearizability checker must report a violation.
 * With readConsistency 'linearizable' the same scenario must check out as linearizable.
 */
export async function runStaleReadDemo(opts: {
  seed: number;
  readConsistency?: 'none' | 'linearizable';
  isolateMs?: number;
  electionTimeoutMs?: number;
  heartbeatMs?: number;
  log?: (line: string) => void;
}): Promise<StaleReadDemoResult> {
  const log = opts.log ?? (() => {});
  const rng = new Rng(opts.seed);
  const cluster = await ChaosCluster.start({
    nodes: 3,
    electionTimeoutMs: opts.electionTimeoutMs,
    heartbeatMs: opts.heartbeatMs,
  });
  try {
    const oldLeader = await cluster.waitForLeader(90_000);
    log(
      `leader ${oldLeader}; register reads with consistency=${opts.readConsistency ?? 'none'} from ${oldLeader} only`,
    );
    const workload = new Workload(
      {
        ...defaultWorkload,
        appendClients: 0,
        registerClients: 4,
        activeKeys: 2,
        opsPerKey: 10_000,
        writeRatio: 0.5,
        readConsistency: opts.readConsistency ?? 'none',
        readNodes: () => [oldLeader],
        writeNodes: () => cluster.ids.filter((id) => id !== oldLeader),
      },
      rng.fork(),
      cluster.ids,
      (id) => cluster.url(id),
    );
    workload.start();
    await sleep(2000);
    const others = cluster.ids.filter((id) => id !== oldLeader);
    cluster.net.cut(partitionsIsolate(oldLeader, cluster.ids));
    log(`isolated ${oldLeader} at ${performance.now().toFixed(0)}`);
    let newLeader: string | null = null;
    try {
      newLeader = await cluster.waitForLeader(30_000, others);
      log(`new leader ${newLeader}`);
    } catch (err) {
      log(`no new leader: ${String(err)}`);
    }
    await sleep(opts.isolateMs ?? 8000);
    cluster.net.heal();
    log(`healed at ${performance.now().toFixed(0)}`);
    await sleep(2000);
    await workload.stop();
    const registers = checkRegisters(workload.registers);
    return {
      records: workload.registers,
      oldLeader,
      newLeader,
      readsFromOldLeader: workload.registers.filter((r) => r.type === 'read' && r.outcome === 'ok').length,
      registers,
    };
  } finally {
    await cluster.stop();
  }
}
