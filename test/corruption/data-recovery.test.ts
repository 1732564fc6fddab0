// recoverDataFromPeers on real files: a node whose data.db is behind raft.db's snapshot, with no
// local snapshot file, fetches a peer's snapshot over real HTTP. Each branch of the install rule:
// the log agrees at the snapshot index (kept, commit raised), the snapshot is beyond the log
// (log dropped, snapshot recorded), the snapshot is too old or arrives damaged (refused).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { createReadStream, statSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pino } from 'pino';
import { openDataStore } from '../../src/storage/data/index.js';
import { openRaftLog } from '../../src/storage/raft-log/index.js';
import { recoverDataFromPeers } from '../../src/node/raft/data-recovery.js';
import type { Entry, SnapshotMeta } from '../../src/raft/types.js';
import { tempDir } from '../helpers/tmp.js';

const silent = pino({ level: 'silent' });
const servers: Server[] = [];
after(() => servers.forEach((s) => s.close()));

const put = (i: number) => ({
  ops: [
    {
      op: 'put' as const,
      point: {
        id: `01900000-0000-7000-8000-${i.toString(16).padStart(12, '0')}`,
        deviceId: 'd',
        ts: i,
        value: i,
      },
    },
  ],
});

/** A peer's snapshot file of the state after entries 1..index (commands put(i) from 3 on). */
async function peerSnapshot(index: number): Promise<string> {
  const dir = tempDir('recovery-peer-');
  const s = openDataStore(join(dir, 'data.db'));
  const batch = [];
  for (let i = 1; i <= index; i++) batch.push({ index: i, command: i <= 2 ? null : put(i) });
  s.applyBatch(batch);
  await s.snapshotTo(join(dir, 'snap.db'));
  s.close();
  return join(dir, 'snap.db');
}

/** Serves GET /raft/snapshot/latest like a member does; `tamper` changes a byte after hashing. */
async function servePeer(file: string, meta: SnapshotMeta, tamper = false, secret?: string): Promise<string> {
  const bytes = readFileSync(file);
  const sha = createHash('sha256').update(bytes).digest('hex');
  const server = createServer((req, res) => {
    if (req.url !== '/raft/snapshot/latest') return res.writeHead(404).end();
    // As a member with --cluster-secret: a peer endpoint, 401 without the secret.
    if (secret && req.headers.authorization !== `Bearer ${secret}`) return res.writeHead(401).end();
    res.writeHead(200, {
      'content-type': 'application/octet-stream',
      'content-length': String(statSync(file).size),
      'x-timestore-snapshot-sha256': sha,
      'x-timestore-snapshot-meta': Buffer.from(JSON.stringify(meta)).toString('base64'),
    });
    if (!tamper) return createReadStream(file).pipe(res);
    const copy = Buffer.from(bytes);
    copy[copy.length - 10] = copy[copy.length - 10]! ^ 0xff;
    res.end(copy);
  });
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const addr = server.address() as { port: number };
  return `http://127.0.0.1:${addr.port}`;
}

/** This node: raft.db with entries 1..100 (term 1), compacted with a snapshot at 50; empty data.db. */
function damagedNode(peerUrl: string): { dataDir: string } {
  const dataDir = tempDir('recovery-node-');
  const log = openRaftLog(join(dataDir, 'raft.db'));
  log.bootstrap([
    { id: 'n1', url: 'http://127.0.0.1:1' },
    { id: 'n2', url: peerUrl },
  ]);
  const es: Entry[] = [];
  for (let i = 3; i <= 100; i++) es.push({ index: i, term: 1, kind: 'normal', data: JSON.stringify(put(i)) });
  log.persist({ entries: es, hardState: { term: 1, vote: 'n2', commit: 90 } });
  log.compact({ index: 50, term: 1, ...log.membershipAt(50) }, 50);
  log.close();
  return { dataDir };
}

async function run(
  snapIndex: number,
  opts: {
    tamper?: boolean;
    term?: number;
    damagedLocal?: number;
    peerSecret?: string;
    ourSecret?: string;
  } = {},
) {
  const file = await peerSnapshot(snapIndex);
  const meta: SnapshotMeta = {
    index: snapIndex,
    term: opts.term ?? 1,
    membership: { voters: ['n1', 'n2'], learners: [] },
    contexts: {},
  };
  const url = await servePeer(file, meta, opts.tamper, opts.peerSecret);
  const { dataDir } = damagedNode(url);
  if (opts.damagedLocal !== undefined) {
    mkdirSync(join(dataDir, 'snapshots'), { recursive: true });
    writeFileSync(join(dataDir, 'snapshots', `snap-${opts.damagedLocal}.db`), Buffer.alloc(4096, 0x33));
  }
  const data = openDataStore(join(dataDir, 'data.db'));
  const result = await recoverDataFromPeers({
    selfId: 'n1',
    dataDir,
    data,
    log: silent,
    ...(opts.ourSecret ? { clusterSecret: opts.ourSecret } : {}),
  });
  const applied = data.appliedIndex();
  const count = data.count();
  data.close();
  const log = openRaftLog(join(dataDir, 'raft.db'));
  const after = {
    first: log.firstIndex(),
    last: log.lastIndex(),
    snapshot: log.snapshotMeta().index,
    hard: log.hardState(),
  };
  log.close();
  return { result, applied, count, after, dataDir };
}

