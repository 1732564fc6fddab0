// How point ids and page cursors are represented on disk and on the wire.
//
// A UUID id (any version, any case) is stored as its 16 bytes; any other id string is stored as
// TEXT in the same column. SQLite orders TEXT before BLOB and compares each with memcmp, so the
// (ts, id) key order is: ts, then text ids (by UTF-8 bytes), then UUIDs (by bytes, which is the
// order of their lower-case text). compareIdKeys mirrors that so merges in JS agree with SQL.
import { InvalidQueryError } from './errors.js';

export type IdKey = Buffer | string;

const UUID_RE = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;
export const MAX_ID_BYTES = 256;

export function isUuidText(s: string): boolean {
  return s.length === 36 && UUID_RE.test(s);
}

const HEX = new Int8Array(128).fill(-1);
for (let i = 0; i < 10; i++) HEX[48 + i] = i;
for (let i = 0; i < 6; i++) HEX[65 + i] = HEX[97 + i] = 10 + i;
const PAIRS = [0, 2, 4, 6, 9, 11, 14, 16, 19, 21, 24, 26, 28, 30, 32, 34];

// Hand-rolled because it runs once per written point: a regex test plus Buffer.from(hex) of a
// re-joined string cost about as much as a b-tree insert.
function uuidBytes(s: string): Buffer | null {
  if (
    s.length !== 36 ||
    s.charCodeAt(8) !== 45 ||
    s.charCodeAt(13) !== 45 ||
    s.charCodeAt(18) !== 45 ||
    s.charCodeAt(23) !== 45
  ) {
    return null;
  }
  const out = Buffer.allocUnsafe(16);
  for (let k = 0; k < 16; k++) {
    const p = PAIRS[k]!;
    const hi = HEX[s.charCodeAt(p)] ?? -1;
    const lo = HEX[s.charCodeAt(p + 1)] ?? -1;
    if (hi < 0 || lo < 0) return null;
    out[k] = (hi << 4) | lo;
  }
  return out;
}

/** The stored form of an id (caller has validated it is a non-empty string). */
export function idToKey(id: string): IdKey {
  return uuidBytes(id) ?? id;
}

/** The canonical id string for a stored key: UUIDs come back lower-case. */
export function keyToId(key: IdKey): string {
  if (typeof key === 'string') return key;
  const h = key.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/** The canonical form of an id as the store will report it. */
export function canonicalId(id: string): string {
  return isUuidText(id) ? id.toLowerCase() : id;
}

/** Stored key and canonical id in one pass (the write path's version of the two above). */
export function idKeyAndCanonical(id: string): { key: IdKey; id: string } {
  const bytes = uuidBytes(id);
  if (bytes === null) return { key: id, id };
  return { key: bytes, id: /[A-F]/.test(id) ? id.toLowerCase() : id };
}

export function compareIdKeys(a: IdKey, b: IdKey): number {
  if (typeof a === 'string') {
    if (typeof b !== 'string') return -1;
    return a === b ? 0 : Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
  }
  if (typeof b === 'string') return 1;
  return Buffer.compare(a, b);
}

// Cursor layout (then base64url): version byte 1 | ts as int64 big-endian | kind (1 = UUID bytes,
// 0 = UTF-8 text) | id bytes. It encodes only the last key returned, which is all keyset paging
// needs; filters and order come from the query itself.
const CURSOR_VERSION = 1;

export function encodeCursor(ts: number, key: IdKey): string {
  const idBytes = typeof key === 'string' ? Buffer.from(key, 'utf8') : key;
  const buf = Buffer.alloc(10 + idBytes.length);
  buf[0] = CURSOR_VERSION;
  buf.writeBigInt64BE(BigInt(ts), 1);
  buf[9] = typeof key === 'string' ? 0 : 1;
  idBytes.copy(buf, 10);
  return buf.toString('base64url');
}

export function decodeCursor(cursor: string): { ts: number; key: IdKey } {
  const shown = JSON.stringify(cursor.length > 80 ? cursor.slice(0, 80) + '…' : cursor);
  const bad = (why: string) =>
    new InvalidQueryError(
      `cursor ${shown} is not valid (${why}); pass back the nextCursor of a previous page unchanged`,
    );
  if (
    typeof cursor !== 'string' ||
    cursor.length === 0 ||
    cursor.length > 400 ||
    !/^[A-Za-z0-9_-]+$/.test(cursor)
  ) {
    throw bad('expected a non-empty base64url string');
  }
  const buf = Buffer.from(cursor, 'base64url');
  if (buf.length < 11) throw bad('too short');
  if (buf[0] !== CURSOR_VERSION) throw bad(`unknown version ${buf[0]}`);
  const big = buf.readBigInt64BE(1);
  if (big > BigInt(Number.MAX_SAFE_INTEGER) || big < -BigInt(Number.MAX_SAFE_INTEGER))
    throw bad('timestamp out of range');
  const idBytes = buf.subarray(10);
  if (buf[9] === 1) {
    if (idBytes.length !== 16) throw bad('UUID key is not 16 bytes');
    return { ts: Number(big), key: Buffer.from(idBytes) };
  }
  if (buf[9] === 0) {
    const text = idBytes.toString('utf8');
    if (idBytes.length > MAX_ID_BYTES || !Buffer.from(text, 'utf8').equals(idBytes) || isUuidText(text)) {
      throw bad('malformed text key');
    }
    return { ts: Number(big), key: text };
  }
  throw bad(`unknown key kind ${buf[9]}`);
}
