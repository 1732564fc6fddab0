// The two client workloads of a campaign. Every call is recorded with its start, end and outcome.
//  - append: unique values written through any node (server-assigned ids), checked at the end
//    for presence on every node exactly once;
//  - register: each key is a device holding one entry with a fixed id; a write replaces it, a read
//    fetches the device's entries with ?consistency=<readConsistency> (linearizable by default).
import { performance } from 'node:perf_hooks';
import type { Rng } from './random.js';
import { call, type Outcome } from './http-client.js';
import type { RegisterOp } from './linearizability/register-model.js';

export interface AppendRecord {
  value: number;
  deviceId: string;
  node: string;
  call: number;
  ret: number;
  outcome: Outcome;
  status?: number;
  error?: string;
}

export interface RegisterRecord {
  client: number;
  key: string;
  type: 'write' | 'read';
  /** Written value, or the value read (null: key absent). */
  value: number | null | undefined;
  node: string;
  call: number;
  ret: number;
  outcome: Outcome;
  status?: number;
  error?: string;
  /** A read returned more than one entry for a register device (an anomaly of its own). */
  extraEntries?: number;
}

export interface WorkloadOptions {
  appendClients: number;
  registerClients: number;
  /** Devices the append workload spreads over. */
  appendDevices: number;
  /** Register keys in use at a time; a key is retired after opsPerKey operations. */
  activeKeys: number;
  opsPerKey: number;
  readConsistency: 'linearizable' | 'leader' | 'none';
  /** Probability that a register op is a write. */
  writeRatio: number;
  requestTimeoutMs: number;
  /** Pause between a client's calls. */
  thinkMs: [number, number];
  /** When set, register reads go only to these nodes (used to aim stale reads). */
  readNodes?: () => string[];
  /** When set, register writes go only to these nodes. */
  writeNodes?: () => string[];
}

export const defaultWorkload: WorkloadOptions = {
  appendClients: 3,
  registerClients: 5,
  appendDevices: 4,
  activeKeys: 3,
  opsPerKey: 150,
  readConsistency: 'linearizable',
  writeRatio: 0.4,
  requestTimeoutMs: 4000,
  thinkMs: [0, 30],
};

const REGISTER_TS = '2026-01-01T00:00:00Z';

export class Workload {
  readonly appends: AppendRecord[] = [];
  readonly registers: RegisterRecord[] = [];
  /** Register key → fixed entry id. */
  readonly keyIds = new Map<string, string>();
  private nextValue = 1;
  private keySeq = 0;
  private readonly active: Array<{ key: string; ops: number }> = [];
  private stopped = false;
  private readonly running: Promise<void>[] = [];
  readonly serverErrors = new Map<number, number>();

  constructor(
    private readonly opts: WorkloadOptions,
    private readonly rng: Rng,
    private readonly nodes: string[],
    private readonly urlOf: (id: string) => string,
    /** Nodes worth sending to right now (skip ones we know are down, to keep the load useful). */
    private readonly candidates: () => string[] = () => nodes,
  ) {
    for (let i = 0; i < opts.activeKeys; i++) this.active.push({ key: this.newKey(), ops: 0 });
  }

  private newKey(): string {
    const key = `reg-${this.keySeq++}`;
    this.keyIds.set(key, this.rng.uuid());
    return key;
  }

  start(): void {
    for (let i = 0; i < this.opts.appendClients; i++)
      this.running.push(this.appendClient(i, this.rng.fork()));
    for (let i = 0; i < this.opts.registerClients; i++)
      this.running.push(this.registerClient(i, this.rng.fork()));
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await Promise.all(this.running);
  }

  private pickNode(rng: Rng, from?: string[]): string {
    const c = from ?? this.candidates();
    return rng.pick(c.length ? c : this.nodes);
  }

  private noteStatus(status: number | undefined): void {
    if (status !== undefined && status >= 500)
      this.serverErrors.set(status, (this.serverErrors.get(status) ?? 0) + 1);
  }

  private async think(rng: Rng): Promise<void> {
    await new Promise((r) => setTimeout(r, rng.int(this.opts.thinkMs[0], this.opts.thinkMs[1])));
  }

