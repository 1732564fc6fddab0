// Durability and shutdown: everything acknowledged survives SIGKILL; SIGTERM finishes in-flight
// requests, closes SQLite cleanly and exits 0.
import assert from 'node:assert/strict';
import { existsSync, statSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { get, post, startNodeProcess } from '../helpers/index.js';
import { readAll, type EntryJson } from './support.js';

describe('durability', () => {
  it('every acknowledged write survives SIGKILL and restart', async () => {
    const node = await startNodeProcess({ id: 'n1' });
    try {
      const acked = new Map<string, EntryJson>();
      let stop = false;
      let seq = 0;
      // Concurrent writers (singles and batches) keep writing while the node is killed.
      const writer = async (w: number) => {
        while (!stop) {
          const i = seq++;
          const body =
            i % 5 === 0
              ? Array.from({ length: 20 }, (_, k) => ({
                  deviceId: `w${w}`,
                  timestamp: new Date(Date.UTC(2024, 0, 1) + i * 1000 + k).toISOString(),
                  value: i * 100 + k,
                }))
              : {
                  deviceId: `w${w}`,
                  timestamp: new Date(Date.UTC(2024, 0, 1) + i * 1000).toISOString(),
                  value: i,
                  tags: { w: String(w) },
                };
          try {
            const res = await post<EntryJson | EntryJson[]>(`${node.url}/api/timeseries`, body, {
              timeoutMs: 10_000,
            });
            if (res.status === 201)
              for (const e of Array.isArray(res.json) ? res.json : [res.json]) acked.set(e.id, e);
          } catch {
            // connection refused/reset by the kill: not acknowledged
          }
        }
      };
      const writers = Array.from({ length: 8 }, (_, w) => writer(w));
      while (acked.size < 400) await new Promise((r) => setTimeout(r, 20));
      await node.kill();
      stop = true;
      await Promise.all(writers);
      assert.ok(acked.size >= 400);

      await node.restart();
      const stored = new Map((await readAll(`${node.url}/api/timeseries`, 10_000)).map((e) => [e.id, e]));
      const missing = [...acked.keys()].filter((id) => !stored.has(id));
      assert.deepEqual(missing, [], `${missing.length} acknowledged entries lost after SIGKILL`);
      for (const [id, e] of acked) assert.deepEqual(stored.get(id), e);

      // The node keeps working after recovery.
      const after = await post(`${node.url}/api/timeseries`, {
        deviceId: 'after',
        timestamp: '2024-05-01T00:00:00Z',
        value: 1,
      });
      assert.equal(after.status, 201, after.text);
    } finally {
      await node.kill();
    }
  });
});

describe('graceful shutdown', () => {
  it('SIGTERM finishes an in-flight request, refuses new ones, closes SQLite and exits 0', async () => {
    const node = await startNodeProcess({ id: 'n1' });
    try {
      await post(`${node.url}/api/timeseries`, {
        deviceId: 'before',
        timestamp: '2024-05-01T00:00:00Z',
        value: 1,
      });

      // A request whose body arrives in two parts: the handler is running when SIGTERM comes.
      const body = JSON.stringify({ deviceId: 'in-flight', timestamp: '2024-05-01T00:00:01Z', value: 2 });
      const half = Math.floor(body.length / 2);
      const response = new Promise<{ status: number; text: string }>((resolve, reject) => {
        const req = httpRequest(`${node.url}/api/timeseries`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
        });
        req.on('response', (res) => {
          let text = '';
          res.on('data', (c: Buffer) => (text += c.toString()));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
        });
        req.on('error', reject);
        req.write(body.slice(0, half));
        (globalThis as { finishBody?: () => void }).finishBody = () => req.end(body.slice(half));
      });
      await new Promise((r) => setTimeout(r, 500));
      node.proc.child.kill('SIGTERM');
      await node.proc.waitForOutput(/"shutting down"/);
      // Still running: it waits for the in-flight request.
      await new Promise((r) => setTimeout(r, 300));
      assert.ok(node.proc.running, `exited before the in-flight request finished.\n${node.describe()}`);
      // New connections are refused once the server stopped listening.
      await assert.rejects(get(`${node.url}/livez`, { timeoutMs: 5_000 }));

      (globalThis as { finishBody?: () => void }).finishBody!();
      const res = await response;
      assert.equal(res.status, 201, res.text);
      const exit = await node.proc.exited;
      assert.deepEqual(exit, { code: 0, signal: null }, node.describe());
      assert.match(node.output(), /data store closed/);
      // A clean SQLite close checkpoints the WAL and removes it.
      const wal = join(node.dataDir, 'data.db-wal');
      assert.ok(!existsSync(wal) || statSync(wal).size === 0, 'data.db-wal left behind after a clean close');

      await node.restart();
      const all = await readAll(`${node.url}/api/timeseries`);
      assert.deepEqual(all.map((e) => e.deviceId).sort(), ['before', 'in-flight']);
    } finally {
      await node.kill();
    }
  });

  it('SIGINT also shuts down cleanly with exit code 0', async () => {
    const node = await startNodeProcess({ id: 'n1' });
    try {
      const exit = await node.stop('SIGINT');
      assert.deepEqual(exit, { code: 0, signal: null }, node.describe());
    } finally {
      await node.kill();
    }
  });
});
