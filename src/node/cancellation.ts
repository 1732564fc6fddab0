// What a write needs of its caller's cancellation, and a light source of it.
//
// Why not AbortController everywhere: a write to the leader made one per request (the client may
// close before the answer) and a forwarding follower a second one (the leader may change), and
// creating an AbortSignal (an EventTarget) cost ~2 % of a leader's CPU at 64 clients (cpu profile,
// bench/cluster) for a signal that almost never fires. An AbortSignal still fits where a
// CancelSignal is asked for (express routes pass theirs).

/** The part of AbortSignal that writes use. */
export interface CancelSignal {
  readonly aborted: boolean;
  readonly reason?: unknown;
  addEventListener(type: 'abort', listener: () => void, options?: { once?: boolean }): void;
  removeEventListener(type: 'abort', listener: () => void): void;
}

/** An AbortController for CancelSignal: it is its own signal, and allocates nothing until used. */
export class Cancellation implements CancelSignal {
  aborted = false;
  reason: unknown = undefined;
  private listeners: (() => void)[] | null = null;

  get signal(): CancelSignal {
    return this;
  }

  /** Fires the listeners once; later calls do nothing (as AbortController.abort). */
  abort(reason: unknown = new Error('aborted')): void {
    if (this.aborted) return;
    this.aborted = true;
    this.reason = reason;
    const ls = this.listeners;
    this.listeners = null;
    if (ls) for (const l of ls) l();
  }

  /** Listeners run once in any case: `once` is accepted for AbortSignal's signature. */
  addEventListener(_type: 'abort', listener: () => void): void {
    if (this.aborted) return;
    (this.listeners ??= []).push(listener);
  }

  removeEventListener(_type: 'abort', listener: () => void): void {
    const i = this.listeners?.indexOf(listener) ?? -1;
    if (i >= 0) this.listeners!.splice(i, 1);
  }
}

/** The error a cancelled operation fails with: the signal's reason if it is an Error. */
export function cancelError(signal: CancelSignal): Error {
  return signal.reason instanceof Error ? signal.reason : new Error('aborted');
}
