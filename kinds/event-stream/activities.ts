/**
 * Draining a named event stream's spool into Braze. A drain reads the oldest spooled items, records each event as its
 * user's activity at once (the 90-day index is current to the second), and sends the selected events as Braze custom
 * events — in requests of up to 75 across users, each event claimed in the **sent-event ledger** that `eventSync`
 * claims in too, so an event the stream sent is never sent by the hourly run, and the other way round. It keeps
 * draining while items arrive and returns once the spool has stayed empty a moment, after a bounded time, or at a
 * budget. Idempotent: a retried drain re-reads what its lost attempt did not complete, and the ledger drops repeats.
 */
import { activityInfo, Context, heartbeat } from '@temporalio/activity';
import { setTimeout as sleep } from 'node:timers/promises';
import { activityOf, amplitudeTimeMs, decide } from '../../src/events/amplitude-events.js';
import { describeIssues } from '../../src/ingress/doors.js';
import { durationMs } from '../../src/sync-input.js';
import type { EventClaim, SpooledDeadLetter, SpooledItem, StagedEvent, UserActivity } from '../../src/store/store.js';
import { coalesce } from '../../src/request-ledger.js';
import type { WorkerContext } from '../../src/worker-context.js';
import { applyPage, type PageBudgets, type PageOutcome } from '../../activities/engine.js';
import { streamBacklog, type StreamBacklog } from '../../activities/ingress-backlog.js';
import type { RunRef } from '../../activities/sync-lease.js';
import { eventPageRequests } from '../event-sync/braze-events.js';
import { noEventStreamCounts, type EventStreamCounts } from './counts.js';
import { isEvent, streamedEventSchema, streamedUserSchema } from './door.js';
import { EVENT_STREAM_KIND, eventStreamSettingsSchema, eventStreamSpool, selectionOf, type EventStreamSettings } from './input.js';

/** A drain returns to its workflow after this long at most, so the workflow's progress and budgets stay current. */
const DRAIN_FOR_MS = 10_000;
/** The spool is looked at this often while it is empty, and left to the receiver's signal after `IDLE_AFTER_MS`. */
const POLL_EMPTY_MS = 25;
const IDLE_AFTER_MS = 1_000;
/** The real-time promise is seconds: an item waiting longer than this is a warning (progress, status, doctor). */
export const EVENT_STREAM_BACKLOG_WARN_MS = 60_000;

export const USER_UPDATES_NOT_MAPPED = 'user update: not written to Braze (no trait sync maps user properties in real time)';

export interface DrainEventStreamInput extends PageBudgets {
  run: RunRef;
  name: string;
  settings: EventStreamSettings;
}

export interface DrainedEventStream extends EventStreamCounts {
  /** `over_budget`: the last batch was not sent (its items wait in the spool); `idle`: the spool stayed empty. */
  status: 'idle' | 'drained' | 'over_budget';
  /** The batch that was over a budget: its cost, and which budget. */
  overBudget?: PageOutcome;
  backlog: StreamBacklog;
}

