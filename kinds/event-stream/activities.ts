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
import {
  activityOf,
  aliasLinksOf,
  AmplitudeIdentitiesSeen,
  amplitudeTimeMs,
  decide,
  userKeyOf,
} from '../../src/events/amplitude-events.js';
import { subjectIdsOfJson } from '../../src/privacy/suppression.js';
import { describeIssues } from '../../src/ingress/doors.js';
import { durationMs } from '../../src/sync-input.js';
import type { EventClaim, JsonObject, SpooledDeadLetter, SpooledItem, StagedEvent, UserActivity } from '../../src/store/store.js';
import { coalesce } from '../../src/request-ledger.js';
import type { WorkerContext } from '../../src/worker-context.js';
import { applyPage, type PageBudgets, type PageOutcome } from '../../activities/engine.js';
import { streamBacklog, withoutSuppressedItems, type StreamBacklog } from '../../activities/ingress-backlog.js';
import type { RunRef } from '../../activities/sync-lease.js';
import { eventPageRequests } from '../event-sync/braze-events.js';
import { acceptedSnapshot, externalIdOf, traitPageRequests } from '../trait-sync/braze-attributes.js';
import { REALTIME_TRAITS_PREFIX } from '../trait-sync/input.js';
import { activityAfter, attributeWrites, offerUpdate, realtimeSelections, type PropertyUpdate } from './user-updates.js';
import { noEventStreamCounts, skipIn, type EventStreamCounts } from './counts.js';
import { isEvent, streamedEventSchema, streamedUserSchema } from './door.js';
import { EVENT_STREAM_KIND, eventStreamSettingsSchema, eventStreamSpool, selectionOf, type EventStreamSettings } from './input.js';

/** A drain returns to its workflow after this long at most, so the workflow's progress and budgets stay current. */
const DRAIN_FOR_MS = 10_000;
/** The spool is looked at this often while it is empty, and left to the receiver's signal after `IDLE_AFTER_MS`. */
const POLL_EMPTY_MS = 25;
const IDLE_AFTER_MS = 1_000;
/** The real-time promise is seconds: an item waiting longer than this is a warning (progress, status, doctor). */
export const EVENT_STREAM_BACKLOG_WARN_MS = 60_000;

export interface DrainEventStreamInput extends PageBudgets {
  run: RunRef;
  name: string;
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
  const scope = context.brazeWorkspace;
  const claimEvents = coalesce((claims: EventClaim[]) => store.claimEvents(claims));
  const backlogOf = (name: string) => eventStreamBacklog(context, name);

  /** One batch of spooled items, sent and completed; `over_budget` leaves every item of it in the spool. */
  async function applyBatch(
    input: DrainEventStreamInput,
    settings: EventStreamSettings,
    items: readonly SpooledItem[],
    counts: EventStreamCounts,
  ) {
    const { run } = input;
    const spool = eventStreamSpool(input.name);
    const selection = selectionOf(settings);
    const letters: SpooledDeadLetter[] = [];
    const updates = new Map<string, PropertyUpdate>();
    const events: Array<StagedEvent & { timeMs: number }> = [];
    const skip = (reason: string) => skipIn(counts, reason);
    const identities = new AmplitudeIdentitiesSeen();
    const aliasLinks: Array<{ aliasName: string; externalId: string }> = [];
    for (const item of items) {
      if (!isEvent(item.body)) {
        // The door spools only what passed these schemas; an item written by an older receiver may not (nor block).
        const user = streamedUserSchema.safeParse(item.body);
        if (user.success) {
          aliasLinks.push(...aliasLinksOf(user.data));
          offerUpdate(updates, {
            userKey: userKeyOf(user.data),
            timeMs: item.receivedAtMs,
            properties: user.data.user_properties as JsonObject,
            partial: true,
          });
        } else letters.push({ ...item, reason: `unreadable in the spool: ${describeIssues(user.error.issues)}` });
        continue;
      }
      const parsed = streamedEventSchema.safeParse(item.body);
      if (!parsed.success) {
        letters.push({ ...item, reason: `unreadable in the spool: ${describeIssues(parsed.error.issues)}` });
        continue;
      }
      const event = parsed.data;
      identities.add(event, item.receivedAtMs);
      aliasLinks.push(...aliasLinksOf(event));
      const seen = activityOf(event);
      if (seen) offerUpdate(updates, { userKey: seen.userKey, timeMs: seen.lastEventMs, properties: seen.properties, partial: false });
      const decision = decide(event, selection);
      if (decision.forward) events.push({ eventKey: decision.eventKey, body: decision.body, timeMs: amplitudeTimeMs(event.event_time)! });
      else if (decision.skipReason !== undefined) skip(decision.skipReason);
    }
    // A sign-in seen in this batch is identified (by the page, first) before anything is written for the user.
    await store.markAliasesToIdentify(aliasLinks, Date.now());
    // Each user's events go in the order they happened, whatever order the destination delivered them in.
    events.sort((a, b) => a.timeMs - b.timeMs);
    // Named after the batch's first spooled item: a retried drain adds to what its lost attempt sent, and settles
    // that attempt's requests which were cut off without an answer as the stream's delivery says.
    const pagePrefix = `stream:${items[0]!.seq}:events|`;
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
    const { activity, older } = activityAfter(updates.values(), await store.userActivities([...updates.keys()]));
    const attributes = await writeAttributes(input, `stream:${items[0]!.seq}:attributes|`, activity);
    if (attributes.status === 'over_budget') return attributes;
    await store.recordActivity(activity);
    await store.recordAmplitudeIdentities(identities.take());
    await store.deadLetterIngress(spool, letters, Date.now());
    await store.completeIngress(
      spool,
      items.map((item) => item.seq),
      Date.now(),
    );
    counts.read += items.length;
    counts.deadLettered += letters.length;
    counts.activityRecorded += activity.length;
    counts.olderUpdates += older;
    counts.attributeUsers += attributes.accepted;
    counts.failed += attributes.failed;
    counts.dataPoints += attributes.dataPoints;
    counts.brazeRequests += attributes.brazeRequests;
    counts.identified += (outcome.identified ?? 0) + (attributes.identified ?? 0);
    counts.sent += outcome.accepted;
    counts.failed += outcome.failed;
    // What the ledger held besides what this batch's requests (and its lost attempt's, settled above) did.
    counts.alreadySent += Math.max(0, events.length - outcome.accepted - outcome.failed - (atLeastOnce ? 0 : settled));
    counts.dataPoints += outcome.dataPoints;
    counts.brazeRequests += outcome.brazeRequests;
    return outcome;
  }

