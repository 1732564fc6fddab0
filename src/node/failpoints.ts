// Failpoints: named moments in the real code paths (snapshot creation, log compaction, snapshot
// install, the write path) where a test makes this process die at once, as under SIGKILL, or stall,
// as on a slow disk. Armed only by TIMESTORE_FAILPOINTS; when it is unset every call site costs one
// null check and does nothing. TIMESTORE_TEST_BUG plants a known bug (test-only) so the crash tests
// can show they catch it. See docs/RELIABILITY.md, "Crash safety".
//
//   TIMESTORE_FAILPOINTS="snapshot.before-compact=crash,apply.mid-batch=crash@3,raft.before-persist=sleep:40~0.5"
//
// An entry is NAME=ACTION[@N][~P]: ACTION is `crash` or `sleep:MS`; @N skips the first N-1 hits
// (a crash then happens at exactly the Nth); ~P fires each eligible hit with probability P.
// With TIMESTORE_FAILPOINTS_GATE=FILE the rules act only while FILE exists (hits meanwhile are not
// counted): a test turns a fault (a slow disk) on and off in a running node by creating the file.
import { existsSync, writeSync } from 'node:fs';
import { ConfigError } from './config.js';

/** Every failpoint, with the moment it stands for. One call site each (test/crash/failpoints.test.ts checks). */
export const FAILPOINTS = {
  'snapshot.mid-copy':
    'taking a snapshot: the online backup of data.db has copied some pages into snapshots/snap-tmp-*, not all',
  'snapshot.before-rename':
    'taking a snapshot: the copy is complete and fsynced (snap-tmp-*.db), not yet renamed to snap-N.db',
  'snapshot.before-compact':
    'taking a snapshot: snap-N.db is in place, raft.db does not know it yet (old snapshot metadata, log not compacted)',
  'compact.mid-transaction':
    "compacting raft.db: inside the compaction's transaction, the entries deleted, the new metadata not yet written",
  'compact.after': 'compacting raft.db: committed; the older snapshot files are not yet removed',
  'install.mid-receive':
    'follower receiving a snapshot: a chunk was appended to the .part file, its answer not yet sent',
  'install.before-swap':
    'follower installing a snapshot: the file is complete and verified, pending-snapshot.json written, data.db not yet replaced',
  'install.mid-swap':
    'follower installing a snapshot: the old data.db is checkpointed and closed, the new copy not yet renamed over it',
  'install.after-swap':
    'follower installing a snapshot: data.db is the snapshot, raft.db does not record it yet (pending-snapshot.json is what finishes it)',
  'raft.before-persist':
    'write path: a Ready with entries or hard state, before its raft.db transaction (sleep here = a slow fsync)',
  'raft.after-persist':
    "write path: a Ready's entries are durable in raft.db, the messages that depend on them (append answers) not yet sent",
  'apply.mid-batch':
    "write path: inside data.db's apply transaction of a batch of two or more entries, after the first entry, before the rest",
  'apply.before-ack':
    'write path: a batch is applied in data.db, the writers waiting for it (proposals, forwards, reads) not yet answered',
  'apply.after-early-ack':
    'write path: a leader answered writers at commit (puts: their answer needs nothing from data.db), their entries not yet applied in data.db',
} as const satisfies Record<string, string>;

export type FailpointName = keyof typeof FAILPOINTS;

/** Bugs TIMESTORE_TEST_BUG can plant, to prove the crash tests catch them. Never set in production. */
export const PLANTED_BUGS = {
  'apply-no-txn':
    "data.db records a batch's applied index in its own transaction before the batch's writes (not atomic)",
  'install-no-marker': 'a follower installs a snapshot without writing pending-snapshot.json first',
  'ack-before-fsync':
    "the Raft loop sends a Ready's messages and applies its entries while raft.db's fsync of it is still running",
} as const satisfies Record<string, string>;

export type PlantedBug = keyof typeof PLANTED_BUGS;

export type FailpointAction = { kind: 'crash' } | { kind: 'sleep'; ms: number };

export interface FailpointRule {
  name: FailpointName;
  action: FailpointAction;
  /** First hit (1-based) that may fire. */
  from: number;
  /** Probability that an eligible hit fires. */
  probability: number;
}

const ENTRY = /^([a-z][a-z0-9.-]*)=(crash|sleep:(\d+))(?:@(\d+))?(?:~(0(?:\.\d+)?|1(?:\.0+)?))?$/;

