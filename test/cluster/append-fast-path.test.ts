// POST /raft/append without express (src/node/raft/append-fast-path.ts) answers like raftRouter:
// two single-member Raft nodes, one with the fast paths (default) and one without
// (TIMESTORE_FAST_WRITE=0), get the same good and bad append requests on one keep-alive connection;
// status, header names and bodies must match, and both must still serve.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { answersOf, appendBody, soloMember, stoppedAfter, type Case } from './fast-path-compare.js';

const nodes = stoppedAfter();

const append = appendBody;

const cases: Case[] = [
  { what: 'a stale heartbeat (term 0)', body: append() },
  { what: 'a negative term', body: '{"term":-1}' },
  { what: 'malformed JSON', body: '{"term":' },
  { what: 'a JSON string', body: '"x"' },
  {
    what: 'a BOM before the object',
    body: Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(append())]),
  },
  { what: 'addressed to another node', body: append({ to: 'zz' }) },
  {
    what: 'an entry index that does not follow prevLogIndex',
    body: append({ entries: [{ term: 0, command: '{}', index: 7 }] }),
  },
  { what: 'entries that are not an array', body: append({ entries: {} }) },
  { what: 'another content type', body: append(), contentType: 'text/plain' },
  { what: 'a stale heartbeat again', body: append() },
];

test('the /raft/append fast path answers every request like raftRouter', async () => {
  const fast = await soloMember(nodes, 'a');
  const slow = await soloMember(nodes, 'a', { TIMESTORE_FAST_WRITE: '0' });
  const out = {
    fast: await answersOf(fast, cases, '/raft/append'),
    slow: await answersOf(slow, cases, '/raft/append'),
  };
  for (const [name, n] of [
    ['fast', fast],
    ['slow', slow],
  ] as const) {
    // Still a working node: it takes a write.
    const w = await fetch(`${n.url}/api/timeseries`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ deviceId: 'd', timestamp: '2024-01-01T00:00:00Z', value: 1 }),
    });
    assert.equal(w.status, 201, name);
  }
  cases.forEach((c, i) => assert.deepEqual(out.fast[i], out.slow[i], c.what));
  assert.equal(out.fast[0]!.status, 200);
  assert.equal(out.fast[1]!.status, 400);
  // The request metric is recorded either way.
  for (const n of [fast, slow]) {
    const text = await (await fetch(`${n.url}/metrics`)).text();
    assert.match(
      text,
      /timestore_http_request_duration_seconds_count\{method="POST",route="\/raft\/append",status="200"\} [1-9]/,
    );
  }
});
