// TimeStoreService for a node that is its own single-member cluster: commands are applied directly
// to the DataStore, with a local index that the store persists with the data (appliedIndex()), so a
// restart continues where the last durable write left off.
//
// Writes are serialized through one queue. Writes that arrive while the queue is waiting for its
// turn are applied together in one applyBatch call: one SQLite transaction and one fsync for many
// requests, which is where single-node ingest throughput comes from.
import type { Command } from '../tsdb/model.js';
import type { DataStore } from '../storage/data-store.js';
import type { CancelSignal } from './cancellation.js';
import {
  ServiceUnavailableError,
  type Consistency,
  type TimeStoreService,
  type WriteResult,
} from './service.js';

interface Pending {
  command: Command;
  resolve: (r: WriteResult) => void;
  reject: (e: unknown) => void;
}

export interface LocalServiceOptions {
  /** Most commands applied in one transaction. */
  maxBatchCommands?: number;
}

export class LocalService implements TimeStoreService {
  private queue: Pending[] = [];
  private scheduled = false;
  private closed = false;
  private readonly maxBatch: number;

  constructor(
    private readonly store: DataStore,
    opts: LocalServiceOptions = {},
  ) {
    this.maxBatch = opts.maxBatchCommands ?? 256;
  }

  write(command: Command, opts: { signal?: CancelSignal } = {}): Promise<WriteResult> {
    if (this.closed) return Promise.reject(new ServiceUnavailableError('the node is shutting down', 1));
    // A client that went away before its write was queued gets nothing written. Once queued, the
    // write is applied regardless: aborting half-way would make the outcome unknowable.
    if (opts.signal?.aborted) return Promise.reject(opts.signal.reason ?? new Error('aborted'));
    return new Promise<WriteResult>((resolve, reject) => {
      this.queue.push({ command, resolve, reject });
      if (!this.scheduled) {
        this.scheduled = true;
        // setImmediate (not a microtask) lets requests that are already parsed in this I/O turn join the batch.
        setImmediate(() => this.flush());
      }
    });
  }

  async read<T>(
    _consistency: Consistency,
    fn: (store: DataStore) => T,
    opts: { signal?: AbortSignal } = {},
  ): Promise<T> {
    if (this.closed) throw new ServiceUnavailableError('the node is shutting down', 1);
    opts.signal?.throwIfAborted();
    // A single node applies every acknowledged write before acknowledging it, so local state is
    // linearizable at every consistency level.
    return fn(this.store);
  }

  /** Number of writes waiting to be applied. */
  pending(): number {
    return this.queue.length;
  }

  /**
   * Stop taking writes and apply what is already queued (those clients were promised an answer).
   * The store itself is closed by its owner.
   */
  async close(): Promise<void> {
    this.closed = true;
    while (this.queue.length > 0) this.flush();
  }

  private flush(): void {
    this.scheduled = false;
    while (this.queue.length > 0) {
      const batch = this.queue.splice(0, this.maxBatch);
      this.applyGroup(batch);
    }
  }

  private applyGroup(batch: Pending[]): void {
    const first = this.store.appliedIndex() + 1;
    try {
      const results = this.store.applyBatch(batch.map((p, i) => ({ index: first + i, command: p.command })));
      batch.forEach((p, i) => {
        const r = results[i];
        p.resolve({ index: r?.index ?? first + i, points: r?.points ?? [] });
      });
    } catch (err) {
      if (batch.length === 1) {
        batch[0]!.reject(err);
        return;
      }
      // The transaction rolled back as a whole; apply one by one so one bad command fails alone.
      for (const p of batch) this.applyGroup([p]);
    }
  }
}
