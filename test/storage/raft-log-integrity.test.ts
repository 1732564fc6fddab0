// raft.db integrity on real SQLite files: checksums written with every row, verified on open and
// on read; damage inside an entry, in the hard state, or a hole in the log is reported with the
// file and the index range; a checksum-less (format 0) file is migrated and then protected.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { openRaftLog, RAFT_LOG_FORMAT } from '../../src/storage/raft-log/index.js';
import { RaftLogCorruptError } from '../../src/storage/integrity/errors.js';
import { entryChecksum, metaChecksum } from '../../src/storage/integrity/checksum.js';
import type { Entry } from '../../src/raft/types.js';
import { tempDir } from '../helpers/tmp.js';
import { flipInside } from '../corruption/damage.js';

const entry = (index: number, term = 1): Entry => ({
  index,
  term,
  kind: 'normal',
  data: JSON.stringify({ ops: [{ op: 'put', point: { id: `marker-${index}-end`, value: index } }] }),
});

/** A closed raft.db with entries 1..n (WAL folded into the file by the clean close). */
function writeLog(n: number): string {
  const path = join(tempDir('raftlog-integrity-'), 'raft.db');
  const s = openRaftLog(path);
  const es: Entry[] = [];
  for (let i = 1; i <= n; i++) es.push(entry(i, i <= n / 2 ? 1 : 2));
  s.persist({ entries: es, hardState: { term: 2, vote: 'n1', commit: n } });
  s.close();
  return path;
}

function corruptError(fn: () => unknown): RaftLogCorruptError {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof RaftLogCorruptError, `expected RaftLogCorruptError, got ${String(err)}`);
    return err;
  }
  assert.fail('expected RaftLogCorruptError, nothing was thrown');
}

test('checksums are pure, framed and differ when any field differs', () => {
  assert.equal(entryChecksum(5, 2, 'normal', 'abc'), entryChecksum(5, 2, 'normal', 'abc'));
  assert.notEqual(entryChecksum(5, 2, 'normal', 'abc'), entryChecksum(5, 2, 'normal', 'abd'));
  assert.notEqual(entryChecksum(5, 2, 'normal', 'abc'), entryChecksum(5, 3, 'normal', 'abc'));
  assert.notEqual(entryChecksum(5, 2, 'normal', 'abc'), entryChecksum(6, 2, 'normal', 'abc'));
  // Field boundaries are part of the input: bytes moved from one field to the next change it.
  assert.notEqual(entryChecksum(12, 1, 'normal', ''), entryChecksum(1, 21, 'normal', ''));
  assert.notEqual(metaChecksum('ab', 'c'), metaChecksum('a', 'bc'));
  // Pinned: files written by this version are verified by the next one only if these never change.
  assert.equal(entryChecksum(7, 3, 'normal', '{"ops":[]}'), 3377808334);
  assert.equal(metaChecksum('hardState', '{"term":1}'), 1516175602);
});

test('every row is written with its checksum; a sound file opens and reports what it verified', () => {
  const path = writeLog(50);
  const db = new Database(path, { readonly: true });
  assert.equal(db.pragma('user_version', { simple: true }), RAFT_LOG_FORMAT);
  const rows = db.prepare('SELECT idx, term, kind, data, crc FROM entries').all() as Array<{
    idx: number;
    term: number;
    kind: string;
    data: string;
    crc: number;
  }>;
  db.close();
  assert.equal(rows.length, 50);
  for (const r of rows) assert.equal(r.crc, entryChecksum(r.idx, r.term, r.kind, r.data));
  const s = openRaftLog(path);
  assert.equal(s.openReport.verifiedEntries, 50);
  assert.equal(s.openReport.verifiedMeta, 1);
  assert.equal(s.entries(1, 51).length, 50);
  s.close();
});

test('a byte flipped inside one entry is found on open: the file and that index are named', () => {
  const path = writeLog(40);
  flipInside(path, 'marker-17-end');
  const err = corruptError(() => openRaftLog(path));
  assert.equal(err.file, path);
  assert.equal(err.damage.firstBadIndex, 17);
  assert.equal(err.damage.lastBadIndex, 17);
  assert.match(err.message, /raft\.db .*raft\.db is corrupt in entry 17: entry 17: checksum mismatch/);
  assert.match(err.message, /refuses to start/);
  assert.match(err.message, /--join/, 'the message says what to do');
});

test('with verification on open skipped, the damaged entry is still refused when it is read', () => {
  const path = writeLog(40);
  flipInside(path, 'marker-23-end');
  const s = openRaftLog(path, { verify: 'none', remedy: 'do X' });
  assert.equal(s.entries(1, 23).length, 22, 'the entries before it read fine');
  const err = corruptError(() => s.entries(20, 30));
  assert.equal(err.damage.firstBadIndex, 23);
  assert.match(err.message, /do X$/);
  assert.equal(corruptError(() => s.term(23)).damage.firstBadIndex, 23);
  s.close();
});

test('damage in the hard state is found on open and named as metadata', () => {
  const path = writeLog(10);
  // The hard state JSON holds the vote "n1" once: flip a byte of it.
  flipInside(path, '"vote":"n1"');
  const err = corruptError(() => openRaftLog(path));
  assert.equal(err.damage.firstBadIndex, null);
  assert.match(err.message, /metadata/);
  assert.match(err.message, /meta row "hardState": checksum mismatch/);
});

