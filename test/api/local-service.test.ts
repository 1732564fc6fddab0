// LocalService: serialized writes with consecutive indices, concurrent writes grouped into one
// applyBatch, a bad command failing alone, and a drain on close.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { LocalService } from '../../src/node/local-service.js';
import { ServiceUnavailableError } from '../../src/node/service.js';
import { openDataStore } from '../../src/storage/data/index.js';
import type { Command } from '../../src/tsdb/model.js';

const put = (id: string, value = 1): Command => ({
  ops: [{ op: 'put', point: { id, deviceId: 'd', ts: 1, value } }],
});
// Real SQLite files: the service is tested against the engine it runs on.
const opened: Array<{ dir: string; store: ReturnType<typeof openDataStore> }> = [];
after(() => {
  for (const { dir, store } of opened) {
    store.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
function tempStore() {
  const dir = mkdtempSync(join(tmpdir(), 'timestore-ls-'));
  const store = openDataStore(join(dir, 'data.db'));
  opened.push({ dir, store });
  return store;
}
const uuid = (n: number) => `0190b3a0-0000-7000-8000-${String(n).padStart(12, '0')}`;

describe('LocalService', () => {
  it('groups concurrent writes into one transaction with consecutive indices', async () => {
    const store = tempStore();
    const calls: number[] = [];
    const orig = store.applyBatch.bind(store);
    store.applyBatch = (batch) => {
      calls.push(batch.length);
      return orig(batch);
    };
    const svc = new LocalService(store);
    const results = await Promise.all(Array.from({ length: 50 }, (_, i) => svc.write(put(uuid(i)), {})));
    assert.deepEqual(
      results.map((r) => r.index),
      Array.from({ length: 50 }, (_, i) => i + 1),
    );
    assert.equal(results[7]!.points[0]!.id, uuid(7));
    assert.ok(calls.length < 50, `expected grouping, got ${calls.length} transactions`);
    assert.equal(store.appliedIndex(), 50);
  });

  it('a command the engine rejects fails alone; the others in its group commit', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'timestore-ls-'));
    const store = openDataStore(join(dir, 'data.db'));
    try {
      const svc = new LocalService(store);
      const bad: Command = { ops: [{ op: 'put', point: { id: uuid(2), deviceId: '', ts: 1, value: 1 } }] };
      const settled = await Promise.allSettled([
        svc.write(put(uuid(1)), {}),
        svc.write(bad, {}),
        svc.write(put(uuid(3)), {}),
      ]);
      assert.equal(settled[0].status, 'fulfilled');
      assert.equal(settled[1].status, 'rejected');
      assert.equal(settled[2].status, 'fulfilled');
      assert.equal(store.count(), 2);
      assert.ok(store.get(uuid(3)));
      // Indices stay consecutive after the failure.
      assert.equal((await svc.write(put(uuid(4)), {})).index, store.appliedIndex());
    } finally {
      store.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('continues the index from the store after a restart', async () => {
    const store = tempStore();
    store.applyBatch([{ index: 41, command: null }]);
    const svc = new LocalService(store);
    assert.equal((await svc.write(put(uuid(1)), {})).index, 42);
  });

  it('close() applies what is queued, then refuses with ServiceUnavailableError', async () => {
    const store = tempStore();
    const svc = new LocalService(store);
    const pending = svc.write(put(uuid(1)), {});
    await svc.close();
    assert.equal((await pending).index, 1);
    await assert.rejects(svc.write(put(uuid(2)), {}), ServiceUnavailableError);
    await assert.rejects(
      svc.read('linearizable', (s) => s.count(), {}),
      ServiceUnavailableError,
    );
  });

  it('an already-aborted write is not applied', async () => {
    const store = tempStore();
    const svc = new LocalService(store);
    await assert.rejects(svc.write(put(uuid(1)), { signal: AbortSignal.abort() }));
    assert.equal(store.count(), 0);
  });
});
