// An in-memory Storage, modelled on etcd-io/raft's MemoryStorage. The simulator uses it as the
// "disk" of a node (what survives a crash), and it documents the semantics a durable Storage must have.
import { CompactedError } from './types.js';
import type { Entry, HardState, Membership, SnapshotMeta, Storage } from './types.js';
import { limitSize } from './util.js';

export class MemoryStorage implements Storage {
  private hardState: HardState = { term: 0, vote: null, commit: 0 };
  private snapshot: SnapshotMeta;
  // ents[0] is a dummy standing for the last compacted entry: it keeps that entry's index and term
  // so term(firstIndex - 1) answers without the entry itself.
  private ents: Entry[];

  /** A fresh node: `voters` is the bootstrap membership (empty for a node that joins an existing cluster). */
  constructor(voters: string[] = [], learners: string[] = []) {
    this.snapshot = {
      index: 0,
      term: 0,
      membership: { voters: [...voters], learners: [...learners] },
      contexts: {},
    };
    this.ents = [{ index: 0, term: 0, kind: 'noop', data: '' }];
  }

  initialState(): { hardState: HardState; membership: Membership } {
    return { hardState: { ...this.hardState }, membership: cloneMembership(this.snapshot.membership) };
  }

  hardStateSnapshot(): HardState {
    return { ...this.hardState };
  }

  entries(lo: number, hi: number, maxBytes?: number): Entry[] {
    const offset = this.dummy().index;
    if (lo <= offset) throw new CompactedError(lo);
    if (hi > this.lastIndex() + 1)
      throw new Error(`entries(${lo}, ${hi}) beyond last index ${this.lastIndex()}`);
    const out = this.ents.slice(lo - offset, hi - offset);
    return limitSize(out, maxBytes);
  }

  term(index: number): number {
    const offset = this.dummy().index;
    if (index < offset) throw new CompactedError(index);
    const e = this.ents[index - offset];
    if (e === undefined) throw new Error(`term(${index}) beyond last index ${this.lastIndex()}`);
    return e.term;
  }

  firstIndex(): number {
    return this.dummy().index + 1;
  }

  lastIndex(): number {
    return this.dummy().index + this.ents.length - 1;
  }

  snapshotMeta(): SnapshotMeta {
    return cloneSnapshot(this.snapshot);
  }

  // ---- mutators (the driver calls these while handling a Ready) ----

  setHardState(hs: HardState): void {
    this.hardState = { ...hs };
  }

  /**
   * Append entries; an entry at an index that already exists replaces it and everything after it.
   * Entries at or below the compacted index are ignored (they are already covered by the snapshot).
   */
  append(entries: Entry[]): void {
    if (entries.length === 0) return;
    const first = this.firstIndex();
    const last = entries[entries.length - 1]!.index;
    if (last < first) return;
    const ents = first > entries[0]!.index ? entries.slice(first - entries[0]!.index) : entries;
    const offset = ents[0]!.index - this.dummy().index;
    if (offset > this.ents.length) {
      throw new Error(`missing log entry: last ${this.lastIndex()}, appending at ${ents[0]!.index}`);
    }
    this.ents = this.ents.slice(0, offset).concat(ents.map((e) => ({ ...e })));
  }

  /** Replace the whole log with a snapshot received from the leader. Older snapshots are ignored. */
  applySnapshot(meta: SnapshotMeta): boolean {
    if (meta.index <= this.snapshot.index) return false;
    this.snapshot = cloneSnapshot(meta);
    this.ents = [{ index: meta.index, term: meta.term, kind: 'noop', data: '' }];
    return true;
  }

  /**
   * Record that the application holds a snapshot of its state machine at `index` (which must be
   * applied, so it is in the log). Does not drop entries: call compact() for that.
   */
  createSnapshot(index: number, membership: Membership, contexts: Record<string, string> = {}): SnapshotMeta {
    if (index <= this.snapshot.index) return this.snapshotMeta();
    if (index > this.lastIndex())
      throw new Error(`snapshot index ${index} beyond last index ${this.lastIndex()}`);
    this.snapshot = {
      index,
      term: this.term(index),
      membership: cloneMembership(membership),
      contexts: { ...contexts },
    };
    return this.snapshotMeta();
  }

  /** Drop entries up to and including `index`. The caller must have a snapshot covering them. */
  compact(index: number): void {
    const offset = this.dummy().index;
    if (index <= offset) return;
    if (index > this.lastIndex()) throw new Error(`compact ${index} beyond last index ${this.lastIndex()}`);
    const e = this.ents[index - offset]!;
    this.ents = [
      { index: e.index, term: e.term, kind: 'noop', data: '' },
      ...this.ents.slice(index - offset + 1),
    ];
  }

  /** A deep copy: what a restarted process would read back from disk. */
  clone(): MemoryStorage {
    const c = new MemoryStorage();
    c.hardState = { ...this.hardState };
    c.snapshot = cloneSnapshot(this.snapshot);
    c.ents = this.ents.map((e) => ({ ...e }));
    return c;
  }

  private dummy(): Entry {
    return this.ents[0]!;
  }
}

function cloneMembership(m: Membership): Membership {
  return { voters: [...m.voters], learners: [...m.learners] };
}

function cloneSnapshot(s: SnapshotMeta): SnapshotMeta {
  return {
    index: s.index,
    term: s.term,
    membership: cloneMembership(s.membership),
    contexts: { ...s.contexts },
  };
}
