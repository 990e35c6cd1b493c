/**
 * `eventSync`: one hour of Amplitude events → the activity index (who is active, their latest user properties)
 * and, for the selected event types, Braze custom events, each sent at most once whatever reruns and backfills
 * happen. The workflow only orchestrates; every step is an idempotent activity over the shared store.
 */
import {
  ContinueAsNew,
  allHandlersFinished,
  condition,
  continueAsNew,
  defineQuery,
  setCurrentDetails,
  setHandler,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import type { EventSyncActivities } from '../activities/event-sync.js';
import type { EventPlan, IngestedHour, PageOutcome } from '../activities/event-sync-types.js';
import type { RunRef } from '../activities/sync-lease.js';
import { eventSyncId, eventSyncInputSchema, exportHourOf, type EventSyncInput, type EventSyncOptions } from '../src/events/input.js';
import { DATA_POINTS, EXPORT_HOUR, SCHEDULED_START_TIME, SYNC_KIND } from '../src/temporal/search-attributes.js';
import { applyPages, budgetControls, parseWorkflowInput, readableFailure, syncActivities } from './engine.js';

const { quick, streaming, pages } = syncActivities<EventSyncActivities>('eventSync');

export interface EventSyncTotals {
  forwarded: number;
  failed: number;
  failureReasons: Record<string, number>;
  dataPoints: number;
  brazeRequests: number;
}

export interface EventSyncResult extends EventSyncTotals {
  syncId: string;
  hour: string;
  dryRun: boolean;
  /** Set when this run did nothing because another run of the same hour was in progress. */
  runInProgress?: string;
  /** Events in the hour's export. */
  events: number;
  usersActive: number;
  /** Selected events that cannot go to Braze, by reason. */
  skipped: number;
  skipReasons: Record<string, number>;
  droppedProperties: Record<string, number>;
  /** Selected events an earlier run (or backfill) already sent: never sent twice. */
  alreadySent: number;
  /** Events whose request was cut off without an answer (a killed worker): maybe delivered, never resent. */
  unconfirmed: number;
  usersPruned: number;
  plan?: EventPlan;
}

export interface EventSyncProgress {
  phase: 'preparing' | 'ingesting' | 'planning' | 'applying' | 'paused' | 'finishing' | 'done';
  hour: string;
  page: number;
  pagesTotal: number;
  totals: EventSyncTotals;
  pausedReason?: string;
}

/** Where a continued-as-new run picks up: everything else is in the store. */
export interface EventSyncCheckpoint {
  runId: string;
  hour: string;
  ingested: IngestedHour;
  plan: EventPlan;
  nextPage: number;
  totals: EventSyncTotals;
}

export const eventProgressQuery = defineQuery<EventSyncProgress>('progress');

export async function eventSync(input: EventSyncInput = {}, checkpoint?: EventSyncCheckpoint): Promise<EventSyncResult> {
  const options: EventSyncOptions = parseWorkflowInput(eventSyncInputSchema, input, 'eventSync');
  const hour = checkpoint?.hour ?? options.hour ?? hourToProcess(options.lagHours);
  const syncId = eventSyncId(hour);
  const run: RunRef = { syncId, runId: checkpoint?.runId ?? `${syncId}/${workflowInfo().runId}`, workflowId: workflowInfo().workflowId };
  const totals: EventSyncTotals = checkpoint?.totals ?? { forwarded: 0, failed: 0, failureReasons: {}, dataPoints: 0, brazeRequests: 0 };
  const controls = budgetControls({ maxDataPoints: options.maxDataPoints, maxDataPointsPerDay: options.maxDataPointsPerDay });
  const progress: EventSyncProgress = {
    phase: 'preparing',
    hour,
    page: checkpoint?.nextPage ?? 0,
    pagesTotal: checkpoint?.plan.pages ?? 0,
    totals,
  };
  setHandler(eventProgressQuery, () => progress);
  upsertSearchAttributes([
    { key: SYNC_KIND, value: 'event' },
    { key: EXPORT_HOUR, value: hour },
    { key: DATA_POINTS, value: totals.dataPoints },
  ]);

  try {
    return await syncHour();
  } catch (error) {
    if (error instanceof ContinueAsNew) throw error;
    await quick.finishEventRun({ run, status: 'failed', stats: { ...totals } }).catch(() => undefined);
    throw readableFailure(error, 'eventSync');
  }

  async function syncHour(): Promise<EventSyncResult> {
    let state = checkpoint;
    if (!state) {
      const prepared = await quick.prepareEventRun({ run, ifRunning: options.ifRunning });
      if (prepared.status === 'busy') {
        progress.phase = 'done';
        setCurrentDetails(`Skipped: run ${prepared.runInProgress} of hour ${hour} is in progress; nothing was read or sent`);
        return { ...emptyResult(), runInProgress: prepared.runInProgress };
      }
      progress.phase = 'ingesting';
      setCurrentDetails(`Ingesting hour ${hour} from Amplitude's Export API`);
      const { eventTypes, propertyFilters, eventProperties, identifiers, aliasLabel, updateExistingOnly } = options;
      const selection = { eventTypes, propertyFilters, eventProperties, identifiers, aliasLabel, updateExistingOnly };
      const ingested = await streaming.ingestEventHour({ run, hour, selection });
      progress.phase = 'planning';
      const plan = await quick.planEventRun({ run, pageSize: options.pageSize });
      state = { runId: run.runId, hour, ingested, plan, nextPage: 0, totals };
      if (options.dryRun) return finish('dry_run', state);
    }
    progress.pagesTotal = state.plan.pages;
    const current = state;
    await applyPages(
      {
        pageCount: current.plan.pages,
        nextPage: current.nextPage,
        pagesInFlight: options.pagesInFlight,
        maxPageDataPoints: current.plan.maxPageDataPoints,
        apply: (page, inFlightDataPoints, ignoreBudgets) =>
          pages.applyEventPage({ run, page, ...controls.pageBudgets(totals.dataPoints, inFlightDataPoints, ignoreBudgets) }),
        applied: (_page, outcome) => addPage(outcome),
        continueAsNew: (nextPage) =>
          continueAsNew<typeof eventSync>({ ...input, hour, ...controls.defined() }, { ...current, nextPage, totals }),
      },
      controls,
      progress,
    );
    return finish('succeeded', current);
  }

  async function finish(status: 'succeeded' | 'dry_run', state: EventSyncCheckpoint): Promise<EventSyncResult> {
    progress.phase = 'finishing';
    const { usersPruned } = await quick.pruneEventStore();
    const result: EventSyncResult = {
      ...emptyResult(),
      ...resultOf(state.ingested),
      plan: state.plan,
      alreadySent: state.plan.alreadySent,
      usersPruned,
    };
    const { failed, failureReasons, unconfirmed } = await quick.finishEventRun({ run, status, sourceVersion: hour, stats: { ...result } });
    Object.assign(result, { failed, failureReasons, unconfirmed });
    progress.phase = 'done';
    setCurrentDetails(describeResult(result));
    await condition(allHandlersFinished);
    return result;
  }

  function emptyResult(): EventSyncResult {
    const nothing = {
      events: 0,
      usersActive: 0,
      skipped: 0,
      skipReasons: {},
      droppedProperties: {},
      alreadySent: 0,
      unconfirmed: 0,
      usersPruned: 0,
    };
    return { syncId, hour, dryRun: options.dryRun, ...nothing, ...totals };
  }

  function addPage(outcome: PageOutcome): void {
    totals.forwarded += outcome.accepted;
    totals.failed += outcome.failed;
    totals.dataPoints += outcome.dataPoints;
    totals.brazeRequests += outcome.brazeRequests;
    progress.page += 1;
    upsertSearchAttributes([{ key: DATA_POINTS, value: totals.dataPoints }]);
    setCurrentDetails(
      `Page ${progress.page} of ${progress.pagesTotal}: ${totals.forwarded} events forwarded, ${totals.failed} failed, ${totals.dataPoints} data points`,
    );
  }
}

/** A scheduled run processes the hour `lagHours` before its nominal time (a manual start: before now). */
function hourToProcess(lagHours: number): string {
  const scheduledAt = workflowInfo().typedSearchAttributes.get(SCHEDULED_START_TIME);
  const nominalMs = scheduledAt?.getTime() ?? workflowInfo().startTime.getTime();
  return exportHourOf(nominalMs - lagHours * 3_600_000);
}

function resultOf(
  ingested: IngestedHour,
): Pick<EventSyncResult, 'events' | 'usersActive' | 'skipped' | 'skipReasons' | 'droppedProperties'> {
  const skipped = Object.values(ingested.skipReasons).reduce((sum, n) => sum + n, 0);
  return {
    events: ingested.events,
    usersActive: ingested.usersActive,
    skipped,
    skipReasons: ingested.skipReasons,
    droppedProperties: ingested.droppedProperties,
  };
}

function describeResult(result: EventSyncResult): string {
  const read = `hour ${result.hour}: ${result.events} events from ${result.usersActive} users`;
  if (result.dryRun) return `Dry run, ${read}; ${result.plan?.toSend ?? 0} would be forwarded, ${result.skipped} skipped`;
  return `Done, ${read}; ${result.forwarded} forwarded, ${result.alreadySent} already sent, ${result.skipped} skipped, ${result.failed} failed, ${result.dataPoints} data points`;
}
