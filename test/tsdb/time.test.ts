import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  formatRfc3339,
  MAX_TIMESTAMP_US,
  MIN_TIMESTAMP_US,
  parseEpoch,
  parseRfc3339,
  parseTimestamp,
  TimestampError,
} from '../../src/tsdb/time.js';

test('RFC 3339: Z, offsets, lower-case and space separators', () => {
  assert.equal(parseRfc3339('1970-01-01T00:00:00Z'), 0);
  assert.equal(parseRfc3339('2024-05-01T12:00:00Z'), Date.UTC(2024, 4, 1, 12) * 1000);
  assert.equal(parseRfc3339('2024-05-01t12:00:00z'), Date.UTC(2024, 4, 1, 12) * 1000);
  assert.equal(parseRfc3339('2024-05-01 12:00:00Z'), Date.UTC(2024, 4, 1, 12) * 1000);
  assert.equal(parseRfc3339('2024-05-01T14:30:00+02:30'), Date.UTC(2024, 4, 1, 12) * 1000);
  assert.equal(parseRfc3339('2024-05-01T09:00:00-03:00'), Date.UTC(2024, 4, 1, 12) * 1000);
  assert.equal(parseRfc3339('2024-05-01T12:00:00-00:00'), Date.UTC(2024, 4, 1, 12) * 1000);
});

test('RFC 3339: fractions keep µs and truncate finer digits', () => {
  const base = Date.UTC(2024, 0, 1) * 1000;
  assert.equal(parseRfc3339('2024-01-01T00:00:00.1Z'), base + 100_000);
  assert.equal(parseRfc3339('2024-01-01T00:00:00.123Z'), base + 123_000);
  assert.equal(parseRfc3339('2024-01-01T00:00:00.123456Z'), base + 123_456);
  assert.equal(parseRfc3339('2024-01-01T00:00:00.123456999Z'), base + 123_456);
  assert.equal(parseRfc3339('2024-01-01T00:00:00.0000009Z'), base);
  // before the epoch, truncating digits moves toward the past (floor), like the string reads
  assert.equal(parseRfc3339('1969-12-31T23:59:59.9999999Z'), -1);
  assert.equal(parseRfc3339('1969-12-31T23:59:59.000001Z'), -999_999);
});

test('RFC 3339: calendar validation, leap years', () => {
  assert.equal(parseRfc3339('2024-02-29T00:00:00Z'), Date.UTC(2024, 1, 29) * 1000);
  assert.equal(parseRfc3339('2000-02-29T00:00:00Z'), Date.UTC(2000, 1, 29) * 1000);
  assert.throws(() => parseRfc3339('2023-02-29T00:00:00Z'), /day 29 is not in 01\.\.28/);
  assert.throws(() => parseRfc3339('1900-02-29T00:00:00Z'), /day 29/);
  assert.throws(() => parseRfc3339('2024-04-31T00:00:00Z'), /day 31 is not in 01\.\.30/);
  assert.throws(() => parseRfc3339('2024-13-01T00:00:00Z'), /month 13/);
  assert.throws(() => parseRfc3339('2024-00-01T00:00:00Z'), /month 00/);
  assert.throws(() => parseRfc3339('2024-01-01T24:00:00Z'), /hour 24/);
  assert.throws(() => parseRfc3339('2024-01-01T00:60:00Z'), /minute 60/);
  assert.throws(() => parseRfc3339('2016-12-31T23:59:60Z'), /leap seconds/);
  assert.throws(() => parseRfc3339('2024-01-01T00:00:00+24:00'), /offset \+24:00/);
  assert.throws(() => parseRfc3339('0000-01-01T00:00:00Z'), /year 0000/);
});

test('RFC 3339: malformed strings name the input and the expected form', () => {
  for (const bad of [
    '',
    '2024-01-01',
    '2024-01-01T00:00:00',
    '2024-01-01T00:00Z',
    '2024-1-01T00:00:00Z',
    '2024-01-01T00:00:00.Z',
    'yesterday',
    '2024-01-01T00:00:00+0100',
    ' 2024-01-01T00:00:00Z',
  ]) {
    assert.throws(
      () => parseRfc3339(bad),
      (e: unknown) =>
        e instanceof TimestampError && e.message.includes(JSON.stringify(bad)) && /RFC 3339/.test(e.message),
      bad,
    );
  }
  assert.throws(() => parseRfc3339('x'.repeat(1000)), /not an RFC 3339/);
});

test('range: inside the safe-integer µs range only, with the range in the error', () => {
  assert.equal(parseRfc3339('2255-06-05T23:47:34.740991Z'), MAX_TIMESTAMP_US);
  assert.equal(parseRfc3339('1684-07-28T00:12:25.259009Z'), MIN_TIMESTAMP_US);
  assert.throws(
    () => parseRfc3339('2255-06-05T23:47:34.740992Z'),
    /outside the supported range 1684-07-28T00:12:25\.259009Z\.\.2255/,
  );
  assert.throws(() => parseRfc3339('1684-07-28T00:12:25.259008Z'), /outside the supported range/);
  assert.throws(() => parseRfc3339('9999-12-31T23:59:59Z'), /outside the supported range/);
  assert.throws(() => parseRfc3339('0001-01-01T00:00:00Z'), /outside the supported range/);
});

