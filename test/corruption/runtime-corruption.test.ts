// data.db damaged while the node runs, through the real HTTP stack and real SQLite files: the
// first SQLITE_CORRUPT trips the guard, reads and writes answer 503 storage-corrupt, /readyz fails
// naming data.db, the metric and the error log say so, and the node keeps answering. Then the
// restart: a Raft member rebuilds data.db from raft.db and ends with every acknowledged write; a
// single node (its only copy) refuses to start.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { defaultNodeConfig, type NodeConfig } from '../../src/node/config.js';
import { startNode, type NodeHandle } from '../../src/node/start.js';
import { openDataStore } from '../../src/storage/data/index.js';
import { corruptionMarkerPath } from '../../src/storage/integrity/data-file.js';
import { eventually, freePort, get, post, tempDir } from '../helpers/index.js';
import { wreckLeafPage } from './damage.js';

const WRITES = 400;

/** A logger whose JSON lines the test reads back. */
function capturedLogger(): { logger: pino.Logger; lines: () => Array<Record<string, unknown>> } {
  const out: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      out.push(...chunk.toString('utf8').split('\n').filter(Boolean));
      cb();
    },
  });
  return {
    logger: pino({ level: 'info' }, stream),
    lines: () => out.map((l) => JSON.parse(l) as Record<string, unknown>),
  };
}

async function writeMany(url: string): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < WRITES; i++) {
    const r = await post(`${url}/api/timeseries`, {
      deviceId: `dev-${i % 5}`,
      timestamp: new Date(1_700_000_000_000 + i * 1000).toISOString(),
      value: i,
      tags: { site: `s${i % 3}` },
    });
    assert.equal(r.status, 201, r.text);
    ids.push((r.json as { id: string }).id);
  }
  return ids;
}

async function allIds(url: string): Promise<Set<string>> {
  const r = await get(`${url}/api/timeseries?limit=10000&consistency=none`);
  assert.equal(r.status, 200, r.text);
  const body = r.json as { data?: Array<{ id: string }> } | Array<{ id: string }>;
  const items = Array.isArray(body) ? body : (body.data ?? []);
  return new Set(items.map((e) => e.id));
}

for (const kind of ['raft-member', 'single-node'] as const) {
  test(`${kind}: data.db damaged while running is refused with 503, /readyz and the metric say so; the restart ${kind === 'raft-member' ? 'rebuilds it with every acknowledged write' : 'is refused'}`, async () => {
    const dataDir = tempDir(`corrupt-runtime-${kind}-`);
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    const config: NodeConfig = defaultNodeConfig({
      id: 'n1',
      dataDir,
      listen: { host: '127.0.0.1', port },
      advertise: url,
      ...(kind === 'raft-member' ? { peers: [{ id: 'n1', url }] } : {}),
      electionTimeoutMs: 300,
      heartbeatMs: 50,
    });
    const dataPath = join(dataDir, 'data.db');
    const log = capturedLogger();
    // A tiny page cache: the damaged page is read again from the file after the damage.
    let node: NodeHandle | null = await startNode(config, {
      logger: log.logger,
      openStore: () =>
        openDataStore(dataPath, { cacheSizeKiB: 8, synchronous: kind === 'raft-member' ? 'NORMAL' : 'FULL' }),
    });
    try {
      const ids = await writeMany(url);
      assert.equal((await allIds(url)).size, WRITES, 'sound before the damage');
      // Fold the WAL into data.db so that the damage in the file is what SQLite reads.
      assert.ok(existsSync(dataPath));
      const { default: Database } = await import('better-sqlite3');
      const side = new Database(dataPath);
      side.pragma('wal_checkpoint(TRUNCATE)');
      side.close();
      wreckLeafPage(dataPath, 'points');

      const read = await get(`${url}/api/timeseries?limit=10000&consistency=none`);
      assert.equal(read.status, 503, read.text);
      assert.match(read.contentType, /application\/problem\+json/);
      const problem = read.json as { type: string; detail: string; file: string };
      assert.equal(problem.type, 'urn:timestore:problem:storage-corrupt');
      assert.equal(problem.file, dataPath);
      assert.match(problem.detail, /data\.db is corrupt: SQLITE_CORRUPT/);
      // Every data request now refuses, also those that would not touch the damaged page.
      const one = await get(`${url}/api/timeseries/${ids[0]}?consistency=none`);
      assert.equal(one.status, 503, one.text);
      const write = await post(`${url}/api/timeseries`, {
        deviceId: 'dev-x',
        timestamp: '2026-01-01T00:00:00Z',
        value: 1,
      });
      assert.equal(write.status, 503, write.text);
      assert.equal((write.json as { type: string }).type, 'urn:timestore:problem:storage-corrupt');

      const ready = await get(`${url}/readyz`);
      assert.equal(ready.status, 503);
      assert.equal((ready.json as { reason: string }).reason, 'storage-corrupt');
      assert.match(
        (ready.json as { detail: string }).detail,
        new RegExp(`data\\.db \\(${dataPath}\\) is corrupt`),
      );
      const live = await get(`${url}/livez`);
      // A member is rebuilt by a restart, so liveness asks for one; a single node cannot be.
      assert.equal(live.status, kind === 'raft-member' ? 503 : 200, live.text);
      const metrics = await get(`${url}/metrics`);
      assert.equal(metrics.status, 200);
      assert.match(metrics.text, /^timestore_storage_corrupt\{file="data\.db"\} 1$/m);
      const errors = log.lines().filter((l) => l.event === 'storage.corrupt');
      assert.equal(errors.length, 1, 'one error line when the fault is found');
      assert.equal(errors[0]!.level, 50);
      assert.equal(errors[0]!.path, dataPath);
      assert.ok(existsSync(corruptionMarkerPath(dataPath)), 'the fault is remembered for the next start');

      await node.close();
      node = null;
      const log2 = capturedLogger();
      if (kind === 'single-node') {
        await assert.rejects(startNode(config, { logger: log2.logger }), (err: Error) => {
          assert.equal(err.name, 'StorageCorruptError');
          assert.match(err.message, new RegExp(`${dataPath} is corrupt`));
          assert.match(err.message, /restore data\.db from a backup/);
          return true;
        });
        return;
      }
      node = await startNode(config, { logger: log2.logger });
      const moved = log2.lines().find((l) => l.event === 'storage.corrupt');
      assert.ok(moved, 'the restart says data.db was corrupt and where it went');
      const movedTo = moved.movedTo as string[];
      assert.ok(movedTo.length >= 1 && existsSync(movedTo[0]!), `kept at ${String(movedTo)}`);
      assert.ok(readdirSync(dataDir).some((f) => f.startsWith('data.db.corrupt-')));
      assert.equal(existsSync(corruptionMarkerPath(dataPath)), false);
      // Ready again (the first requests may meet a pooled connection of the stopped server)...
      await eventually(async () => (await get(`${url}/readyz`)).status === 200, 'readyz after the rebuild');
      // ...and rebuilt from raft.db: every acknowledged write is back.
      const back = await allIds(url);
      for (const id of ids) assert.ok(back.has(id), `acknowledged write ${id} is missing after the rebuild`);
      assert.equal(back.size, WRITES);
      assert.match(
        await get(`${url}/metrics`).then((r) => r.text),
        /^timestore_storage_corrupt\{file="data\.db"\} 0$/m,
      );
    } catch (err) {
      if (process.env.DEBUG_CORRUPT) console.error(log.lines().filter((l) => (l.level as number) >= 40));
      throw err;
    } finally {
      await node?.close();
    }
  });
}
