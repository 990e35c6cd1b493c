/**
 * A vendor rate limit that holds across every worker on every host: slots are granted by the shared state
 * store in fixed windows (Braze counts `/users/track` in 3-second buckets), and when the vendor itself says the
 * workspace is exhausted — other integrations write to it too — every worker waits for the vendor's reset.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { RateSlotGrant, StateStore } from './store/store.js';

export interface RateLimit {
  requests: number;
  windowMs: number;
}

/** A vendor's block can last an hour: waiting callers wake up this often to show they are alive. */
const MAX_NAP_MS = 5_000;

/**
 * The vendor counts a request in the window it *arrives* in. A slot granted in the last moments of a window could
 * arrive in the next one, on top of that window's full allowance (a 429), so nothing is granted that close to a
 * window's end: every window's requests are granted, sent and counted within it.
 */
export function endOfWindowMarginMs(windowMs: number): number {
  return Math.min(50, Math.floor(windowMs / 20));
}

export class SharedRateLimiter {
  /** Slots this process took from the store for one window and has not handed out yet. */
  private spare = { windowEndMs: 0, slots: 0 };

  constructor(
    private readonly store: StateStore,
    private readonly key: string,
    private readonly limit: RateLimit,
  ) {}

  /**
   * Resolves once `n` slots were granted; waits for the next window (or the vendor's reset) in between, in naps
   * of at most a few seconds, calling `whileWaiting` before each (an activity heartbeats there).
   */
  async acquire(n = 1, options: { signal?: AbortSignal; whileWaiting?: () => void } = {}): Promise<void> {
    const { signal, whileWaiting } = options;
    let needed = n;
    while (needed > 0) {
      signal?.throwIfAborted();
      const grant = await this.grant(needed, this.batchSize());
      needed -= grant.granted;
      if (needed === 0) return;
      whileWaiting?.();
      // A little jitter, so waiting workers do not all arrive in the same millisecond of the next window.
      const wait = Math.max(0, grant.retryAtMs - Date.now()) + Math.random() * 25;
      await sleepUnlessAborted(Math.min(wait, MAX_NAP_MS), signal);
    }
  }

  /** Takes up to `n` slots of the current window without waiting; resolves with how many it got. */
  async tryAcquire(n: number): Promise<number> {
    return n > 0 ? (await this.grant(n)).granted : 0;
  }

  /** Feeds the vendor's `X-RateLimit-*` answer back: with nothing remaining, everyone waits for its reset. */
  async observe(state: { remaining: number; resetAtMs: number } | undefined): Promise<void> {
    if (state && state.remaining <= 0 && state.resetAtMs > Date.now()) await this.store.blockRateLimit(this.key, state.resetAtMs);
  }

  /**
   * Up to `requested` slots now: from this process's spare ones of the current window, else from the store, which
   * is asked for `extra` more to keep as spare (one store round trip per few requests, not per request).
   */
  private async grant(requested: number, extra = 0): Promise<RateSlotGrant> {
    const { windowMs } = this.limit;
    const nowMs = Date.now();
    const windowEndMs = nowMs - (nowMs % windowMs) + windowMs;
    if (this.endsTooSoon(windowEndMs)) return { granted: 0, retryAtMs: windowEndMs };
    if (this.spare.windowEndMs === windowEndMs && this.spare.slots > 0) {
      const granted = Math.min(requested, this.spare.slots);
      this.spare.slots -= granted;
      return { granted, retryAtMs: windowEndMs };
    }
    const grant = await this.store.acquireRateSlots({
      key: this.key,
      requested: requested + extra,
      limit: this.limit.requests,
      windowMs,
      nowMs,
    });
    // The store's answer can come back late (a busy database, a starved event loop): slots of a window that is
    // about to end are left unused, like any spare slots at a window's end.
    if (this.endsTooSoon(grant.retryAtMs)) return { granted: 0, retryAtMs: grant.retryAtMs };
    const granted = Math.min(requested, grant.granted);
    // Spare slots are only good in the window the store counted them in; those left over when it ends go unused.
    // Callers that went to the store at the same time all keep theirs.
    const sameWindow = this.spare.windowEndMs === grant.retryAtMs;
    this.spare = { windowEndMs: grant.retryAtMs, slots: (sameWindow ? this.spare.slots : 0) + grant.granted - granted };
    return { granted, retryAtMs: grant.retryAtMs };
  }

  /** Whether a window ends too soon for a request sent now to arrive within it. */
  private endsTooSoon(windowEndMs: number): boolean {
    return windowEndMs - Date.now() < endOfWindowMarginMs(this.limit.windowMs);
  }

  /** A hundredth of the limit: what a process may leave unused per window, at most. */
  private batchSize(): number {
    return Math.floor(this.limit.requests / 100);
  }
}

/** Sleeps; an abort rejects with the signal's own reason (e.g. the activity's cancellation), as before the sleep. */
async function sleepUnlessAborted(ms: number, signal: AbortSignal | undefined): Promise<void> {
  try {
    await sleep(ms, undefined, { signal });
  } catch (error) {
    signal?.throwIfAborted();
    throw error;
  }
}
