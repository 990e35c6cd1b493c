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
  private windowIndex = -1;
  private used = 0;
  private readonly grantedByWindow = new Map<number, number>();
  private readonly rejectedByWindow = new Map<number, number>();

  constructor(private limit: RateLimit) {}

  get current(): RateLimit {
    return { ...this.limit };
  }

  set(limit: RateLimit): void {
    this.limit = { ...limit };
    this.windowIndex = -1;
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

  /** Consumes one request of the current window when any is left. */
  take(now: number): { allowed: boolean; headers: Record<string, string> } {
    this.enter(now);
    const allowed = this.used < this.limit.requests;
    if (allowed) {
      this.used += 1;
      this.grantedByWindow.set(this.windowIndex, this.used);
    } else {
      this.rejectedByWindow.set(this.windowIndex, (this.rejectedByWindow.get(this.windowIndex) ?? 0) + 1);
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
