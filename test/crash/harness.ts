// Crash-at-a-failpoint scenarios on a real 3-node cluster (test/cluster/harness.ts): one node is
// restarted with TIMESTORE_FAILPOINTS armed, clients keep writing (every call recorded with its
// outcome) until that node dies exactly at the failpoint, then it is restarted without it and the
// cluster is checked: it rejoins, every acknowledged write is on every node exactly once, nothing
// that failed or was never written is there, applied index and data agree across nodes, and every
// node accepts new writes. Waits are bounded but generous (2 shared cores); no wall-clock
// thresholds are asserted.
import assert from 'node:assert/strict';
import { after, test, type TestContext } from 'node:test';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { eventually, get, post, waitForExit } from '../helpers/index.js';
import { Cluster, type ClusterNode } from '../cluster/harness.js';

/**
 * Snapshots every 100 applied entries, 10 kept below (so a node that was down a moment is sent a
 * snapshot), snapshots streamed in 4 KiB chunks.
 */
export const CRASH_ENV: Record<string, string> = {
  TIMESTORE_SNAPSHOT_ENTRIES: '100',
  TIMESTORE_SNAPSHOT_CATCHUP_ENTRIES: '10',
  TIMESTORE_SNAPSHOT_CHUNK_BYTES: '4096',
  TIMESTORE_REQUEST_TIMEOUT_MS: '8000',
};

export function startCrashCluster(env: Record<string, string> = {}): Promise<Cluster> {
  return Cluster.start({ env: { ...CRASH_ENV, ...env }, electionTimeoutMs: 500, heartbeatMs: 100 });
}

// ------------------------------------------------------------------------------------- workload

/** ok: 2xx. failed: certainly no effect (refused connection, 4xx). unknown: anything else. */
export type Outcome = 'ok' | 'failed' | 'unknown';

export interface WriteRecord {
  value: number;
  node: string;
  outcome: Outcome;
  detail: string;
}

export const DEVICES = ['crash-a', 'crash-b', 'crash-c', 'crash-d'];

/** Values are unique within a test file, so "exactly once" is a count per value. */
let nextValue = 0;

export async function writeRecorded(node: ClusterNode, log: WriteRecord[]): Promise<WriteRecord> {
  const value = ++nextValue;
  let rec: WriteRecord;
  try {
    const r = await post(
      `${node.url}/api/timeseries`,
      {
        deviceId: DEVICES[value % DEVICES.length],
        timestamp: new Date(1_700_000_000_000 + value).toISOString(),
        value,
      },
      { timeoutMs: 15_000 },
    );
    const outcome: Outcome = r.status < 300 ? 'ok' : r.status < 500 ? 'failed' : 'unknown';
    rec = { value, node: node.id, outcome, detail: `HTTP ${r.status}` };
  } catch (err) {
    const cause = (err as Error & { cause?: { code?: string } }).cause;
    // A refused connection sent nothing; a reset or a timeout may have left after the request did.
    const outcome: Outcome = cause?.code === 'ECONNREFUSED' ? 'failed' : 'unknown';
    rec = { value, node: node.id, outcome, detail: String(cause?.code ?? (err as Error).message) };
  }
  log.push(rec);
  return rec;
}

/** `clients` loops writing to the running nodes in turn until stop(). */
export class Workload {
  private running = true;
  private readonly loops: Promise<void>[] = [];

  constructor(
    targets: () => ClusterNode[],
    readonly log: WriteRecord[],
    clients = 4,
  ) {
    for (let c = 0; c < clients; c++) {
      this.loops.push(
        (async () => {
          for (let k = c; this.running; k++) {
            const ts = targets();
            if (ts.length === 0) {
              await sleep(50);
              continue;
            }
            const r = await writeRecorded(ts[k % ts.length]!, log);
            if (r.outcome !== 'ok') await sleep(50);
          }
        })(),
      );
    }
  }

