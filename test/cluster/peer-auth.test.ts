// Peer authentication (--cluster-secret / TIMESTORE_CLUSTER_SECRET): a cluster whose nodes share a
// secret replicates and serves as usual (the transport sends it); peer and membership endpoints
// refuse requests without it, or with another one, with 401 problem+json and change nothing; a
// node with the wrong secret cannot join.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { get, post } from '../helpers/index.js';
import { carriesSecret, needsPeerAuth } from '../../src/node/raft/peer-auth.js';
import { Cluster, writeOne } from './harness.js';

const secret = 'test-secret-0123456789abcdef';
const clusters: Cluster[] = [];
after(async () => {
  await Promise.all(clusters.map((c) => c.close()));
});

test('which requests need the secret, and what carries it', () => {
  assert.equal(needsPeerAuth('POST', '/raft/append'), true);
  assert.equal(needsPeerAuth('PUT', '/raft/snapshot/chunk'), true);
  assert.equal(needsPeerAuth('POST', '/cluster/remove'), true);
  assert.equal(needsPeerAuth('GET', '/raft/status'), false);
  assert.equal(needsPeerAuth('GET', '/cluster/members'), false);
  assert.equal(needsPeerAuth('POST', '/api/timeseries'), false);
  assert.equal(needsPeerAuth('GET', '/raft/statusx'), true);
  assert.equal(carriesSecret(`Bearer ${secret}`, secret), true);
  assert.equal(carriesSecret(`Bearer ${secret}x`, secret), false);
  assert.equal(carriesSecret(secret, secret), false);
  assert.equal(carriesSecret(undefined, secret), false);
});

test('a cluster with a shared secret works; without the secret peer endpoints answer 401', async () => {
  const c = await Cluster.start({ env: { TIMESTORE_CLUSTER_SECRET: secret } });
  clusters.push(c);
  const leader = await c.leader();
  const [follower] = await c.followers();
  // Replication and forwarding carry the secret: a write through a follower is acknowledged.
  const w = await writeOne(follower!);
  assert.ok(w.ok, `write via a follower: ${w.status}`);

  const vote = { term: 999, candidateId: 'mallory', lastLogIndex: 9999, lastLogTerm: 999 };
  const cases: Array<[string, Record<string, unknown>, Record<string, string>]> = [
    ['/raft/vote', vote, {}],
    ['/raft/vote', vote, { authorization: 'Bearer not-the-secret-0123456789' }],
    ['/raft/forward', { command: { ops: [{ op: 'delete', id: w.id }] } }, {}],
    ['/cluster/remove', { id: follower!.id }, {}],
    ['/cluster/transfer-leadership', {}, { authorization: `Basic ${secret}` }],
  ];
  for (const [path, body, headers] of cases) {
    const r = await post(`${leader.url}${path}`, body, { headers });
    assert.equal(r.status, 401, `${path} ${JSON.stringify(headers)}: ${r.status} ${r.text}`);
    assert.match(r.contentType, /application\/problem\+json/);
    assert.equal((r.json as { status: number }).status, 401);
    assert.match(r.headers.get('www-authenticate') ?? '', /^Bearer/);
  }
  // Nothing changed: same leader and term, all three still members, the entry still there.
  const st = await leader.status();
  assert.equal(st.state, 'Leader');
  assert.ok(st.term < 999);
  assert.deepEqual(st.members.map((m) => m.id).sort(), ['n1', 'n2', 'n3']);
  const entry = await get(`${leader.url}/api/timeseries/${w.id}`);
  assert.equal(entry.status, 200);
  // Read-only status stays open (timestore status, dashboards).
  assert.equal((await get(`${leader.url}/raft/status`)).status, 200);
  // With the secret, membership requests are served.
  const ok = await post(
    `${leader.url}/cluster/transfer-leadership`,
    { to: follower!.id },
    { headers: { authorization: `Bearer ${secret}` }, timeoutMs: 30_000 },
  );
  assert.equal(ok.status, 200, ok.text);

  // A node with another secret cannot join: its join requests are refused with 401.
  const n4 = await c.addNode('n4', [
    '--join',
    follower!.url,
    '--cluster-secret',
    'another-secret-0123456789',
  ]);
  await n4.start();
  await n4.proc!.waitForOutput(
    /"status":401[^\n]*join request refused|join request refused[^\n]*"status":401/,
    60_000,
  );
  assert.ok(
    !(await (await c.leader(c.nodes.filter((n) => n !== n4))).status()).members.some((m) => m.id === 'n4'),
  );
});
