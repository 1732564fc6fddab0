// JSON Schema descriptions (regular expressions and numeric bounds) of what the parsers in time.ts
// and schemas.ts accept, so the OpenAPI document tells generators such as schemathesis exactly
// which strings are valid instead of "any string". The zod schemas keep validating with the
// parsers (their error messages name the bad part); these patterns go into the document through
// the schemas' metadata, and test/tsdb/patterns.test.ts proves pattern and parser agree.
//
// Patterns are written for both ECMAScript and Python `re` (schemathesis generates from them):
// explicit [0-9] instead of \d (Unicode digits in Python), no lookarounds, no flags.
import { EPOCH_PRECISIONS, MAX_TIMESTAMP_US, parseEpoch, type EpochPrecision } from './time.js';

/**
 * Years whose every instant, at any UTC offset, is inside the µs range of time.ts
 * (1684-07-28..2255-06-05). The few months at either end are left out rather than spelt out to the
 * second: the pattern describes a subset of the accepted strings, never a superset.
 */
export const PATTERN_YEARS = { first: 1685, last: 2254 } as const;

const isLeap = (y: number) => (y % 4 === 0 && y % 100 !== 0) || y % 400 === 0;

/** Longest RFC 3339 input parseRfc3339 reads (longer strings are refused before parsing). */
const RFC3339_MAX_LENGTH = 64;
/** Fraction digits that always fit in RFC3339_MAX_LENGTH: 64 - 19 (date and time) - 1 (".") - 6 (offset). */
const MAX_FRACTION_DIGITS = RFC3339_MAX_LENGTH - 19 - 1 - 6;

function yearAlternatives(years: number[]): string {
  return years.map(String).join('|');
}

/** RFC 3339 date-time (as parseRfc3339 reads it) with a year in PATTERN_YEARS, unanchored. */
function rfc3339Body(): string {
  const years: number[] = [];
  for (let y = PATTERN_YEARS.first; y <= PATTERN_YEARS.last; y++) years.push(y);
  const anyYear = `(?:${yearAlternatives(years)})`;
  const leapYear = `(?:${yearAlternatives(years.filter(isLeap))})`;
  const monthDay =
    '(?:(?:0[1-9]|1[0-2])-(?:0[1-9]|1[0-9]|2[0-8])' + // every month has days 01..28
    '|(?:0[13-9]|1[0-2])-(?:29|30)' + // all but February have 29 and 30
    '|(?:0[13578]|1[02])-31)'; // the long months have 31
  const date = `(?:${anyYear}-${monthDay}|${leapYear}-02-29)`;
  const time =
    '[Tt ](?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]' +
    `(?:\\.[0-9]{1,${MAX_FRACTION_DIGITS}})?` +
    '(?:[Zz]|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])';
  return `${date}${time}`;
}

/** An RFC 3339 date-time that parseRfc3339 accepts (years PATTERN_YEARS), anchored. */
export const rfc3339Pattern = `^${rfc3339Body()}$`;

/** Aggregate function lists as the device query reads them: comma-separated names, no blanks. */
export function aggregateListPattern(fns: readonly string[]): string {
  const one = `(?:${fns.join('|')})`;
  return `^${one}(?:,${one})*$`;
}

/**
 * Durations of aggregation buckets: 1..9999 of a unit. The parser takes any positive whole number
 * whose µs fit a safe integer; four digits keep even weeks (9999 w = 6.0e15 µs) inside that.
 */
export function durationPattern(units: readonly string[]): string {
  return `^[1-9][0-9]{0,3}(?:${units.join('|')})$`;
}

const SCALE: Record<EpochPrecision, number> = { s: 6, ms: 3, us: 0, ns: -3 };

/** The adjacent double in direction `dir` (+1 up, -1 down); x is finite. */
function nextDouble(x: number, dir: 1 | -1): number {
  if (x === 0) return dir * Number.MIN_VALUE;
  const bits = new BigInt64Array(new Float64Array([x]).buffer);
  bits[0]! += x > 0 === dir > 0 ? 1n : -1n;
  return new Float64Array(bits.buffer)[0]!;
}

function accepts(x: number, precision: EpochPrecision): boolean {
  try {
    parseEpoch(x, precision);
    return true;
  } catch {
    return false;
  }
}

/** The first double beyond the accepted range in direction `dir`, walking from a double near it. */
function firstRefused(near: number, dir: 1 | -1, precision: EpochPrecision): number {
  let x = near;
  if (accepts(x, precision)) {
    while (accepts(x, precision)) x = nextDouble(x, dir);
    return x;
  }
  while (!accepts(nextDouble(x, -dir as 1 | -1), precision)) x = nextDouble(x, -dir as 1 | -1);
  return x;
}

/**
 * The numbers parseEpoch accepts for each precision, as exclusive JSON Schema bounds: the first
 * doubles on either side that it refuses. parseEpoch reads a number at its shortest decimal form,
 * and at the edges (±(2^53-1) µs) the doubles are not those decimals, so the bounds are found by
 * asking parseEpoch rather than computed from 2^53.
 */
export function epochBounds(precision: EpochPrecision): {
  exclusiveMinimum: number;
  exclusiveMaximum: number;
} {
  const near = Number(`${MAX_TIMESTAMP_US}e${-SCALE[precision]}`);
  return {
    exclusiveMinimum: firstRefused(-near, -1, precision),
    exclusiveMaximum: firstRefused(near, 1, precision),
  };
}

/**
 * The JSON Schema rule "a numeric timestamp needs its precision, and must be in range for it":
 * an entry's timestamp is a string, or it is a number and `precision` says its unit.
 */
export function numericTimestampRule(): Record<string, unknown> {
  return {
    anyOf: [
      { properties: { timestamp: { type: 'string' } } },
      ...EPOCH_PRECISIONS.map((p) => ({
        required: ['precision'],
        properties: { precision: { const: p }, timestamp: { type: 'number', ...epochBounds(p) } },
      })),
    ],
  };
}
