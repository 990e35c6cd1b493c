/**
 * `eventSync`: one hour of Amplitude events → the activity index (who is active, their latest user properties)
 * and, for the selected event types, Braze custom events, each sent at most once whatever reruns and backfills
 * happen. The workflow only orchestrates; every step is an idempotent activity over the shared store.
 */
import { defineQuery, workflowInfo } from '@temporalio/workflow';
import type { EventSyncActivities } from './activities.js';
import type { EventPlan, IngestedHour } from './activity-types.js';
import {
  eventRunSearchAttributes,
  eventSyncId,
  eventSyncInputSchema,
  exportHourOf,
  type EventSyncInput,
  type EventSyncOptions,
} from './input.js';
import { SCHEDULED_START_TIME } from '../../src/temporal/search-attributes.js';
import { syncActivities } from '../../workflows/engine.js';
import { runPagedSync, type PagedCheckpoint, type PagedProgress, type PagedSyncKind, type PagedTotals } from '../../workflows/lifecycle.js';

const { quick, streaming, pages, lastWords } = syncActivities<EventSyncActivities>('eventSync');

export interface EventSyncTotals extends PagedTotals {
  forwarded: number;
  /** Events sent again after their request was cut off without an answer (`delivery: "at-least-once"`). */
  resent: number;
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
  /** Events whose request was cut off without an answer (a killed worker) and not sent again (`at-most-once`). */
  unconfirmed: number;
  usersPruned: number;
  plan?: EventPlan;
}

export interface EventSyncProgress extends PagedProgress<EventSyncTotals> {
  phase: 'preparing' | 'ingesting' | 'planning' | 'applying' | 'paused' | 'finishing' | 'done';
  hour: string;
}

/** Where a continued-as-new run picks up: everything else is in the store. */
export interface EventSyncCheckpoint extends PagedCheckpoint<EventSyncTotals> {
  hour: string;
  ingested: IngestedHour;
  plan: EventPlan;
}

export const eventSyncProgressQuery = defineQuery<EventSyncProgress>('progress');

const eventSyncKind: PagedSyncKind<EventSyncInput, EventSyncOptions, EventSyncTotals, EventSyncCheckpoint, undefined, EventSyncResult> = {
  workflowType: 'eventSync',
  inputSchema: eventSyncInputSchema,
  progressQuery: eventSyncProgressQuery,
  identify(options, checkpoint) {
    const hour = hourOf(options, checkpoint);
    return { syncId: eventSyncId(hour), searchAttributes: eventRunSearchAttributes({ hour }), progress: { hour } };
  },
  emptyTotals: () => ({ forwarded: 0, resent: 0, failed: 0, failureReasons: {}, dataPoints: 0, brazeRequests: 0 }),

  async begin({ options, run }) {
    const prepared = await quick.prepareEventRun({ run, ifRunning: options.ifRunning });
    return prepared.status === 'busy' ? prepared : { status: 'changed', found: undefined };
  },

  async stage({ options, run, totals, step }) {
    const hour = hourOf(options);
    step('ingesting', `Ingesting hour ${hour} from Amplitude's Export API`);
    const { eventTypes, propertyFilters, eventProperties, identifiers, aliasLabel, updateExistingOnly } = options;
    const selection = { eventTypes, propertyFilters, eventProperties, identifiers, aliasLabel, updateExistingOnly };
    const ingested = await streaming.ingestEventHour({ run, hour, selection });
    step('planning');
    const plan = await quick.planEventRun({ run, pageSize: options.pageSize });
    return { runId: run.runId, hour, ingested, plan, nextPage: 0, totals };
  },

  pageCount: ({ plan }) => plan.pages,
  maxPageDataPoints: ({ plan }) => plan.maxPageDataPoints,
  applyPage: ({ options, run }, _state, page, budgets) => pages.applyEventPage({ run, page, delivery: options.delivery, ...budgets }),
  countPage(totals, _state, _page, outcome) {
    totals.forwarded += outcome.accepted;
    totals.resent += outcome.resent ?? 0;
  },

  async finish({ options, run, totals }, status, state) {
    const { usersPruned } = await quick.pruneEventStore();
    const result: EventSyncResult = {
      ...emptyResult(options, run.syncId, state.hour, totals),
      ...resultOf(state.ingested),
      plan: state.plan,
      alreadySent: state.plan.alreadySent,
      usersPruned,
    };
    const closed = await quick.finishEventRun({ run, status, sourceVersion: state.hour, stats: { ...result } });
    return Object.assign(result, { failed: closed.failed, failureReasons: closed.failureReasons, unconfirmed: closed.unconfirmed });
  },
  recordFailure: ({ run, totals }) => lastWords.finishEventRun({ run, status: 'failed', stats: { ...totals } }),
  skippedResult: ({ options, run, totals }, runInProgress) => ({
    ...emptyResult(options, run.syncId, hourOf(options), totals),
    runInProgress,
  }),
  continuedInput: (input, state) => ({ ...input, hour: state.hour }),

  describePages: ({ totals }) => `${totals.forwarded} events forwarded, ${totals.failed} failed, ${totals.dataPoints} data points`,
  describeResult,
};

export function eventSync(input: EventSyncInput = {}, checkpoint?: EventSyncCheckpoint): Promise<EventSyncResult> {
  return runPagedSync(eventSyncKind, input, checkpoint);
}

/** The hour a run processes: its checkpoint's, the one its input names, or the one its schedule's cadence implies. */
function hourOf(options: EventSyncOptions, checkpoint?: EventSyncCheckpoint): string {
  return checkpoint?.hour ?? options.hour ?? hourToProcess(options.lagHours);
}

function emptyResult(options: EventSyncOptions, syncId: string, hour: string, totals: EventSyncTotals): EventSyncResult {
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
  if (result.runInProgress) return `Skipped: run ${result.runInProgress} of hour ${result.hour} is in progress; nothing was read or sent`;
  const read = `hour ${result.hour}: ${result.events} events from ${result.usersActive} users`;
  if (result.dryRun) return `Dry run, ${read}; ${result.plan?.toSend ?? 0} would be forwarded, ${result.skipped} skipped`;
  const cutOff =
    result.resent + result.unconfirmed > 0 ? ` (${result.resent} resent, ${result.unconfirmed} unconfirmed after a lost request)` : '';
  return `Done, ${read}; ${result.forwarded} forwarded${cutOff}, ${result.alreadySent} already sent, ${result.skipped} skipped, ${result.failed} failed, ${result.dataPoints} data points`;
}