test('the peer snapshot agrees with the log at its index: data restored, log kept, commit raised', async () => {
  const r = await run(95);
  assert.deepEqual(r.result, { action: 'restored', from: 'n2', index: 95, keptLog: true });
  assert.equal(r.applied, 95);
  assert.equal(r.count, 93, 'puts of entries 3..95');
  assert.equal(r.after.last, 100, 'entries 96..100 stay to be applied');
  assert.equal(r.after.first, 51);
  assert.deepEqual(r.after.hard, { term: 1, vote: 'n2', commit: 95 }, 'term and vote kept');
});

test('the peer snapshot is beyond the log: the log is replaced by it, as InstallSnapshot does', async () => {
  const r = await run(130);
  assert.equal(r.result.action, 'restored');
  assert.equal((r.result as { keptLog: boolean }).keptLog, false);
  assert.equal(r.applied, 130);
  assert.deepEqual([r.after.first, r.after.last, r.after.snapshot], [131, 130, 130]);
  assert.deepEqual(r.after.hard, { term: 1, vote: 'n2', commit: 130 });
});

test('the log disagrees at the snapshot index (other term): the log is dropped, not mixed', async () => {
  const r = await run(80, { term: 2 });
  assert.equal((r.result as { keptLog: boolean }).keptLog, false);
  assert.deepEqual([r.after.first, r.after.last, r.after.snapshot], [81, 80, 80]);
});

test('a snapshot older than raft.db needs is refused; nothing changes', async () => {
  const r = await run(40);
  assert.equal(r.result.action, 'impossible');
  assert.match(JSON.stringify(r.result), /its snapshot 40 is older than this node's 50/);
  assert.equal(r.applied, 0);
  assert.deepEqual([r.after.first, r.after.last, r.after.snapshot], [51, 100, 50]);
});

test('a snapshot that arrives changed (sha256 mismatch) is refused; nothing changes', async () => {
  const r = await run(95, { tamper: true });
  assert.equal(r.result.action, 'impossible');
  assert.match(JSON.stringify(r.result), /sha256 mismatch/);
  assert.equal(r.applied, 0);
});

test('a damaged local snapshot file is set aside (kept) and a peer snapshot used instead', async () => {
  const r = await run(95, { damagedLocal: 60 });
  assert.equal(r.result.action, 'restored');
  assert.equal(r.applied, 95);
  const snap = join(r.dataDir, 'snapshots', 'snap-60.db');
  assert.equal(existsSync(snap), false, 'the driver will not pick it');
  assert.ok(existsSync(`${snap}.corrupt`), 'kept for analysis');
});

test('a sound local snapshot that covers raft.db means nothing is fetched', async () => {
  const file = await peerSnapshot(60);
  const url = await servePeer(file, {
    index: 60,
    term: 1,
    membership: { voters: ['n1', 'n2'], learners: [] },
    contexts: {},
  });
  const { dataDir } = damagedNode(url);
  mkdirSync(join(dataDir, 'snapshots'), { recursive: true });
  writeFileSync(join(dataDir, 'snapshots', 'snap-60.db'), readFileSync(file));
  const data = openDataStore(join(dataDir, 'data.db'));
  const r = await recoverDataFromPeers({ selfId: 'n1', dataDir, data, log: silent });
  data.close();
  assert.deepEqual(r, { action: 'not-needed' }, 'the driver restores its own snapshot');
});

test('with --cluster-secret the fetch carries the secret; without it the peer refuses and nothing changes', async () => {
  const secret = 'a-cluster-secret-of-some-length';
  const ok = await run(60, { peerSecret: secret, ourSecret: secret });
  assert.equal(ok.result.action, 'restored', JSON.stringify(ok.result));
  assert.equal(ok.applied, 60);
  const refused = await run(60, { peerSecret: secret });
  assert.equal(refused.result.action, 'impossible', JSON.stringify(refused.result));
  assert.match(JSON.stringify(refused.result), /401/);
  assert.equal(refused.applied, 0);
});
