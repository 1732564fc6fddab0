import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { checkOperations, describeViolation, type Model, type Operation } from './checker.js';
import { registerModel, type RegisterInput, type RegisterOp, type RegisterOutput } from './register-model.js';
import { bruteForceLinearizable } from './brute-force.js';

const w = (key: string, value: string, call: number, ret: number, clientId = 0): RegisterOp => ({
  clientId,
  input: { key, type: 'write', value },
  call,
  ret,
  output: ret === Infinity ? undefined : true,
});
const r = (
  key: string,
  value: string | null | undefined,
  call: number,
  ret: number,
  clientId = 0,
): RegisterOp => ({
  clientId,
  input: { key, type: 'read' },
  call,
  ret,
  output: value,
});
const check = (h: RegisterOp[], opts = {}) => checkOperations(registerModel, h, opts).result;

describe('linearizability checker: register, hand-written histories', () => {
  test('empty history is linearizable', () => {
    assert.equal(check([]), 'ok');
  });

  test('sequential write then read of it', () => {
    assert.equal(check([w('k', '1', 0, 1), r('k', '1', 2, 3)]), 'ok');
  });

  test('read of an absent key before any write', () => {
    assert.equal(check([r('k', null, 0, 1), w('k', '1', 2, 3), r('k', '1', 4, 5)]), 'ok');
  });

  test('stale read after a completed write is illegal', () => {
    assert.equal(check([w('k', '1', 0, 1), r('k', null, 2, 3)]), 'illegal');
    assert.equal(check([w('k', '1', 0, 1), w('k', '2', 2, 3), r('k', '1', 4, 5)]), 'illegal');
  });

  test('a read concurrent with a write may see either value', () => {
    assert.equal(check([w('k', '1', 0, 1), w('k', '2', 2, 10), r('k', '1', 3, 4)]), 'ok');
    assert.equal(check([w('k', '1', 0, 1), w('k', '2', 2, 10), r('k', '2', 3, 4)]), 'ok');
  });

  test('new-old inversion: two sequential reads during one write cannot see new then old', () => {
    const h = [w('k', '1', 0, 1, 0), w('k', '2', 2, 20, 0), r('k', '2', 3, 4, 1), r('k', '1', 5, 6, 2)];
    assert.equal(check(h), 'illegal');
    // ... but old then new is fine.
    const h2 = [w('k', '1', 0, 1, 0), w('k', '2', 2, 20, 0), r('k', '1', 3, 4, 1), r('k', '2', 5, 6, 2)];
    assert.equal(check(h2), 'ok');
  });

  test('a read of a value never written is illegal', () => {
    assert.equal(check([w('k', '1', 0, 10), r('k', '3', 1, 2)]), 'illegal');
  });

  test('operations touching at one instant count as concurrent', () => {
    assert.equal(check([w('k', '1', 0, 5), r('k', null, 5, 6)]), 'ok');
    assert.equal(check([w('k', '1', 0, 5), r('k', null, 6, 7)]), 'illegal');
  });

  test('concurrent writes: later reads agree on one winner', () => {
    const base = [w('k', 'a', 0, 10, 0), w('k', 'b', 0, 10, 1)];
    assert.equal(check([...base, r('k', 'a', 11, 12), r('k', 'a', 13, 14)]), 'ok');
    assert.equal(check([...base, r('k', 'b', 11, 12), r('k', 'b', 13, 14)]), 'ok');
    assert.equal(check([...base, r('k', 'a', 11, 12), r('k', 'b', 13, 14)]), 'illegal');
  });

  test('keys are independent: one bad key makes the history illegal and is named', () => {
    const h = [w('a', '1', 0, 1), r('a', '1', 2, 3), w('b', '1', 0, 1), r('b', null, 2, 3)];
    const rep = checkOperations(registerModel, h);
    assert.equal(rep.result, 'illegal');
    const bad = rep.partitions.find((p) => p.result === 'illegal');
    assert.equal(bad?.name, 'b');
    assert.ok(describeViolation(registerModel, bad!).includes('read(b) → null'));
    assert.equal(bad?.longestLinearization?.length, 1);
  });
});