test('epoch numbers in s, ms, us, ns', () => {
  assert.equal(parseEpoch(1_700_000_000, 's'), 1_700_000_000_000_000);
  assert.equal(parseEpoch(1_700_000_000.123456, 's'), 1_700_000_000_123_456);
  assert.equal(parseEpoch(1_700_000_000_123, 'ms'), 1_700_000_000_123_000);
  assert.equal(parseEpoch(1_700_000_000_123.456, 'ms'), 1_700_000_000_123_456);
  assert.equal(parseEpoch(1_700_000_000_123_456, 'us'), 1_700_000_000_123_456);
  assert.equal(parseEpoch('1700000000123456789', 'ns'), 1_700_000_000_123_456);
  assert.equal(parseEpoch(1.7e15, 'us'), 1_700_000_000_000_000);
  assert.equal(parseEpoch('1.7e9', 's'), 1_700_000_000_000_000);
  assert.equal(parseEpoch(0, 'ns'), 0);
  assert.equal(parseEpoch('-0', 's'), 0);
  assert.equal(parseEpoch(999, 'ns'), 0);
  assert.equal(parseEpoch(-1, 'ns'), -1);
  assert.equal(parseEpoch(-1500, 'ns'), -2);
  assert.equal(parseEpoch(-1.5, 'us'), -2);
  assert.equal(parseEpoch('1e-999999', 's'), 0);
  assert.equal(parseEpoch('-1e-999999', 's'), -1);
});

test('epoch: bad input and out of range', () => {
  assert.throws(() => parseEpoch(NaN, 'ms'), /not a finite number/);
  assert.throws(() => parseEpoch(Infinity, 'ms'), /not a finite number/);
  assert.throws(() => parseEpoch('12abc', 'ms'), /"12abc" is not a decimal number/);
  assert.throws(() => parseEpoch(1, 'm' as never), /precision "m" is not one of s, ms, us, ns/);
  assert.throws(() => parseEpoch(1e300, 's'), /outside the supported range/);
  assert.throws(() => parseEpoch('1e999999999', 's'), /outside the supported range/);
  assert.throws(() => parseEpoch(MAX_TIMESTAMP_US + 1, 'us'), /outside/);
  assert.equal(parseEpoch(String(MAX_TIMESTAMP_US), 'us'), MAX_TIMESTAMP_US);
  assert.equal(parseEpoch(String(MIN_TIMESTAMP_US), 'us'), MIN_TIMESTAMP_US);
  assert.throws(() => parseEpoch('9007199254740992', 'us'), /outside/);
});

test('parseTimestamp: a bare number needs a precision', () => {
  assert.equal(parseTimestamp('1970-01-01T00:00:01Z'), 1_000_000);
  assert.equal(parseTimestamp(1, 's'), 1_000_000);
  assert.equal(parseTimestamp('1', 's'), 1_000_000);
  assert.throws(() => parseTimestamp(1), /give its precision/);
  assert.throws(() => parseTimestamp(null), /got null/);
  assert.throws(() => parseTimestamp({}, 'ms'), /got object/);
});

test('format: ms always, µs only when needed', () => {
  assert.equal(formatRfc3339(0), '1970-01-01T00:00:00.000Z');
  assert.equal(formatRfc3339(1_000), '1970-01-01T00:00:00.001Z');
  assert.equal(formatRfc3339(1), '1970-01-01T00:00:00.000001Z');
  assert.equal(formatRfc3339(-1), '1969-12-31T23:59:59.999999Z');
  assert.equal(formatRfc3339(MAX_TIMESTAMP_US), '2255-06-05T23:47:34.740991Z');
  assert.equal(formatRfc3339(MIN_TIMESTAMP_US), '1684-07-28T00:12:25.259009Z');
  assert.throws(() => formatRfc3339(1.5), /cannot format 1\.5/);
});

test('property: format agrees with Date#toISOString on whole milliseconds', () => {
  fc.assert(
    fc.property(fc.integer({ min: -8.64e12, max: 8.64e12 }), (ms) => {
      const d = new Date(ms);
      if (d.getUTCFullYear() < 1685 || d.getUTCFullYear() > 2254) return true;
      return formatRfc3339(ms * 1000) === d.toISOString();
    }),
  );
});

test('property: parse(format(us)) === us over the whole range', () => {
  fc.assert(
    fc.property(
      fc.integer({ min: MIN_TIMESTAMP_US, max: MAX_TIMESTAMP_US }),
      (us) => parseRfc3339(formatRfc3339(us)) === us,
    ),
  );
  fc.assert(
    fc.property(fc.integer({ min: -1e13, max: 1e13 }), (us) => parseRfc3339(formatRfc3339(us)) === us),
  );
});

test('property: epoch and RFC 3339 agree, including sub-µs truncation', () => {
  fc.assert(
    fc.property(fc.integer({ min: -2e15, max: 2e15 }), fc.integer({ min: 0, max: 999 }), (us, ns) => {
      const iso = formatRfc3339(us);
      const withNs =
        iso.length === 27
          ? iso.replace('Z', String(ns).padStart(3, '0') + 'Z')
          : iso.replace('Z', '000' + String(ns).padStart(3, '0') + 'Z');
      const nsText = (BigInt(us) * 1000n + BigInt(ns)).toString();
      return parseRfc3339(withNs) === us && parseEpoch(nsText, 'ns') === us;
    }),
  );
});
