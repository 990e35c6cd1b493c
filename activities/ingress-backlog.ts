/** A spool as streams drain it: its backlog as operators see it, and the items of erased users left out. */
import type { SubjectIds } from '../src/privacy/suppression.js';
import type { IngressBacklog, SpooledItem, StateStore } from '../src/store/store.js';
import type { WorkerContext } from '../src/worker-context.js';

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

/**
 * A stream's items less those of suppressed (erased) users, which are deleted from the spool without a trace and
 * counted by reason: a stream checks before it sends anything, as every sync does before it stages.
 */
export async function withoutSuppressedItems(
  context: WorkerContext,
  stream: string,
  items: readonly SpooledItem[],
  idsOf: (item: SpooledItem) => SubjectIds,
  skip: (reason: string) => void,
): Promise<SpooledItem[]> {
  const suppressed = await context.suppression.check(items, idsOf);
  if (suppressed.size === 0) return [...items];
  await context.store.discardIngress(
    stream,
    [...suppressed.keys()].map((item) => item.seq),
  );
  for (const { reason } of suppressed.values()) skip(reason);
  return items.filter((item) => !suppressed.has(item));
}
