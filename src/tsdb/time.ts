// Timestamps: integer microseconds since the Unix epoch (the engine's `ts`).
//
// The representable range is the JS safe-integer range of microseconds, about ±285 years around
// 1970 (1684-07-28T00:12:25.259009Z .. 2255-06-05T23:47:34.740991Z). RFC 3339 allows years
// 0001..9999, but outside the safe range a JS number would silently lose microseconds, so such
// instants are rejected with an error that says so rather than stored inexactly.
//
// Finer-than-microsecond input is truncated toward the past (floor): that is what dropping the
// extra fraction digits of an RFC 3339 string means, so an epoch number and the equivalent
// date-time string always give the same `ts`, before 1970 too.

export const MAX_TIMESTAMP_US = Number.MAX_SAFE_INTEGER;
export const MIN_TIMESTAMP_US = -Number.MAX_SAFE_INTEGER;

export type EpochPrecision = 's' | 'ms' | 'us' | 'ns';
export const EPOCH_PRECISIONS: readonly EpochPrecision[] = ['s', 'ms', 'us', 'ns'];

/** Any timestamp that cannot be parsed or is out of range; the message names the input. */
export class TimestampError extends RangeError {
  constructor(message: string) {
    super(message);
    this.name = 'TimestampError';
  }
}

const RANGE_TEXT = '1684-07-28T00:12:25.259009Z..2255-06-05T23:47:34.740991Z';

// Howard Hinnant's days_from_civil: proleptic Gregorian date → days since 1970-01-01.
function daysFromCivil(y: number, m: number, d: number): number {
  const yy = m <= 2 ? y - 1 : y;
  const era = Math.floor(yy / 400);
  const yoe = yy - era * 400;
  const doy = Math.floor((153 * (m > 2 ? m - 3 : m + 9) + 2) / 5) + d - 1;
  const doe = yoe * 365 + Math.floor(yoe / 4) - Math.floor(yoe / 100) + doy;
  return era * 146097 + doe - 719468;
}

function civilFromDays(days: number): [number, number, number] {
  const z = days + 719468;
  const era = Math.floor(z / 146097);
  const doe = z - era * 146097;
  const yoe = Math.floor(
    (doe - Math.floor(doe / 1460) + Math.floor(doe / 36524) - Math.floor(doe / 146096)) / 365,
  );
  const doy = doe - (365 * yoe + Math.floor(yoe / 4) - Math.floor(yoe / 100));
  const mp = Math.floor((5 * doy + 2) / 153);
  const d = doy - Math.floor((153 * mp + 2) / 5) + 1;
  const m = mp < 10 ? mp + 3 : mp - 9;
  return [m <= 2 ? yoe + era * 400 + 1 : yoe + era * 400, m, d];
}

function isLeap(y: number): boolean {
  return (y % 4 === 0 && y % 100 !== 0) || y % 400 === 0;
}

const DAYS_IN_MONTH = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

// RFC 3339 §5.6 date-time. 't'/'z' and a space separator are accepted (the RFC allows them).
const RFC3339_RE =
  /^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(?:([Zz])|([+-])(\d{2}):(\d{2}))$/;

/** Parses an RFC 3339 date-time to integer µs since the epoch (sub-µs digits are truncated). */
export function parseRfc3339(input: string): number {
  if (typeof input !== 'string') {
    throw new TimestampError(`timestamp must be an RFC 3339 string; got ${typeof input}`);
  }
  const shown = input.length > 64 ? JSON.stringify(input.slice(0, 64)) + '…' : JSON.stringify(input);
  const m = input.length <= 64 ? RFC3339_RE.exec(input) : null;
  if (!m) {
    throw new TimestampError(
      `timestamp ${shown} is not an RFC 3339 date-time; expected e.g. 2024-05-01T12:00:00.123456Z`,
    );
  }
  const year = Number(m[1]);
  const month = Number(m[2]);
  const day = Number(m[3]);
  const hour = Number(m[4]);
  const minute = Number(m[5]);
  const second = Number(m[6]);
  if (year < 1) throw new TimestampError(`timestamp ${shown}: year 0000 is outside 0001..9999`);
  if (month < 1 || month > 12) throw new TimestampError(`timestamp ${shown}: month ${m[2]} is not in 01..12`);
  const dim = month === 2 && isLeap(year) ? 29 : DAYS_IN_MONTH[month - 1]!;
  if (day < 1 || day > dim)
    throw new TimestampError(`timestamp ${shown}: day ${m[3]} is not in 01..${dim} for that month`);
  if (hour > 23) throw new TimestampError(`timestamp ${shown}: hour ${m[4]} is not in 00..23`);
  if (minute > 59) throw new TimestampError(`timestamp ${shown}: minute ${m[5]} is not in 00..59`);
  if (second > 59) {
    // Leap seconds cannot be represented in a POSIX-style µs count without ambiguity.
    throw new TimestampError(
      `timestamp ${shown}: second ${m[6]} is not in 00..59 (leap seconds are not supported)`,
    );
  }
  let offsetSeconds = 0;
  if (m[9] !== undefined) {
    const oh = Number(m[10]);
    const om = Number(m[11]);
    if (oh > 23 || om > 59)
      throw new TimestampError(
        `timestamp ${shown}: offset ${m[9]}${m[10]}:${m[11]} is not a valid UTC offset`,
      );
    offsetSeconds = (m[9] === '-' ? -1 : 1) * (oh * 3600 + om * 60);
  }
  const frac = m[7] ?? '';
  const fracUs = Number((frac + '000000').slice(0, 6));
  const seconds =
    daysFromCivil(year, month, day) * 86400 + hour * 3600 + minute * 60 + second - offsetSeconds;
  const us = seconds * 1_000_000 + fracUs;
  if (!Number.isSafeInteger(us)) {
    throw new TimestampError(`timestamp ${shown} is outside the supported range ${RANGE_TEXT}`);
  }
  return us;
}

