/**
 * Forwarding the Braze Currents events the receiver spooled to Amplitude's HTTP V2 (or Batch) API, a batch at a
 * time in arrival order. Idempotent: an attempt cut off after Amplitude took the events sends them again with the
 * same insert_ids, which Amplitude drops as repeats. Amplitude's refusals are exact: the events a 400 names are
 * dead-lettered with its reason, the users and devices a 429 throttles wait (and only they), a 413 is split.
 */
import { Context } from '@temporalio/activity';
import type { AmplitudeEvent } from '../../src/amplitude/schemas.js';
import {
  amplitudeEventOf,
  amplitudeUserOf,
  CURRENTS_KIND,
  CURRENTS_STREAM,
  currentsEventSchema,
  isForwarded,
} from '../../src/currents/amplitude-events.js';
import { subjectIdsOfJson } from '../../src/privacy/suppression.js';
import { describeIssues } from '../../src/ingress/doors.js';
import type { SpooledDeadLetter, SpooledItem } from '../../src/store/store.js';
import type { WorkerContext } from '../../src/worker-context.js';
import { streamBacklog, withoutSuppressedItems, type StreamBacklog } from '../../activities/ingress-backlog.js';

/** Forwarded events are remembered as long as Amplitude drops a repeated insert_id, so a redelivery stops at the door. */
const FORWARDED_HORIZON_MS = 7 * 86_400_000;
const PRUNE_BATCH = 10_000;
/**
 * Amplitude throttles a user or device above 30 events a second (a request with more of one is refused for it):
 * a round sends at most this many of one partition, and the rest follow in the next rounds, in order.
 */
const MAX_EVENTS_PER_PARTITION = 20;

export const NOT_FORWARDED_TYPE = 'event type not forwarded (CURRENTS_EVENT_TYPES, CURRENTS_EXCLUDE_EVENT_TYPES)';
export const NO_AMPLITUDE_USER = 'neither an external user id nor a device id (Braze’s connector skips these too)';

/** What one forwarding round did: counts only (the events themselves stay in the store). */
export interface ForwardedBatch {
  /** Spooled events read this round. */
  read: number;
  forwarded: number;
  /** Events not sent on purpose, by reason. */
  skipReasons: Record<string, number>;
  /** Events Amplitude refused (kept as dead letters with its reason), by reason. */
  deadLetterReasons: Record<string, number>;
  /** Events of throttled users and devices, held back until the wait is over. */
  deferred: number;
  backlog: StreamBacklog;
}

