// The leader label against a REAL Kubernetes API server (etcd + kube-apiserver with TLS, token
// authentication and RBAC; test/k8s/control-plane.ts). The RBAC objects are exactly
// deploy/rbac/node-role.yaml, applied with kubectl; the pods are real Pod objects (no kubelet: they
// stay Pending, labels and selectors work); the TimeStore nodes are real `timestore node` processes
// configured like a pod: POD_NAME / POD_NAMESPACE, KUBERNETES_SERVICE_HOST/PORT, and a
// service-account directory holding a TokenRequest token, the CA and the namespace.
//
// Checked: the Role is sufficient (every node labels its pod) and no broader than that; the leader's
// pod is `leader`, the others `follower`, and the leader Service's selector picks exactly the leader;
// after SIGKILL of the leader the label moves to the new leader, which also sets the dead pod's
// stale label (older term) to `follower`, so the Service selects only the new leader at once; a
// frozen leader (SIGSTOP) is demoted the same way and stays `follower` when it resumes; writes
// through a follower and through the resumed old leader are acknowledged. How long each stage took is printed, never asserted.
// The checker can fail: a node whose service account lacks the RoleBinding gets 403 and no label,
// and the same process labels its pod as soon as it reads a token that has the Role.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  eventually,
  freePort,
  freePorts,
  get,
  NodeProcess,
  post,
  tempDir,
  type TestCluster,
} from '../helpers/index.js';
import {
  inClusterTarget,
  LEADER_TERM_ANNOTATION,
  nodeTransport,
  roleLabelPatch,
} from '../../src/observability/leader-label.js';
import { staleLeaderDemoter } from '../../src/observability/stale-leader-labels.js';
import { startControlPlane, type ControlPlane } from './control-plane.js';

const NS = 'timestore-e2e';
const ROLE = 'timestore.io/role';
const APP = { 'app.kubernetes.io/name': 'timestore' };
const IDS = ['timestore-0', 'timestore-1', 'timestore-2'];
const ELECTION_MS = 600;

let cp: ControlPlane;
let cluster: TestCluster;
const nodeToken = { dir: '' };

/** A service-account directory as a pod would have it mounted. */
function serviceAccountDir(token: string, caPem: string, namespace: string): string {
  const dir = tempDir('timestore-sa-');
  writeFileSync(join(dir, 'token'), token);
  writeFileSync(join(dir, 'ca.crt'), caPem);
  writeFileSync(join(dir, 'namespace'), namespace);
  return dir;
}

function podEnv(podName: string, saDir: string): Record<string, string> {
  return {
    KUBERNETES_SERVICE_HOST: cp.host,
    KUBERNETES_SERVICE_PORT: String(cp.port),
    POD_NAME: podName,
    POD_NAMESPACE: NS,
    TIMESTORE_SERVICE_ACCOUNT_DIR: saDir,
  };
}

async function createPod(name: string, serviceAccountName: string): Promise<void> {
  const r = await cp.api('POST', `/api/v1/namespaces/${NS}/pods`, {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, labels: { ...APP } },
    spec: { serviceAccountName, containers: [{ name: 'timestore', image: 'timestore:test' }] },
  });
  assert.equal(r.status, 201, `create pod ${name}: ${r.text}`);
}

/** Role label of every pod of the app, by pod name (undefined: not labelled). */
async function roleLabels(): Promise<Record<string, string | undefined>> {
  const r = await cp.api<{ items: Array<{ metadata: { name: string; labels?: Record<string, string> } }> }>(
    'GET',
    `/api/v1/namespaces/${NS}/pods?labelSelector=${encodeURIComponent('app.kubernetes.io/name=timestore')}`,
  );
  assert.equal(r.status, 200, r.text);
  return Object.fromEntries(r.body.items.map((p) => [p.metadata.name, p.metadata.labels?.[ROLE]]));
}

/** The pods the leader Service's selector selects (what its endpoints would be built from). */
async function selectedByLeaderService(): Promise<string[]> {
  const svc = await cp.api<{ spec: { selector: Record<string, string> } }>(
    'GET',
    `/api/v1/namespaces/${NS}/services/timestore-leader`,
  );
  assert.equal(svc.status, 200, svc.text);
  const selector = Object.entries(svc.body.spec.selector)
    .map(([k, v]) => `${k}=${v}`)
    .join(',');
  const r = await cp.api<{ items: Array<{ metadata: { name: string } }> }>(
    'GET',
    `/api/v1/namespaces/${NS}/pods?labelSelector=${encodeURIComponent(selector)}`,
  );
  assert.equal(r.status, 200, r.text);
  return r.body.items.map((p) => p.metadata.name).sort();
}

