/** A spool's backlog as operators see it: its size, and how long the oldest unprocessed item has waited. */
import type { IngressBacklog, StateStore } from '../src/store/store.js';

export interface StreamBacklog extends IngressBacklog {
  /** How long the oldest unprocessed item has waited. */
  oldestAgeMs: number;
  /** Set when that is longer than the stream's warning threshold: processing is falling behind (or stopped). */
  warning?: string;
}

/** `warningOf` words the warning, given the oldest item's age, once that is over `warnAfterMs`. */
export async function streamBacklog(
  store: StateStore,
  stream: string,
  warnAfterMs: number,
  warningOf: (oldestAgeMs: number) => string,
): Promise<StreamBacklog> {
  const nowMs = Date.now();
  const backlog = await store.ingressBacklog(stream, nowMs);
  const oldestAgeMs = backlog.oldestReceivedAtMs === undefined ? 0 : Math.max(0, nowMs - backlog.oldestReceivedAtMs);
  return oldestAgeMs <= warnAfterMs ? { ...backlog, oldestAgeMs } : { ...backlog, oldestAgeMs, warning: warningOf(oldestAgeMs) };
}
