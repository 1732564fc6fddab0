// Kubernetes leader labelling: every node keeps the label `timestore.io/role=leader|follower` on its
// own pod, so a Service (and an Ingress behind it) selecting `timestore.io/role: leader` sends
// writes to the current leader. Why a stale label is harmless: docs/OBSERVABILITY.md.
//
//   const labeler = createLeaderLabeler({ logger: log });   // null when not running in Kubernetes
//   // after every Ready (cheap; only a change of the desired value issues a PATCH):
//   labeler?.update(raftNode.status().role, raftNode.status().term);   // a leader label carries its term
//   await labeler?.stop();                                  // on shutdown (after a final update('Follower'))
//
// The pod needs RBAC on pods in its namespace: {apiGroups: [""], resources: ["pods"], verbs: ["get",
// "patch"]} ("get" for stale-leader-labels.ts) bound to its service account (deploy/rbac/node-role.yaml); POD_NAME and POD_NAMESPACE from the
// downward API (HOSTNAME and the service-account namespace file are the fallbacks).
import { readFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';

export const ROLE_LABEL = 'timestore.io/role';
/**
 * Set with `leader`: the Raft term it was won in. Another node that becomes leader in a later term
 * may demote a pod whose leader label is older (stale-leader-labels.ts); never one from its own
 * term or a later one.
 */
export const LEADER_TERM_ANNOTATION = 'timestore.io/leader-term';
export type RoleLabelValue = 'leader' | 'follower';

/** The label a node in Raft role `role` should carry: only the leader is 'leader'. */
export function desiredRoleLabel(role: string): RoleLabelValue {
  return role === 'Leader' ? 'leader' : 'follower';
}

/**
 * JSON merge patch (RFC 7386) setting the role label, for PATCH /api/v1/namespaces/{ns}/pods/{name};
 * a leader label carries the term it was won in when known.
 */
export function roleLabelPatch(
  value: RoleLabelValue,
  term: number | null = null,
): { metadata: { labels: Record<string, string>; annotations?: Record<string, string> } } {
  return {
    metadata: {
      labels: { [ROLE_LABEL]: value },
      ...(value === 'leader' && term !== null
        ? { annotations: { [LEADER_TERM_ANNOTATION]: String(term) } }
        : {}),
    },
  };
}

export interface KubeTarget {
  /** e.g. https://10.96.0.1:443 */
  apiServer: string;
  namespace: string;
  podName: string;
  /** Returns the bearer token; re-read on every request (projected tokens rotate). */
  token: () => string;
  /** PEM CA bundle of the API server (undefined: system CAs, or plain http in tests). */
  ca?: string | Buffer;
}

const SA_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

/**
 * The in-cluster target from KUBERNETES_SERVICE_HOST/PORT and the mounted service account, or null
 * when not running in a pod (then labelling is simply skipped).
 */
export function inClusterTarget(
  env: NodeJS.ProcessEnv = process.env,
  // TIMESTORE_SERVICE_ACCOUNT_DIR: the same three files somewhere else, for a node run outside a pod
  // against a real API server (test/k8s, a developer's machine).
  saDir = env.TIMESTORE_SERVICE_ACCOUNT_DIR || SA_DIR,
  read: (p: string) => string = (p) => readFileSync(p, 'utf8'),
): KubeTarget | null {
  const host = env.KUBERNETES_SERVICE_HOST;
  if (!host) return null;
  const port = env.KUBERNETES_SERVICE_PORT ?? '443';
  let namespace = env.POD_NAMESPACE;
  let ca: string | undefined;
  try {
    read(`${saDir}/token`);
    ca = read(`${saDir}/ca.crt`);
    namespace ??= read(`${saDir}/namespace`).trim();
  } catch {
    return null; // no service account mounted (automountServiceAccountToken: false)
  }
  const podName = env.POD_NAME ?? env.HOSTNAME;
  if (!podName || !namespace) return null;
  const h = host.includes(':') ? `[${host}]` : host; // IPv6 service host
  return {
    apiServer: `https://${h}:${port}`,
    namespace,
    podName,
    token: () => read(`${saDir}/token`).trim(),
    ca,
  };
}

export type PatchTransport = (req: {
  method: 'PATCH' | 'GET';
  url: string;
  headers: Record<string, string>;
  body: string;
  ca?: string | Buffer;
}) => Promise<{ status: number; body: string }>;

/** node:http(s) transport, with the cluster CA for https. */
export const nodeTransport: PatchTransport = (req) =>
  new Promise((resolve, reject) => {
    const u = new URL(req.url);
    const fn = u.protocol === 'https:' ? httpsRequest : httpRequest;
    const r = fn(
      u,
      {
        method: req.method,
        headers: { ...req.headers, 'content-length': String(Buffer.byteLength(req.body)) },
        ...(req.ca ? { ca: req.ca } : {}),
        timeout: 10_000,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }),
        );
        res.on('error', reject);
      },
    );
    r.on('timeout', () => r.destroy(new Error('request to the Kubernetes API timed out')));
    r.on('error', reject);
    r.end(req.body);
  });

/** Minimal logger shape (pino's fits). */
export interface LabelLogger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
}

