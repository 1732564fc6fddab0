import type { Entry } from './types.js';

/** UTF-8 byte length of an entry's data: what the transport and raft.db actually carry. */
export function entrySize(e: Entry): number {
  const s = e.data;
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      n += 4;
      i++;
    } else n += 3;
  }
  return n;
}

export function entriesSize(ents: Entry[]): number {
  let n = 0;
  for (const e of ents) n += entrySize(e);
  return n;
}

/** The longest prefix of `ents` within maxBytes, but never fewer than one entry (so progress is made). */
export function limitSize(ents: Entry[], maxBytes?: number): Entry[] {
  if (maxBytes === undefined || maxBytes <= 0 || ents.length <= 1) return ents;
  let size = entrySize(ents[0]!);
  let n = 1;
  for (; n < ents.length; n++) {
    size += entrySize(ents[n]!);
    if (size > maxBytes) break;
  }
  return n === ents.length ? ents : ents.slice(0, n);
}