  acked(): number {
    return this.log.filter((w) => w.outcome === 'ok').length;
  }

  async waitAcked(n: number, timeoutMs = 90_000): Promise<void> {
    const target = this.acked() + n;
    await eventually(async () => this.acked() >= target, `${n} more acknowledged writes`, timeoutMs, 50);
  }

  async stop(): Promise<void> {
    this.running = false;
    await Promise.all(this.loops);
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

// ------------------------------------------------------------------------------------- checks

interface StoredEntry {
  id: string;
  deviceId: string;
  value: number;
}

/** Every entry a node holds locally (consistency=none), all pages. */
export async function dumpNode(node: ClusterNode): Promise<StoredEntry[]> {
  const out: StoredEntry[] = [];
  let cursor: string | null = null;
  for (;;) {
    const q: string = `consistency=none&limit=10000${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`;
    const r = await get<StoredEntry[]>(`${node.url}/api/timeseries?${q}`, { timeoutMs: 30_000 });
    if (r.status !== 200) throw new Error(`${node.id} GET /api/timeseries: HTTP ${r.status} ${r.text}`);
    out.push(...r.json);
    cursor = r.headers.get('x-next-cursor');
    if (!cursor) return out;
  }
}

export interface CheckReport {
  problems: string[];
  acked: number;
  unknown: number;
  failed: number;
  appliedIndex: number;
  points: number;
}

/**
 * After the load stopped: a write in the current term commits everything before it, every node
 * applies up to the same index, then the nodes' data is compared with what the clients saw.
 * Returns the problems found (empty when the state is consistent) instead of throwing, so a
 * planted-bug test can assert that problems are found.
 */
export async function checkConsistent(c: Cluster, log: WriteRecord[]): Promise<CheckReport> {
  const problems: string[] = [];
  const leader = await c.leader(c.nodes);
  await eventually(
    async () => (await writeRecorded(leader, log)).outcome === 'ok',
    'a write through the leader after the restart',
    60_000,
    200,
  );
  // Same applied index everywhere, and it is the leader's commit index.
  const applied = await eventually(
    async () => {
      const sts = await Promise.all(c.nodes.map((n) => n.status().catch(() => null)));
      if (sts.some((s) => s === null)) return null;
      const commit = sts.find((s) => s!.state === 'Leader')?.commitIndex;
      if (commit === undefined) return null;
      return sts.every((s) => s!.appliedIndex === commit) ? commit : null;
    },
    'every node to apply the same index, the leader commit index',
    90_000,
    100,
  ).catch((err: Error) => {
    problems.push(String(err.message));
    return -1;
  });

  const dumps = await Promise.all(c.nodes.map((n) => dumpNode(n)));
  const written = new Map(log.map((w) => [w.value, w]));
  const signature = (d: StoredEntry[]) =>
    d
      .map((e) => `${e.id}:${e.deviceId}:${e.value}`)
      .sort()
      .join('\n');
  const reference = signature(dumps[0]!);
  c.nodes.forEach((n, i) => {
    const d = dumps[i]!;
    const counts = new Map<number, number>();
    for (const e of d) counts.set(e.value, (counts.get(e.value) ?? 0) + 1);
    const lost = log.filter((w) => w.outcome === 'ok' && !counts.has(w.value)).map((w) => w.value);
    const duplicated = [...counts].filter(([, k]) => k > 1).map(([v]) => v);
    const failedPresent = log
      .filter((w) => w.outcome === 'failed' && counts.has(w.value))
      .map((w) => w.value);
    const phantom = [...counts.keys()].filter((v) => !written.has(v));
    const show = (xs: number[]) =>
      `${xs.length} (${xs.slice(0, 10).join(', ')}${xs.length > 10 ? ', ...' : ''})`;
    if (lost.length > 0) problems.push(`${n.id}: acknowledged writes missing: ${show(lost)}`);
    if (duplicated.length > 0) problems.push(`${n.id}: writes stored more than once: ${show(duplicated)}`);
    if (failedPresent.length > 0) problems.push(`${n.id}: failed writes present: ${show(failedPresent)}`);
    if (phantom.length > 0) problems.push(`${n.id}: values nobody wrote: ${show(phantom)}`);
    if (i > 0 && signature(d) !== reference)
      problems.push(
        `${n.id}: data differs from ${c.nodes[0]!.id} (${d.length} vs ${dumps[0]!.length} entries)`,
      );
  });
  // The cluster accepts new writes through every node.
  for (const n of c.nodes) {
    const w = await writeRecorded(n, log);
    if (w.outcome !== 'ok') problems.push(`${n.id}: a new write after recovery failed: ${w.detail}`);
  }
  return {
    problems,
    ...counts(log),
    appliedIndex: applied,
    points: dumps[0]!.length,
  };
}

// ------------------------------------------------------------------------------------- cases

export interface CrashCase {
  /** NAME=ACTION as in TIMESTORE_FAILPOINTS, e.g. "apply.mid-batch=crash@3". */
  failpoint: string;
  /** Which node dies: a follower, or a node made leader (leadership transferred to it) once armed. */
  victim: 'leader' | 'follower';
  /**
   * load: the armed node is restarted and clients write until it dies.
   * install: the node is killed first and the others compact their logs past it, so the armed
   * node is sent a snapshot when it comes back.
   */
  scenario: 'load' | 'install';
  /** TIMESTORE_TEST_BUG for the armed run only. */
  bug?: string;
  /**
   * Whether clients also write through the victim (default true). Without, every entry the victim
   * applies was written through another node, and is acknowledged once committed whatever happens
   * to the victim.
   */
  loadOnVictim?: boolean;
}

export interface CaseReport extends CheckReport {
  failpoint: string;
  victim: string;
  role: string;
  /** The restarted node's output (for assertions on recovery messages). */
  restartOutput: string;
  /** Whether the restarted node was sent a snapshot (else it caught up from its own state and the log). */
  installedOnRestart: boolean;
}

async function startMayDie(n: ClusterNode): Promise<void> {
  await n.start().catch((err: unknown) => {
    if (n.running) throw err;
    // died at the failpoint while starting: checked by the caller
  });
}

async function transferLeadership(c: Cluster, to: ClusterNode): Promise<void> {
  const leader = await c.leader(c.nodes).catch(() => null);
  if (!leader || leader === to) return;
  await post(`${leader.url}/cluster/transfer-leadership`, { to: to.id }, { timeoutMs: 15_000 }).catch(
    () => {},
  );
}

/** Run one case on a running cluster; the cluster is whole and quiet again when it returns. */
export async function runCrashCase(c: Cluster, cs: CrashCase, log: WriteRecord[]): Promise<CaseReport> {
  const name = cs.failpoint.split('=')[0]!;
  const first = log.length;
  const victim = (await c.followers())[0]!;
  let load: Workload;
  const armed = { TIMESTORE_FAILPOINTS: cs.failpoint, ...(cs.bug ? { TIMESTORE_TEST_BUG: cs.bug } : {}) };
  if (cs.scenario === 'install') {
    const behind = (await victim.status()).lastIndex;
    await victim.kill();
    load = new Workload(() => c.live(), log);
    const leader = await c.leader();
    await eventually(
      async () => (await leader.status()).firstIndex > behind + 1,
      `${leader.id} to compact its log past ${victim.id}'s last index ${behind}`,
      90_000,
      100,
    );
    victim.env = armed;
    await startMayDie(victim);
  } else {
    await victim.stop();
    victim.env = armed;
    await startMayDie(victim);
    if (cs.victim === 'leader' && victim.running) await transferLeadership(c, victim);
    load = new Workload(
      () => (cs.loadOnVictim === false ? c.live().filter((n) => n !== victim) : c.live()),
      log,
    );
  }
  // The victim's role as last seen before it died.
  let role = 'starting';
  const proc = victim.proc!;
  const watch = (async () => {
    while (proc.running) {
      const st = await victim.status().catch(() => null);
      if (st && proc.running) role = st.state;
      await sleep(100);
    }
  })();
  const exit = await waitForExit(proc, 120_000);
  await watch;
  const output = victim.output();
  assert.equal(
    exit.signal,
    'SIGKILL',
    `${victim.id} should die by SIGKILL at ${name}.\n${victim.proc!.describe()}`,
  );
  assert.match(
    output,
    new RegExp(`failpoint ${name.replace(/\./g, '\\.')} fired: crash`),
    victim.proc!.describe(),
  );
  // Restart without the failpoint; the others keep taking writes meanwhile.
  victim.env = {};
  await load.waitAcked(10);
  const restarted = await victim.start().then(
    () => null,
    (err: Error) => err,
  );
  const base = { failpoint: cs.failpoint, victim: victim.id, role };
  if (restarted) {
    await load.stop();
    return {
      ...base,
      ...counts(log.slice(first)),
      problems: [`${victim.id} did not start again: ${restarted.message}`],
      appliedIndex: -1,
      points: -1,
      restartOutput: victim.output(),
      installedOnRestart: false,
    };
  }
  await load.waitAcked(20);
  await load.stop();
  const report = await checkConsistent(c, log);
  // Temporary files of the killed process (named after its pid) must not outlive the restart.
  const debris = readdirSync(join(victim.dataDir, 'snapshots')).filter((f) => f.includes(`-${proc.pid}`));
  if (debris.length > 0)
    report.problems.push(`${victim.id}: files the crash left behind: ${debris.join(', ')}`);
  const restartOutput = victim.output();
  const installedOnRestart = /snapshot installed into data\.db/.test(restartOutput);
  return { ...report, ...counts(log.slice(first)), ...base, restartOutput, installedOnRestart };
}

function counts(log: WriteRecord[]): { acked: number; unknown: number; failed: number } {
  return {
    acked: log.filter((w) => w.outcome === 'ok').length,
    unknown: log.filter((w) => w.outcome === 'unknown').length,
    failed: log.filter((w) => w.outcome === 'failed').length,
  };
}

export function describeReport(r: CaseReport): string {
  return (
    `${r.failpoint} on ${r.victim} (${r.role}): ${r.acked} acknowledged, ${r.unknown} unknown, ${r.failed} failed writes in this case; ` +
    `restarted ${r.installedOnRestart ? 'through a snapshot install' : 'from its own files and the log'}; ` +
    `then applied index ${r.appliedIndex} on every node, ${r.points} points; ` +
    (r.problems.length === 0 ? 'consistent' : `PROBLEMS: ${r.problems.join('; ')}`)
  );
}

/**
 * One test that starts a crash cluster with `env`, runs `cases` on it in sequence as subtests (each
 * must come out consistent, plus `checkCase`), then `more` (e.g. a planted-bug case) on the same
 * cluster, and closes the cluster when the file ends.
 */
export function crashSuite(
  name: string,
  opts: {
    env?: Record<string, string>;
    cases: CrashCase[];
    checkCase?: (r: CaseReport, cs: CrashCase) => void;
    more?: (t: TestContext, c: Cluster, log: WriteRecord[]) => Promise<void>;
  },
): void {
  const clusters: Cluster[] = [];
  after(async () => {
    await Promise.all(clusters.map((c) => c.close()));
  });
  test(name, async (t) => {
    const c = await startCrashCluster(opts.env);
    clusters.push(c);
    const log: WriteRecord[] = [];
    for (const cs of opts.cases) {
      await t.test(cs.failpoint, async () => {
        const r = await runCrashCase(c, cs, log);
        console.log(describeReport(r));
        assert.deepEqual(r.problems, [], describeReport(r));
        opts.checkCase?.(r, cs);
      });
    }
    await opts.more?.(t, c, log);
  });
}
