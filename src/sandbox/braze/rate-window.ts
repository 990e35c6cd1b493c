/**
 * Braze's `/users/track` limit: requests per fixed window (3 s buckets, not a sliding window), shared by the
 * whole workspace and reported on every response as `X-RateLimit-*`, the reset in UTC epoch seconds.
 */

export interface RateLimit {
  requests: number;
  windowMs: number;
}

/** Requests granted in each window from the first that granted any to the last, zeros included. */
export interface WindowHistory {
  windowMs: number;
  firstWindowStartMs: number | undefined;
  granted: number[];
}

export class FixedWindowRateLimit {
  private windowIndex = -1;
  private used = 0;
  private readonly grantedByWindow = new Map<number, number>();

  constructor(private limit: RateLimit) {}

  get current(): RateLimit {
    return { ...this.limit };
  }

  set(limit: RateLimit): void {
    this.limit = { ...limit };
    this.windowIndex = -1;
    this.grantedByWindow.clear();
  }

  /** How full each window was: what a benchmark compares with the limit. */
  history(): WindowHistory {
    if (this.grantedByWindow.size === 0) return { windowMs: this.limit.windowMs, firstWindowStartMs: undefined, granted: [] };
    let [first, last] = [Infinity, -Infinity];
    for (const index of this.grantedByWindow.keys()) [first, last] = [Math.min(first, index), Math.max(last, index)];
    const granted = Array.from({ length: last - first + 1 }, (_, offset) => this.grantedByWindow.get(first + offset) ?? 0);
    return { windowMs: this.limit.windowMs, firstWindowStartMs: first * this.limit.windowMs, granted };
  }

  /** Consumes one request of the current window when any is left. */
  take(now: number): { allowed: boolean; headers: Record<string, string> } {
    this.enter(now);
    const allowed = this.used < this.limit.requests;
    if (allowed) {
      this.used += 1;
      this.grantedByWindow.set(this.windowIndex, this.used);
    }
    return { allowed, headers: this.headers() };
  }

  /** The headers as they stand, without consuming anything. */
  peek(now: number): Record<string, string> {
    this.enter(now);
    return this.headers();
  }

  private enter(now: number): void {
    const index = Math.floor(now / this.limit.windowMs);
    if (index !== this.windowIndex) {
      this.windowIndex = index;
      this.used = 0;
    }
  }

  private headers(): Record<string, string> {
    return {
      'x-ratelimit-limit': String(this.limit.requests),
      'x-ratelimit-remaining': String(Math.max(0, this.limit.requests - this.used)),
      'x-ratelimit-reset': String(Math.ceil(((this.windowIndex + 1) * this.limit.windowMs) / 1000)),
    };
  }
}