/** Parse TIMESTORE_FAILPOINTS (pure). Throws ConfigError naming the bad entry and what was expected. */
export function parseFailpoints(spec: string, variable = 'TIMESTORE_FAILPOINTS'): FailpointRule[] {
  const rules: FailpointRule[] = [];
  for (const raw of spec.split(',')) {
    const entry = raw.trim();
    if (entry === '') continue;
    const m = ENTRY.exec(entry);
    if (!m) {
      throw new ConfigError(
        `${variable}: "${entry}" is not NAME=ACTION[@N][~P] with ACTION crash or sleep:MS (e.g. apply.mid-batch=crash@3)`,
      );
    }
    const [, name, , ms, from, p] = m;
    if (!(name! in FAILPOINTS)) {
      throw new ConfigError(
        `${variable}: unknown failpoint "${name}"; known: ${Object.keys(FAILPOINTS).join(', ')}`,
      );
    }
    if (rules.some((r) => r.name === name))
      throw new ConfigError(`${variable}: failpoint "${name}" is given more than once`);
    const n = from === undefined ? 1 : Number(from);
    if (n < 1) throw new ConfigError(`${variable}: "${entry}": @N counts hits from 1`);
    const probability = p === undefined ? 1 : Number(p);
    if (probability <= 0) throw new ConfigError(`${variable}: "${entry}": ~P must be above 0`);
    rules.push({
      name: name as FailpointName,
      action: ms === undefined ? { kind: 'crash' } : { kind: 'sleep', ms: Number(ms) },
      from: n,
      probability,
    });
  }
  return rules;
}

/** Parse TIMESTORE_TEST_BUG (pure): empty, or one name of PLANTED_BUGS. */
export function parsePlantedBug(
  spec: string | undefined,
  variable = 'TIMESTORE_TEST_BUG',
): PlantedBug | null {
  const v = (spec ?? '').trim();
  if (v === '') return null;
  if (!(v in PLANTED_BUGS))
    throw new ConfigError(
      `${variable}: unknown planted bug "${v}"; known: ${Object.keys(PLANTED_BUGS).join(', ')}`,
    );
  return v as PlantedBug;
}

/** What a firing failpoint does to the process; injected so the decisions are testable in-process. */
export interface FailpointEffects {
  /** Die now, like SIGKILL: no cleanup, no flush of anything buffered. */
  crash(): void;
  /** Block the thread (the event loop, like a synchronous fsync would). */
  sleep(ms: number): void;
  /** A line written (synchronously) before the effect, so a test can see which failpoint fired. */
  report(line: string): void;
  random(): number;
  /** False while the rules are switched off (TIMESTORE_FAILPOINTS_GATE's file is absent). */
  gateOpen(): boolean;
}

/** Armed rules and their hit counters. */
export class Failpoints {
  private readonly rules = new Map<FailpointName, FailpointRule & { hits: number; fired: number }>();

  constructor(
    rules: FailpointRule[],
    private readonly effects: FailpointEffects,
  ) {
    for (const r of rules) this.rules.set(r.name, { ...r, hits: 0, fired: 0 });
  }

  names(): FailpointName[] {
    return [...this.rules.keys()];
  }

  hit(name: FailpointName): void {
    const r = this.rules.get(name);
    if (!r || !this.effects.gateOpen()) return;
    r.hits++;
    if (r.hits < r.from) return;
    if (r.probability < 1 && this.effects.random() >= r.probability) return;
    const what = r.action.kind === 'crash' ? 'crash' : `sleep ${r.action.ms} ms`;
    // A sleep may fire on every persist: its first firing and every 100th after are reported.
    if (r.action.kind === 'crash' || r.fired++ % 100 === 0)
      this.effects.report(
        JSON.stringify({
          level: r.action.kind === 'crash' ? 50 : 40,
          time: Date.now(),
          failpoint: name,
          hit: r.hits,
          action: what,
          msg: `failpoint ${name} fired: ${what}`,
        }),
      );
    if (r.action.kind === 'crash') this.effects.crash();
    else this.effects.sleep(r.action.ms);
  }
}

/** The real effects; `gate` is TIMESTORE_FAILPOINTS_GATE's file, if any. */
export function processEffects(gate?: string): FailpointEffects {
  return {
    crash: () => process.kill(process.pid, 'SIGKILL'),
    sleep: (ms) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms),
    report: (line) => writeSync(2, line + '\n'),
    random: Math.random,
    gateOpen: gate ? () => existsSync(gate) : () => true,
  };
}

let active: Failpoints | null = null;
let bug: PlantedBug | null = null;

/** A call site: does nothing unless this failpoint is armed. */
export function failpoint(name: FailpointName): void {
  if (active !== null) active.hit(name);
}

/**
 * The hook to hand to layers that may not import this module (src/storage): undefined unless one
 * of `names` (the points of that layer) is armed, so their call sites (`this.opts.failpoint?.(...)`)
 * cost nothing and their behaviour stays the same.
 */
export function failpointHook<N extends FailpointName>(...names: N[]): ((name: N) => void) | undefined {
  return active !== null && names.some((n) => active!.names().includes(n)) ? failpoint : undefined;
}

export function plantedBug(name: PlantedBug): boolean {
  return bug === name;
}

/**
 * Arm from the environment (once per process, at node start). Throws ConfigError on an
 * unknown name or a malformed entry, so a typo fails the start instead of testing nothing.
 */
export function armFailpoints(
  env: NodeJS.ProcessEnv = process.env,
  effects: FailpointEffects = processEffects(env.TIMESTORE_FAILPOINTS_GATE || undefined),
): { failpoints: FailpointName[]; bug: PlantedBug | null } {
  const rules = parseFailpoints(env.TIMESTORE_FAILPOINTS ?? '');
  bug = parsePlantedBug(env.TIMESTORE_TEST_BUG);
  active = rules.length > 0 ? new Failpoints(rules, effects) : null;
  return { failpoints: active?.names() ?? [], bug };
}
