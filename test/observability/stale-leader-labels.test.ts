// The demotion rules of stale-leader-labels.ts with a scripted transport (the decisions and the
// conflict handling); the real API server run is test/k8s/leader-label.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  createLeaderLabeler,
  LEADER_TERM_ANNOTATION,
  ROLE_LABEL,
  roleLabelPatch,
  type KubeTarget,
  type PatchTransport,
} from '../../src/observability/leader-label.js';
import { isStaleLeaderLabel, staleLeaderDemoter } from '../../src/observability/stale-leader-labels.js';

const target: KubeTarget = { apiServer: 'https://k8s', namespace: 'ns', podName: 'p0', token: () => 't' };

const pod = (role: string | undefined, term: string | undefined, rv = '1') => ({
  metadata: {
    resourceVersion: rv,
    ...(role ? { labels: { [ROLE_LABEL]: role } } : {}),
    ...(term !== undefined ? { annotations: { [LEADER_TERM_ANNOTATION]: term } } : {}),
  },
});

test('stale: a leader label from an older term (or without a term); never our term, a later one, or a follower', () => {
  assert.equal(isStaleLeaderLabel(pod('leader', '3').metadata, 5), true);
  assert.equal(isStaleLeaderLabel(pod('leader', undefined).metadata, 5), true, 'no annotation = term 0');
  assert.equal(isStaleLeaderLabel(pod('leader', '5').metadata, 5), false, 'same term');
  assert.equal(isStaleLeaderLabel(pod('leader', '7').metadata, 5), false, 'a later leader');
  assert.equal(isStaleLeaderLabel(pod('leader', 'x').metadata, 5), false, 'unreadable term: left alone');
  assert.equal(isStaleLeaderLabel(pod('follower', '3').metadata, 5), false);
  assert.equal(isStaleLeaderLabel(pod(undefined, undefined).metadata, 5), false);
});

/** A transport answering from a script of (method, pod) -> response, recording every request. */
function scripted(answers: Array<{ status: number; body?: unknown }>) {
  const seen: Array<{ method: string; url: string; body: unknown }> = [];
  const transport: PatchTransport = async (req) => {
    seen.push({ method: req.method, url: req.url, body: req.body ? JSON.parse(req.body) : null });
    const a = answers.shift();
    if (!a) throw new Error(`unexpected ${req.method} ${req.url}`);
    return { status: a.status, body: JSON.stringify(a.body ?? {}) };
  };
  return { transport, seen };
}

test('demotes an older leader label with a conditional patch; leaves others alone', async () => {
  const { transport, seen } = scripted([
    { status: 200, body: pod('leader', '3', '41') }, // p1: stale
    { status: 200, body: {} }, // its PATCH
    { status: 200, body: pod('follower', undefined) }, // p2: fine
    { status: 404 }, // p3: no such pod (ids that are not pod names)
  ]);
  const demote = staleLeaderDemoter({ target, transport });
  const out = await demote(['p1', 'p2', 'p3'], 5, () => true);
  assert.deepEqual(out, { p1: 'demoted', p2: 'not-stale', p3: 'no-such-pod' });
  assert.deepEqual(
    seen.map((r) => `${r.method} ${r.url}`),
    [
      'GET https://k8s/api/v1/namespaces/ns/pods/p1',
      'PATCH https://k8s/api/v1/namespaces/ns/pods/p1',
      'GET https://k8s/api/v1/namespaces/ns/pods/p2',
      'GET https://k8s/api/v1/namespaces/ns/pods/p3',
    ],
  );
  assert.deepEqual(seen[1]!.body, {
    metadata: { resourceVersion: '41', labels: { [ROLE_LABEL]: 'follower' } },
  });
});

test('a conflict (the pod changed since it was read) is read again: a newer leader there is left alone', async () => {
  const { transport, seen } = scripted([
    { status: 200, body: pod('leader', '3', '41') },
    { status: 409, body: { reason: 'Conflict' } }, // p1 relabelled itself in between
    { status: 200, body: pod('leader', '6', '42') }, // ...as leader of term 6 > 5
  ]);
  const out = await staleLeaderDemoter({ target, transport })(['p1'], 5, () => true);
  assert.deepEqual(out, { p1: 'not-stale' });
  assert.equal(seen.filter((r) => r.method === 'PATCH').length, 1, 'no second patch');
});

test('stops when this node is no longer the leader; errors are logged, never thrown', async () => {
  let leader = true;
  const { transport } = scripted([{ status: 200, body: pod('leader', '3') }]);
  const demote = staleLeaderDemoter({
    target,
    transport: async (req) => {
      const r = await transport(req);
      leader = false; // lost leadership while the GET was in flight
      return r;
    },
  });
  assert.deepEqual(await demote(['p1'], 5, () => leader), { p1: 'not-leader-any-more' });

  const warnings: string[] = [];
  const delays: number[] = [];
  const failing = staleLeaderDemoter({
    target,
    transport: async () => ({ status: 403, body: 'forbidden' }),
    logger: { info() {}, warn: (_o, m) => void warnings.push(m ?? '') },
    sleep: async (ms) => void delays.push(ms),
  });
  assert.deepEqual(await failing(['p1'], 5, () => true), { p1: 'failed' });
  assert.equal(warnings.length, 4, 'one warning per pass');
  assert.deepEqual(delays, [1000, 2000, 4000]);
});

test('a pod that failed is tried again on a later pass; the others are not asked twice', async () => {
  const { transport, seen } = scripted([
    { status: 503, body: 'unavailable' }, // p1, pass 1
    { status: 200, body: pod('follower', undefined) }, // p2, pass 1
    { status: 200, body: pod('leader', '2', '7') }, // p1, pass 2
    { status: 200, body: {} }, // its PATCH
  ]);
  const demote = staleLeaderDemoter({ target, transport, sleep: async () => {} });
  assert.deepEqual(await demote(['p1', 'p2'], 5, () => true), { p1: 'demoted', p2: 'not-stale' });
  assert.equal(seen.length, 4);
});

test('the labeler writes the term with the leader label and reports each applied label', async () => {
  const bodies: unknown[] = [];
  const applied: string[] = [];
  const labeler = createLeaderLabeler({
    target,
    transport: async (req) => {
      bodies.push(JSON.parse(req.body));
      return { status: 200, body: '{}' };
    },
    onApplied: (v, term) => void applied.push(`${v}/${term}`),
  })!;
  labeler.update('Leader', 4);
  await labeler.idle();
  labeler.update('Leader', 4); // same term: nothing
  await labeler.idle();
  labeler.update('Leader', 6); // re-elected in a later term: the annotation moves on
  await labeler.idle();
  labeler.update('Follower', 7);
  await labeler.idle();
  await labeler.stop();
  assert.deepEqual(bodies, [
    roleLabelPatch('leader', 4),
    roleLabelPatch('leader', 6),
    roleLabelPatch('follower'),
  ]);
  assert.deepEqual(applied, ['leader/4', 'leader/6', 'follower/null']);
  assert.deepEqual(roleLabelPatch('leader', 4), {
    metadata: { labels: { [ROLE_LABEL]: 'leader' }, annotations: { [LEADER_TERM_ANNOTATION]: '4' } },
  });
});