export interface LeaderLabelerOptions {
  /** Default: inClusterTarget(); when null (not in a cluster) createLeaderLabeler returns null. */
  target?: KubeTarget | null;
  transport?: PatchTransport;
  logger?: LabelLogger;
  /** Attempts per desired value before waiting for the next change or `retryForeverEveryMs` (default 5). */
  maxAttempts?: number;
  /** First retry delay, doubled each attempt, capped at maxDelayMs (defaults 200 ms, 5 s). */
  baseDelayMs?: number;
  maxDelayMs?: number;
  /** After maxAttempts failures, try again this often until it works (default 30 s; 0 = give up). */
  retryForeverEveryMs?: number;
  sleep?: (ms: number) => Promise<void>;
  /** Called after each successful PATCH (e.g. to demote stale leader labels once this pod is leader). */
  onApplied?: (value: RoleLabelValue, term: number | null) => void;
}

export interface LeaderLabeler {
  /**
   * Records the node's current Raft role (and term: a leader label carries it); a PATCH follows if
   * the desired label changed. Never throws.
   */
  update(role: string, term?: number): void;
  /** The label last applied successfully (null before the first success). */
  applied(): RoleLabelValue | null;
  /** Resolves when no PATCH is pending (tests, shutdown). */
  idle(): Promise<void>;
  /** Stops retrying; resolves after the in-flight request, if any. */
  stop(): Promise<void>;
}

/**
 * A labeler that keeps the pod's role label equal to the latest desired value. Changes coalesce:
 * only the newest value is ever sent, one request at a time, retried with exponential backoff.
 * Returns null when there is no Kubernetes target (not in a cluster).
 */
export function createLeaderLabeler(opts: LeaderLabelerOptions = {}): LeaderLabeler | null {
  const target = opts.target === undefined ? inClusterTarget() : opts.target;
  if (!target) return null;
  const transport = opts.transport ?? nodeTransport;
  const maxAttempts = opts.maxAttempts ?? 5;
  const base = opts.baseDelayMs ?? 200;
  const maxDelay = opts.maxDelayMs ?? 5000;
  const forever = opts.retryForeverEveryMs ?? 30_000;
  const sleep = opts.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms).unref()));
  const url = `${target.apiServer}/api/v1/namespaces/${encodeURIComponent(target.namespace)}/pods/${encodeURIComponent(target.podName)}`;

  // Desired and applied labels as keys: 'follower', 'leader', or 'leader@<term>'.
  let desired: string | null = null;
  let applied: string | null = null;
  const parse = (key: string): { value: RoleLabelValue; term: number | null } => {
    const [value, term] = key.split('@') as [RoleLabelValue, string | undefined];
    return { value, term: term === undefined ? null : Number(term) };
  };
  let running: Promise<void> | null = null;
  let stopped = false;
  // Interrupts a backoff sleep: on stop, and when the desired value changes.
  let wake: (() => void) | null = null;
  const pause = (ms: number) =>
    Promise.race([sleep(ms), new Promise<void>((r) => (wake = r))]).finally(() => {
      wake = null;
    });

  const patchOnce = async (value: RoleLabelValue, term: number | null): Promise<void> => {
    const res = await transport({
      method: 'PATCH',
      url,
      headers: {
        authorization: `Bearer ${target.token()}`,
        'content-type': 'application/merge-patch+json',
        accept: 'application/json',
      },
      body: JSON.stringify(roleLabelPatch(value, term)),
      ...(target.ca ? { ca: target.ca } : {}),
    });
    if (res.status < 200 || res.status >= 300) {
      throw new Error(`PATCH ${url} returned ${res.status}: ${res.body.slice(0, 300)}`);
    }
  };

  const loop = async (): Promise<void> => {
    let attempt = 0;
    while (!stopped && desired !== null && desired !== applied) {
      const key = desired;
      const { value, term } = parse(key);
      try {
        await patchOnce(value, term);
        applied = key;
        attempt = 0;
        opts.logger?.info(
          { event: 'k8s.label', label: ROLE_LABEL, value, term, pod: target.podName },
          `pod label ${ROLE_LABEL}=${value}`,
        );
        try {
          opts.onApplied?.(value, term);
        } catch {
          // a callback's failure is not the label's
        }
      } catch (err) {
        attempt++;
        const giveUp = attempt >= maxAttempts;
        opts.logger?.warn(
          { event: 'k8s.label', label: ROLE_LABEL, value, attempt, err: (err as Error).message },
          giveUp
            ? `pod label update failed ${attempt} times; retrying every ${forever} ms`
            : 'pod label update failed; retrying',
        );
        if (giveUp) {
          if (forever <= 0) return;
          await pause(forever);
          attempt = 0;
        } else {
          await pause(Math.min(maxDelay, base * 2 ** (attempt - 1)));
        }
      }
    }
  };

  const kick = () => {
    if (running || stopped) return;
    running = loop().finally(() => {
      running = null;
      // A change that arrived after the loop's last check.
      if (!stopped && desired !== null && desired !== applied) kick();
    });
  };

  return {
    update(role, term) {
      const value = desiredRoleLabel(role);
      const next = value === 'leader' && term !== undefined ? `leader@${term}` : value;
      const changed = next !== desired;
      desired = next;
      if (desired === applied) return;
      if (changed) wake?.(); // a new value is worth an immediate attempt even while backing off
      kick();
    },
    applied: () => (applied === null ? null : parse(applied).value),
    async idle() {
      while (running) await running;
    },
    async stop() {
      stopped = true;
      wake?.();
      if (running) await running;
    },
  };
}
