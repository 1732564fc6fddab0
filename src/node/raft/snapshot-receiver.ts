// Follower side of snapshot streaming: chunks of the leader's data.db snapshot are appended to a
// partial file (resumable: the leader asks for the current offset first), each chunk checked
// against its sha256, the whole file against the announced sha256 before it is installed.
import { createHash } from 'node:crypto';
import { mkdirSync, readdirSync, rmSync } from 'node:fs';
import { open, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { fileSha256, type SnapshotReceiverApi } from './transport.js';
import { WireError } from './wire.js';
import { failpoint } from '../failpoints.js';

export class SnapshotReceiver implements SnapshotReceiverApi {
  private busy: Promise<unknown> = Promise.resolve();
  private current: { index: number; lastActivityMs: number } | null = null;

  constructor(
    private readonly dir: string,
    private readonly now: () => number = Date.now,
  ) {
    mkdirSync(dir, { recursive: true });
  }

  /**
   * The transfer being received (index, time of its last request), for the `installing-snapshot`
   * probe phase; null when none was started or the last one failed its checksum.
   */
  transfer(): { index: number; lastActivityMs: number } | null {
    return this.current;
  }

  private touch(index: number): void {
    this.current = { index, lastActivityMs: this.now() };
  }

  private name(leaderId: string, index: number, sha256: string): string {
    return join(this.dir, `${leaderId}-${index}-${sha256.slice(0, 16)}.part`);
  }

  /** Serialize operations (chunks of one transfer arrive in order, but be safe). */
  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const p = this.busy.then(fn, fn);
    this.busy = p.catch(() => {});
    return p;
  }

  private async size(path: string): Promise<number> {
    try {
      return (await stat(path)).size;
    } catch {
      return 0;
    }
  }

  status(leaderId: string, index: number, _size: number, sha256: string): Promise<{ offset: number }> {
    this.touch(index);
    return this.serial(async () => {
      const path = this.name(leaderId, index, sha256);
      // A new transfer: drop partial files of other transfers.
      for (const f of readdirSync(this.dir)) {
        if (f.endsWith('.part') && join(this.dir, f) !== path) rmSync(join(this.dir, f), { force: true });
      }
      return { offset: await this.size(path) };
    });
  }

  chunk(
    leaderId: string,
    index: number,
    size: number,
    sha256: string,
    offset: number,
    data: Buffer,
    chunkSha: string,
  ): Promise<{ offset: number; conflict?: boolean }> {
    this.touch(index);
    return this.serial(async () => {
      if (createHash('sha256').update(data).digest('hex') !== chunkSha)
        throw new WireError('chunk checksum mismatch');
      if (offset + data.length > size) throw new WireError(`chunk beyond the announced size ${size}`);
      const path = this.name(leaderId, index, sha256);
      const have = await this.size(path);
      if (have !== offset) return { offset: have, conflict: true };
      const fh = await open(path, 'a');
      try {
        await fh.write(data, 0, data.length);
      } finally {
        await fh.close();
      }
      failpoint('install.mid-receive');
      return { offset: offset + data.length };
    });
  }

  complete(leaderId: string, index: number, size: number, sha256: string): Promise<string> {
    return this.serial(async () => {
      const path = this.name(leaderId, index, sha256);
      const got = await fileSha256(path).catch(() => ({ size: -1, sha256: '' }));
      if (got.size !== size || got.sha256 !== sha256) {
        rmSync(path, { force: true });
        if (this.current?.index === index) this.current = null;
        throw new WireError(
          `snapshot file incomplete or corrupt (${got.size} of ${size} bytes; checksum ${got.sha256 === sha256 ? 'ok' : 'mismatch'})`,
        );
      }
      const fh = await open(path, 'r+');
      try {
        await fh.sync();
      } finally {
        await fh.close();
      }
      return path;
    });
  }
}
