// A real Kubernetes control plane for tests: etcd + kube-apiserver (built from Go modules by
// test/k8s/build-control-plane.sh) on free 127.0.0.1 ports in a temp dir, with real TLS (a test CA
// made with openssl), real authentication (a static admin token in system:masters, and
// service-account tokens from the TokenRequest API) and --authorization-mode=RBAC. No kubelet, no
// controller manager, no scheduler: objects are stored and served, pods stay Pending (labels,
// selectors, RBAC and watches all work).
//
//   const cp = await startControlPlane();
//   await cp.kubectl('apply', '-n', 'db', '-f', 'deploy/rbac/node-role.yaml');
//   const token = await cp.serviceAccountToken('db', 'timestore');
//   const pods = await cp.api('GET', '/api/v1/namespaces/db/pods');
//   await cp.stop();
import { execFile, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Agent, request as undiciRequest } from 'undici';
import {
  freePort,
  repoRoot,
  spawnProcess,
  tempDir,
  waitForHttp,
  type TestProcess,
} from '../helpers/index.js';

const execFileP = promisify(execFile);

export interface ControlPlaneBinaries {
  etcd: string;
  kubeApiserver: string;
  /** Absent when the build skipped it (TIMESTORE_K8S_WITH_KUBECTL=0). */
  kubectl?: string;
}

/**
 * The binaries built by test/k8s/build-control-plane.sh (never builds: that takes minutes; CI's
 * .ci/run does it). Throws with the command to run when they are missing.
 */
export function controlPlaneBinaries(): ControlPlaneBinaries {
  const script = join(repoRoot, 'test', 'k8s', 'build-control-plane.sh');
  const r = spawnSync('bash', [script, '--cached-only'], { encoding: 'utf8' });
  if (r.status !== 0) {
    throw new Error(
      `the Kubernetes control plane binaries are not built (bash ${script} --cached-only exited ${r.status}): ` +
        `run bash test/k8s/build-control-plane.sh first.\n${r.stderr}`,
    );
  }
  const dir = r.stdout.trim().split('\n').pop()!;
  const has = (name: string) => spawnSync('test', ['-x', join(dir, name)]).status === 0;
  return {
    etcd: join(dir, 'etcd'),
    kubeApiserver: join(dir, 'kube-apiserver'),
    ...(has('kubectl') ? { kubectl: join(dir, 'kubectl') } : {}),
  };
}

export interface ApiResponse<T = unknown> {
  status: number;
  body: T;
  text: string;
}

export interface ControlPlane {
  /** https://127.0.0.1:<port> */
  url: string;
  host: string;
  port: number;
  /** PEM of the CA that signed the API server's certificate (what a pod finds in ca.crt). */
  caPem: string;
  caFile: string;
  /** Bearer token of a cluster admin (group system:masters). */
  adminToken: string;
  /** A kubeconfig for kubectl with the admin token. */
  kubeconfig: string;
  dir: string;
  /** A request to the API as the admin, or with `token` as someone else. JSON in and out. */
  api<T = unknown>(
    method: string,
    path: string,
    body?: unknown,
    opts?: { token?: string; contentType?: string },
  ): Promise<ApiResponse<T>>;
  /** kubectl with the admin kubeconfig; rejects with its output when it exits non-zero. */
  kubectl(...args: string[]): Promise<string>;
  /** A service-account token from the TokenRequest API (what a projected volume would mount). */
  serviceAccountToken(namespace: string, name: string, expirationSeconds?: number): Promise<string>;
  /** Output of etcd and kube-apiserver, for failure messages. */
  describe(): string;
  stop(): Promise<void>;
}

export interface ControlPlaneOptions {
  /** How long to wait for etcd and then the API server's /readyz (generous: CI has 2 shared cores). */
  startTimeoutMs?: number;
}

function openssl(cwd: string, ...args: string[]): void {
  const r = spawnSync('openssl', args, { cwd, encoding: 'utf8' });
  if (r.status !== 0)
    throw new Error(
      `openssl ${args.join(' ')} failed (exit ${r.status}; is openssl installed?):\n${r.stderr}`,
    );
}