/** The leader all running nodes (but `exclude`) agree on (same id, same term), or null. */
async function agreedLeader(c: TestCluster, exclude: string[] = []): Promise<string | null> {
  const running = c.nodes.filter((n) => n.proc?.running && !exclude.includes(n.id));
  const sts = await Promise.all(
    running.map((n) => get<{ leaderId: string | null; term: number }>(`${n.url}/raft/status`)),
  );
  const first = sts[0]?.json;
  if (!first?.leaderId) return null;
  const agree = sts.every((s) => s.json.leaderId === first.leaderId && s.json.term === first.term);
  return agree && running.some((n) => n.id === first.leaderId) ? first.leaderId : null;
}

/** Three `timestore node --peers` processes, each with the pod environment of its own pod. */
async function startPodCluster(saDir: string): Promise<TestCluster> {
  const ports = await freePorts(IDS.length);
  const peers = IDS.map((id, i) => `${id}=http://127.0.0.1:${ports[i]}`).join(',');
  const nodes = IDS.map(
    (id, i) =>
      new NodeProcess({
        id,
        port: ports[i]!,
        dataDir: tempDir(`timestore-${id}-`),
        args: ['--peers', peers, '--election-timeout-ms', String(ELECTION_MS), '--heartbeat-ms', '60'],
        env: podEnv(id, saDir),
      }),
  );
  const c: TestCluster = {
    nodes,
    peers,
    byId: (id) => nodes.find((n) => n.id === id) ?? assert.fail(`no node ${id}`),
    stop: async () => void (await Promise.all(nodes.filter((n) => n.proc?.running).map((n) => n.stop()))),
    kill: async () => void (await Promise.all(nodes.filter((n) => n.proc?.running).map((n) => n.kill()))),
  };
  try {
    await Promise.all(nodes.map((n) => n.start()));
  } catch (err) {
    await c.kill();
    throw err;
  }
  return c;
}

async function settledLabels(c: TestCluster): Promise<string> {
  return eventually(
    async () => {
      const leader = await agreedLeader(c);
      if (!leader) return null;
      const labels = await roleLabels();
      const ok = IDS.every((id) => labels[id] === (id === leader ? 'leader' : 'follower'));
      return ok ? leader : null;
    },
    'every pod labelled with its Raft role',
    60_000,
    50,
  );
}

before(async () => {
  cp = await startControlPlane();
  await cp.kubectl('create', 'namespace', NS);
  // Exactly the manifests users apply: if the node needed more, the labels below would never appear.
  await cp.kubectl('apply', '-n', NS, '-f', 'deploy/rbac/node-role.yaml');
  for (const id of IDS) await createPod(id, 'timestore');
  const svc = await cp.api('POST', `/api/v1/namespaces/${NS}/services`, {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: 'timestore-leader' },
    spec: { selector: { ...APP, [ROLE]: 'leader' }, ports: [{ name: 'http', port: 5001 }] },
  });
  assert.equal(svc.status, 201, svc.text);
  nodeToken.dir = serviceAccountDir(await cp.serviceAccountToken(NS, 'timestore'), cp.caPem, NS);
  cluster = await startPodCluster(nodeToken.dir);
});

after(async () => {
  await cluster?.stop().catch(() => cluster.kill());
  await cp?.stop();
});

test('deploy/rbac/node-role.yaml grants a node get and patch on pods in its namespace and nothing more', async () => {
  const token = await cp.serviceAccountToken(NS, 'timestore');
  const can = async (verb: string, namespace = NS, resource = 'pods') => {
    const r = await cp.api<{ status: { allowed: boolean } }>(
      'POST',
      '/apis/authorization.k8s.io/v1/selfsubjectaccessreviews',
      {
        apiVersion: 'authorization.k8s.io/v1',
        kind: 'SelfSubjectAccessReview',
        spec: { resourceAttributes: { namespace, verb, resource } },
      },
      { token },
    );
    assert.equal(r.status, 201, r.text);
    return r.body.status.allowed;
  };
  assert.equal(await can('patch'), true, 'patch pods in its namespace');
  assert.equal(await can('get'), true, 'get pods in its namespace');
  for (const verb of ['list', 'watch', 'update', 'delete', 'create'])
    assert.equal(await can(verb), false, `${verb} pods must not be allowed`);
  assert.equal(await can('patch', 'default'), false, 'patch pods in another namespace must not be allowed');
  assert.equal(await can('patch', NS, 'services'), false, 'patch services must not be allowed');
});