describe('linearizability checker: indeterminate operations', () => {
  test('an unknown write may have taken effect', () => {
    assert.equal(check([w('k', '1', 0, Infinity), r('k', '1', 5, 6)]), 'ok');
  });

  test('an unknown write may not have taken effect', () => {
    assert.equal(check([w('k', '1', 0, Infinity), r('k', null, 5, 6)]), 'ok');
  });

  test('an unknown write may take effect much later than its call', () => {
    const h = [
      w('k', '1', 0, 1),
      w('k', '2', 2, Infinity),
      r('k', '1', 3, 4),
      r('k', '1', 50, 51),
      r('k', '2', 100, 101),
    ];
    assert.equal(check(h), 'ok');
  });

  test('an unknown write cannot take effect before it was called', () => {
    assert.equal(check([r('k', '2', 0, 1), w('k', '2', 2, Infinity)]), 'illegal');
  });

  test('once an unknown write is observed it cannot be un-observed', () => {
    assert.equal(check([w('k', '1', 0, Infinity), r('k', '1', 5, 6), r('k', null, 7, 8)]), 'illegal');
  });

  test('an unknown write takes effect at most once (cannot flip back)', () => {
    const h = [
      w('k', 'x', 0, Infinity),
      w('k', 'y', 1, 2),
      r('k', 'x', 3, 4),
      r('k', 'y', 5, 6),
      r('k', 'x', 7, 8),
    ];
    assert.equal(check(h), 'illegal');
  });

  test('reads with unknown outcome constrain nothing', () => {
    assert.equal(check([w('k', '1', 0, 1), r('k', undefined, 2, Infinity), r('k', '1', 3, 4)]), 'ok');
  });
});

describe('linearizability checker: budgets', () => {
  // Many concurrent unknown writes and a read of a value nobody wrote: every subset is explored.
  const hard: RegisterOp[] = [];
  for (let i = 0; i < 40; i++) hard.push(w('k', `v${i}`, i, Infinity, i));
  hard.push(r('k', 'nobody', 100, 101, 99));

  test('a step budget returns unknown instead of running on', () => {
    const rep = checkOperations(registerModel, hard, { maxSteps: 5000 });
    assert.equal(rep.result, 'unknown');
    assert.ok(rep.steps <= 5001);
  });

  test('a time budget returns unknown instead of hanging', () => {
    const rep = checkOperations(registerModel, hard, { timeoutMs: 50 });
    assert.equal(rep.result, 'unknown');
  });

  test('a budget that is enough does not change the answer', () => {
    const h = [w('k', '1', 0, 1), r('k', null, 2, 3)];
    assert.equal(checkOperations(registerModel, h, { maxSteps: 1000, timeoutMs: 60_000 }).result, 'illegal');
  });
});

// ---------- generated histories ----------

/** Simulate clients against an atomic register: each op takes effect at a random point inside its
 * interval, so the history is linearizable by construction. Some ops end up with unknown outcome. */
function simulate(
  seedOps: Array<{
    client: number;
    key: number;
    isWrite: boolean;
    gap: number;
    len: number;
    at: number;
    lost: boolean;
  }>,
): RegisterOp[] {
  const clientFree = new Map<number, number>();
  type Pending = { op: RegisterOp; point: number };
  const pend: Pending[] = [];
  let val = 0;
  for (const s of seedOps) {
    const call = (clientFree.get(s.client) ?? 0) + s.gap;
    const ret = call + s.len;
    const point = call + Math.min(s.at, s.len);
    // A client whose call timed out moves on (as a new connection) after its own timeout.
    clientFree.set(s.client, s.lost ? ret + 1000 : ret);
    const key = `k${s.key}`;
    const input: RegisterInput = s.isWrite
      ? { key, type: 'write', value: `v${val++}` }
      : { key, type: 'read' };
    pend.push({
      op: { clientId: s.client, input, call, ret: s.lost ? Infinity : ret, output: undefined },
      point,
    });
  }
  // Apply in linearization-point order (ties broken by call order: both are inside the intervals).
  const order = [...pend].sort((a, b) => a.point - b.point);
  const reg = new Map<string, string>();
  for (const p of order) {
    const inp = p.op.input;
    if (inp.type === 'write') {
      reg.set(inp.key, inp.value);
      if (p.op.ret !== Infinity) p.op.output = true;
    } else if (p.op.ret !== Infinity) {
      p.op.output = reg.get(inp.key) ?? null;
    }
  }
  return pend.map((p) => p.op);
}

const arbSeedOps = (maxLen: number, keys: number, clients: number) =>
  fc.array(
    fc.record({
      client: fc.integer({ min: 0, max: clients - 1 }),
      key: fc.integer({ min: 0, max: keys - 1 }),
      isWrite: fc.boolean(),
      gap: fc.integer({ min: 0, max: 5 }),
      len: fc.integer({ min: 0, max: 10 }),
      at: fc.integer({ min: 0, max: 10 }),
      lost: fc.integer({ min: 0, max: 9 }).map((x) => x === 0),
    }),
    { maxLength: maxLen },
  );