/** A CA, a serving certificate for 127.0.0.1/localhost signed by it, and the service-account key. */
function makePki(dir: string): void {
  openssl(dir, 'genrsa', '-out', 'ca.key', '2048');
  openssl(
    dir,
    'req',
    '-x509',
    '-new',
    '-key',
    'ca.key',
    '-subj',
    '/CN=timestore-test-ca',
    '-days',
    '2',
    '-out',
    'ca.crt',
  );
  openssl(dir, 'genrsa', '-out', 'apiserver.key', '2048');
  openssl(
    dir,
    'req',
    '-new',
    '-key',
    'apiserver.key',
    '-subj',
    '/CN=kube-apiserver',
    '-out',
    'apiserver.csr',
  );
  writeFileSync(
    join(dir, 'apiserver.ext'),
    'subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes.default.svc\nextendedKeyUsage=serverAuth\n',
  );
  openssl(
    dir,
    'x509',
    '-req',
    '-in',
    'apiserver.csr',
    '-CA',
    'ca.crt',
    '-CAkey',
    'ca.key',
    '-CAcreateserial',
    '-days',
    '2',
    '-extfile',
    'apiserver.ext',
    '-out',
    'apiserver.crt',
  );
  openssl(dir, 'genrsa', '-out', 'sa.key', '2048');
  openssl(dir, 'rsa', '-in', 'sa.key', '-pubout', '-out', 'sa.pub');
}

export async function startControlPlane(opts: ControlPlaneOptions = {}): Promise<ControlPlane> {
  const bins = controlPlaneBinaries();
  // A port from freePort can be taken by another process before etcd or the API server binds it.
  for (let attempt = 1; ; attempt++) {
    try {
      return await startOnce(bins, opts);
    } catch (err) {
      if (attempt >= 3 || !/address already in use/i.test(String((err as Error).message))) throw err;
    }
  }
}

