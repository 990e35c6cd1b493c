/**
 * The event sync's I/O steps: stream one hour of the Export API into the activity index and the staged
 * events, then send the staged events through the engine. Each step is idempotent: a retried attempt resumes
 * from what the store holds (the committed line, the sent-event ledger) instead of starting over.
 */
import { FailureType } from '../../src/failure-types.js';
import { activityInfo, ApplicationFailure, Context, heartbeat } from '@temporalio/activity';
import { activityOf, aliasLinksOf, AmplitudeIdentitiesSeen, decide } from '../../src/events/amplitude-events.js';
import { subjectIdsOfJson, withSuppression } from '../../src/privacy/suppression.js';
import { eventPageRequests, type EventLedger } from './braze-events.js';
import { exportHourStart, EVENT_SYNC_KIND } from './input.js';
import { NonRetryableVendorError, RetryableVendorError } from '../../src/errors.js';
import { coalesce } from '../../src/request-ledger.js';
import { MAX_ROWS_PER_TRANSACTION, type EventClaim, type StagedEvent, type UserActivity } from '../../src/store/store.js';
import type { WorkerContext } from '../../src/worker-context.js';
import { applyPage, closeRun, readPlannedPage, throttledHeartbeat, type PageOutcome, type RunFailures } from '../../activities/engine.js';
import type {
  ApplyEventPageInput,
  EventPlan,
  FinishEventRunInput,
  IngestedHour,
  IngestEventHourInput,
  PrunedStore,
} from './activity-types.js';
import { keepLease, takeLease, type RunRef } from '../../activities/sync-lease.js';

/** Lines per store transaction while ingesting. */
const INGEST_CHUNK_LINES = 2_000;
const DAY_MS = 86_400_000;
/** Attempts of an hour's export that Amplitude may time out (504) before the run fails. */
const EXPORT_TIMEOUT_ATTEMPTS = 4;

