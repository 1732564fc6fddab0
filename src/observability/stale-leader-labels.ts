// Demoting stale leader labels: a node that has just labelled itself leader in term T looks at the
// pods of the other members and sets `follower` on any that still says `leader` from an older term.
// Without it, a leader that died (SIGKILL, lost machine) keeps `timestore.io/role=leader` until it
// restarts, and the leader Service sends part of the writes to a dead pod until Kubernetes marks
// it NotReady (up to ~40 s when a whole machine is lost).
//
// Why it cannot remove the label of the real leader: the demotion is a conditional write (the
// merge patch carries the resourceVersion that was read, so the API server answers 409 if the pod
// changed in between), and it only touches a label whose leader-term annotation is older than the
// demoter's own term. A node that wins a later term labels itself after its election, so either its
// label is already there (newer term: left alone) or it lands after the demotion (and wins).
//
//   const demote = staleLeaderDemoter({ target, logger });
//   labeler = createLeaderLabeler({ onApplied: (v, term) => v === 'leader' && term !== null &&
//     void demote(peerPodNames(), term, () => stillLeaderIn(term)) });
import {
  LEADER_TERM_ANNOTATION,
  ROLE_LABEL,
  nodeTransport,
  type KubeTarget,
  type PatchTransport,
} from './leader-label.js';
import type { LabelLogger } from './leader-label.js';

interface PodMeta {
  resourceVersion?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

/**
 * Whether a pod's metadata shows a leader label older than `term`. A leader label without the
 * annotation (written by an older TimeStore) counts as term 0.
 */
export function isStaleLeaderLabel(meta: PodMeta, term: number): boolean {
  if (meta.labels?.[ROLE_LABEL] !== 'leader') return false;
  const raw = meta.annotations?.[LEADER_TERM_ANNOTATION];
  const theirs = raw === undefined ? 0 : Number(raw);
  // An unreadable annotation is nobody's proof of being older: leave that pod alone.
  return Number.isFinite(theirs) && theirs < term;
}

/** Merge patch setting `follower`, conditional on the pod still being at `resourceVersion`. */
export function demotionPatch(resourceVersion: string) {
  return { metadata: { resourceVersion, labels: { [ROLE_LABEL]: 'follower' } } };
}

export type DemotionResult = 'demoted' | 'not-stale' | 'no-such-pod' | 'not-leader-any-more' | 'failed';

export interface StaleLeaderDemoterOptions {
  target: KubeTarget;
  transport?: PatchTransport;
  logger?: LabelLogger;
  /** Read-and-patch rounds per pod when the pod keeps changing under us (409), default 3. */
  maxConflicts?: number;
  /** Passes over the pods that failed (API server unreachable, 5xx), default 4, `retryDelayMs` apart (1 s, doubling). */
  maxPasses?: number;
  retryDelayMs?: number;
  sleep?: (ms: number) => Promise<void>;
}

/**
 * Returns `demote(pods, term, stillLeader)`: for each pod name, read it and, if its leader label is
 * older than `term`, set `follower` with a conditional patch. Stops as soon as `stillLeader()` is
 * false. Never throws; resolves with what happened to each pod.
 */
export function staleLeaderDemoter(opts: StaleLeaderDemoterOptions) {
  const { target } = opts;
  const transport = opts.transport ?? nodeTransport;
  const maxConflicts = opts.maxConflicts ?? 3;
  const maxPasses = opts.maxPasses ?? 4;
  const retryDelayMs = opts.retryDelayMs ?? 1_000;
  const sleep = opts.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms).unref()));
  const urlOf = (pod: string) =>
    `${target.apiServer}/api/v1/namespaces/${encodeURIComponent(target.namespace)}/pods/${encodeURIComponent(pod)}`;
  const headers = (extra: Record<string, string> = {}) => ({
    authorization: `Bearer ${target.token()}`,
    accept: 'application/json',
    ...extra,
  });
  const request = (method: 'GET' | 'PATCH', pod: string, body: string, extra?: Record<string, string>) =>
    transport({
      method,
      url: urlOf(pod),
      headers: headers(extra),
      body,
      ...(target.ca ? { ca: target.ca } : {}),
    });

  const demoteOne = async (
    pod: string,
    term: number,
    stillLeader: () => boolean,
  ): Promise<DemotionResult> => {
    for (let round = 0; round < maxConflicts; round++) {
      if (!stillLeader()) return 'not-leader-any-more';
      const got = await request('GET', pod, '');
      if (got.status === 404) return 'no-such-pod';
      if (got.status < 200 || got.status >= 300)
        throw new Error(`GET pod ${pod} returned ${got.status}: ${got.body.slice(0, 300)}`);
      const meta = (JSON.parse(got.body) as { metadata?: PodMeta }).metadata ?? {};
      if (!isStaleLeaderLabel(meta, term) || !meta.resourceVersion) return 'not-stale';
      if (!stillLeader()) return 'not-leader-any-more';
      const res = await request('PATCH', pod, JSON.stringify(demotionPatch(meta.resourceVersion)), {
        'content-type': 'application/merge-patch+json',
      });
      if (res.status >= 200 && res.status < 300) return 'demoted';
      if (res.status !== 409)
        throw new Error(`PATCH pod ${pod} returned ${res.status}: ${res.body.slice(0, 300)}`);
      // The pod changed since we read it: read it again and decide again.
    }
    throw new Error(`pod ${pod} kept changing (409 ${maxConflicts} times)`);
  };

  return async (pods: readonly string[], term: number, stillLeader: () => boolean) => {
    const out: Record<string, DemotionResult> = {};
    let todo = [...pods];
    for (let pass = 0; pass < maxPasses && todo.length > 0; pass++) {
      if (pass > 0) {
        // Right after an election the API server may be briefly unreachable from here: try again.
        await sleep(retryDelayMs * 2 ** (pass - 1));
        if (!stillLeader()) {
          for (const pod of todo) out[pod] = 'not-leader-any-more';
          break;
        }
      }
      const failed: string[] = [];
      for (const pod of todo) {
        try {
          out[pod] = await demoteOne(pod, term, stillLeader);
        } catch (err) {
          out[pod] = 'failed';
          failed.push(pod);
          opts.logger?.warn(
            { event: 'k8s.label.demote', pod, term, attempt: pass + 1, err: (err as Error).message },
            `could not check or demote the leader label of pod ${pod}`,
          );
          continue;
        }
        if (out[pod] === 'demoted')
          opts.logger?.info(
            { event: 'k8s.label.demote', pod, term },
            `pod ${pod}: stale ${ROLE_LABEL}=leader from an older term set to follower`,
          );
      }
      todo = failed;
    }
    return out;
  };
}
