// A Wing–Gong / Lowe linearizability checker, as Porcupine (anishathalye/porcupine) does it:
//  - the history is partitioned by the model (per key for a register), each partition checked alone;
//  - the history is turned into a doubly linked list of call/return events sorted by time;
//  - a depth-first search linearizes one pending call at a time ("lifting" its call and return out
//    of the list), backtracks when a return is reached that was not linearized, and memoizes
//    (linearized-set bitset, model state) pairs so each configuration is explored at most once.
//
// Operations whose outcome is unknown (timeout, connection reset after the request was sent) have
// `ret = Infinity` and `output = undefined`: they may be linearized anywhere after their call, or
// never observably (placing them after every other operation is the same as "did not happen").
//
// A budget (steps and/or milliseconds) makes the check return 'unknown' instead of running forever.

export interface Operation<I, O> {
  /** Who issued it (only for reporting). */
  clientId?: number | string;
  input: I;
  /** Invocation time (any monotonic unit). */
  call: number;
  /** Completion time; Infinity when the outcome is unknown. */
  ret: number;
  /** undefined when the outcome is unknown. */
  output: O | undefined;
}

export interface Model<S, I, O> {
  /** Split a history into independent sub-histories (e.g. per key). Default: one partition. */
  partition?(history: Operation<I, O>[]): Operation<I, O>[][];
  init(): S;
  /** Apply input with observed output (undefined = unknown outcome). Returns [legal, nextState]. */
  step(state: S, input: I, output: O | undefined): [boolean, S];
  equal(a: S, b: S): boolean;
  /** A string that is equal for equal states (used to bucket the memo). Default: JSON.stringify. */
  hash?(state: S): string;
  describeOperation?(input: I, output: O | undefined): string;
  /** Name of a partition, for reports (e.g. the key). */
  partitionName?(ops: Operation<I, O>[]): string;
}

export type CheckResult = 'ok' | 'illegal' | 'unknown';

export interface PartitionReport<I, O> {
  name: string;
  result: CheckResult;
  operations: number;
  /** Steps (model applications) spent on this partition. */
  steps: number;
  /** For 'illegal': the longest prefix that could be linearized, then the operations left over. */
  longestLinearization?: Operation<I, O>[];
  notLinearized?: Operation<I, O>[];
}

export interface CheckOptions {
  /** Abort with 'unknown' after this many milliseconds (whole check). */
  timeoutMs?: number;
  /** Abort with 'unknown' after this many model steps (whole check). Deterministic, unlike time. */
  maxSteps?: number;
  /** Stop at the first illegal partition (default true). */
  stopOnIllegal?: boolean;
}

export interface CheckReport<I, O> {
  result: CheckResult;
  partitions: PartitionReport<I, O>[];
  steps: number;
  elapsedMs: number;
}

interface Entry<I, O> {
  kind: 'call' | 'return';
  time: number;
  /** Index of the operation within the partition. */
  id: number;
  op: Operation<I, O>;
  /** Call entry → its return entry; return entry → its call entry. */
  match: Entry<I, O> | null;
  prev: Entry<I, O> | null;
  next: Entry<I, O> | null;
}

class Bitset {
  readonly words: Uint32Array;
  constructor(n: number, words?: Uint32Array) {
    this.words = words ?? new Uint32Array(Math.ceil(n / 32) || 1);
  }
  set(i: number): void {
    this.words[i >>> 5]! |= 1 << (i & 31);
  }
  clear(i: number): void {
    this.words[i >>> 5]! &= ~(1 << (i & 31));
  }
  clone(): Bitset {
    return new Bitset(0, this.words.slice());
  }
  hash(): number {
    // FNV-1a over the words.
    let h = 0x811c9dc5;
    for (const w of this.words) {
      h ^= w;
      h = Math.imul(h, 0x01000193) >>> 0;
    }
    return h;
  }
  equals(o: Bitset): boolean {
    const a = this.words;
    const b = o.words;
    for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
    return true;
  }
  popcount(): number {
    let c = 0;
    for (let w of this.words) {
      while (w) {
        w &= w - 1;
        c++;
      }
    }
    return c;
  }
}

