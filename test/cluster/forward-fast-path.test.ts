// POST /raft/forward without express (src/node/raft/forward-fast-path.ts) answers like the express
// route: two single-member Raft nodes (each its own leader), one with the fast paths (default) and
// one without (TIMESTORE_FAST_WRITE=0), get the same good and bad forward requests on one
// keep-alive connection; status, header names and bodies must match, and both must still serve.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { answersOf, pointId, putCommand, soloMember, stoppedAfter, type Case } from './fast-path-compare.js';

const nodes = stoppedAfter();

const put = putCommand;
const ID = pointId;

const cases: Case[] = [
  { what: 'one command', body: JSON.stringify({ command: put(ID(1), 'r1') }) },
  { what: 'the same request id again (deduplicated)', body: JSON.stringify({ command: put(ID(1), 'r1') }) },
  {
    what: 'a batch with a bad command in it',
    path: '/raft/forward?commands=3',
    body: JSON.stringify({ commands: [put(ID(2), 'r2'), put('not-a-uuid', 'r3'), put(ID(4), 'r4', 4)] }),
  },
  { what: 'a command the engine rejects', body: JSON.stringify({ command: put('not-a-uuid', 'r5') }) },
  { what: 'an empty batch', body: JSON.stringify({ commands: [] }) },
  { what: 'both forms at once', body: JSON.stringify({ command: put(ID(6), 'r6'), commands: [] }) },
  { what: 'neither form', body: '{}' },
  { what: 'malformed JSON', body: '{"command":' },
  { what: 'JSON null', body: 'null' },
  {
    what: 'a BOM before the object',
    body: Buffer.concat([
      Buffer.from([0xef, 0xbb, 0xbf]),
      Buffer.from(JSON.stringify({ command: put(ID(7), 'r7') })),
    ]),
  },
  {
    what: 'another content type',
    body: JSON.stringify({ command: put(ID(8), 'r8') }),
    contentType: 'text/plain',
  },
  { what: 'one command again', body: JSON.stringify({ command: put(ID(9), 'r9', 9) }) },
  {
    what: 'one command, answered once durable on the leader',
    body: JSON.stringify({ command: put(ID(10), 'r10'), ack: 'durable' }),
  },
  {
    what: 'a batch, answered once durable',
    body: JSON.stringify({ commands: [put(ID(11), 'r11'), put(ID(12), 'r12')], ack: 'durable' }),
  },
  { what: 'an unknown ack', body: JSON.stringify({ command: put(ID(13), 'r13'), ack: 'soon' }) },
];

test('the /raft/forward fast path answers every request like the express route', async () => {
  const fast = await soloMember(nodes, 'a');
  const slow = await soloMember(nodes, 'a', { TIMESTORE_FAST_WRITE: '0' });
  const out = {
    fast: await answersOf(fast, cases, '/raft/forward'),
    slow: await answersOf(slow, cases, '/raft/forward'),
  };
  for (const [i, c] of cases.entries())
    assert.deepEqual(out.fast[i], out.slow[i], `${c.what}: the fast path answered differently`);
  // The statuses themselves, so that two equally wrong answers do not pass.
  assert.deepEqual(
    out.fast.map((r) => r.status),
    // A BOM: the fast path leaves it to express, whose JSON parser accepts it.
    [200, 200, 200, 400, 400, 400, 400, 400, 400, 200, 200, 200, 200, 200, 400],
  );
  // Asked for, the answer says it was given once durable (not known committed); else not.
  assert.match(out.fast[12]!.body, /^\{"index":[^,]+,"term":[^,]+,"points":\[.*\],"durable":true\}$/);
  assert.equal((out.fast[13]!.body.match(/"durable":true/g) ?? []).length, 2);
  assert.doesNotMatch(out.fast[11]!.body, /durable/);
  assert.match(out.fast[14]!.body, /expected \\"committed\\" or \\"durable\\"/);
  assert.match(out.fast[2]!.body, /"results":\[\{"index".*"status":400.*\{"index"/);
  // Both still serve, and stored what the good forwards carried.
  for (const n of [fast, slow]) {
    const r = await fetch(`${n.url}/api/timeseries/${ID(9)}`);
    assert.equal(r.status, 200);
    assert.equal(((await r.json()) as { value: number }).value, 9);
  }
});
