/**
 * A vendor rate limit that holds across every worker on every host: slots are granted by the shared state
 * store in fixed windows (Braze counts `/users/track` in 3-second buckets), and when the vendor itself says the
 * workspace is exhausted — other integrations write to it too — every worker waits for the vendor's reset.
 *
 * A limit that adopts the vendor's own report (Braze's `X-RateLimit-*` on every answer) never grants more than the
 * vendor says is left: the configured limit is what the contract allows, but another writer to the same workspace,
 * or a lower real limit, leaves less. Each slot is numbered within its window; an answer saying `remaining` after
 * slot `n` caps that window at `n + remaining` grants, and its `limit` becomes the limit of every window after it.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { RateSlotGrant, StateStore } from './store/store.js';

export interface RateLimit {
  requests: number;
  windowMs: number;
}

/** What the vendor's answer said of its limit (Braze: `X-RateLimit-Limit`, `-Remaining`, `-Reset`). */
export interface VendorRateState {
  limit?: number;
  remaining: number;
  resetAtMs: number;
}

/** A granted slot: its window, and its number within it (from 1). */
export interface RateSlot {
  windowEndMs: number;
  number: number;
}

/** A vendor's reset is given in whole seconds: a window end within this of it is the window it speaks of. */
const RESET_PRECISION_MS = 1_000;
/** A vendor's block can last an hour: waiting callers wake up this often to show they are alive. */
const MAX_NAP_MS = 5_000;
/** Until the first answer tells the vendor's limit, others wait for it at most this long. */
const FIRST_ANSWER_TIMEOUT_MS = 2_000;

/**
 * The vendor counts a request in the window it *arrives* in. A slot granted in the last moments of a window could
 * arrive in the next one, on top of that window's full allowance (a 429), so nothing is granted that close to a
 * window's end: every window's requests are granted, sent and counted within it.
 */
export function endOfWindowMarginMs(windowMs: number): number {
  return Math.min(50, Math.floor(windowMs / 20));
}

export class SharedRateLimiter {
  /** Slots this process took from the store for one window and has not handed out yet: ranges of their numbers. */
  private spare: { windowEndMs: number; ranges: Array<{ next: number; last: number }> } = { windowEndMs: 0, ranges: [] };
  /** What this process knows the vendor reported: its limit, and the cap of one window. */
  private known: { vendorLimit?: number; windowEndMs: number; windowCap?: number } = { windowEndMs: 0 };
  /** While the vendor's limit is unknown: the one request out to learn it, which the others wait for. */
  private firstAnswer?: { settled: Promise<void>; settle: () => void };
  private calibrated: boolean;
  /** The store found the window (or the vendor's block) spent until then: nobody asks it again before. */
  private spentUntilMs = 0;
  private readonly adoptsVendorLimit: boolean;

  constructor(
    private readonly store: StateStore,
    private readonly key: string,
    private readonly limit: RateLimit,
    options: { adoptsVendorLimit?: boolean } = {},
  ) {
    this.adoptsVendorLimit = options.adoptsVendorLimit ?? false;
    this.calibrated = !this.adoptsVendorLimit;
  }

