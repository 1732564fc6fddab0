// The Raft log as the core sees it: what the application has persisted (Storage) followed by what
// it has not persisted yet (Unstable). Modelled on etcd-io/raft's raftLog + unstable.
import { CompactedError } from './types.js';
import type { Entry, SnapshotMeta, Storage } from './types.js';
import { limitSize } from './util.js';

/** Entries (and possibly a snapshot) that have not been handed to Storage yet. */
export class Unstable {
  snapshot: SnapshotMeta | null = null;
  entries: Entry[] = [];
  /** Index of entries[0]. */
  offset: number;

  constructor(offset: number) {
    this.offset = offset;
  }

  maybeFirstIndex(): number | undefined {
    return this.snapshot ? this.snapshot.index + 1 : undefined;
  }

  maybeLastIndex(): number | undefined {
    if (this.entries.length > 0) return this.offset + this.entries.length - 1;
    return this.snapshot ? this.snapshot.index : undefined;
  }

  maybeTerm(i: number): number | undefined {
    if (i < this.offset) {
      return this.snapshot && this.snapshot.index === i ? this.snapshot.term : undefined;
    }
    const e = this.entries[i - this.offset];
    return e?.term;
  }

  /** Entries up to (i, t) are now durable. A term mismatch means they were replaced meanwhile. */
  stableTo(i: number, t: number): void {
    const gt = this.maybeTerm(i);
    if (gt === undefined || gt !== t || i < this.offset) return;
    this.entries = this.entries.slice(i + 1 - this.offset);
    this.offset = i + 1;
  }

  stableSnapTo(i: number): void {
    if (this.snapshot && this.snapshot.index === i) this.snapshot = null;
  }

  restore(s: SnapshotMeta): void {
    this.offset = s.index + 1;
    this.entries = [];
    this.snapshot = s;
  }

  truncateAndAppend(ents: Entry[]): void {
    const after = ents[0]!.index;
    if (after === this.offset + this.entries.length) {
      this.entries = this.entries.concat(ents);
    } else if (after <= this.offset) {
      // Replaces entries that may already be in Storage; Storage.append truncates them when persisted.
      this.offset = after;
      this.entries = ents.slice();
    } else {
      this.entries = this.entries.slice(0, after - this.offset).concat(ents);
    }
  }

  slice(lo: number, hi: number): Entry[] {
    return this.entries.slice(lo - this.offset, hi - this.offset);
  }
}

export class RaftLog {
  readonly storage: Storage;
  readonly unstable: Unstable;
  committed: number;
  applied: number;

  constructor(storage: Storage, committed: number, applied: number) {
    this.storage = storage;
    this.unstable = new Unstable(storage.lastIndex() + 1);
    const first = storage.firstIndex();
    if (committed > storage.lastIndex()) {
      throw new Error(
        `hard state commit ${committed} is beyond the persisted log's last index ${storage.lastIndex()}`,
      );
    }
    this.committed = Math.max(committed, first - 1);
    this.applied = Math.min(Math.max(applied, first - 1), this.committed);
  }

  firstIndex(): number {
    return this.unstable.maybeFirstIndex() ?? this.storage.firstIndex();
  }

  lastIndex(): number {
    return this.unstable.maybeLastIndex() ?? this.storage.lastIndex();
  }

  /** Term at index i, or undefined when i is compacted away or beyond the log. */
  term(i: number): number | undefined {
    const dummy = this.firstIndex() - 1;
    if (i < dummy || i > this.lastIndex()) return undefined;
    const t = this.unstable.maybeTerm(i);
    if (t !== undefined) return t;
    try {
      return this.storage.term(i);
    } catch (e) {
      if (e instanceof CompactedError) return undefined;
      throw e;
    }
  }

  lastTerm(): number {
    const t = this.term(this.lastIndex());
    if (t === undefined) throw new Error(`last term unavailable at ${this.lastIndex()}`);
    return t;
  }

  matchTerm(i: number, t: number): boolean {
    const mt = this.term(i);
    return mt !== undefined && mt === t;
  }

  /** Raft §5.4.1: a candidate's log is at least as up-to-date as ours. */
  isUpToDate(lastIndex: number, lastTerm: number): boolean {
    const myTerm = this.lastTerm();
    return lastTerm > myTerm || (lastTerm === myTerm && lastIndex >= this.lastIndex());
  }

  /** Entries in [lo, hi); undefined when lo is compacted (the caller must send a snapshot). */
  entries(lo: number, hi: number, maxBytes?: number): Entry[] | undefined {
    if (lo < this.firstIndex()) return undefined;
    hi = Math.min(hi, this.lastIndex() + 1);
    if (lo >= hi) return [];
    let out: Entry[] = [];
    const off = this.unstable.offset;
    if (lo < off) {
      let stored: Entry[];
      try {
        stored = this.storage.entries(lo, Math.min(hi, off), maxBytes);
      } catch (e) {
        if (e instanceof CompactedError) return undefined;
        throw e;
      }
      if (stored.length < Math.min(hi, off) - lo) return stored;
      out = stored;
    }
    if (hi > off) {
      const u = this.unstable.slice(Math.max(lo, off), hi);
      out = out.length > 0 ? out.concat(u) : u;
    }
    return limitSize(out, maxBytes);
  }

  /** Index of the first entry that conflicts with ours (different term, or beyond our log); 0 if none. */
  findConflict(ents: Entry[]): number {
    for (const e of ents) {
      if (!this.matchTerm(e.index, e.term)) return e.index;
    }
    return 0;
  }

  append(ents: Entry[]): number {
    if (ents.length === 0) return this.lastIndex();
    const after = ents[0]!.index - 1;
    if (after < this.committed) {
      throw new Error(
        `append at ${after + 1} would overwrite committed entries (committed ${this.committed})`,
      );
    }
    this.unstable.truncateAndAppend(ents);
    return this.lastIndex();
  }

  commitTo(i: number): void {
    if (i <= this.committed) return;
    if (i > this.lastIndex()) throw new Error(`commit ${i} beyond last index ${this.lastIndex()}`);
    this.committed = i;
  }

  appliedTo(i: number): void {
    if (i === 0 || i <= this.applied) return;
    this.applied = i;
  }

  hasNextEnts(): boolean {
    const lo = Math.max(this.applied + 1, this.firstIndex());
    return this.committed >= lo;
  }

  nextEnts(maxBytes?: number): Entry[] {
    const lo = Math.max(this.applied + 1, this.firstIndex());
    if (this.committed < lo) return [];
    return this.entries(lo, this.committed + 1, maxBytes) ?? [];
  }

  restore(s: SnapshotMeta): void {
    this.committed = s.index;
    this.unstable.restore(s);
  }

  /** Last index whose term is `term`, at or below `hint`; undefined if the log has none. */
  lastIndexOfTerm(term: number, hint: number): number | undefined {
    let i = Math.min(hint, this.lastIndex());
    const floor = this.firstIndex() - 1;
    for (; i >= floor; i--) {
      const t = this.term(i);
      if (t === undefined) return undefined;
      if (t === term) return i;
      if (t < term) return undefined;
    }
    return undefined;
  }
}
