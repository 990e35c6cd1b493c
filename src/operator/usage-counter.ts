/**
 * What a process counts for the operator's view (vendor answers, rows staged and sent), added up in memory and
 * written to the store's usage counts about once a second: one small transaction however many requests a second a
 * worker makes. Counts of the last second are lost if the process dies; they are for charts and alerts, not billing
 * (data points are counted exactly, in the request ledger).
 */
import type { StateStore, UsageCount, UsageMetric } from '../store/store.js';
import { labelsKey } from '../store/operator/sql.js';

const FLUSH_EVERY_MS = 1_000;

/** How a vendor's answer is counted: its status class, with 429 apart (the one an operator watches). */
export function statusClass(status: number | undefined): string {
  if (status === undefined) return 'network';
  if (status === 429) return '429';
  return `${Math.floor(status / 100)}xx`;
}

export class UsageCounter {
  #pending = new Map<string, UsageCount>();
  #timer: NodeJS.Timeout | undefined;
  #flushing: Promise<void> = Promise.resolve();
  #closed = false;

  constructor(
    private readonly store: Pick<StateStore, 'addUsageCounts'>,
    private readonly onError: (error: unknown) => void = (error) => console.warn('usage counts not written yet:', error),
  ) {}

  add(metric: UsageMetric, labels: Record<string, string>, count = 1): void {
    if (count <= 0 || this.#closed) return;
    this.#keep({ day: new Date().toISOString().slice(0, 10), metric, labels, count });
    this.#timer ??= setTimeout(() => void this.flush(), FLUSH_EVERY_MS).unref();
  }

  #keep(count: UsageCount): void {
    const key = `${count.day} ${count.metric} ${labelsKey(count.labels)}`;
    const known = this.#pending.get(key);
    if (known) known.count += count.count;
    else this.#pending.set(key, { ...count });
  }

  /** A vendor client's answer hook: one request to `endpoint`, answered with `status` (undefined: no answer). */
  readonly vendorAnswer = (vendor: string, endpoint: string, status: number | undefined): void =>
    this.add('vendor_requests', { vendor, endpoint, status: statusClass(status) });

  /** Writes what is counted so far; counts a failed write keeps for the next flush. */
  flush(): Promise<void> {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#flushing = this.#flushing.then(async () => {
      const counts = [...this.#pending.values()];
      if (counts.length === 0) return;
      this.#pending = new Map();
      try {
        await this.store.addUsageCounts(counts);
      } catch (error) {
        // Kept for the next flush, which the next count schedules: a store that stays down is not retried every second.
        for (const count of counts) this.#keep(count);
        this.onError(error);
      }
    });
    return this.#flushing;
  }

  /** Writes what is counted so far and counts nothing more (the store is about to close). */
  async close(): Promise<void> {
    this.#closed = true;
    await this.flush();
  }
}