  private async appendClient(i: number, rng: Rng): Promise<void> {
    while (!this.stopped) {
      const node = this.pickNode(rng);
      const value = this.nextValue++;
      const deviceId = `append-${rng.int(0, this.opts.appendDevices - 1)}`;
      const rec: AppendRecord = {
        value,
        deviceId,
        node,
        call: performance.now(),
        ret: 0,
        outcome: 'unknown',
      };
      this.appends.push(rec);
      const r = await call(
        'POST',
        `${this.urlOf(node)}/api/timeseries`,
        { deviceId, timestamp: new Date().toISOString(), value },
        this.opts.requestTimeoutMs,
      );
      rec.ret = performance.now();
      rec.outcome = r.outcome;
      rec.status = r.status;
      rec.error = r.error;
      this.noteStatus(r.status);
      if (r.outcome !== 'ok') await this.think(rng); // back off a little when things fail
      await this.think(rng);
      void i;
    }
  }

  private async registerClient(client: number, rng: Rng): Promise<void> {
    while (!this.stopped) {
      const slot = rng.int(0, this.active.length - 1);
      const k = this.active[slot]!;
      if (++k.ops >= this.opts.opsPerKey) this.active[slot] = { key: this.newKey(), ops: 0 };
      const key = k.key;
      const isWrite = rng.chance(this.opts.writeRatio);
      if (isWrite) {
        const node = this.pickNode(rng, this.opts.writeNodes?.());
        const value = this.nextValue++;
        const rec: RegisterRecord = {
          client,
          key,
          type: 'write',
          value,
          node,
          call: performance.now(),
          ret: 0,
          outcome: 'unknown',
        };
        this.registers.push(rec);
        const r = await call(
          'POST',
          `${this.urlOf(node)}/api/timeseries`,
          { id: this.keyIds.get(key), deviceId: key, timestamp: REGISTER_TS, value },
          this.opts.requestTimeoutMs,
        );
        rec.ret = performance.now();
        rec.outcome = r.outcome;
        rec.status = r.status;
        rec.error = r.error;
        this.noteStatus(r.status);
      } else {
        const node = this.pickNode(rng, this.opts.readNodes?.());
        const rec: RegisterRecord = {
          client,
          key,
          type: 'read',
          value: undefined,
          node,
          call: performance.now(),
          ret: 0,
          outcome: 'unknown',
        };
        this.registers.push(rec);
        const r = await call(
          'GET',
          `${this.urlOf(node)}/api/timeseries/device/${key}?consistency=${this.opts.readConsistency}`,
          undefined,
          this.opts.requestTimeoutMs,
        );
        rec.ret = performance.now();
        rec.status = r.status;
        rec.error = r.error;
        this.noteStatus(r.status);
        if (r.outcome === 'ok' && Array.isArray(r.json)) {
          const entries = r.json as Array<{ id: string; value: number }>;
          const mine = entries.filter((e) => e.id === this.keyIds.get(key));
          if (entries.length > 1 || mine.length !== entries.length) rec.extraEntries = entries.length;
          rec.value = mine[0]?.value ?? null;
          rec.outcome = 'ok';
        } else {
          rec.outcome = r.outcome === 'ok' ? 'unknown' : r.outcome;
        }
      }
      await this.think(rng);
    }
  }

  /** The register history in the checker's form: failed calls dropped, unknown ones open-ended. */
  registerHistory(): RegisterOp[] {
    return registerRecordsToHistory(this.registers);
  }

  counts(): { operations: number; ok: number; failed: number; unknown: number } {
    const all = [...this.appends, ...this.registers];
    return {
      operations: all.length,
      ok: all.filter((r) => r.outcome === 'ok').length,
      failed: all.filter((r) => r.outcome === 'failed').length,
      unknown: all.filter((r) => r.outcome === 'unknown').length,
    };
  }
}

export function registerRecordsToHistory(records: RegisterRecord[]): RegisterOp[] {
  const out: RegisterOp[] = [];
  for (const r of records) {
    if (r.outcome === 'failed') continue; // definitely no effect (writes) / no information (reads)
    if (r.type === 'read') {
      if (r.outcome !== 'ok') continue;
      out.push({
        clientId: r.client,
        input: { key: r.key, type: 'read' },
        call: r.call,
        ret: r.ret,
        output: r.value === null ? null : String(r.value),
      });
    } else {
      out.push({
        clientId: r.client,
        input: { key: r.key, type: 'write', value: String(r.value) },
        call: r.call,
        ret: r.outcome === 'ok' ? r.ret : Infinity,
        output: r.outcome === 'ok' ? true : undefined,
      });
    }
  }
  return out;
}
