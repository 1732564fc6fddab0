// CRC-32 (zlib.crc32, the IEEE polynomial) of raft.db rows. Pure: the same row gives the same
// number on every machine, so a checksum written by one version is verified by the next.
//
// The fields are framed with their UTF-8 lengths so that moving bytes from one field to the next
// (term "12" + kind "normal" vs term "1" + kind "2normal") cannot give the same input. The CRC is
// chained field by field, so an entry's data is never copied into a buffer first.
import { crc32 } from 'node:zlib';

const len = Buffer.alloc(4);

function framed(parts: string[]): number {
  let c = 0;
  for (const p of parts) {
    len.writeUInt32BE(Buffer.byteLength(p, 'utf8'));
    c = crc32(len, c);
    c = crc32(p, c);
  }
  return c;
}

/** Checksum of one log entry row (idx, term, kind, data). */
export function entryChecksum(index: number, term: number, kind: string, data: string): number {
  return framed([String(index), String(term), kind, data]);
}

/** Checksum of one meta row (key, JSON value). */
export function metaChecksum(key: string, value: string): number {
  return framed([key, value]);
}
