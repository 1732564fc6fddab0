// End-of-run checkers.
//  - appends: every acknowledged append is on every node exactly once; no append whose call
//    definitely failed is anywhere; nothing appears that no client wrote.
//  - registers: the history is linearizable (per-key Wing–Gong/Lowe checker), and no register
//    device ever held more than its one entry.
import { call } from './http-client.js';
import type { AppendRecord, RegisterRecord } from './workload.js';
import { registerRecordsToHistory } from './workload.js';
import { checkOperations, describeViolation, type CheckResult } from './linearizability/checker.js';
import { registerModel } from './linearizability/register-model.js';

export interface AppendCheck {
  acknowledged: number;
  failed: number;
  unknown: number;
  /** Unknown-outcome appends that did take effect. */
  unknownPresent: number;
  /** Acknowledged appends missing from at least one node (counted once per value). */
  lost: number;
  lostDetail: Array<{ value: number; missingOn: string[] }>;
  /** Values stored more than once on some node. */
  duplicated: number;
  /** Appends that definitely failed but are stored. */
  failedPresent: number;
  /** Stored values that no client wrote. */
  phantom: number;
  /** Nodes disagree on the set of stored values (including unknown-outcome ones). */
  divergent: boolean;
  perNode: Record<string, number>;
}

/** All entries of a device on one node, local state (the cluster is quiet when this runs). */
export async function readDevice(
  url: string,
  deviceId: string,
): Promise<Array<{ id: string; value: number }>> {
  const out: Array<{ id: string; value: number }> = [];
  let cursor: string | undefined;
  for (let page = 0; page < 10_000; page++) {
    const q = `consistency=none&limit=10000${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`;
    const r = await call(
      'GET',
      `${url}/api/timeseries/device/${encodeURIComponent(deviceId)}?${q}`,
      undefined,
      30_000,
    );
    if (r.outcome !== 'ok' || !Array.isArray(r.json))
      throw new Error(`reading ${deviceId} from ${url}: HTTP ${r.status ?? r.error}`);
    out.push(...(r.json as Array<{ id: string; value: number }>));
    const next = r.headers?.['x-next-cursor'];
    cursor = Array.isArray(next) ? next[0] : next;
    if (!cursor) return out;
  }
  throw new Error('too many pages');
}

export async function checkAppends(
  records: AppendRecord[],
  nodes: Array<{ id: string; url: string }>,
  devices: string[],
): Promise<AppendCheck> {
  const byValue = new Map<number, AppendRecord>();
  for (const r of records) byValue.set(r.value, r);
  const stored = new Map<string, Map<number, number>>(); // node → value → count
  for (const n of nodes) {
    const m = new Map<number, number>();
    for (const d of devices)
      for (const e of await readDevice(n.url, d)) m.set(e.value, (m.get(e.value) ?? 0) + 1);
    stored.set(n.id, m);
  }
  const res: AppendCheck = {
    acknowledged: 0,
    failed: 0,
    unknown: 0,
    unknownPresent: 0,
    lost: 0,
    lostDetail: [],
    duplicated: 0,
    failedPresent: 0,
    phantom: 0,
    divergent: false,
    perNode: {},
  };
  for (const r of records) {
    const presentOn = nodes.filter((n) => (stored.get(n.id)!.get(r.value) ?? 0) > 0).map((n) => n.id);
    if (r.outcome === 'ok') {
      res.acknowledged++;
      if (presentOn.length < nodes.length) {
        res.lost++;
        if (res.lostDetail.length < 20)
          res.lostDetail.push({
            value: r.value,
            missingOn: nodes.map((n) => n.id).filter((id) => !presentOn.includes(id)),
          });
      }
    } else if (r.outcome === 'failed') {
      res.failed++;
      if (presentOn.length > 0) res.failedPresent++;
    } else {
      res.unknown++;
      if (presentOn.length > 0) res.unknownPresent++;
    }
  }
  const allValues = new Set<number>();
  for (const [id, m] of stored) {
    res.perNode[id] = [...m.values()].reduce((a, b) => a + b, 0);
    for (const [v, count] of m) {
      allValues.add(v);
      if (count > 1) res.duplicated++;
    }
  }
  for (const v of allValues) if (!byValue.has(v)) res.phantom++;
  const sets = [...stored.values()].map((m) => [...m.keys()].sort((a, b) => a - b).join(','));
  res.divergent = sets.some((s) => s !== sets[0]);
  return res;
}

export interface RegisterCheck {
  result: CheckResult;
  keys: number;
  operations: number;
  /** Partitions (keys) that are not linearizable. */
  violations: number;
  /** Keys the checker could not decide within its budget. */
  undecided: number;
  /** Reads that saw more than the one entry of a register device. */
  extraEntryReads: number;
  report: string[];
  checkMs: number;
}

export function checkRegisters(records: RegisterRecord[], opts: { timeoutMs?: number } = {}): RegisterCheck {
  const history = registerRecordsToHistory(records);
  const rep = checkOperations(registerModel, history, {
    timeoutMs: opts.timeoutMs ?? 120_000,
    stopOnIllegal: false,
  });
  const bad = rep.partitions.filter((p) => p.result === 'illegal');
  return {
    result: rep.result,
    keys: rep.partitions.length,
    operations: history.length,
    violations: bad.length,
    undecided: rep.partitions.filter((p) => p.result === 'unknown').length,
    extraEntryReads: records.filter((r) => r.extraEntries !== undefined).length,
    report: bad.slice(0, 5).map((p) => describeViolation(registerModel, p)),
    checkMs: rep.elapsedMs,
  };
}