/** Make the event list: calls and returns sorted by time; at equal times calls come first (so
 * operations that touch at an instant count as concurrent, the lenient reading). */
function makeEntries<I, O>(ops: Operation<I, O>[]): Entry<I, O> {
  const events: Entry<I, O>[] = [];
  ops.forEach((op, id) => {
    if (!(op.ret >= op.call))
      throw new Error(`operation ${id} returns (${op.ret}) before its call (${op.call})`);
    const c: Entry<I, O> = { kind: 'call', time: op.call, id, op, match: null, prev: null, next: null };
    const r: Entry<I, O> = { kind: 'return', time: op.ret, id, op, match: c, prev: null, next: null };
    c.match = r;
    events.push(c, r);
  });
  events.sort((a, b) => {
    if (a.time !== b.time) return a.time < b.time ? -1 : 1;
    if (a.kind !== b.kind) return a.kind === 'call' ? -1 : 1;
    return a.id - b.id;
  });
  const head: Entry<I, O> = {
    kind: 'call',
    time: -Infinity,
    id: -1,
    op: undefined as unknown as Operation<I, O>,
    match: null,
    prev: null,
    next: null,
  };
  let last = head;
  for (const e of events) {
    last.next = e;
    e.prev = last;
    last = e;
  }
  return head;
}

/** Remove a call entry and its return entry from the list. */
function lift<I, O>(entry: Entry<I, O>): void {
  entry.prev!.next = entry.next;
  if (entry.next) entry.next.prev = entry.prev;
  const m = entry.match!;
  m.prev!.next = m.next;
  if (m.next) m.next.prev = m.prev;
}

/** Put them back (inverse of lift, in reverse order). */
function unlift<I, O>(entry: Entry<I, O>): void {
  const m = entry.match!;
  m.prev!.next = m;
  if (m.next) m.next.prev = m;
  entry.prev!.next = entry;
  if (entry.next) entry.next.prev = entry;
}

class Budget {
  steps = 0;
  private readonly deadline: number;
  constructor(private readonly opts: CheckOptions) {
    this.deadline = opts.timeoutMs !== undefined ? Date.now() + opts.timeoutMs : Infinity;
  }
  /** true when exhausted */
  tick(): boolean {
    this.steps++;
    if (this.opts.maxSteps !== undefined && this.steps > this.opts.maxSteps) return true;
    if ((this.steps & 1023) === 0 && Date.now() > this.deadline) return true;
    return false;
  }
}

function checkSingle<S, I, O>(
  model: Model<S, I, O>,
  ops: Operation<I, O>[],
  budget: Budget,
): { result: CheckResult; longest: number[] } {
  const hashState = model.hash ?? ((s: S) => JSON.stringify(s));
  const n = ops.length;
  const head = makeEntries(ops);
  let linearized = new Bitset(n);
  const cache = new Map<string, Array<{ bits: Bitset; state: S }>>();
  const calls: Array<{ entry: Entry<I, O>; state: S }> = [];
  let state = model.init();
  let longest: number[] = [];
  // The deepest linearization is snapshotted lazily, when the search backs out of it.
  let deeper = false;
  let entry = head.next;

  const seen = (bits: Bitset, s: S): boolean => {
    const key = `${bits.hash()}:${hashState(s)}`;
    const bucket = cache.get(key);
    if (bucket) {
      for (const c of bucket) if (c.bits.equals(bits) && model.equal(c.state, s)) return true;
      bucket.push({ bits, state: s });
    } else {
      cache.set(key, [{ bits, state: s }]);
    }
    return false;
  };

  while (head.next !== null) {
    if (entry === null) throw new Error('checker invariant: ran off the end of the event list');
    if (entry.kind === 'call') {
      if (budget.tick()) return { result: 'unknown', longest: calls.map((c) => c.entry.id) };
      const ret = entry.match!;
      const [ok, next] = model.step(state, entry.op.input, ret.op.output);
      if (ok) {
        const bits = linearized.clone();
        bits.set(entry.id);
        if (!seen(bits, next)) {
          calls.push({ entry, state });
          state = next;
          linearized = bits;
          lift(entry);
          if (calls.length > longest.length) deeper = true;
          entry = head.next;
          continue;
        }
      }
      entry = entry.next;
    } else {
      // A return whose call has not been linearized: backtrack.
      if (deeper) {
        longest = calls.map((c) => c.entry.id);
        deeper = false;
      }
      const top = calls.pop();
      if (top === undefined) return { result: 'illegal', longest };
      entry = top.entry;
      state = top.state;
      linearized = linearized.clone();
      linearized.clear(entry.id);
      unlift(entry);
      entry = entry.next;
    }
  }
  return { result: 'ok', longest };
}

