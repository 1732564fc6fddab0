// The obviously-correct (and exponential) reference: try every order of the operations that respects
// real time (a precedes b when a returned strictly before b was called) and replay it on the model.
// Only for tiny histories in tests.
import type { Model, Operation } from './checker.js';

export function bruteForceLinearizable<S, I, O>(model: Model<S, I, O>, history: Operation<I, O>[]): boolean {
  const parts = model.partition ? model.partition(history) : [history];
  return parts.every((ops) => single(model, ops));
}

function single<S, I, O>(model: Model<S, I, O>, ops: Operation<I, O>[]): boolean {
  const n = ops.length;
  const used = new Array<boolean>(n).fill(false);
  const go = (state: S, depth: number): boolean => {
    if (depth === n) return true;
    for (let i = 0; i < n; i++) {
      if (used[i]) continue;
      const op = ops[i]!;
      // Every operation that must come before op is already placed.
      let minimal = true;
      for (let j = 0; j < n; j++) {
        if (!used[j] && j !== i && ops[j]!.ret < op.call) {
          minimal = false;
          break;
        }
      }
      if (!minimal) continue;
      const [ok, next] = model.step(state, op.input, op.output);
      if (!ok) continue;
      used[i] = true;
      if (go(next, depth + 1)) return true;
      used[i] = false;
    }
    return false;
  };
  return go(model.init(), 0);
}
