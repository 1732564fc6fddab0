// When the Raft loop snapshots data.db and compacts raft.db (RaftDriver.maybeSnapshot →
// snapshotDue): every `minEntries` applied entries while data.db is small; above the size floor
// only once the log has grown by a quarter of the last copy, so copying stays a bounded cost per
// byte written however large data.db grows.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SNAPSHOT_SIZE_FLOOR_BYTES, SNAPSHOT_SIZE_RATIO, snapshotDue } from '../../src/node/raft/driver.js';

const MB = 1024 * 1024;

test('below the entry threshold: never', () => {
  for (const lastSnapshotBytes of [0, 10 * MB, 10_000 * MB])
    assert.equal(
      snapshotDue({
        appliedSinceSnapshot: 9_999,
        logBytesSinceSnapshot: 1e12,
        lastSnapshotBytes,
        minEntries: 10_000,
      }),
      false,
    );
});

test('a small data.db: the entry threshold alone (as before), whatever the log bytes', () => {
  for (const lastSnapshotBytes of [0, 1 * MB, SNAPSHOT_SIZE_FLOOR_BYTES])
    assert.equal(
      snapshotDue({
        appliedSinceSnapshot: 10_000,
        logBytesSinceSnapshot: 0,
        lastSnapshotBytes,
        minEntries: 10_000,
      }),
      true,
    );
});

test('a large data.db: waits until the log grew by a quarter of the last copy', () => {
  const lastSnapshotBytes = 10_000 * MB; // 10 GB
  const need = lastSnapshotBytes / SNAPSHOT_SIZE_RATIO;
  const at = (logBytesSinceSnapshot: number) =>
    snapshotDue({
      appliedSinceSnapshot: 50_000,
      logBytesSinceSnapshot,
      lastSnapshotBytes,
      minEntries: 10_000,
    });
  assert.equal(at(need - 1), false);
  assert.equal(at(need), true);
  // Copying stays about SNAPSHOT_SIZE_RATIO bytes per byte of log, not one copy per 10,000 entries.
  assert.equal(SNAPSHOT_SIZE_RATIO, 4);
});
