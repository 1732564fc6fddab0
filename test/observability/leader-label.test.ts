// Unit tests of the leader labeler's logic with a fake transport: backoff, coalescing, stop, the
// in-cluster target. What it does against a real Kubernetes API server (the PATCH itself, RBAC,
// token re-reads, labels moving with leadership) is test/k8s/leader-label.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  createLeaderLabeler,
  desiredRoleLabel,
  inClusterTarget,
  roleLabelPatch,
  ROLE_LABEL,
  type KubeTarget,
  type PatchTransport,
} from '../../src/observability/leader-label.js';

test('desired label: only the leader is labelled leader', () => {
  assert.equal(desiredRoleLabel('Leader'), 'leader');
  for (const r of ['Follower', 'Candidate', 'PreCandidate', 'anything'])
    assert.equal(desiredRoleLabel(r), 'follower');
  assert.deepEqual(roleLabelPatch('leader'), { metadata: { labels: { 'timestore.io/role': 'leader' } } });
});

test('in-cluster target from the environment and the service-account mount; null outside a cluster', () => {
  const files: Record<string, string> = {
    '/sa/token': 'tok\n',
    '/sa/ca.crt': 'PEM',
    '/sa/namespace': 'db\n',
  };
  const read = (p: string) => {
    const v = files[p];
    if (v === undefined) throw new Error(`ENOENT ${p}`);
    return v;
  };
  assert.equal(inClusterTarget({}, '/sa', read), null, 'not in a cluster');
  const t = inClusterTarget(
    { KUBERNETES_SERVICE_HOST: '10.96.0.1', KUBERNETES_SERVICE_PORT: '443', HOSTNAME: 'ts-0' },
    '/sa',
    read,
  )!;
  assert.equal(t.apiServer, 'https://10.96.0.1:443');
  assert.equal(t.namespace, 'db');
  assert.equal(t.podName, 'ts-0');
  assert.equal(t.token(), 'tok');
  assert.equal(t.ca, 'PEM');
  const t2 = inClusterTarget(
    { KUBERNETES_SERVICE_HOST: 'fd00::1', POD_NAME: 'ts-1', POD_NAMESPACE: 'other', HOSTNAME: 'x' },
    '/sa',
    read,
  )!;
  assert.equal(t2.apiServer, 'https://[fd00::1]:443');
  assert.equal(t2.podName, 'ts-1');
  assert.equal(t2.namespace, 'other');
  assert.equal(
    inClusterTarget({ KUBERNETES_SERVICE_HOST: '10.96.0.1', HOSTNAME: 'ts-0' }, '/none', read),
    null,
    'no service account',
  );
  assert.equal(createLeaderLabeler({ target: null }), null);
});

const target: KubeTarget = { apiServer: 'https://k8s', namespace: 'ns', podName: 'p', token: () => 't' };
const valueOf = (body: string) =>
  (JSON.parse(body) as ReturnType<typeof roleLabelPatch>).metadata.labels[ROLE_LABEL];

test('an unchanged role sends nothing; each change sends one merge patch of the label', async () => {
  const sent: Array<{ url: string; type: string | undefined; value: string | undefined }> = [];
  const transport: PatchTransport = async (req) => {
    sent.push({ url: req.url, type: req.headers['content-type'], value: valueOf(req.body) });
    return { status: 200, body: '{}' };
  };
  const labeler = createLeaderLabeler({ target, transport })!;
  labeler.update('Leader');
  await labeler.idle();
  labeler.update('Leader');
  await labeler.idle();
  labeler.update('Follower');
  labeler.update('PreCandidate'); // still a follower label: nothing new to send
  await labeler.idle();
  await labeler.stop();
  assert.deepEqual(sent, [
    { url: 'https://k8s/api/v1/namespaces/ns/pods/p', type: 'application/merge-patch+json', value: 'leader' },
    {
      url: 'https://k8s/api/v1/namespaces/ns/pods/p',
      type: 'application/merge-patch+json',
      value: 'follower',
    },
  ]);
});

test('retries failures with exponential backoff, then succeeds', async () => {
  const sent: string[] = [];
  const delays: number[] = [];
  let failures = 3;
  const transport: PatchTransport = async (req) => {
    sent.push(valueOf(req.body)!);
    if (failures-- > 0) return { status: failures === 1 ? 403 : 500, body: 'nope' };
    return { status: 200, body: '{}' };
  };
  const warnings: string[] = [];
  const labeler = createLeaderLabeler({
    target,
    transport,
    sleep: async (ms) => void delays.push(ms),
    logger: { info() {}, warn: (_o, m) => void warnings.push(m ?? '') },
  })!;
  labeler.update('Leader');
  await labeler.idle();
  assert.deepEqual(sent, ['leader', 'leader', 'leader', 'leader']);
  assert.deepEqual(delays, [200, 400, 800]);
  assert.equal(labeler.applied(), 'leader');
  assert.equal(warnings.length, 3);
});

test('after maxAttempts it keeps retrying slowly; a transport that throws is survived', async () => {
  const delays: number[] = [];
  let calls = 0;
  const transport: PatchTransport = async () => {
    if (++calls <= 4) throw new Error('ECONNREFUSED');
    return { status: 200, body: '{}' };
  };
  const labeler = createLeaderLabeler({
    target,
    transport,
    maxAttempts: 2,
    retryForeverEveryMs: 30_000,
    sleep: async (ms) => void delays.push(ms),
  })!;
  labeler.update('Follower');
  await labeler.idle();
  assert.equal(labeler.applied(), 'follower');
  assert.deepEqual(delays, [200, 30_000, 200, 30_000]);
});

test('changes coalesce: only the newest desired value is sent after an in-flight request', async () => {
  const sent: string[] = [];
  let release: (() => void) | null = null;
  const transport: PatchTransport = async (req) => {
    sent.push(valueOf(req.body)!);
    if (sent.length === 1) await new Promise<void>((r) => (release = r));
    return { status: 200, body: '{}' };
  };
  const labeler = createLeaderLabeler({ target, transport })!;
  labeler.update('Leader'); // in flight, held
  await new Promise((r) => setImmediate(r));
  labeler.update('Follower');
  labeler.update('Candidate');
  labeler.update('Leader');
  labeler.update('Follower');
  release!();
  await labeler.idle();
  assert.deepEqual(sent, ['leader', 'follower']);
  assert.equal(labeler.applied(), 'follower');
});

test('stop() interrupts a long backoff', async () => {
  let calls = 0;
  const transport: PatchTransport = async () => {
    calls++;
    return { status: 500, body: '' };
  };
  // A sleep that never ends by itself: only stop() can get the loop out of it.
  const labeler = createLeaderLabeler({ target, transport, sleep: () => new Promise(() => {}) })!;
  labeler.update('Leader');
  await new Promise((r) => setImmediate(r));
  await labeler.stop();
  assert.equal(calls, 1);
  assert.equal(labeler.applied(), null);
});

test('a leadership change during a backoff is tried at once', async () => {
  const sent: string[] = [];
  const transport: PatchTransport = async (req) => {
    sent.push(valueOf(req.body)!);
    return sent.length === 1 ? { status: 500, body: '' } : { status: 200, body: '{}' };
  };
  const labeler = createLeaderLabeler({ target, transport, sleep: () => new Promise(() => {}) })!;
  labeler.update('Leader');
  await new Promise((r) => setImmediate(r));
  labeler.update('Follower'); // wakes the sleeping loop
  await labeler.idle();
  assert.deepEqual(sent, ['leader', 'follower']);
  assert.equal(labeler.applied(), 'follower');
  await labeler.stop();
});
