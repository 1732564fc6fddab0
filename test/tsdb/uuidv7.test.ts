import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  canonicalUuid,
  createUuidV7Generator,
  formatUuid,
  isUuid,
  isUuidV7,
  parseUuid,
  uuidv7,
  uuidV7Millis,
} from '../../src/tsdb/uuidv7.js';

function fixedRandom(byte: number) {
  return (b: Uint8Array) => b.fill(byte);
}

test('layout: version 7, RFC 9562 variant, big-endian millisecond timestamp', () => {
  const gen = createUuidV7Generator({ now: () => 0x0189_abcd_ef01, random: fixedRandom(0) });
  const id = gen();
  assert.match(id, /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  assert.equal(id.slice(0, 13), '0189abcd-ef01');
  assert.equal(uuidV7Millis(id), 0x0189_abcd_ef01);
  assert.equal(id, '0189abcd-ef01-7000-8000-000000000000');
  assert.ok(isUuidV7(id));
});

test('random bits are used, with the top bit of rand_a cleared as a rollover guard', () => {
  const gen = createUuidV7Generator({ now: () => 1, random: fixedRandom(0xff) });
  assert.equal(gen(), '00000000-0001-77ff-bfff-ffffffffffff');
});

test('monotonic within one millisecond, including carries across the counter parts', () => {
  const gen = createUuidV7Generator({ now: () => 5, random: fixedRandom(0xff) });
  const a = gen();
  const b = gen(); // randBLo wraps, randBHi wraps, randA increments
  assert.equal(a, '00000000-0005-77ff-bfff-ffffffffffff');
  assert.equal(b, '00000000-0005-7800-8000-000000000000');
  assert.ok(a < b);
});

test('monotonic when the clock goes backwards; the timestamp is held', () => {
  let t = 1000;
  const gen = createUuidV7Generator({ now: () => t });
  const a = gen();
  t = 900;
  const b = gen();
  t = 1001;
  const c = gen();
  assert.ok(a < b && b < c);
  assert.equal(uuidV7Millis(b), 1000);
  assert.equal(uuidV7Millis(c), 1001);
});

test('many ids in one millisecond stay ordered; random bytes are drawn once per millisecond', () => {
  let calls = 0;
  const gen = createUuidV7Generator({
    now: () => 7,
    random: (b) => {
      calls++;
      b.fill(0xff);
    },
  });
  let prev = gen();
  for (let i = 0; i < 10000; i++) {
    const next = gen();
    assert.ok(prev < next, `${prev} < ${next}`);
    prev = next;
  }
  assert.equal(calls, 1);
});

test('a fast loop of the default generator is strictly increasing and unique', () => {
  const ids = Array.from({ length: 20000 }, () => uuidv7());
  for (let i = 1; i < ids.length; i++) assert.ok(ids[i - 1]! < ids[i]!);
  assert.equal(new Set(ids).size, ids.length);
});

test('property: any clock sequence gives strictly increasing ids', () => {
  fc.assert(
    fc.property(
      fc.array(fc.integer({ min: 0, max: 2 ** 48 - 2 }), { minLength: 1, maxLength: 50 }),
      fc.integer(),
      (clock, seed) => {
        let i = 0;
        let s = seed;
        const gen = createUuidV7Generator({
          now: () => clock[i++ % clock.length]!,
          random: (b) => {
            for (let k = 0; k < b.length; k++) b[k] = (s = (s * 1103515245 + 12345) | 0) & 0xff;
          },
        });
        let prev = gen();
        for (let k = 1; k < clock.length; k++) {
          const next = gen();
          if (!(prev < next)) return false;
          if (!isUuidV7(next)) return false;
          prev = next;
        }
        return true;
      },
    ),
  );
});

test('clock outside 48 bits is rejected with the value in the message', () => {
  assert.throws(() => createUuidV7Generator({ now: () => -1 })(), /clock returned -1/);
  assert.throws(() => createUuidV7Generator({ now: () => 2 ** 48 })(), /clock returned/);
  assert.throws(() => createUuidV7Generator({ now: () => NaN })(), /clock returned NaN/);
});

test('isUuid / isUuidV7 / canonicalUuid', () => {
  assert.ok(isUuid('123E4567-E89B-12D3-A456-426614174000'));
  assert.ok(!isUuidV7('123e4567-e89b-12d3-a456-426614174000'));
  assert.ok(!isUuid('123e4567e89b12d3a456426614174000'));
  assert.ok(!isUuid('123e4567-e89b-12d3-a456-42661417400g'));
  assert.ok(!isUuid(42));
  assert.ok(!isUuid('123e4567-e89b-12d3-a456-426614174000\n'));
  assert.equal(canonicalUuid('ABCDEF00-0000-7000-8000-000000000000'), 'abcdef00-0000-7000-8000-000000000000');
  assert.throws(() => canonicalUuid('nope'), /not a UUID: "nope"/);
});

test('parseUuid / formatUuid round trip, 16 bytes', () => {
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 16, maxLength: 16 }), (bytes) => {
      const s = formatUuid(bytes);
      assert.ok(isUuid(s));
      assert.deepEqual(new Uint8Array(parseUuid(s)), bytes);
      assert.equal(formatUuid(parseUuid(s.toUpperCase())), s);
    }),
  );
  assert.throws(() => parseUuid('x'), /not a UUID/);
  assert.throws(() => formatUuid(new Uint8Array(3)), /16 bytes; got 3/);
});

test('byte order equals text order (what the engine index relies on)', () => {
  fc.assert(
    fc.property(
      fc.uint8Array({ minLength: 16, maxLength: 16 }),
      fc.uint8Array({ minLength: 16, maxLength: 16 }),
      (a, b) => {
        const ta = formatUuid(a);
        const tb = formatUuid(b);
        const byBytes = Math.sign(Buffer.compare(Buffer.from(a), Buffer.from(b)));
        const byText = ta < tb ? -1 : ta > tb ? 1 : 0;
        return byBytes === byText;
      },
    ),
  );
});
