// Unique temporary directories for test data, removed at the end of the test run (or kept when
// TIMESTORE_KEEP_TMP=1, to inspect a failure).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const created: string[] = [];

export function tempDir(prefix = 'timestore-test-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  created.push(dir);
  return dir;
}

export function removeTempDirs(): void {
  if (process.env.TIMESTORE_KEEP_TMP === '1') return;
  for (const dir of created.splice(0)) rmSync(dir, { recursive: true, force: true });
}

process.once('exit', removeTempDirs);