async function startOnce(bins: ControlPlaneBinaries, opts: ControlPlaneOptions): Promise<ControlPlane> {
  const timeoutMs = opts.startTimeoutMs ?? 120_000;
  const dir = tempDir('timestore-k8s-');
  const pki = join(dir, 'pki');
  mkdirSync(pki);
  makePki(pki);
  const adminToken = randomBytes(24).toString('hex');
  writeFileSync(join(dir, 'tokens.csv'), `${adminToken},test-admin,test-admin,"system:masters"\n`);

  const host = '127.0.0.1';
  const [etcdClient, etcdPeer, apiPort] = [await freePort(), await freePort(), await freePort()];
  const procs: TestProcess[] = [];
  const stopAll = async () => {
    // The API server first: it would log etcd errors for the seconds until it exits otherwise.
    for (const p of procs.slice().reverse())
      if (p.running) await p.stop('SIGTERM', 10_000).catch(() => p.kill());
  };
  try {
    const etcd = spawnProcess({
      name: 'etcd',
      command: bins.etcd,
      args: [
        '--name=test',
        `--data-dir=${join(dir, 'etcd')}`,
        `--listen-client-urls=http://${host}:${etcdClient}`,
        `--advertise-client-urls=http://${host}:${etcdClient}`,
        `--listen-peer-urls=http://${host}:${etcdPeer}`,
        `--initial-advertise-peer-urls=http://${host}:${etcdPeer}`,
        `--initial-cluster=test=http://${host}:${etcdPeer}`,
        // A throwaway store: fsync buys nothing here and costs the shared CI disk.
        '--unsafe-no-fsync',
        '--log-level=warn',
      ],
    });
    procs.push(etcd);
    await waitForHttp(`http://${host}:${etcdClient}/health`, {
      process: etcd,
      timeoutMs,
      ready: (s, body) => s === 200 && /"health":\s*"true"/.test(body),
    });

    const apiserver = spawnProcess({
      name: 'kube-apiserver',
      command: bins.kubeApiserver,
      args: [
        `--etcd-servers=http://${host}:${etcdClient}`,
        `--bind-address=${host}`,
        `--advertise-address=${host}`,
        `--secure-port=${apiPort}`,
        `--cert-dir=${join(dir, 'certs')}`,
        `--tls-cert-file=${join(pki, 'apiserver.crt')}`,
        `--tls-private-key-file=${join(pki, 'apiserver.key')}`,
        `--token-auth-file=${join(dir, 'tokens.csv')}`,
        '--authorization-mode=RBAC',
        '--anonymous-auth=false',
        '--service-account-issuer=https://kubernetes.default.svc.cluster.local',
        `--service-account-key-file=${join(pki, 'sa.pub')}`,
        `--service-account-signing-key-file=${join(pki, 'sa.key')}`,
        '--service-cluster-ip-range=10.96.0.0/24',
        // The kubernetes Service's endpoints would be 127.0.0.1, which the reconciler refuses; no
        // pod here reaches the API server through that Service anyway.
        '--endpoint-reconciler-type=none',
        '--profiling=false',
        '--v=1',
      ],
    });
    procs.push(apiserver);
  } catch (err) {
    await stopAll();
    throw err;
  }

  const caPem = readFileSync(join(pki, 'ca.crt'), 'utf8');
  const dispatcher = new Agent({ connect: { ca: caPem } });
  const url = `https://${host}:${apiPort}`;
  const api = async <T = unknown>(
    method: string,
    path: string,
    body?: unknown,
    o: { token?: string; contentType?: string } = {},
  ): Promise<ApiResponse<T>> => {
    const res = await undiciRequest(url + path, {
      method: method as 'GET',
      dispatcher,
      headers: {
        authorization: `Bearer ${o.token ?? adminToken}`,
        accept: 'application/json',
        ...(body !== undefined ? { 'content-type': o.contentType ?? 'application/json' } : {}),
      },
      ...(body !== undefined ? { body: typeof body === 'string' ? body : JSON.stringify(body) } : {}),
      headersTimeout: 30_000,
      bodyTimeout: 30_000,
    });
    const text = await res.body.text();
    let parsed: unknown;
    try {
      parsed = text ? JSON.parse(text) : undefined;
    } catch {
      parsed = undefined;
    }
    return { status: res.statusCode, body: parsed as T, text };
  };

  const kubeconfig = join(dir, 'kubeconfig');
  writeFileSync(
    kubeconfig,
    JSON.stringify({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'test', cluster: { server: url, 'certificate-authority': join(pki, 'ca.crt') } }],
      users: [{ name: 'admin', user: { token: adminToken } }],
      contexts: [{ name: 'test', context: { cluster: 'test', user: 'admin' } }],
      'current-context': 'test',
    }),
  );

  const describe = () => procs.map((p) => p.describe(3000)).join('\n');
  const cp: ControlPlane = {
    url,
    host,
    port: apiPort,
    caPem,
    caFile: join(pki, 'ca.crt'),
    adminToken,
    kubeconfig,
    dir,
    api,
    async kubectl(...args) {
      if (!bins.kubectl) throw new Error('kubectl was not built (TIMESTORE_K8S_WITH_KUBECTL=0)');
      try {
        const { stdout } = await execFileP(bins.kubectl, ['--kubeconfig', kubeconfig, ...args], {
          cwd: repoRoot,
          timeout: 60_000,
        });
        return stdout;
      } catch (err) {
        const e = err as { stdout?: string; stderr?: string; message: string };
        throw new Error(`kubectl ${args.join(' ')} failed: ${e.message}\n${e.stdout ?? ''}${e.stderr ?? ''}`);
      }
    },
    async serviceAccountToken(namespace, name, expirationSeconds = 3600) {
      const r = await api<{ status?: { token?: string } }>(
        'POST',
        `/api/v1/namespaces/${namespace}/serviceaccounts/${name}/token`,
        { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenRequest', spec: { expirationSeconds } },
      );
      const token = r.body?.status?.token;
      if (r.status !== 201 || !token)
        throw new Error(`TokenRequest for ${namespace}/${name}: HTTP ${r.status} ${r.text.slice(0, 300)}`);
      return token;
    },
    describe,
    async stop() {
      await dispatcher.close().catch(() => {});
      await stopAll();
    },
  };

  // /readyz includes etcd and every post-start hook (RBAC bootstrap roles, priority levels, ...).
  const apiserver = procs[1]!;
  const deadline = Date.now() + timeoutMs;
  let last = 'no answer yet';
  for (;;) {
    if (!apiserver.running) {
      await stopAll();
      throw new Error(`kube-apiserver exited while starting.\n${describe()}`);
    }
    try {
      const r = await api('GET', '/readyz');
      if (r.status === 200) break;
      last = `HTTP ${r.status}: ${r.text.slice(0, 500)}`;
    } catch (err) {
      last = String((err as Error).cause ?? err);
    }
    if (Date.now() > deadline) {
      await cp.stop();
      throw new Error(`kube-apiserver not ready within ${timeoutMs} ms (last: ${last}).\n${describe()}`);
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  return cp;
}