  /**
   * Writes the attributes the real-time trait mappings make of the users' new properties, through the workspace's
   * attribute snapshot (only what Braze does not hold already), as the trait syncs write them.
   */
  async function writeAttributes(
    input: DrainEventStreamInput,
    pagePrefix: string,
    activity: readonly UserActivity[],
  ): Promise<PageOutcome> {
    const selections = realtimeSelections(await store.streamSettingsNamed(REALTIME_TRAITS_PREFIX));
    const users = selections.length === 0 ? [] : activity.filter((user) => externalIdOf(user.userKey) !== undefined);
    // No mapping, or no identified user: nothing to read or send (the common case, on every batch).
    if (users.length === 0) return { status: 'applied', accepted: 0, failed: 0, dataPoints: 0, brazeRequests: 0, pageDataPoints: 0 };
    const sent = await store.attributeSnapshots(
      scope,
      users.map((user) => user.userKey),
    );
    const changesOf = new Map<string, JsonObject>();
    for (const user of users) {
      const writes = attributeWrites(user.properties, selections, sent.get(user.userKey));
      if (Object.keys(writes).length > 0) changesOf.set(user.userKey, writes);
    }
    return applyPage(context, input, {
      run: input.run,
      pagePrefix,
      requests: traitPageRequests(
        [...changesOf].map(([userKey, changes]) => ({ userKey, changes })),
        context.brazeObjectsPerRequest,
      ),
      rateLimited: true,
      syncKind: EVENT_STREAM_KIND,
      snapshotOf: (accepted) => ({ attributes: acceptedSnapshot(scope, accepted.accepted, changesOf) }),
    });
  }

  /** The stream's saved settings (the defaults, recording activity only, for a stream never configured). */
  async function savedSettings(name: string): Promise<EventStreamSettings> {
    const saved = eventStreamSettingsSchema.safeParse((await store.streamSettings(eventStreamSpool(name))) ?? {});
    return saved.success ? saved.data : eventStreamSettingsSchema.parse({});
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
      return savedSettings(input.name);
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
      const counts = noEventStreamCounts();
      const signal = Context.current().cancellationSignal;
      const startedAt = Date.now();
      let emptySince = Date.now();
      while (Date.now() - startedAt < DRAIN_FOR_MS) {
        signal.throwIfAborted();
        heartbeat();
        // Read each time: a change (the `configure` update) applies from the next batch, also to a drain still running.
        const settings = await savedSettings(input.name);
        const items = await withoutSuppressedItems(
          context,
          spool,
          await store.pendingIngress(spool, { nowMs: Date.now(), limit: settings.batchSize }),
          (item) => subjectIdsOfJson(item.body),
          (reason) => skipIn(counts, reason),
        );
        if (items.length === 0) {
          if (Date.now() - emptySince >= IDLE_AFTER_MS) return { status: 'idle', ...counts, backlog: await backlogOf(input.name) };
          await sleep(POLL_EMPTY_MS, undefined, { signal });
          continue;
        }
        const oldestWaitedMs = Date.now() - items[0]!.receivedAtMs;
        const flushWaitMs = durationMs(settings.flushWait);
        if (items.length < context.brazeObjectsPerRequest && items.length < settings.batchSize && oldestWaitedMs < flushWaitMs) {
          await sleep(flushWaitMs - oldestWaitedMs, undefined, { signal });
          continue;
        }
        const outcome = await applyBatch(input, settings, items, counts);
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