test('the leader pod is labelled leader, the others follower; the leader Service selects only it', async () => {
  const leader = await settledLabels(cluster);
  assert.deepEqual(await selectedByLeaderService(), [leader]);
  const w = await post(`${cluster.byId(leader).url}/api/timeseries`, {
    deviceId: 'k8s-1',
    timestamp: '2026-12-01T00:00:00Z',
    value: 1,
  });
  assert.equal(w.status, 201, w.text);
});

test('SIGKILL of the leader: the new leader labels itself and demotes the dead pod; the Service selects only it', async () => {
  const oldLeader = await settledLabels(cluster);
  const t0 = Date.now();
  await cluster.byId(oldLeader).kill();
  const newLeader = await eventually(
    async () => {
      const l = await agreedLeader(cluster);
      return l && l !== oldLeader ? l : null;
    },
    'a new leader among the survivors',
    60_000,
    50,
  );
  const tElected = Date.now();
  await eventually(
    async () => (await roleLabels())[newLeader] === 'leader',
    `pod ${newLeader} labelled leader`,
    30_000,
    25,
  );
  const tLabelled = Date.now();
  // The dead pod cannot remove its own label; the new leader does (the label is from an older term).
  await eventually(
    async () => (await roleLabels())[oldLeader] === 'follower',
    `the new leader ${newLeader} sets the dead pod ${oldLeader} to follower`,
    30_000,
    25,
  );
  const tDemoted = Date.now();
  assert.deepEqual(await selectedByLeaderService(), [newLeader], 'settled while the dead pod is still down');
  // The node logs once it has the API server's answer, which may come after our read saw the label.
  await cluster
    .byId(newLeader)
    .proc.waitForOutput(new RegExp(`pod ${oldLeader}: stale timestore.io/role=leader`));
  const follower = IDS.find((id) => id !== oldLeader && id !== newLeader)!;
  const fw = await post(`${cluster.byId(follower).url}/api/timeseries`, {
    deviceId: 'k8s-2',
    timestamp: '2026-12-01T00:00:01Z',
    value: 2,
  });
  assert.equal(fw.status, 201, `a follower forwards the write: ${fw.text}`);

  // What the kubelet does with a crashed container: start it again. Usually it follows the new
  // leader; on a loaded machine another election may happen meanwhile: either way, one leader label.
  await cluster.byId(oldLeader).start();
  const leaderNow = await settledLabels(cluster);
  assert.deepEqual(await selectedByLeaderService(), [leaderNow]);
  const w = await post(`${cluster.byId(leaderNow).url}/api/timeseries`, {
    deviceId: 'k8s-3',
    timestamp: '2026-12-01T00:00:02Z',
    value: 3,
  });
  assert.equal(w.status, 201, w.text);
  console.log(
    `# leader label after SIGKILL of ${oldLeader}: new leader ${newLeader} elected after ${tElected - t0} ms, ` +
      `its pod labelled ${tLabelled - tElected} ms later; the stale label on the dead pod lasted ` +
      `${tDemoted - t0} ms in all (${tDemoted - tLabelled} ms after the new leader's label)`,
  );
});

test('a frozen leader (SIGSTOP) is demoted by the new leader and stays follower once it resumes', async () => {
  // The case where a stale label would point at a live, ready follower: the old leader was frozen
  // (GC pause, CPU starvation, a partition) while the others elected a new leader.
  const oldLeader = await settledLabels(cluster);
  const frozen = cluster.byId(oldLeader);
  frozen.proc.child.kill('SIGSTOP');
  let resumed = false;
  try {
    const newLeader = await eventually(
      async () => {
        const l = await agreedLeader(cluster, [oldLeader]);
        return l && l !== oldLeader ? l : null;
      },
      'a new leader while the old one is frozen',
      60_000,
      50,
    );
    await eventually(
      async () => (await roleLabels())[newLeader] === 'leader',
      `pod ${newLeader} labelled leader`,
      30_000,
      25,
    );
    const tLabelled = Date.now();
    await eventually(
      async () => (await roleLabels())[oldLeader] === 'follower',
      `the new leader demotes the frozen old leader ${oldLeader}`,
      30_000,
      25,
    );
    const tDemoted = Date.now();
    assert.deepEqual(await selectedByLeaderService(), [newLeader]);
    frozen.proc.child.kill('SIGCONT');
    resumed = true;
    // It learns the higher term from the new leader's heartbeats (or its own CheckQuorum) and steps
    // down without putting its old leader label back. (Should a later election make it leader
    // again, it labels itself with that newer term: still exactly one leader label.)
    const leaderNow = await settledLabels(cluster);
    if (leaderNow !== oldLeader)
      assert.equal((await roleLabels())[oldLeader], 'follower', 'the resumed old leader stays follower');
    assert.deepEqual(await selectedByLeaderService(), [leaderNow]);
    const w = await post(`${frozen.url}/api/timeseries`, {
      deviceId: 'k8s-4',
      timestamp: '2026-12-01T00:00:03Z',
      value: 4,
    });
    assert.equal(w.status, 201, `the resumed old leader serves the write (forwarding it): ${w.text}`);
    console.log(
      `# leader label after SIGSTOP of ${oldLeader}: the stale label on the frozen old leader was demoted ` +
        `${tDemoted - tLabelled} ms after the new leader's label`,
    );
  } finally {
    if (!resumed) frozen.proc.child.kill('SIGCONT');
  }
});

