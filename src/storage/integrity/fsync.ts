import { closeSync, fsyncSync, openSync } from 'node:fs';

/** fsync of a directory: what makes a rename in it durable on Linux. */
export function fsyncDir(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}
