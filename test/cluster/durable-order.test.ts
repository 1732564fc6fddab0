// The Raft loop fsyncs raft.db on libuv's thread pool while the event loop goes on (driver.ts,
// `syncing`). Durability rule: nothing that depends on a Ready's state leaves the process, and no
// write is applied or acknowledged, before that Ready's fsync has completed.
//
// A real RaftDriver with a real raft.db and data.db, a single-voter cluster (its leader commits an
// entry as soon as it is proposed, so only the fsync stands between a proposal and its apply). The
// store's sync() is gated: fsyncs run only when the test releases them. The planted bug
// `ack-before-fsync` (src/node/failpoints.ts) must be caught by the same check.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { armFailpoints } from '../../src/node/failpoints.js';
import { RaftDriver } from '../../src/node/raft/driver.js';
import { RaftNode } from '../../src/raft/index.js';
import { openDataStore } from '../../src/storage/data/index.js';
import { openRaftLog } from '../../src/storage/raft-log/index.js';
import type { Command } from '../../src/tsdb/model.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function scenario(): Promise<{ appliedBeforeRelease: boolean; ackedBeforeRelease: boolean }> {
  const dir = mkdtempSync(join(tmpdir(), 'ts-durable-order-'));
  const raftLog = openRaftLog(join(dir, 'raft.db'));
  raftLog.bootstrap([{ id: 'n1', url: 'http://127.0.0.1:9' }]);
  const data = openDataStore(join(dir, 'data.db'), { synchronous: 'NORMAL' });
  // Gate every asynchronous fsync until released.
  const held: Array<() => void> = [];
  const realSync = raftLog.sync.bind(raftLog);
  raftLog.sync = (done) => held.push(() => realSync(done));
  const release = () => {
    for (const f of held.splice(0)) f();
  };
  const driver = new RaftDriver({
    id: 'n1',
    dataDir: dir,
    raftLog,
    data,
    createNode: (c) => new RaftNode(c),
    electionTimeoutMs: 100,
    heartbeatMs: 20,
    addressHints: { n1: 'http://127.0.0.1:9' },
  });
  try {
    driver.start();
    // The election's term and vote are fsync'd too: let them through until this node leads.
    for (let i = 0; driver.role !== 'Leader'; i++) {
      assert.ok(i < 500, 'no leader after 5 s');
      release();
      await sleep(10);
    }
    await sleep(50);
    release();
    await sleep(20);
    release();
    // Everything committed so far (the election's entry) applied first: applies nobody waits for
    // are batched (applyDelayMs), and a late one must not pass for the proposal's.
    for (let i = 0; driver.appliedIndex() < driver.status().commitIndex && i < 200; i++) await sleep(10);
    const before = driver.appliedIndex();
    assert.equal(before, driver.status().commitIndex, 'the election entry was never applied');
    const command: Command = {
      requestId: 'durable-order-1',
      ops: [
        {
          op: 'put',
          point: {
            id: '0190f2d3-1234-7abc-8def-0123456789ab',
            deviceId: 'dev-1',
            ts: 1_700_000_000_001_000,
            value: 1,
          },
        },
      ],
    };
    let acked = false;
    const p = driver.propose(command, 5_000).then((r) => {
      acked = true;
      return r;
    });
    // Long enough for the loop to write the entry and start (and, unheld, finish) its fsync.
    await sleep(100);
    const appliedBeforeRelease = driver.appliedIndex() > before;
    const ackedBeforeRelease = acked;
    assert.ok(held.length > 0 || ackedBeforeRelease, 'the proposal never reached an fsync');
    release();
    const r = await p;
    assert.ok(r.index > before);
    // A put is acknowledged at commit and applied with the next batch (driver.ts answerAtCommit,
    // applyDelayMs); a local read would apply it first (applyCommitted).
    for (let i = 0; driver.appliedIndex() < r.index && i < 200; i++) await sleep(10);
    assert.ok(driver.appliedIndex() >= r.index, 'applied with the batch after its acknowledgement');
    return { appliedBeforeRelease, ackedBeforeRelease };
  } finally {
    driver.stop();
    release();
    await sleep(10);
    raftLog.close();
    data.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

test('a proposal is neither applied nor acknowledged before the fsync of its entry completes', async () => {
  const r = await scenario();
  assert.equal(r.appliedBeforeRelease, false, 'applied while its fsync was still running');
  assert.equal(r.ackedBeforeRelease, false, 'acknowledged while its fsync was still running');
});

test('planted ack-before-fsync: the same check sees the write applied and acknowledged too early', async () => {
  armFailpoints({ TIMESTORE_TEST_BUG: 'ack-before-fsync' });
  try {
    const r = await scenario();
    assert.equal(r.appliedBeforeRelease, true);
    assert.equal(r.ackedBeforeRelease, true);
  } finally {
    armFailpoints({});
  }
});