test('the demotion is a conditional write: a leader label renewed between its read and its patch survives', async () => {
  // The race the resourceVersion guards against, on the real API server: the demoter reads a stale
  // leader label (term 1), then that pod wins term 9 and relabels itself before the demoter's patch.
  await createPod('timestore-race', 'timestore');
  const podPath = `/api/v1/namespaces/${NS}/pods/timestore-race`;
  const label = (term: number) =>
    cp.api('PATCH', podPath, roleLabelPatch('leader', term), { contentType: 'application/merge-patch+json' });
  assert.equal((await label(1)).status, 200);
  const target = inClusterTarget(podEnv('timestore-0', nodeToken.dir))!;
  assert.ok(target, 'the in-cluster target from the pod environment');
  let raced = false;
  const statuses: number[] = [];
  const demote = staleLeaderDemoter({
    target,
    transport: async (req) => {
      if (req.method === 'PATCH' && !raced) {
        raced = true;
        assert.equal((await label(9)).status, 200); // the pod renews its label first
      }
      const res = await nodeTransport(req);
      statuses.push(res.status);
      return res;
    },
  });
  assert.deepEqual(await demote(['timestore-race'], 5, () => true), { 'timestore-race': 'not-stale' });
  assert.deepEqual(statuses, [200, 409, 200], 'GET, the conditional PATCH refused, GET again');
  const pod = await cp.api<{
    metadata: { labels: Record<string, string>; annotations: Record<string, string> };
  }>('GET', podPath);
  assert.equal(pod.body.metadata.labels[ROLE], 'leader');
  assert.equal(pod.body.metadata.annotations[LEADER_TERM_ANNOTATION], '9');
  // And without the race the same call demotes it (term 9 < 10).
  assert.deepEqual(await staleLeaderDemoter({ target })(['timestore-race'], 10, () => true), {
    'timestore-race': 'demoted',
  });
  assert.equal((await roleLabels())['timestore-race'], 'follower');
});

test('without the RoleBinding a node gets 403 and no label; a token with the Role fixes it without a restart', async () => {
  // Proves the label checks above can fail: same node, same code, only the RBAC differs.
  const r = await cp.api('POST', `/api/v1/namespaces/${NS}/serviceaccounts`, {
    apiVersion: 'v1',
    kind: 'ServiceAccount',
    metadata: { name: 'no-rbac' },
  });
  assert.equal(r.status, 201, r.text);
  await createPod('timestore-x', 'no-rbac');
  const saDir = serviceAccountDir(await cp.serviceAccountToken(NS, 'no-rbac'), cp.caPem, NS);
  const port = await freePort();
  const dataDir = tempDir('timestore-x-');
  mkdirSync(dataDir, { recursive: true });
  const node = new NodeProcess({
    id: 'timestore-x',
    port,
    dataDir,
    args: ['--peers', `timestore-x=http://127.0.0.1:${port}`, '--election-timeout-ms', String(ELECTION_MS)],
    env: podEnv('timestore-x', saDir),
  });
  await node.start();
  try {
    // A one-member cluster: it becomes leader and tries to label itself.
    await node.proc.waitForOutput(
      /pod label update failed[\s\S]*?403|403[\s\S]*?pod label update failed/,
      60_000,
    );
    assert.equal((await roleLabels())['timestore-x'], undefined, 'no label without the Role');
    assert.match(node.output(), /forbidden/i, 'the log says why');
    // The token is re-read for every request (projected tokens rotate): swap in one with the Role.
    writeFileSync(join(saDir, 'token'), await cp.serviceAccountToken(NS, 'timestore'));
    await eventually(
      async () => (await roleLabels())['timestore-x'] === 'leader',
      'timestore-x labelled leader after the token gained the Role',
      60_000,
      50,
    );
  } finally {
    await node.stop();
  }
  // A graceful stop labels the pod follower on the way out.
  assert.equal((await roleLabels())['timestore-x'], 'follower');
});