export function createCurrentsActivities(context: WorkerContext) {
  const { store } = context;

  const backlogNow = () => currentsBacklog(context);

  return {
    /** Forwards up to `maxEvents` of the oldest spooled events (none of a throttled user or device) in one request. */
    forwardCurrents: async (input: { maxEvents: number }): Promise<ForwardedBatch> => {
      const pending = takeInOrder(await store.pendingIngress(CURRENTS_STREAM, { nowMs: Date.now(), limit: input.maxEvents }));
      const round: Omit<ForwardedBatch, 'backlog'> = {
        read: pending.length,
        forwarded: 0,
        skipReasons: {},
        deadLetterReasons: {},
        deferred: 0,
      };
      // Braze's events about an erased user must not bring them back into Amplitude either.
      const spooled = await withoutSuppressedItems(
        context,
        CURRENTS_STREAM,
        pending,
        (item) => subjectIdsOfJson(amplitudeUserOf(item.body)),
        (reason) => count(round.skipReasons, reason),
      );
      const done: number[] = [];
      const letters: SpooledDeadLetter[] = [];
      const deadLetter = (item: SpooledItem, reason: string) => {
        count(round.deadLetterReasons, reason);
        letters.push({ ...item, reason });
      };
      const sending = new Map<AmplitudeEvent, SpooledItem>();
      for (const item of spooled) {
        // The door spools only events that passed this schema; one written by an older receiver may not (nor block).
        const parsed = currentsEventSchema.safeParse(item.body);
        if (!parsed.success) {
          deadLetter(item, `unreadable in the spool: ${describeIssues(parsed.error.issues)}`);
          continue;
        }
        const event = parsed.data;
        const amplitudeEvent = isForwarded(event.event_type, context.currents) ? amplitudeEventOf(event) : undefined;
        if (amplitudeEvent) sending.set(amplitudeEvent, item);
        else {
          count(round.skipReasons, isForwarded(event.event_type, context.currents) ? NO_AMPLITUDE_USER : NOT_FORWARDED_TYPE);
          done.push(item.seq);
        }
      }
      if (sending.size > 0) {
        const result = await context.amplitude.ingestEvents([...sending.keys()], { api: context.currents.api });
        for (const event of result.accepted) done.push(sending.get(event)!.seq);
        round.forwarded = result.accepted.length;
        context.usage.add('rows_sent', { kind: CURRENTS_KIND }, result.accepted.length + result.rejected.length);
        for (const { object, reason } of result.rejected) deadLetter(sending.get(object)!, `Amplitude: ${reason}`);
        const throttled = new Set(result.throttled.map(({ object }) => sending.get(object)!.partitionKey));
        await store.deferIngress(CURRENTS_STREAM, [...throttled], Date.now() + result.retryThrottledAfterMs);
        round.deferred = result.throttled.length;
      }
      await store.deadLetterIngress(CURRENTS_STREAM, letters, Date.now());
      await store.completeIngress(CURRENTS_STREAM, done, Date.now());
      const backlog = await backlogNow();
      // For Prometheus (WORKER_PROMETHEUS_ADDRESS): alert on the age, which grows when forwarding falls behind or stops.
      const meter = Context.current().metricMeter;
      meter.createGauge('ampbraze_currents_backlog_events', 'int', 'events', 'Currents events not yet forwarded').set(backlog.pending);
      meter
        .createGauge('ampbraze_currents_backlog_age', 'float', 'seconds', 'how long the oldest unforwarded Currents event has waited')
        .set(backlog.oldestAgeMs / 1000);
      return { ...round, backlog };
    },

    /** The spool's backlog now (for the progress query and `ampbraze currents status`). */
    currentsBacklog: backlogNow,

    /** Forgets forwarded events older than the horizon; returns how many. */
    pruneForwardedCurrents: async (): Promise<number> => {
      let pruned = 0;
      for (let batch = PRUNE_BATCH; batch === PRUNE_BATCH; pruned += batch)
        batch = await store.pruneIngress(Date.now() - FORWARDED_HORIZON_MS, PRUNE_BATCH);
      return pruned;
    },
  };
}

export type CurrentsActivities = ReturnType<typeof createCurrentsActivities>;

/** The Currents spool's backlog, with a warning past CURRENTS_BACKLOG_WARN_AGE. */
export function currentsBacklog(context: WorkerContext): Promise<StreamBacklog> {
  const warnAfterMs = context.currents.backlogWarnAgeMs;
  return streamBacklog(context.store, CURRENTS_STREAM, warnAfterMs, (oldestAgeMs) => {
    const [waited, limit] = [oldestAgeMs, warnAfterMs].map((ms) => Math.round(ms / 60_000));
    return `the oldest unforwarded event has waited ${waited} min, over CURRENTS_BACKLOG_WARN_AGE (${limit} min)`;
  });
}

/** The items to send this round: of each partition its first MAX_EVENTS_PER_PARTITION (the rest keep their place). */
function takeInOrder(items: readonly SpooledItem[]): SpooledItem[] {
  const taken = new Map<string, number>();
  return items.filter((item) => {
    const n = taken.get(item.partitionKey) ?? 0;
    taken.set(item.partitionKey, n + 1);
    return n < MAX_EVENTS_PER_PARTITION;
  });
}

function count(counts: Record<string, number>, reason: string): void {
  counts[reason] = (counts[reason] ?? 0) + 1;
}
