// Ways to damage a stopped node's SQLite files the way a disk or a bad copy does, for the
// corruption tests: flip bytes where a known string is stored, wreck a b-tree page's header,
// cut a -wal file in the middle of a frame. Everything works on real files.
import Database from 'better-sqlite3';
import { closeSync, openSync, readFileSync, readSync, statSync, truncateSync, writeSync } from 'node:fs';

/** XOR `length` bytes at `offset` with 0xFF (every bit flipped: never a no-op). */
export function flipBytes(path: string, offset: number, length = 1): void {
  const fd = openSync(path, 'r+');
  try {
    const buf = Buffer.alloc(length);
    readSync(fd, buf, 0, length, offset);
    for (let i = 0; i < length; i++) buf[i] = buf[i]! ^ 0xff;
    writeSync(fd, buf, 0, length, offset);
  } finally {
    closeSync(fd);
  }
}

/** Offset of the only place `needle` is stored in the file; fails when absent or stored twice. */
export function offsetOf(path: string, needle: string): number {
  const bytes = readFileSync(path);
  const at = bytes.indexOf(needle);
  if (at < 0) throw new Error(`${path}: ${JSON.stringify(needle)} is not in the file`);
  if (bytes.indexOf(needle, at + 1) >= 0)
    throw new Error(`${path}: ${JSON.stringify(needle)} is stored more than once`);
  return at;
}

/** Flip a byte in the middle of where `needle` is stored (e.g. inside one raft.db entry's data). */
export function flipInside(path: string, needle: string): number {
  const at = offsetOf(path, needle) + Math.floor(needle.length / 2);
  flipBytes(path, at);
  return at;
}

/**
 * Wreck the b-tree header of one leaf page of `table` (the page type byte and the cell count):
 * SQLite's quick_check reports it, and reading that page fails with SQLITE_CORRUPT.
 * Returns the page number. The file must have no -wal (stopped cleanly).
 */
export function wreckLeafPage(path: string, table: string, which: 'first' | 'middle' = 'middle'): number {
  const db = new Database(path, { readonly: true, fileMustExist: true });
  let pageno: number;
  let pageSize: number;
  try {
    pageSize = db.pragma('page_size', { simple: true }) as number;
    const pages = db
      .prepare(`SELECT pageno FROM dbstat WHERE name = ? AND pagetype = 'leaf' ORDER BY pageno`)
      .pluck()
      .all(table) as number[];
    if (pages.length === 0) throw new Error(`${path}: table ${table} has no leaf page`);
    pageno = which === 'first' ? pages[0]! : pages[Math.floor(pages.length / 2)]!;
  } finally {
    db.close();
  }
  const offset = (pageno - 1) * pageSize + (pageno === 1 ? 100 : 0);
  flipBytes(path, offset, 5);
  return pageno;
}

/** WAL layout (sqlite.org/fileformat2.html#walformat): a 32-byte header, then frames of 24 + page size. */
export function walFrames(walPath: string, pageSize: number): number {
  return Math.floor((statSync(walPath).size - 32) / (24 + pageSize));
}

/** Cut the -wal in the middle of its last frame: a write torn by a crash during the fsync. */
export function tearLastWalFrame(walPath: string, pageSize: number): { frames: number; size: number } {
  const frames = walFrames(walPath, pageSize);
  if (frames < 1) throw new Error(`${walPath}: no complete frame to tear`);
  const size = 32 + (frames - 1) * (24 + pageSize) + 24 + Math.floor(pageSize / 2);
  truncateSync(walPath, size);
  return { frames, size };
}

/**
 * Append the first half of a copy of the last frame: a transaction whose write was torn by a crash
 * before its fsync returned, so it was never acknowledged. Returns the new size.
 */
export function appendTornFrame(walPath: string, pageSize: number): number {
  const frames = walFrames(walPath, pageSize);
  if (frames < 1) throw new Error(`${walPath}: no complete frame to copy`);
  const frameSize = 24 + pageSize;
  const bytes = readFileSync(walPath);
  const last = bytes.subarray(32 + (frames - 1) * frameSize, 32 + frames * frameSize);
  const torn = last.subarray(0, 24 + Math.floor(pageSize / 2));
  const fd = openSync(walPath, 'a');
  try {
    writeSync(fd, torn);
  } finally {
    closeSync(fd);
  }
  return statSync(walPath).size;
}