export function createEventStreamActivities(context: WorkerContext) {
  const { store } = context;
  const claimEvents = coalesce((claims: EventClaim[]) => store.claimEvents(claims));
  const backlogOf = (name: string) => eventStreamBacklog(context, name);

  /** One batch of spooled items, sent and completed; `over_budget` leaves every item of it in the spool. */
  async function applyBatch(input: DrainEventStreamInput, items: readonly SpooledItem[], counts: EventStreamCounts) {
    const { run, settings } = input;
    const spool = eventStreamSpool(input.name);
    const selection = selectionOf(settings);
    const letters: SpooledDeadLetter[] = [];
    const activity = new Map<string, UserActivity>();
    const events: Array<StagedEvent & { timeMs: number }> = [];
    const skip = (reason: string) => {
      counts.skipped += 1;
      counts.skipReasons[reason] = (counts.skipReasons[reason] ?? 0) + 1;
    };
    for (const item of items) {
      if (!isEvent(item.body)) {
        // The door spools only what passed these schemas; an item written by an older receiver may not (nor block).
        const user = streamedUserSchema.safeParse(item.body);
        if (user.success) skip(USER_UPDATES_NOT_MAPPED);
        else letters.push({ ...item, reason: `unreadable in the spool: ${describeIssues(user.error.issues)}` });
        continue;
      }
      const parsed = streamedEventSchema.safeParse(item.body);
      if (!parsed.success) {
        letters.push({ ...item, reason: `unreadable in the spool: ${describeIssues(parsed.error.issues)}` });
        continue;
      }
      const event = parsed.data;
      const seen = activityOf(event);
      const latest = seen && activity.get(seen.userKey);
      if (seen && !(latest && latest.lastEventMs >= seen.lastEventMs)) activity.set(seen.userKey, seen);
      const decision = decide(event, selection);
      if (decision.forward) events.push({ eventKey: decision.eventKey, body: decision.body, timeMs: amplitudeTimeMs(event.event_time)! });
      else if (decision.skipReason !== undefined) skip(decision.skipReason);
    }
    // Each user's events go in the order they happened, whatever order the destination delivered them in.
    events.sort((a, b) => a.timeMs - b.timeMs);
    // Named after the batch's first spooled item: a retried drain adds to what its lost attempt sent, and settles
    // that attempt's requests which were cut off without an answer as the stream's delivery says.
    const pagePrefix = `stream:${items[0]!.seq}|`;
    const atLeastOnce = settings.delivery === 'at-least-once';
    const settled =
      activityInfo().attempt > 1 ? await store.settleUnconfirmedClaims(run.runId, pagePrefix, atLeastOnce ? 'release' : 'keep') : 0;
    counts[atLeastOnce ? 'resent' : 'unconfirmed'] += settled;
    const outcome = await applyPage(context, input, {
      run,
      pagePrefix,
      requests: eventPageRequests(events, context.brazeObjectsPerRequest, {
        claim: (requestKey, eventKeys) => claimEvents({ runId: run.runId, requestKey, eventKeys, nowMs: Date.now() }),
        release: (requestKey) => store.releaseEventClaims(run.runId, requestKey),
      }),
      rateLimited: true,
      syncKind: EVENT_STREAM_KIND,
      // The sent-event ledger, claimed before each request, is this kind's snapshot: nothing more to record.
      snapshotOf: () => ({}),
    });
    if (outcome.status === 'over_budget') return outcome;
    await store.recordActivity([...activity.values()]);
    await store.deadLetterIngress(spool, letters, Date.now());
    await store.completeIngress(
      spool,
      items.map((item) => item.seq),
      Date.now(),
    );
    counts.read += items.length;
    counts.deadLettered += letters.length;
    counts.activityRecorded += activity.size;
    counts.sent += outcome.accepted;
    counts.failed += outcome.failed;
    // What the ledger held besides what this batch's requests (and its lost attempt's, settled above) did.
    counts.alreadySent += Math.max(0, events.length - outcome.accepted - outcome.failed - (atLeastOnce ? 0 : settled));
    counts.dataPoints += outcome.dataPoints;
    counts.brazeRequests += outcome.brazeRequests;
    return outcome;
  }

  return {
    /**
     * The stream's settings: those given are saved (they outlive the workflow idling out); without any, the saved ones
     * (or, for a stream never configured, the defaults: activity recorded, nothing sent).
     */
    openEventStream: async (input: { name: string; settings?: EventStreamSettings }): Promise<EventStreamSettings> => {
      const spool = eventStreamSpool(input.name);
      if (input.settings) {
        await store.saveStreamSettings(spool, input.settings, Date.now());
        return input.settings;
      }
      const saved = eventStreamSettingsSchema.safeParse((await store.streamSettings(spool)) ?? {});
      return saved.success ? saved.data : eventStreamSettingsSchema.parse({});
    },

    /** Saves changed settings (the `configure` update), so the next run of the stream starts with them. */
    saveEventStreamSettings: async (input: { name: string; settings: EventStreamSettings }): Promise<void> => {
      await store.saveStreamSettings(eventStreamSpool(input.name), input.settings, Date.now());
    },

    /**
     * Drains the stream: a batch as soon as a request's worth is spooled or its oldest item has waited `flushWait`;
     * returns once the spool stays empty for a moment, after a bounded time, or at a budget.
     */
    drainEventStream: async (input: DrainEventStreamInput): Promise<DrainedEventStream> => {
      const spool = eventStreamSpool(input.name);
      const flushWaitMs = durationMs(input.settings.flushWait);
      const batchSize = Math.max(input.settings.batchSize, 1);
      const counts = noEventStreamCounts();
      const signal = Context.current().cancellationSignal;
      const startedAt = Date.now();
      let emptySince = Date.now();
      while (Date.now() - startedAt < DRAIN_FOR_MS) {
        signal.throwIfAborted();
        heartbeat();
        const items = await store.pendingIngress(spool, { nowMs: Date.now(), limit: batchSize });
        if (items.length === 0) {
          if (Date.now() - emptySince >= IDLE_AFTER_MS) return { status: 'idle', ...counts, backlog: await backlogOf(input.name) };
          await sleep(POLL_EMPTY_MS, undefined, { signal });
          continue;
        }
        const oldestWaitedMs = Date.now() - items[0]!.receivedAtMs;
        if (items.length < context.brazeObjectsPerRequest && items.length < batchSize && oldestWaitedMs < flushWaitMs) {
          await sleep(flushWaitMs - oldestWaitedMs, undefined, { signal });
          continue;
        }
        const outcome = await applyBatch(input, items, counts);
        if (outcome.status === 'over_budget')
          return { status: 'over_budget', overBudget: outcome, ...counts, backlog: await backlogOf(input.name) };
        emptySince = Date.now();
      }
      return { status: 'drained', ...counts, backlog: await backlogOf(input.name) };
    },

    eventStreamBacklog: backlogOf,
  };
}

export type EventStreamActivities = ReturnType<typeof createEventStreamActivities>;

/** A stream's backlog, with a warning once its oldest item has waited past a minute. */
export function eventStreamBacklog(context: WorkerContext, name: string): Promise<StreamBacklog> {
  return streamBacklog(
    context.store,
    eventStreamSpool(name),
    EVENT_STREAM_BACKLOG_WARN_MS,
    (oldestAgeMs) => `the oldest streamed item has waited ${Math.round(oldestAgeMs / 1000)} s (is a worker running?)`,
  );
}