export function createEventSyncActivities(context: WorkerContext) {
  const { amplitude, store } = context;
  // Claims of requests that go out together share one store transaction.
  const claimEvents = coalesce((claims: EventClaim[]) => store.claimEvents(claims));

  function ledgerFor(run: RunRef): EventLedger {
    return {
      claim: (requestKey, eventKeys) => claimEvents({ runId: run.runId, requestKey, eventKeys, nowMs: Date.now() }),
      release: (requestKey) => store.releaseEventClaims(run.runId, requestKey),
    };
  }

  /**
   * The hour's events. One hour is the smallest range the Export API takes, so it cannot be split further: a
   * 504 (Amplitude timed out building it) is retried a few times, then fails the run with a message saying so,
   * and a 400 (the hour is over the export's size limit) fails it at once.
   */
  async function* exportOfHour(hourStart: number, hour: string, onDownload: () => void) {
    try {
      yield* amplitude.exportEvents(new Date(hourStart), new Date(hourStart), { onDownload });
    } catch (error) {
      if (error instanceof RetryableVendorError && error.status === 504 && activityInfo().attempt >= EXPORT_TIMEOUT_ATTEMPTS) {
        throw ApplicationFailure.create({
          type: FailureType.ExportTimedOut,
          nonRetryable: true,
          message: `Amplitude's Export API timed out (504) on hour ${hour} ${EXPORT_TIMEOUT_ATTEMPTS} times in a row; an hour cannot be split further, so try the hour again later (re-running it is safe)`,
          cause: error,
        });
      }
      if (error instanceof NonRetryableVendorError && error.status === 400) {
        throw ApplicationFailure.create({
          type: FailureType.ExportTooLarge,
          nonRetryable: true,
          message: `Amplitude's Export API refused hour ${hour} (400: ${error.vendorMessage ?? 'over its size limit'}); an hour is the smallest range it exports, so this hour cannot be read through the Export API (its limit is 4 GB a request)`,
          cause: error,
        });
      }
      throw error;
    }
  }

  return {
    /** Takes the hour's lease (or reports the run that has it) and records the run as started. */
    prepareEventRun: async (input: {
      run: RunRef;
      ifRunning: 'skip' | 'wait';
    }): Promise<{ status: 'ready' } | { status: 'busy'; runInProgress: string }> => {
      const lease = await takeLease(store, input.run, input.ifRunning);
      if (!lease.held) return { status: 'busy', runInProgress: lease.runInProgress };
      await store.startRun({ runId: input.run.runId, syncId: input.run.syncId, kind: 'event', startedAt: new Date() });
      return { status: 'ready' };
    },

    /**
     * Streams the hour's export: every event is activity of its user (latest event by event time wins, with its
     * user properties), and the selected ones are staged as Braze events. Lines up to the committed checkpoint
     * are read again but not written again, so a retried attempt resumes where the last one committed and still
     * counts the whole hour.
     */
    ingestEventHour: async (input: IngestEventHourInput): Promise<IngestedHour> => {
      const { run, hour, selection } = input;
      await keepLease(store, run);
      const hourStart = exportHourStart(hour);
      if (hourStart === undefined) throw ApplicationFailure.nonRetryable(`"${hour}" is not a YYYYMMDDTHH hour`, 'InvalidEventSync');
      const resumedFromLine = (await store.stagingCheckpoint(run.runId))?.rowsConsumed ?? 0;
      const ingested: IngestedHour = { events: 0, resumedFromLine, usersActive: 0, staged: 0, skipReasons: {}, droppedProperties: {} };
      const users = new Set<string>();
      const heartbeatNow = throttledHeartbeat();
      let committedLine = resumedFromLine;
      let events: StagedEvent[] = [];
      let activity = new Map<string, UserActivity>();
      const identities = new AmplitudeIdentitiesSeen();
      /** Alias name → the external id seen with it: a sign-in to identify before the hour's pages are sent. */
      let aliasLinks = new Map<string, string>();
      const commit = async () => {
        // An attempt Temporal gave up on (a timeout, a cancelled run) stops here rather than racing its retry.
        Context.current().cancellationSignal.throwIfAborted();
        await keepLease(store, run);
        await store.recordAmplitudeIdentities(identities.take());
        await store.markAliasesToIdentify(
          [...aliasLinks].map(([aliasName, externalId]) => ({ aliasName, externalId })),
          Date.now(),
        );
        await store.stageEvents(
          run.runId,
          { events, activity: [...activity.values()] },
          { rowsConsumed: ingested.events, bytesConsumed: 0 },
        );
        context.usage.add('rows_staged', { kind: EVENT_SYNC_KIND }, events.length);
        committedLine = ingested.events;
        events = [];
        activity = new Map();
        aliasLinks = new Map();
      };
      const skip = (reason: string) => (ingested.skipReasons[reason] = (ingested.skipReasons[reason] ?? 0) + 1);

      // The archive downloads whole before its first line: heartbeats keep flowing meanwhile.
      const hourEvents = exportOfHour(hourStart, hour, () => heartbeatNow({ committedLine }));
      // An erased user's events are neither activity nor sent: counted by reason, every line still numbered.
      for await (const [event, suppressed] of withSuppression(context.suppression, hourEvents, subjectIdsOfJson)) {
        const line = ++ingested.events;
        // A stalled download stops the heartbeats, so the attempt times out and a retry resumes after committedLine.
        heartbeatNow({ committedLine });
        if (suppressed) {
          skip(suppressed.reason);
          continue;
        }
        const decision = decide(event, selection);
        if (decision.forward) {
          ingested.staged += 1;
          addCounts(ingested.droppedProperties, decision.droppedProperties);
        } else if (decision.skipReason !== undefined) {
          skip(decision.skipReason);
        }
        const seen = activityOf(event);
        if (seen) users.add(seen.userKey);
        if (line <= resumedFromLine) continue;
        identities.add(event, seen?.lastEventMs ?? Date.now());
        for (const { aliasName, externalId } of aliasLinksOf(event)) if (!aliasLinks.has(aliasName)) aliasLinks.set(aliasName, externalId);
        if (decision.forward) events.push({ eventKey: decision.eventKey, body: decision.body });
        const latest = seen && activity.get(seen.userKey);
        if (seen && !(latest && latest.lastEventMs >= seen.lastEventMs)) activity.set(seen.userKey, seen);
        if (line % INGEST_CHUNK_LINES === 0) await commit();
      }
      if (ingested.events > committedLine) await commit();
      ingested.usersActive = users.size;
      return ingested;
    },

    /** Cuts the staged events not yet sent (by any run) into numbered pages. */
    planEventRun: async (input: { run: RunRef; pageSize: number }): Promise<EventPlan> => {
      await keepLease(store, input.run);
      const staged = await store.stagedEventCount(input.run.runId);
      const { events, pages } = await store.planEventPages(input.run.runId, input.pageSize);
      return { toSend: events, alreadySent: staged - events, pages, maxPageDataPoints: Math.min(input.pageSize, events) };
    },

    /**
     * Sends what is left of one planned page: each request claims its events in the sent-event ledger just before
     * it goes, so an event reaches Braze at most once, whatever retries, kills and reruns happen.
     */
    applyEventPage: async (input: ApplyEventPageInput): Promise<PageOutcome> => {
      const { run } = input;
      await keepLease(store, run);
      const pagePrefix = `event:${input.page}|`;
      // A retried page finds its lost attempt's requests unanswered: at-least-once sends their events again.
      const resent =
        input.delivery === 'at-least-once' && activityInfo().attempt > 1
          ? await store.settleUnconfirmedClaims(run.runId, pagePrefix, 'release')
          : 0;
      const events = await readPlannedPage(context, run, { kind: 'event', page: input.page }, (options) =>
        store.unsentEvents(run.runId, options),
      );
      // The sent-event ledger, claimed before each request, is this kind's snapshot: nothing more to record.
      const outcome = await applyPage(context, input, {
        run,
        pagePrefix,
        requests: eventPageRequests(events, context.brazeObjectsPerRequest, ledgerFor(run)),
        rateLimited: true,
        syncKind: EVENT_SYNC_KIND,
        snapshotOf: () => ({}),
      });
      return { ...outcome, resent };
    },

    /**
     * Keeps the store bounded: users last active before the window leave the activity index (with their
     * properties and the Amplitude ids seen with them), and the sent-event ledger forgets events past its horizon; a bounded batch per transaction.
     */
    pruneEventStore: async (): Promise<PrunedStore> => {
      const now = Date.now();
      const activeSinceMs = now - context.activeWindowDays * DAY_MS;
      const usersPruned = await inBatches(() => store.pruneInactiveUsers(activeSinceMs, MAX_ROWS_PER_TRANSACTION));
      // The Amplitude ids seen with users are kept for the same window (erasures map Amplitude's deletion jobs through them).
      await inBatches(() => store.pruneAmplitudeIdentities(activeSinceMs, MAX_ROWS_PER_TRANSACTION));
      const sentEventsPruned = await inBatches(() =>
        store.pruneSentEvents(now - context.sentEventLedgerDays * DAY_MS, MAX_ROWS_PER_TRANSACTION),
      );
      return { usersPruned, sentEventsPruned };
    },

    /** Records the run, clears its staging, frees the hour, and reports Braze's rejections and unconfirmed sends. */
    finishEventRun: async (input: FinishEventRunInput): Promise<RunFailures & { unconfirmed: number }> => {
      const unconfirmed = await store.unconfirmedEventCount(input.run.runId);
      return { ...(await closeRun(context, input)), unconfirmed };
    },
  };
}

export type EventSyncActivities = ReturnType<typeof createEventSyncActivities>;

/** Runs a bounded delete until it deletes nothing; resolves with the total deleted. */
async function inBatches(deleteBatch: () => Promise<number>): Promise<number> {
  let total = 0;
  for (;;) {
    const deleted = await deleteBatch();
    if (deleted === 0) return total;
    total += deleted;
    heartbeat();
  }
}

function addCounts(into: Record<string, number>, counts: Record<string, number>): void {
  for (const [reason, count] of Object.entries(counts)) into[reason] = (into[reason] ?? 0) + count;
}
