// The storage failpoints on real SQLite files, in a real process killed by SIGKILL inside the
// transaction: reopened, the file holds all of the transaction or none of it. The planted
// apply-no-txn bug shows the same check failing (applied index ahead of the data).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { openDataStore } from '../../src/storage/data/index.js';
import { openRaftLog } from '../../src/storage/raft-log/index.js';
import { repoRoot, spawnProcess, tempDir, waitForExit } from '../helpers/index.js';

const fixture = fileURLToPath(new URL('./fixtures/storage-crash.ts', import.meta.url));

async function crash(...args: string[]): Promise<void> {
  const p = spawnProcess({
    args: ['--import', 'tsx', fixture, ...args],
    cwd: repoRoot,
    name: `storage-crash ${args[0]}`,
  });
  const exit = await waitForExit(p, 60_000);
  assert.equal(exit.signal, 'SIGKILL', p.describe());
}

test('SIGKILL at apply.mid-batch: data.db keeps none of the batch and its applied index stays before it', async () => {
  const path = join(tempDir('timestore-fp-data-'), 'data.db');
  await crash('data', path);
  const store = openDataStore(path);
  try {
    assert.equal(store.appliedIndex(), 1);
    assert.equal(store.count(), 1);
  } finally {
    store.close();
  }
});

test('planted apply-no-txn: the same crash leaves data.db claiming entries it does not have', async () => {
  const path = join(tempDir('timestore-fp-data-'), 'data.db');
  await crash('data', path, 'apply-no-txn');
  const store = openDataStore(path);
  try {
    assert.equal(store.appliedIndex(), 3);
    assert.equal(store.count(), 1, 'entries 2 and 3 are marked applied but absent');
  } finally {
    store.close();
  }
});

test('SIGKILL at compact.mid-transaction: raft.db still has every entry and its old snapshot metadata', async () => {
  const path = join(tempDir('timestore-fp-raft-'), 'raft.db');
  await crash('raft', path);
  const log = openRaftLog(path);
  try {
    assert.equal(log.firstIndex(), 1);
    assert.equal(log.lastIndex(), 10);
    assert.equal(log.snapshotMeta().index, 0);
    assert.deepEqual(
      log.entries(1, 11).map((e) => e.data),
      Array.from({ length: 10 }, (_, i) => `e${i + 1}`),
    );
  } finally {
    log.close();
  }
});
