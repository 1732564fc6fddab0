// data.db integrity on real SQLite files: the check on open (quarantine for a Raft member, refusal
// for a single node), and the runtime guard that turns SQLITE_CORRUPT into one recorded fault.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { openDataStore } from '../../src/storage/data/index.js';
import {
  CorruptionGuard,
  guardDataStore,
  type StorageFault,
} from '../../src/storage/integrity/corruption-guard.js';
import { corruptionMarkerPath, openVerifiedDataStore } from '../../src/storage/integrity/data-file.js';
import { StorageCorruptError } from '../../src/storage/integrity/errors.js';
import type { Command } from '../../src/tsdb/model.js';
import { tempDir } from '../helpers/tmp.js';
import { wreckLeafPage } from '../corruption/damage.js';

const POINTS = 3000;

function put(i: number): Command {
  const hex = i.toString(16).padStart(12, '0');
  return {
    ops: [
      {
        op: 'put',
        point: {
          id: `01900000-0000-7000-8000-${hex}`,
          deviceId: `dev-${i % 7}`,
          ts: 1_700_000_000_000_000 + i,
          value: i,
        },
      },
    ],
  };
}

/** A closed data.db with POINTS points (no -wal left). */
function writeStore(): string {
  const path = join(tempDir('data-integrity-'), 'data.db');
  const s = openDataStore(path);
  const batch = [];
  for (let i = 1; i <= POINTS; i++) batch.push({ index: i, command: put(i) });
  s.applyBatch(batch);
  s.close();
  return path;
}

test('a sound data.db opens after the check; nothing is moved', () => {
  const path = writeStore();
  const r = openVerifiedDataStore(path, { onCorrupt: 'quarantine' });
  assert.equal(r.quarantined, null);
  assert.equal(r.store.count(), POINTS);
  r.store.close();
});

test('a Raft member: a damaged data.db is moved aside (kept) and an empty one opened', () => {
  const path = writeStore();
  wreckLeafPage(path, 'points');
  const r = openVerifiedDataStore(path, {
    onCorrupt: 'quarantine',
    now: () => new Date('2026-01-02T03:04:05Z'),
  });
  assert.ok(r.quarantined, 'the damage is found');
  assert.match(r.quarantined.detail, /quick_check/);
  assert.deepEqual(r.quarantined.movedTo, [`${path}.corrupt-2026-01-02T03-04-05-000Z`]);
  assert.ok(existsSync(r.quarantined.movedTo[0]!), 'the damaged file is kept for analysis');
  assert.equal(r.store.appliedIndex(), 0, 'a fresh store: the driver rebuilds it');
  assert.equal(r.store.count(), 0);
  r.store.close();
});

test('with the check turned off the same damage is not seen on open (the check is what finds it)', () => {
  const path = writeStore();
  wreckLeafPage(path, 'points');
  const r = openVerifiedDataStore(path, { onCorrupt: 'quarantine', check: 'none' });
  assert.equal(r.quarantined, null);
  r.store.close();
});

test('a single node: a damaged data.db is refused, named, and left where it is', () => {
  const path = writeStore();
  wreckLeafPage(path, 'points');
  const before = readFileSync(path);
  assert.throws(
    () => openVerifiedDataStore(path, { onCorrupt: 'refuse' }),
    (err: unknown) =>
      err instanceof StorageCorruptError &&
      err.file === path &&
      /quick_check/.test(err.message) &&
      /restore data\.db from a backup/.test(err.message),
  );
  assert.deepEqual(readFileSync(path), before);
});

test('integrity_check finds the damage too', () => {
  const path = writeStore();
  wreckLeafPage(path, 'points');
  const r = openVerifiedDataStore(path, { onCorrupt: 'quarantine', check: 'integrity_check' });
  assert.match(r.quarantined?.detail ?? '', /integrity_check/);
  r.store.close();
});

test('a file that is not SQLite (SQLITE_NOTADB) is quarantined like any damage', () => {
  const path = join(tempDir('data-integrity-'), 'data.db');
  writeFileSync(path, Buffer.alloc(4096, 0x42));
  const r = openVerifiedDataStore(path, { onCorrupt: 'quarantine' });
  assert.match(r.quarantined?.detail ?? '', /SQLITE_NOTADB/);
  r.store.close();
});

test('the marker of a fault seen at runtime makes the next open treat data.db as damaged', () => {
  const path = writeStore();
  writeFileSync(corruptionMarkerPath(path), JSON.stringify({ detail: 'SQLITE_CORRUPT: x', since: 'then' }));
  const r = openVerifiedDataStore(path, { onCorrupt: 'quarantine' });
  assert.match(r.quarantined?.detail ?? '', /found damaged at then: SQLITE_CORRUPT: x/);
  assert.equal(existsSync(corruptionMarkerPath(path)), false, 'the marker is consumed');
  r.store.close();
});

test('runtime: SQLITE_CORRUPT trips the guard once; every data call then refuses; the marker is written', () => {
  const path = writeStore();
  // A tiny page cache so that the damaged page is read from the file again after the damage.
  const raw = openDataStore(path, { cacheSizeKiB: 8 });
  const faults: StorageFault[] = [];
  const guard = new CorruptionGuard({
    path,
    markerPath: corruptionMarkerPath(path),
    onFault: (f) => faults.push(f),
    now: () => new Date('2026-01-01T00:00:00Z'),
  });
  const store = guardDataStore(raw, guard);
  const all = () => store.query({ order: 'asc', limit: 10_000 });
  assert.equal(all().points.length, POINTS, 'sound before the damage');
  wreckLeafPage(path, 'points');
  assert.throws(all, StorageCorruptError);
  assert.equal(faults.length, 1);
  assert.equal(faults[0]!.file, 'data.db');
  assert.match(faults[0]!.detail, /SQLITE_CORRUPT/);
  assert.equal(guard.fault?.since, '2026-01-01T00:00:00.000Z');
  // Calls that would not touch the damaged page refuse as well: the file is not trusted any more.
  assert.throws(() => store.count(), StorageCorruptError);
  assert.throws(
    () => store.applyBatch([{ index: POINTS + 1, command: put(POINTS + 1) }]),
    StorageCorruptError,
  );
  assert.equal(faults.length, 1, 'reported once');
  assert.equal(store.appliedIndex(), POINTS, 'in-memory state still answers (the driver reads it)');
  assert.match(readFileSync(corruptionMarkerPath(path), 'utf8'), /SQLITE_CORRUPT/);
  store.close();
});

test('runtime: errors that are not corruption pass through and do not trip the guard', () => {
  const path = writeStore();
  const guard = new CorruptionGuard({ path });
  const store = guardDataStore(openDataStore(path), guard);
  assert.throws(() => store.query({ order: 'asc', limit: 0 }), /limit must be/);
  assert.equal(guard.fault, null);
  assert.equal(store.count(), POINTS);
  store.close();
});