  /**
   * Resolves with the slot once one was granted; waits for the next window (or the vendor's reset) in between, in
   * naps of at most a few seconds, calling `whileWaiting` before each (an activity heartbeats there). `n` slots are
   * taken at once; the last one's number is given.
   */
  async acquire(n = 1, options: { signal?: AbortSignal; whileWaiting?: () => void } = {}): Promise<RateSlot> {
    const { signal, whileWaiting } = options;
    await this.untilCalibrated(signal);
    let needed = n;
    for (;;) {
      signal?.throwIfAborted();
      const grant = await this.grant(needed, this.batchSize());
      needed -= grant.granted;
      if (needed === 0) return { windowEndMs: grant.retryAtMs, number: grant.usedThrough };
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

  /**
   * Feeds the vendor's answer to a request sent on `slot` back: with nothing remaining, everyone waits for its reset;
   * a limit that adopts the vendor's report takes its limit and what its window has left, for every worker.
   */
  async observe(state: VendorRateState | undefined, slot?: RateSlot): Promise<void> {
    try {
      if (!state) return;
      if (state.remaining <= 0 && state.resetAtMs > Date.now()) await this.store.blockRateLimit(this.key, state.resetAtMs);
      if (this.adoptsVendorLimit) await this.adopt(state, slot);
    } finally {
      this.calibrate();
    }
  }

  /** Tells the store what the vendor reported, when that is news: a limit it has not heard, or a tighter window. */
  private async adopt(state: VendorRateState, slot: RateSlot | undefined): Promise<void> {
    if (state.limit === undefined) return;
    const aboutThisSlot = slot !== undefined && Math.abs(state.resetAtMs - slot.windowEndMs) < RESET_PRECISION_MS;
    const windowCap = aboutThisSlot ? slot.number + Math.max(0, state.remaining) : undefined;
    const capOfWindow = this.known.windowEndMs === slot?.windowEndMs ? this.known.windowCap : undefined;
    const allowed = Math.min(this.limit.requests, state.limit, capOfWindow ?? Infinity);
    const tighter = windowCap !== undefined && windowCap < allowed;
    if (state.limit === this.known.vendorLimit && !tighter) return;
    const windowEndMs = slot?.windowEndMs ?? this.known.windowEndMs;
    this.known = { vendorLimit: state.limit, windowEndMs, windowCap: tighter ? windowCap : capOfWindow };
    await this.store.adoptVendorRateLimit({
      key: this.key,
      vendorLimit: state.limit,
      windowStartMs: windowEndMs - this.limit.windowMs,
      ...(tighter && { windowCap }),
    });
  }

  /**
   * Until the vendor's limit is known (from the store, or the first answer), one request goes out to learn it and the
   * others wait for its answer: a configured limit above the real one would otherwise send a window's worth of 429s.
   */
  private async untilCalibrated(signal: AbortSignal | undefined): Promise<void> {
    if (this.calibrated) return;
    if (!this.firstAnswer) {
      let settle!: () => void;
      const settled = new Promise<void>((resolve) => (settle = resolve));
      this.firstAnswer = { settled, settle };
      // The first caller goes ahead; its grant says whether the store knew the vendor's limit already.
      return;
    }
    const timeout = sleep(FIRST_ANSWER_TIMEOUT_MS, undefined, { signal }).catch(() => signal?.throwIfAborted());
    await Promise.race([this.firstAnswer.settled, timeout]);
    // An answer that never came (the request failed on the way) does not hold anyone up twice.
    this.calibrate();
  }

  private calibrate(): void {
    this.calibrated = true;
    this.firstAnswer?.settle();
  }

  /**
   * Up to `requested` slots now: from this process's spare ones of the current window, else from the store, which
   * is asked for `extra` more to keep as spare (one store round trip per few requests, not per request).
   */
  private async grant(requested: number, extra = 0): Promise<RateSlotGrant> {
    const { windowMs } = this.limit;
    const nowMs = Date.now();
    const windowEndMs = nowMs - (nowMs % windowMs) + windowMs;
    if (this.endsTooSoon(windowEndMs)) return { granted: 0, retryAtMs: windowEndMs, usedThrough: 0 };
    if (nowMs < this.spentUntilMs) return { granted: 0, retryAtMs: this.spentUntilMs, usedThrough: 0 };
    const [range] = this.spare.windowEndMs === windowEndMs ? this.spare.ranges : [];
    if (range) {
      const granted = Math.min(requested, range.last - range.next + 1);
      range.next += granted;
      if (range.next > range.last) this.spare.ranges.shift();
      return { granted, retryAtMs: windowEndMs, usedThrough: range.next - 1 };
    }
    const grant = await this.store.acquireRateSlots({
      key: this.key,
      requested: requested + (this.calibrated ? extra : 0),
      limit: this.limit.requests,
      windowMs,
      nowMs,
    });
    if (grant.vendorLimit !== undefined) {
      this.known.vendorLimit ??= grant.vendorLimit;
      this.calibrate();
    }
    // A window's grants only grow, so one found spent stays spent to its end (callers that try often, such as the
    // receiver's Connected Content fetches, then cost no store round trip).
    if (grant.granted === 0) this.spentUntilMs = grant.retryAtMs;
    // The store's answer can come back late (a busy database, a starved event loop): slots of a window that is
    // about to end are left unused, like any spare slots at a window's end.
    if (this.endsTooSoon(grant.retryAtMs)) return { ...grant, granted: 0 };
    const granted = Math.min(requested, grant.granted);
    // Slots are numbered in the order the store granted them: this caller takes the first, the rest are spare.
    // Spare slots are only good in the window the store counted them in; those left over when it ends go unused.
    // Callers that went to the store at the same time all keep theirs.
    const first = grant.usedThrough - grant.granted + 1;
    if (this.spare.windowEndMs !== grant.retryAtMs) this.spare = { windowEndMs: grant.retryAtMs, ranges: [] };
    if (grant.granted > granted) this.spare.ranges.push({ next: first + granted, last: grant.usedThrough });
    return { granted, retryAtMs: grant.retryAtMs, usedThrough: first + granted - 1 };
  }

  /** Whether a window ends too soon for a request sent now to arrive within it. */
  private endsTooSoon(windowEndMs: number): boolean {
    return windowEndMs - Date.now() < endOfWindowMarginMs(this.limit.windowMs);
  }

  /** A hundredth of the limit (the vendor's, once known): what a process may leave unused per window, at most. */
  private batchSize(): number {
    return Math.floor(Math.min(this.limit.requests, this.known.vendorLimit ?? Infinity) / 100);
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
