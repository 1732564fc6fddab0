// The OpenAPI document's patterns and bounds (src/tsdb/patterns.ts) agree with the parsers that
// really validate: every string a pattern allows is accepted, and (inside the pattern's years)
// every accepted string matches. A deliberately wrong pattern is caught by the same property.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import {
  PATTERN_YEARS,
  aggregateListPattern,
  durationPattern,
  epochBounds,
  rfc3339Pattern,
} from '../../src/tsdb/patterns.js';
import { aggregateFns, deviceQuerySchema } from '../../src/tsdb/schemas.js';
import { parseEpoch, parseRfc3339, EPOCH_PRECISIONS } from '../../src/tsdb/time.js';

const parses = (s: string) => {
  try {
    parseRfc3339(s);
    return true;
  } catch {
    return false;
  }
};

const pad = (n: number, w = 2) => String(n).padStart(w, '0');
/** Date-time-shaped strings, valid or not: out-of-range fields, odd separators, long fractions. */
const dateTimeish = fc
  .record({
    y: fc.integer({ min: 1600, max: 2350 }),
    mo: fc.integer({ min: 0, max: 13 }),
    d: fc.integer({ min: 0, max: 32 }),
    h: fc.integer({ min: 0, max: 24 }),
    mi: fc.integer({ min: 0, max: 60 }),
    s: fc.integer({ min: 0, max: 60 }),
    sep: fc.constantFrom('T', 't', ' ', '_'),
    frac: fc.option(fc.stringMatching(/^[0-9]{1,45}$/), { nil: undefined }),
    zone: fc.oneof(
      fc.constantFrom('Z', 'z', '', 'UTC'),
      fc
        .tuple(fc.constantFrom('+', '-'), fc.integer({ min: 0, max: 24 }), fc.integer({ min: 0, max: 60 }))
        .map(([sg, oh, om]) => `${sg}${pad(oh)}:${pad(om)}`),
    ),
  })
  .map(
    (t) =>
      `${pad(t.y, 4)}-${pad(t.mo)}-${pad(t.d)}${t.sep}${pad(t.h)}:${pad(t.mi)}:${pad(t.s)}` +
      `${t.frac === undefined ? '' : `.${t.frac}`}${t.zone}`,
  );

/** The agreement property for an RFC 3339 pattern; returns fast-check's verdict. */
function agreement(pattern: string, numRuns: number) {
  const re = new RegExp(pattern);
  return fc.check(
    fc.property(dateTimeish, (s) => {
      const year = Number(s.slice(0, 4));
      const inYears = year >= PATTERN_YEARS.first && year <= PATTERN_YEARS.last;
      if (re.test(s)) return parses(s);
      return !(inYears && parses(s));
    }),
    { numRuns, seed: 6 },
  );
}

describe('OpenAPI patterns agree with the parsers', () => {
  it('every string the RFC 3339 pattern generates is accepted by parseRfc3339', () => {
    fc.assert(
      fc.property(fc.stringMatching(new RegExp(rfc3339Pattern)), (s) => parses(s)),
      { numRuns: 3000, seed: 5 },
    );
  });

  it('a date-time is matched by the pattern exactly when parseRfc3339 accepts it (inside the years)', () => {
    const r = agreement(rfc3339Pattern, 20_000);
    assert.equal(r.failed, false, `counterexample: ${JSON.stringify(r.counterexample)}`);
  });

  it('the agreement property catches a pattern that allows 30 February', () => {
    const planted = rfc3339Pattern.replace('(?:0[13-9]|1[0-2])-(?:29|30)', '(?:0[1-9]|1[0-2])-(?:29|30)');
    assert.notEqual(planted, rfc3339Pattern, 'the planted bug must change the pattern');
    assert.equal(agreement(planted, 20_000).failed, true);
  });

  it('epoch bounds: the numbers just inside are accepted, the bounds themselves refused', () => {
    for (const p of EPOCH_PRECISIONS) {
      const { exclusiveMinimum: lo, exclusiveMaximum: hi } = epochBounds(p);
      assert.throws(() => parseEpoch(lo, p), RangeError, `${p} ${lo}`);
      assert.throws(() => parseEpoch(hi, p), RangeError, `${p} ${hi}`);
      // The largest double below hi (and the smallest above lo) is still in range.
      const below = (x: number) => x - Math.abs(x) * Number.EPSILON;
      assert.doesNotThrow(() => parseEpoch(below(hi), p), `${p} ${below(hi)}`);
      assert.doesNotThrow(() => parseEpoch(-below(-lo), p), `${p} ${-below(-lo)}`);
    }
  });

  it('aggregate and interval values the patterns generate are accepted by the device query', () => {
    fc.assert(
      fc.property(
        fc.stringMatching(new RegExp(aggregateListPattern(aggregateFns))),
        fc.stringMatching(new RegExp(durationPattern(['us', 'ms', 's', 'm', 'h', 'd', 'w']))),
        (aggregate, interval) => deviceQuerySchema.safeParse({ aggregate, interval }).success,
      ),
      { numRuns: 2000, seed: 7 },
    );
  });
});