test('a hole in the log is found (rows intact, one missing)', () => {
  const path = writeLog(30);
  const db = new Database(path);
  db.prepare('DELETE FROM entries WHERE idx BETWEEN 11 AND 12').run();
  db.close();
  const err = corruptError(() => openRaftLog(path));
  assert.equal(err.damage.firstBadIndex, 11);
  assert.match(err.message, /entries 11\.\.12 are missing/);
});

test('a file that is not SQLite at all is reported as a damaged raft.db, not a crash', async () => {
  const { writeFileSync } = await import('node:fs');
  const path = join(tempDir('raftlog-integrity-'), 'raft.db');
  writeFileSync(path, Buffer.alloc(8192, 0x5a));
  const err = corruptError(() => openRaftLog(path));
  assert.match(err.message, /SQLITE_NOTADB/);
});

test('format 0 (no checksums) is migrated on open: data kept, rows checksummed, damage found afterwards', () => {
  const path = join(tempDir('raftlog-legacy-'), 'raft.db');
  // The exact DDL and rows of the first format (before this change).
  const db = new Database(path);
  db.pragma('journal_mode = WAL');
  db.exec(`
    CREATE TABLE IF NOT EXISTS entries (idx INTEGER PRIMARY KEY, term INTEGER NOT NULL, kind TEXT NOT NULL, data TEXT NOT NULL);
    CREATE INDEX IF NOT EXISTS entries_config ON entries(idx) WHERE kind = 'config';
    CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
  `);
  const ins = db.prepare('INSERT INTO entries(idx, term, kind, data) VALUES (?, ?, ?, ?)');
  ins.run(1, 1, 'config', JSON.stringify({ type: 'addVoter', nodeId: 'n1', context: 'http://a' }));
  for (let i = 2; i <= 20; i++) ins.run(i, 1, 'normal', entry(i).data);
  db.prepare('INSERT INTO meta(key, value) VALUES (?, ?)').run(
    'hardState',
    JSON.stringify({ term: 1, vote: null, commit: 20 }),
  );
  db.prepare('INSERT INTO meta(key, value) VALUES (?, ?)').run('bootstrapped', 'true');
  db.close();

  let s = openRaftLog(path);
  assert.equal(s.openReport.formatBefore, 0);
  assert.equal(s.lastIndex(), 20);
  assert.deepEqual(s.hardState(), { term: 1, vote: null, commit: 20 });
  assert.deepEqual(s.initialState().membership, { voters: ['n1'], learners: [] });
  assert.equal(s.entries(2, 3)[0]!.data, entry(2).data);
  s.persist({ entries: [entry(21)] });
  s.close();
  s = openRaftLog(path);
  assert.equal(s.openReport.formatBefore, RAFT_LOG_FORMAT, 'migrated once');
  assert.equal(s.openReport.verifiedEntries, 21);
  s.close();
  flipInside(path, 'marker-9-end');
  assert.equal(corruptError(() => openRaftLog(path)).damage.firstBadIndex, 9);
});

test('a newer format than this version knows is refused with a clear message', () => {
  const path = writeLog(3);
  const db = new Database(path);
  db.pragma(`user_version = ${RAFT_LOG_FORMAT + 1}`);
  db.close();
  assert.throws(() => openRaftLog(path), /format 2 is newer than this version supports/);
});

test('damage only in entries is marked repairable; damage in metadata is not', () => {
  const a = writeLog(20);
  flipInside(a, 'marker-5-end');
  assert.equal(corruptError(() => openRaftLog(a)).damage.entriesOnly, true);
  const b = writeLog(20);
  flipInside(b, '"vote":"n1"');
  assert.equal(corruptError(() => openRaftLog(b)).damage.entriesOnly, false);
});

test('truncateDamaged: drops from the first bad entry, lowers commit, keeps term and vote, records abstainUntil', () => {
  const path = writeLog(40);
  flipInside(path, 'marker-17-end');
  const err = corruptError(() => openRaftLog(path));
  let s = openRaftLog(path, { verify: 'none' });
  assert.deepEqual(s.truncateDamaged(err.damage.firstBadIndex!), { from: 17, oldLast: 40, abstainUntil: 40 });
  s.close();
  s = openRaftLog(path); // sound again
  assert.equal(s.lastIndex(), 16);
  assert.deepEqual(s.hardState(), { term: 2, vote: 'n1', commit: 16 });
  assert.equal(s.abstainUntil(), 40);
  assert.equal(s.entries(1, 17).length, 16);
  s.clearAbstain();
  s.close();
  s = openRaftLog(path);
  assert.equal(s.abstainUntil(), 0, 'cleared durably');
  s.close();
});

test('truncateDamaged below the snapshot index: the snapshot starts the log', () => {
  const path = join(tempDir('raftlog-integrity-'), 'raft.db');
  let s = openRaftLog(path);
  const es: Entry[] = [];
  for (let i = 1; i <= 40; i++) es.push(entry(i));
  s.persist({ entries: es, hardState: { term: 1, vote: null, commit: 40 } });
  s.compact({ index: 30, term: 1, membership: { voters: ['n1'], learners: [] }, contexts: {} }, 20);
  s.close();
  flipInside(path, 'marker-25-end');
  assert.equal(corruptError(() => openRaftLog(path)).damage.firstBadIndex, 25);
  s = openRaftLog(path, { verify: 'none' });
  s.truncateDamaged(25);
  s.close();
  s = openRaftLog(path);
  assert.deepEqual([s.firstIndex(), s.lastIndex(), s.term(30)], [31, 30, 1]);
  assert.equal(s.hardState().commit, 30);
  assert.equal(s.abstainUntil(), 40);
  s.close();
});
