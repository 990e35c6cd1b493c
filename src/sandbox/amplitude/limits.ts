/** Counters behind the sandbox's rate limits and quotas. */
import type { ServerResponse } from 'node:http';

/** Counts per key within fixed windows of `windowMs`; a new window starts from zero (and frees the old keys). */
export class FixedWindowCounter {
  private windowIndex = Number.NaN;
  private counts = new Map<string, number>();

  constructor(readonly windowMs: number) {}

  count(key: string, now = Date.now()): number {
    this.roll(now);
    return this.counts.get(key) ?? 0;
  }

  add(key: string, amount = 1, now = Date.now()): number {
    this.roll(now);
    const total = (this.counts.get(key) ?? 0) + amount;
    this.counts.set(key, total);
    return total;
  }

  private roll(now: number): void {
    const windowIndex = Math.floor(now / this.windowMs);
    if (windowIndex !== this.windowIndex) {
      this.windowIndex = windowIndex;
      this.counts = new Map();
    }
  }
}

/** Calendar-month (UTC) request count, like Amplitude's monthly download quota. */
export class MonthlyCounter {
  private month = '';
  private used = 0;

  count(now = Date.now()): number {
    this.roll(now);
    return this.used;
  }

  add(now = Date.now()): void {
    this.roll(now);
    this.used++;
  }

  private roll(now: number): void {
    const month = new Date(now).toISOString().slice(0, 7);
    if (month !== this.month) {
      this.month = month;
      this.used = 0;
    }
  }
}

/** How many of the next requests a fault applies to, e.g. export requests that time out. */
export class Countdown {
  private left = 0;

  get remaining(): number {
    return this.left;
  }

  set(count: number): void {
    this.left = count;
  }

  /** True (and one fewer left) while any are left. */
  take(): boolean {
    if (this.left === 0) return false;
    this.left--;
    return true;
  }
}

/** Requests in flight; a slot is held until the response closes, so a streaming download keeps its slot. */
export class ConcurrencyGate {
  private inFlight = 0;

  constructor(readonly limit: number) {}

  tryAcquire(res: ServerResponse): boolean {
    if (this.inFlight >= this.limit) return false;
    this.inFlight++;
    res.once('close', () => this.inFlight--);
    return true;
  }
}

/** At most `limit` requests in any `windowMs`: unlike fixed windows, two requests in a row are never both let through. */
export class SlidingWindowLimit {
  private readonly grantedAt: number[] = [];

  constructor(readonly windowMs: number) {}

  tryTake(limit: number, now = Date.now()): boolean {
    while (this.grantedAt.length > 0 && this.grantedAt[0]! <= now - this.windowMs) this.grantedAt.shift();
    if (this.grantedAt.length >= limit) return false;
    this.grantedAt.push(now);
    return true;
  }
}