const DECIMAL_RE = /^([+-]?)(\d+)(?:\.(\d*))?(?:[eE]([+-]?\d+))?$/;
const SCALE: Record<EpochPrecision, number> = { s: 6, ms: 3, us: 0, ns: -3 };

/**
 * Converts an epoch number in the given precision to µs. Strings are read as exact decimals, so
 * pass nanoseconds beyond 2^53 as a string to keep every digit; a JS number is taken at its
 * shortest decimal form (what JSON.parse produced from the request).
 */
export function parseEpoch(value: number | string, precision: EpochPrecision): number {
  if (!Object.hasOwn(SCALE, precision)) {
    throw new TimestampError(`epoch precision ${JSON.stringify(precision)} is not one of s, ms, us, ns`);
  }
  let text: string;
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new TimestampError(`epoch timestamp ${value} is not a finite number`);
    text = String(value);
  } else if (typeof value === 'string') {
    text = value.trim();
  } else {
    throw new TimestampError(`epoch timestamp must be a number or a numeric string; got ${typeof value}`);
  }
  const shown = JSON.stringify(text.length > 64 ? text.slice(0, 64) + '…' : text);
  const m = text.length <= 400 ? DECIMAL_RE.exec(text) : null;
  if (!m) throw new TimestampError(`epoch timestamp ${shown} is not a decimal number`);
  const intDigits = m[2]!;
  const fracDigits = m[3] ?? '';
  const exp = m[4] === undefined ? 0 : Number(m[4]);
  // value = digits × 10^power, in µs
  const digits = (intDigits + fracDigits).replace(/^0+(?=\d)/, '');
  const power = exp - fracDigits.length + SCALE[precision];
  const outOfRange = () =>
    new TimestampError(
      `epoch timestamp ${shown} (${precision}) is outside the supported range ${RANGE_TEXT}`,
    );
  if (digits === '0') return 0;
  // More than ~17 significant integer digits of µs cannot be in range; stop before building huge BigInts.
  if (digits.length + power > 17) throw outOfRange();
  const negative = m[1] === '-';
  let n = BigInt(digits);
  if (power >= 0) {
    n *= 10n ** BigInt(power);
  } else if (-power > digits.length) {
    // |value| < 1 µs (and non-zero): floor gives 0 or -1. Avoids building 10^huge for "1e-999999".
    return negative ? -1 : 0;
  } else {
    const div = 10n ** BigInt(-power);
    const q = n / div;
    // floor for negative values: any dropped remainder moves one µs further into the past
    n = negative && q * div !== n ? q + 1n : q;
  }
  if (negative) n = -n;
  if (n > BigInt(MAX_TIMESTAMP_US) || n < BigInt(MIN_TIMESTAMP_US)) throw outOfRange();
  return Number(n);
}

/**
 * Parses a timestamp as the API receives it: an RFC 3339 string, or an epoch number (or numeric
 * string) when `precision` is given. A number without a precision is rejected because its unit
 * would be a guess.
 */
export function parseTimestamp(input: unknown, precision?: EpochPrecision): number {
  if (precision !== undefined) {
    if (typeof input !== 'number' && typeof input !== 'string') {
      throw new TimestampError(
        `epoch timestamp must be a number or a numeric string; got ${input === null ? 'null' : typeof input}`,
      );
    }
    return parseEpoch(input, precision);
  }
  if (typeof input === 'number') {
    throw new TimestampError(
      `timestamp ${input} is a number; give its precision (s, ms, us or ns) or send an RFC 3339 string`,
    );
  }
  if (typeof input !== 'string') {
    throw new TimestampError(
      `timestamp must be an RFC 3339 string; got ${input === null ? 'null' : typeof input}`,
    );
  }
  return parseRfc3339(input);
}

function pad(n: number, w: number): string {
  return String(n).padStart(w, '0');
}

/**
 * Formats µs as RFC 3339 UTC: milliseconds always (like Date#toISOString), microseconds only
 * when the value has a sub-millisecond part.
 */
export function formatRfc3339(us: number): string {
  if (!Number.isSafeInteger(us)) {
    throw new TimestampError(
      `cannot format ${us}: expected an integer number of microseconds within ±(2^53-1)`,
    );
  }
  const seconds = Math.floor(us / 1_000_000);
  const fracUs = us - seconds * 1_000_000;
  const days = Math.floor(seconds / 86400);
  const sod = seconds - days * 86400;
  const [y, mo, d] = civilFromDays(days);
  const hh = Math.floor(sod / 3600);
  const mi = Math.floor((sod % 3600) / 60);
  const ss = sod % 60;
  const frac = fracUs % 1000 === 0 ? pad(fracUs / 1000, 3) : pad(fracUs, 6);
  return `${pad(y, 4)}-${pad(mo, 2)}-${pad(d, 2)}T${pad(hh, 2)}:${pad(mi, 2)}:${pad(ss, 2)}.${frac}Z`;
}
