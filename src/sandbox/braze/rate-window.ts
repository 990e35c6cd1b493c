/**
 * Braze's `/users/track` limit: requests per fixed window (3 s buckets, not a sliding window), shared by the
 * whole workspace and reported on every response as `X-RateLimit-*`, the reset in UTC epoch seconds.
 */

export interface RateLimit {
  requests: number;
  windowMs: number;
}

/** Requests granted and refused (429) in each window from the first that saw any to the last, zeros included. */
export interface WindowHistory {
  windowMs: number;
  firstWindowStartMs: number | undefined;
  granted: number[];
  /** Requests over the limit: a client that keeps to the limit leaves every one at 0. */
  rejected: number[];
}

export class FixedWindowRateLimit {
  private readonly grantedByWindow = new Map<number, number>();
  private readonly rejectedByWindow = new Map<number, number>();

  constructor(private limit: RateLimit) {}

  get current(): RateLimit {
    return { ...this.limit };
  }

  set(limit: RateLimit): void {
    this.limit = { ...limit };
    this.grantedByWindow.clear();
    this.rejectedByWindow.clear();
  }

  /** How full each window was: what a benchmark compares with the limit. */
  history(): WindowHistory {
    const indexes = [...this.grantedByWindow.keys(), ...this.rejectedByWindow.keys()];
    if (indexes.length === 0) return { windowMs: this.limit.windowMs, firstWindowStartMs: undefined, granted: [], rejected: [] };
    const [first, last] = [Math.min(...indexes), Math.max(...indexes)];
    const perWindow = (counts: Map<number, number>) =>
      Array.from({ length: last - first + 1 }, (_, offset) => counts.get(first + offset) ?? 0);
    return {
      windowMs: this.limit.windowMs,
      firstWindowStartMs: first * this.limit.windowMs,
      granted: perWindow(this.grantedByWindow),
      rejected: perWindow(this.rejectedByWindow),
    };
  }

  /**
   * Consumes one request of the window the request *arrived* in, when any is left: a request that arrived just
   * before a window's end counts there even if it is handled (after the injected latency) in the next one.
   */
  take(arrivedAtMs: number): { allowed: boolean; headers: Record<string, string> } {
    const index = this.windowOf(arrivedAtMs);
    const used = this.grantedByWindow.get(index) ?? 0;
    const allowed = used < this.limit.requests;
    if (allowed) this.grantedByWindow.set(index, used + 1);
    else this.rejectedByWindow.set(index, (this.rejectedByWindow.get(index) ?? 0) + 1);
    return { allowed, headers: this.headers(index) };
  }

  /** The headers as they stand, without consuming anything. */
  peek(nowMs: number): Record<string, string> {
    return this.headers(this.windowOf(nowMs));
  }

  private windowOf(timeMs: number): number {
    return Math.floor(timeMs / this.limit.windowMs);
  }

  private headers(index: number): Record<string, string> {
    const used = this.grantedByWindow.get(index) ?? 0;
    return {
      'x-ratelimit-limit': String(this.limit.requests),
      'x-ratelimit-remaining': String(Math.max(0, this.limit.requests - used)),
      'x-ratelimit-reset': String(Math.ceil(((index + 1) * this.limit.windowMs) / 1000)),
    };
  }
}