export function checkOperations<S, I, O>(
  model: Model<S, I, O>,
  history: Operation<I, O>[],
  opts: CheckOptions = {},
): CheckReport<I, O> {
  const started = Date.now();
  const budget = new Budget(opts);
  const parts = model.partition ? model.partition(history) : [history];
  const reports: PartitionReport<I, O>[] = [];
  let overall: CheckResult = 'ok';
  for (let i = 0; i < parts.length; i++) {
    const ops = parts[i]!;
    const name = model.partitionName ? model.partitionName(ops) : String(i);
    const before = budget.steps;
    const { result, longest } = checkSingle(model, ops, budget);
    const rep: PartitionReport<I, O> = { name, result, operations: ops.length, steps: budget.steps - before };
    if (result === 'illegal') {
      rep.longestLinearization = longest.map((id) => ops[id]!);
      const done = new Set(longest);
      rep.notLinearized = ops.filter((_, id) => !done.has(id));
      overall = 'illegal';
    } else if (result === 'unknown' && overall === 'ok') {
      overall = 'unknown';
    }
    reports.push(rep);
    if (result === 'illegal' && opts.stopOnIllegal !== false) break;
    if (result === 'unknown') {
      // Budget is global: the rest cannot be checked either.
      for (let j = i + 1; j < parts.length; j++) {
        const rest = parts[j]!;
        reports.push({
          name: model.partitionName ? model.partitionName(rest) : String(j),
          result: 'unknown',
          operations: rest.length,
          steps: 0,
        });
      }
      break;
    }
  }
  return { result: overall, partitions: reports, steps: budget.steps, elapsedMs: Date.now() - started };
}

/** A human-readable account of an illegal partition. */
export function describeViolation<S, I, O>(model: Model<S, I, O>, rep: PartitionReport<I, O>): string {
  const d = (op: Operation<I, O>) =>
    `[${op.call}, ${op.ret === Infinity ? '∞' : op.ret}] c${op.clientId ?? '?'} ` +
    (model.describeOperation
      ? model.describeOperation(op.input, op.output)
      : JSON.stringify({ i: op.input, o: op.output }));
  const lines = [`partition ${rep.name}: ${rep.result} (${rep.operations} ops)`];
  if (rep.longestLinearization) {
    lines.push(`  longest linearizable prefix (${rep.longestLinearization.length}):`);
    for (const op of rep.longestLinearization.slice(-10)) lines.push(`    ${d(op)}`);
  }
  if (rep.notLinearized) {
    lines.push(`  could not be placed after it (${rep.notLinearized.length}):`);
    for (const op of [...rep.notLinearized].sort((a, b) => a.call - b.call).slice(0, 10))
      lines.push(`    ${d(op)}`);
  }
  return lines.join('\n');
}

export { Bitset as _Bitset };