describe('linearizability checker: properties', () => {
  test('histories produced by an atomic register are linearizable', () => {
    fc.assert(
      fc.property(arbSeedOps(60, 3, 6), (seed) => {
        assert.equal(check(simulate(seed)), 'ok');
      }),
      { numRuns: 300 },
    );
  });

  // Small random histories, most of them not linearizable: agree with brute force.
  const arbOp = fc.record({
    key: fc.constantFrom('a', 'b'),
    isWrite: fc.boolean(),
    value: fc.constantFrom('1', '2', '3'),
    readsNull: fc.boolean(),
    call: fc.integer({ min: 0, max: 12 }),
    len: fc.integer({ min: 0, max: 6 }),
    unknown: fc.integer({ min: 0, max: 5 }).map((x) => x === 0),
  });
  const toOp = (
    o: {
      key: string;
      isWrite: boolean;
      value: string;
      readsNull: boolean;
      call: number;
      len: number;
      unknown: boolean;
    },
    i: number,
  ): RegisterOp => {
    const ret = o.unknown ? Infinity : o.call + o.len;
    if (o.isWrite) return w(o.key, o.value, o.call, ret, i);
    return r(o.key, o.unknown ? undefined : o.readsNull ? null : o.value, o.call, ret, i);
  };

  test('agrees with a brute-force checker on small random histories', () => {
    let legal = 0;
    let illegal = 0;
    fc.assert(
      fc.property(fc.array(arbOp, { maxLength: 8 }), (raw) => {
        const h = raw.map(toOp);
        const expected = bruteForceLinearizable(registerModel, h);
        const got = check(h);
        assert.equal(got, expected ? 'ok' : 'illegal', JSON.stringify(h));
        if (expected) legal++;
        else illegal++;
      }),
      { numRuns: 2000 },
    );
    // The generator must exercise both answers.
    assert.ok(legal > 100 && illegal > 100, `legal=${legal} illegal=${illegal}`);
  });

  test('agrees with brute force on perturbed atomic-register histories', () => {
    fc.assert(
      fc.property(
        arbSeedOps(7, 1, 3),
        fc.nat(),
        fc.constantFrom<string | null>(null, 'v0', 'v1', 'v2'),
        (seed, which, newVal) => {
          const h = simulate(seed);
          const reads = h.filter((o) => o.input.type === 'read' && o.output !== undefined);
          if (reads.length > 0) reads[which % reads.length]!.output = newVal;
          const expected = bruteForceLinearizable(registerModel, h);
          assert.equal(check(h), expected ? 'ok' : 'illegal', JSON.stringify(h));
        },
      ),
      { numRuns: 1000 },
    );
  });

  test('a long linearizable history is checked quickly and a single stale read in it is found', () => {
    const seed = Array.from({ length: 3000 }, (_, i) => ({
      client: i % 8,
      key: i % 5,
      isWrite: i % 3 === 0,
      gap: (i * 7) % 4,
      len: (i * 13) % 9,
      at: (i * 5) % 9,
      lost: i % 97 === 0,
    }));
    const h = simulate(seed);
    const ok = checkOperations(registerModel, h, { timeoutMs: 60_000 });
    assert.equal(ok.result, 'ok');
    assert.equal(ok.partitions.length, 5);
    // Plant a stale read: a read that returns the value before the latest write completed long ago.
    const key = 'k1';
    const writes = h
      .filter((o) => o.input.key === key && o.input.type === 'write' && o.ret !== Infinity)
      .sort((a, b) => a.ret - b.ret);
    const first = writes[0]!;
    const last = writes[writes.length - 1]!;
    const t = Math.max(...h.filter((o) => o.ret !== Infinity).map((o) => o.ret)) + 1;
    h.push(r(key, (first.input as { value: string }).value, t, t + 1, 99));
    assert.notEqual(first, last);
    const bad = checkOperations(registerModel, h, { timeoutMs: 60_000 });
    assert.equal(bad.result, 'illegal');
    assert.equal(bad.partitions.find((p) => p.result === 'illegal')?.name, key);
  });
});

describe('linearizability checker: generic model', () => {
  // A counter with increments and reads, no partitioning, to show the checker is not register-specific.
  type In = { t: 'inc' } | { t: 'get' };
  const counter: Model<number, In, number | true> = {
    init: () => 0,
    step: (s, i, o) => (i.t === 'inc' ? [true, s + 1] : [o === undefined || o === s, s]),
    equal: (a, b) => a === b,
  };
  const op = (
    input: In,
    call: number,
    ret: number,
    output: number | true | undefined,
  ): Operation<In, number | true> => ({ input, call, ret, output });

  test('counter histories', () => {
    const inc = { t: 'inc' } as const;
    const get = { t: 'get' } as const;
    assert.equal(
      checkOperations(counter, [op(inc, 0, 5, true), op(inc, 1, 6, true), op(get, 2, 3, 1), op(get, 7, 8, 2)])
        .result,
      'ok',
    );
    assert.equal(checkOperations(counter, [op(inc, 0, 5, true), op(get, 6, 7, 0)]).result, 'illegal');
    assert.equal(
      checkOperations(counter, [op(inc, 0, Infinity, undefined), op(get, 6, 7, 0), op(get, 8, 9, 1)]).result,
      'ok',
    );
    assert.equal(
      checkOperations(counter, [op(inc, 0, Infinity, undefined), op(get, 6, 7, 2)]).result,
      'illegal',
    );
  });
});

export type { RegisterOutput };
