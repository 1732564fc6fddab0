// CRC-32 (zlib.crc32, the IEEE polynomial) of raft.db rows. Pure: the same row gives the same
// number on every machine, so a checksum written by one version is verified by the next.
//
// The fields are framed with their lengths so that moving bytes from one field to the next (term
// "12" + kind "normal" vs term "1" + kind "2normal") cannot give the same input.
import { crc32 } from 'node:zlib';

function framed(parts: string[]): Buffer {
  const bufs: Buffer[] = [];
  for (const p of parts) {
    const b = Buffer.from(p, 'utf8');
    const len = Buffer.allocUnsafe(4);
    len.writeUInt32BE(b.length);
    bufs.push(len, b);
  }
  return Buffer.concat(bufs);
}

/** Checksum of one log entry row (idx, term, kind, data). */
export function entryChecksum(index: number, term: number, kind: string, data: string): number {
  return crc32(framed([String(index), String(term), kind, data]));
}

/** Checksum of one meta row (key, JSON value). */
export function metaChecksum(key: string, value: string): number {
  return crc32(framed([key, value]));
}
