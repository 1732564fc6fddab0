// A register per key: writes replace the value, reads return the current value (null = absent,
// i.e. nothing written yet). Partitioned per key: registers are independent, so a history is
// linearizable iff each key's sub-history is (locality of linearizability).
import type { Model, Operation } from './checker.js';

export type RegisterInput = { key: string; type: 'write'; value: string } | { key: string; type: 'read' };
/** For a write: true (acknowledged). For a read: the value seen, or null when the key was absent. */
export type RegisterOutput = string | null | true;
export type RegisterOp = Operation<RegisterInput, RegisterOutput>;

export const registerModel: Model<string | null, RegisterInput, RegisterOutput> = {
  partition(history) {
    const byKey = new Map<string, RegisterOp[]>();
    for (const op of history) {
      // A read whose outcome is unknown constrains nothing: leave it out (it would only widen the search).
      if (op.input.type === 'read' && op.output === undefined) continue;
      let list = byKey.get(op.input.key);
      if (!list) byKey.set(op.input.key, (list = []));
      list.push(op);
    }
    return [...byKey.keys()].sort().map((k) => byKey.get(k)!);
  },
  partitionName(ops) {
    return ops[0]?.input.key ?? '(empty)';
  },
  init() {
    return null;
  },
  step(state, input, output) {
    if (input.type === 'write') return [true, input.value];
    if (output === undefined) return [true, state];
    return [output === state, state];
  },
  equal(a, b) {
    return a === b;
  },
  hash(s) {
    return s === null ? '\u0000null' : s;
  },
  describeOperation(input, output) {
    if (input.type === 'write')
      return `write(${input.key}, ${JSON.stringify(input.value)})${output === undefined ? ' → ?' : ''}`;
    return `read(${input.key}) → ${output === undefined ? '?' : JSON.stringify(output)}`;
  },
};
