// Shared by the fast-path equivalence tests (append-fast-path.test.ts, forward-fast-path.test.ts):
// a single-member Raft node with or without the fast paths, the same requests sent to each on one
// keep-alive connection, and the answers normalized to what must not differ between the paths.
import { after } from 'node:test';
import { Pool } from 'undici';
import { eventually, freePort, get, startNodeProcess, type NodeProcess } from '../helpers/index.js';

export interface Case {
  what: string;
  body: string | Buffer;
  /** Default: the test's path. */
  path?: string;
  contentType?: string;
}

export interface Answer {
  status: number;
  headers: string[];
  body: string;
}

/**
 * A one-member Raft cluster (it leads itself) with `env` (TIMESTORE_FAST_WRITE=0: express only),
 * pushed onto `nodes` for the test's after() hook. Returns once it is the leader.
 */
export async function soloMember(
  nodes: NodeProcess[],
  id: string,
  env: Record<string, string> = {},
): Promise<NodeProcess> {
  const port = await freePort();
  const n = await startNodeProcess({ id, port, args: ['--peers', `${id}=http://127.0.0.1:${port}`], env });
  nodes.push(n);
  await eventually(async () => (await get(`${n.url}/raft/status`)).json.state === 'Leader', `${id} leads`);
  return n;
}

/**
 * Status, header lines and body, without what differs by design: the date, generated request ids
 * and lengths, and terms and indexes (each node's own election and log history).
 */
export function normalize(
  status: number,
  headers: Record<string, string | string[] | undefined>,
  body: string,
): Answer {
  const h = Object.entries(headers)
    .filter(([k]) => k !== 'date')
    .map(([k, v]) => `${k}: ${k === 'x-request-id' || k === 'content-length' ? '<v>' : String(v)}`);
  return {
    status,
    headers: h,
    body: body
      .replace(/"(term|index)":\d+/g, '"$1":<n>')
      .replace(/"requestId":"[^"]*"/g, '"requestId":"<id>"'),
  };
}

/** Every case POSTed to `n` in order on one connection; the normalized answers. */
export async function answersOf(n: NodeProcess, cases: Case[], path: string): Promise<Answer[]> {
  const pool = new Pool(n.url, { connections: 1 });
  const out: Answer[] = [];
  try {
    for (const c of cases) {
      const res = await pool.request({
        method: 'POST',
        path: c.path ?? path,
        headers: { 'content-type': c.contentType ?? 'application/json' },
        body: c.body,
      });
      out.push(normalize(res.statusCode, res.headers, await res.body.text()));
    }
  } finally {
    await pool.close();
  }
  return out;
}

/** A test's solo members, stopped by its after() hook: `const nodes = stoppedAfter()`. */
export function stoppedAfter(): NodeProcess[] {
  const nodes: NodeProcess[] = [];
  after(async () => {
    for (const n of nodes) if (n.proc.running) await n.stop();
  });
  return nodes;
}

/** An append request body from a stale "other" leader (term 0), with `extra` fields over it. */
export const appendBody = (extra: Record<string, unknown> = {}): string =>
  JSON.stringify({
    term: 0,
    leaderId: 'other',
    prevLogIndex: 0,
    prevLogTerm: 0,
    entries: [],
    leaderCommit: 0,
    ...extra,
  });

/** A one-put command. */
export const putCommand = (id: string, requestId: string, value = 1) => ({
  requestId,
  ops: [{ op: 'put', point: { id, deviceId: 'ff', ts: 1_700_000_000_000_000, value } }],
});

/** Fixed point ids: two nodes store the same points, so their answers compare byte for byte. */
export const pointId = (n: number): string =>
  `01890a5d-ac96-774b-bcce-b302099a8${String(n).padStart(3, '0')}`;
