// A stand-in for `timestore node` (single node only) that speaks the slice of the API the chaos
// harness uses: POST /api/timeseries, GET /api/timeseries/device/:id, GET /raft/status, GET /livez.
// It exists to test the harness itself (process control, clients, history, checkers) and to show
// the checkers catch planted bugs:
//   FAKE_NODE_BUG=ack-before-fsync   acknowledge writes before they are durable (flushed every 500 ms),
//                                    so SIGKILL loses acknowledged writes;
//   FAKE_NODE_BUG=stale-reads        reads are served from a copy of the state refreshed every 300 ms.
// Usage: node --import tsx test/chaos/fake-node.ts --id n1 --listen 127.0.0.1:PORT --data-dir DIR
import { createServer } from 'node:http';
import { appendFileSync, fsyncSync, mkdirSync, openSync, readFileSync, existsSync, closeSync } from 'node:fs';
import { randomUUID } from 'node:crypto';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    id: { type: 'string', default: 'n1' },
    listen: { type: 'string', default: '127.0.0.1:5001' },
    'data-dir': { type: 'string', default: './data' },
    'log-level': { type: 'string' },
    'election-timeout-ms': { type: 'string' },
    'heartbeat-ms': { type: 'string' },
    peers: { type: 'string' },
    'on-removed': { type: 'string' },
  },
});
const bug = process.env.FAKE_NODE_BUG ?? '';
const dir = values['data-dir']!;
mkdirSync(dir, { recursive: true });
const file = `${dir}/entries.jsonl`;

interface Entry {
  id: string;
  deviceId: string;
  timestamp: string;
  value: number;
}
const state = new Map<string, Entry>();
let applied = 0;
if (existsSync(file)) {
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    if (!line) continue;
    try {
      const e = JSON.parse(line) as Entry;
      state.set(e.id, e);
      applied++;
    } catch {
      // torn tail
    }
  }
}
let stale = new Map(state);
if (bug === 'stale-reads') setInterval(() => (stale = new Map(state)), 300);

let buffered: string[] = [];
const fd = openSync(file, 'a');
function persist(line: string): void {
  if (bug === 'ack-before-fsync') {
    buffered.push(line);
    return;
  }
  appendFileSync(fd, line + '\n');
  fsyncSync(fd);
}
if (bug === 'ack-before-fsync')
  setInterval(() => {
    if (!buffered.length) return;
    appendFileSync(fd, buffered.join('\n') + '\n');
    fsyncSync(fd);
    buffered = [];
  }, 500);

const json = (
  res: import('node:http').ServerResponse,
  status: number,
  body: unknown,
  type = 'application/json',
) => {
  res.writeHead(status, { 'content-type': type });
  res.end(JSON.stringify(body));
};
const problem = (res: import('node:http').ServerResponse, status: number, detail: string) =>
  json(res, status, { type: 'about:blank', title: 'error', status, detail }, 'application/problem+json');

const server = createServer((req, res) => {
  const url = new URL(req.url ?? '/', 'http://x');
  if (req.method === 'GET' && url.pathname === '/livez')
    return json(res, 200, { status: 'ok', nodeId: values.id, version: 'fake' });
  if (req.method === 'GET' && url.pathname === '/raft/status')
    return json(res, 200, {
      state: 'Leader',
      leaderId: values.id,
      nodeId: values.id,
      term: 1,
      commitIndex: applied,
      appliedIndex: applied,
      members: [values.id],
    });
  const m = /^\/api\/timeseries\/device\/([^/]+)$/.exec(url.pathname);
  if (req.method === 'GET' && m) {
    const dev = decodeURIComponent(m[1]!);
    const src = bug === 'stale-reads' && url.searchParams.get('consistency') !== 'none' ? stale : state;
    return json(
      res,
      200,
      [...src.values()].filter((e) => e.deviceId === dev),
    );
  }
  if (req.method === 'POST' && url.pathname === '/api/timeseries') {
    let body = '';
    req.on('data', (d) => (body += d));
    req.on('end', () => {
      let e: Partial<Entry>;
      try {
        e = JSON.parse(body);
      } catch {
        return problem(res, 400, 'malformed JSON');
      }
      if (typeof e.deviceId !== 'string' || typeof e.value !== 'number' || typeof e.timestamp !== 'string')
        return problem(res, 400, 'bad entry');
      const entry: Entry = {
        id: e.id ?? randomUUID(),
        deviceId: e.deviceId,
        timestamp: e.timestamp,
        value: e.value,
      };
      persist(JSON.stringify(entry));
      state.set(entry.id, entry);
      applied++;
      json(res, 201, entry);
    });
    return;
  }
  problem(res, 404, 'not found');
});
const [host, port] = values.listen!.split(':');
server.listen(Number(port), host);
process.on('SIGTERM', () => {
  closeSync(fd);
  process.exit(0);
});
