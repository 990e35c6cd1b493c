/**
 * The typed client API for other services (and the `ampbraze` CLI, which is built on it). It needs only a
 * Temporal `Client`; credentials for Amplitude and Braze stay with the workers.
 */
import { ScheduleOverlapPolicy, type Client, type ScheduleHandle, type WorkflowHandleWithFirstExecutionRunId } from '@temporalio/client';
import proto from '@temporalio/proto';
import type { z } from 'zod';
import type { DoctorReport } from '../activities/doctor.js';
import { progressQuery, type CohortSyncProgress } from '../workflows/cohort-sync.js';
import { eventProgressQuery, type EventSyncProgress, type EventSyncResult } from '../workflows/event-sync.js';
import type { cohortSync, doctor, eventSync, traitSync } from '../workflows/index.js';
import { traitProgressQuery, type TraitSyncProgress } from '../workflows/trait-sync.js';
import { currentsForward, currentsProgressQuery, spooledSignal, type CurrentsForwardProgress } from '../workflows/currents-forward.js';
import { cohortStream, cohortStreamProgressQuery, type CohortStreamProgress } from '../workflows/cohort-stream.js';
import { CURRENTS_FORWARD_WORKFLOW_ID } from './currents/amplitude-events.js';
import {
  cohortStreamInputSchema,
  cohortStreamWorkflowId,
  cohortSyncId,
  cohortSyncInputSchema,
  type CohortStreamInput,
  type CohortSyncInput,
  type CohortSyncOptions,
} from './cohort/input.js';
import { describeInputProblems } from './input-problems.js';
import { DEFAULT_TASK_QUEUE } from './config.js';
import {
  eventSyncId,
  eventSyncInputSchema,
  exportHourOf,
  exportHoursBetween,
  type EventSyncInput,
  type EventSyncOptions,
} from './events/input.js';
import { COHORT_ID, DATA_POINTS, EXPORT_HOUR, SYNC_KIND } from './temporal/search-attributes.js';
import { traitAttributes, traitSyncId, traitSyncInputSchema, type TraitSyncInput, type TraitSyncOptions } from './traits/input.js';

export { DEFAULT_TASK_QUEUE };

export interface RunDoctorOptions {
  taskQueue?: string;
  /** How long to wait for a worker to run the checks. */
  timeoutMs?: number;
}

export class NoWorkerError extends Error {
  override readonly name = 'NoWorkerError';
}

/** Runs the `doctor` workflow and waits for its report. */
export async function runDoctor(client: Client, options: RunDoctorOptions = {}): Promise<DoctorReport> {
  const taskQueue = options.taskQueue ?? DEFAULT_TASK_QUEUE;
  const timeoutMs = options.timeoutMs ?? 60_000;
  const handle = await client.workflow.start<typeof doctor>('doctor', {
    taskQueue,
    workflowId: `doctor-${new Date().toISOString()}`,
    // A doctor run nobody picks up should not linger in the namespace.
    workflowExecutionTimeout: timeoutMs,
    staticSummary: 'Connectivity check: Temporal, state store, Amplitude, Braze',
  });
  try {
    return await handle.result();
  } catch (error) {
    if (!(await hasWorkflowPollers(client, taskQueue))) {
      throw new NoWorkerError(`No worker is polling task queue "${taskQueue}". Start one with \`npm run worker\`.`);
    }
    throw error;
  }
}

export async function hasWorkflowPollers(client: Client, taskQueue: string): Promise<boolean> {
  const response = await client.workflowService.describeTaskQueue({
    namespace: client.options.namespace,
    taskQueue: { name: taskQueue, kind: proto.temporal.api.enums.v1.TaskQueueKind.TASK_QUEUE_KIND_NORMAL },
    taskQueueType: proto.temporal.api.enums.v1.TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
  });
  return (response.pollers ?? []).length > 0;
}

// ---------------------------------------------------------------------------------------------------------
// Cohort sync

export interface StartCohortSyncOptions {
  taskQueue?: string;
  /** Defaults to the sync's own id (`cohort-sync-<cohortId>-…`), so two runs of one sync never overlap. */
  workflowId?: string;
}

/** Validates the input here (fail before starting anything), then starts a `cohortSync` run. */
export async function startCohortSync(
  client: Client,
  input: CohortSyncInput,
  options: StartCohortSyncOptions = {},
): Promise<WorkflowHandleWithFirstExecutionRunId<typeof cohortSync>> {
  const parsed = parseCohortSyncInput(input);
  return client.workflow.start<typeof cohortSync>('cohortSync', {
    taskQueue: options.taskQueue ?? DEFAULT_TASK_QUEUE,
    workflowId: options.workflowId ?? cohortSyncId(parsed),
    args: [input],
    workflowIdConflictPolicy: 'FAIL',
    staticSummary: cohortSyncSummary(parsed),
    typedSearchAttributes: [
      { key: SYNC_KIND, value: 'cohort' },
      { key: COHORT_ID, value: parsed.cohortId },
      { key: DATA_POINTS, value: 0 },
    ],
  });
}

export type Cadence = 'every_minute' | 'hourly' | 'daily';

export interface ScheduleCohortSyncOptions {
  cadence: Cadence;
  /** `HH:MM` (daily) or `MM` (hourly): pin the run to a time, which Amplitude's own sync cannot do. */
  at?: string;
  /** IANA time zone for `at` (default UTC). */
  timeZone?: string;
  scheduleId?: string;
  taskQueue?: string;
  paused?: boolean;
}

/** Creates a Temporal Schedule for a cohort sync: overlapping runs are skipped, missed runs caught up within one period. */
export async function scheduleCohortSync(
  client: Client,
  input: CohortSyncInput,
  options: ScheduleCohortSyncOptions,
): Promise<ScheduleHandle> {
  const parsed = parseCohortSyncInput(input);
  const syncId = cohortSyncId(parsed);
  return client.schedule.create({
    scheduleId: options.scheduleId ?? `${syncId}-schedule`,
    spec: { cronExpressions: [cronFor(options.cadence, options.at)], timezone: options.timeZone },
    action: {
      type: 'startWorkflow',
      workflowType: 'cohortSync',
      args: [input],
      taskQueue: options.taskQueue ?? DEFAULT_TASK_QUEUE,
      workflowId: syncId,
      staticSummary: cohortSyncSummary(parsed),
      typedSearchAttributes: [
        { key: SYNC_KIND, value: 'cohort' },
        { key: COHORT_ID, value: parsed.cohortId },
      ],
    },
    policies: { overlap: ScheduleOverlapPolicy.SKIP, catchupWindow: CATCHUP_WINDOW[options.cadence] },
    state: { paused: options.paused ?? false, note: `${options.cadence} cohort sync of ${parsed.cohortId}` },
  });
}

const CATCHUP_WINDOW: Record<Cadence, string> = { every_minute: '1 minute', hourly: '1 hour', daily: '1 day' };

export function cronFor(cadence: Cadence, at?: string): string {
  switch (cadence) {
    case 'every_minute':
      if (at) throw new Error('"at" does not apply to an every-minute cadence');
      return '* * * * *';
    case 'hourly': {
      const minute = at === undefined ? 0 : Number(at);
      if (!Number.isInteger(minute) || minute < 0 || minute > 59) throw new Error(`hourly "at" must be a minute 0-59, got "${at}"`);
      return `${minute} * * * *`;
    }
    case 'daily': {
      const match = /^(\d{1,2}):(\d{2})$/.exec(at ?? '00:00');
      const [hour, minute] = match ? [Number(match[1]), Number(match[2])] : [NaN, NaN];
      if (!(hour >= 0 && hour <= 23 && minute >= 0 && minute <= 59)) throw new Error(`daily "at" must be HH:MM, got "${at}"`);
      return `${minute} ${hour} * * *`;
    }
  }
}

/**
 * The workflow id of a sync's newest run, however it was started: the sync id itself (`temporal workflow start`,
 * `startCohortSync`) or the sync id plus the timestamp a Schedule appends. Undefined when visibility knows none yet.
 */
export async function latestCohortSyncRun(
  client: Client,
  sync: Pick<CohortSyncOptions, 'cohortId' | 'target' | 'attributeName'>,
): Promise<string | undefined> {
  const syncId = cohortSyncId(sync);
  const scheduled = new RegExp(`^${syncId.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}-\\d{4}-\\d{2}-\\d{2}T`);
  const cohortId = sync.cohortId.replaceAll("'", "\\'");
  let newest: { workflowId: string; startTime: Date } | undefined;
  let seen = 0;
  // Visibility lists running runs and then the newest closed ones first: the first page is enough.
  for await (const run of client.workflow.list({
    query: `WorkflowType = 'cohortSync' AND ${COHORT_ID.name} = '${cohortId}'`,
    pageSize: 100,
  })) {
    const ofThisSync = run.workflowId === syncId || scheduled.test(run.workflowId);
    if (ofThisSync && (!newest || run.startTime > newest.startTime)) newest = { workflowId: run.workflowId, startTime: run.startTime };
    if (++seen === 100) break;
  }
  return newest?.workflowId;
}

/** The live `progress` of a running (or finished) cohort sync. */
export async function getSyncProgress(client: Client, workflowId: string): Promise<CohortSyncProgress> {
  return client.workflow.getHandle<typeof cohortSync>(workflowId).query(progressQuery);
}

// ---------------------------------------------------------------------------------------------------------
// Event sync

/**
 * Starts an `eventSync` run of one hour (input `hour`, or by default the latest hour whose export is available:
 * now minus `lagHours`). Its workflow id is `event-sync-<hour>`, so two starts of one hour never overlap.
 */
export async function startEventSync(
  client: Client,
  input: EventSyncInput,
  options: StartCohortSyncOptions = {},
): Promise<WorkflowHandleWithFirstExecutionRunId<typeof eventSync>> {
  const parsed = parseEventSyncInput(input);
  const hour = parsed.hour ?? exportHourOf(Date.now() - parsed.lagHours * 3_600_000);
  return client.workflow.start<typeof eventSync>('eventSync', {
    taskQueue: options.taskQueue ?? DEFAULT_TASK_QUEUE,
    workflowId: options.workflowId ?? eventSyncId(hour),
    args: [{ ...input, hour }],
    workflowIdConflictPolicy: 'FAIL',
    staticSummary: eventSyncSummary(parsed, hour),
    typedSearchAttributes: [
      { key: SYNC_KIND, value: 'event' },
      { key: EXPORT_HOUR, value: hour },
      { key: DATA_POINTS, value: 0 },
    ],
  });
}

export interface ScheduleEventSyncOptions {
  /** The minute past each hour the run starts (default 0). */
  at?: string;
  /** How far back missed runs are caught up after an outage (default one day). */
  catchupWindow?: string;
  scheduleId?: string;
  taskQueue?: string;
  paused?: boolean;
}

/**
 * Creates the hourly Schedule of an event sync: each run processes the hour `lagHours` before its nominal time.
 * Runs that overlap are buffered, so hours are processed one after another, in order; `temporal schedule
 * backfill` (or `backfillEventSyncs`) replays any past range through it.
 */
export async function scheduleEventSync(
  client: Client,
  input: EventSyncInput,
  options: ScheduleEventSyncOptions = {},
): Promise<ScheduleHandle> {
  const parsed = parseEventSyncInput(input);
  if (parsed.hour !== undefined)
    throw new InvalidInputError('A scheduled event sync derives each run\'s hour from its nominal time: leave "hour" out');
  return client.schedule.create({
    scheduleId: options.scheduleId ?? EVENT_SYNC_SCHEDULE_ID,
    spec: { cronExpressions: [cronFor('hourly', options.at)] },
    action: {
      type: 'startWorkflow',
      workflowType: 'eventSync',
      args: [input],
      taskQueue: options.taskQueue ?? DEFAULT_TASK_QUEUE,
      workflowId: 'event-sync',
      staticSummary: eventSyncSummary(parsed),
      typedSearchAttributes: [{ key: SYNC_KIND, value: 'event' }],
    },
    policies: { overlap: ScheduleOverlapPolicy.BUFFER_ALL, catchupWindow: options.catchupWindow ?? '1 day' },
    state: { paused: options.paused ?? false, note: `hourly event sync, ${parsed.lagHours} h behind` },
  });
}

export const EVENT_SYNC_SCHEDULE_ID = 'event-sync-schedule';

export interface BackfillEventSyncsOptions {
  taskQueue?: string;
  /** Hours processed at once (default 2). */
  concurrency?: number;
  /** Called as each hour finishes. */
  onHour?: (result: EventSyncResult) => void;
}

/**
 * Runs `eventSync` for every hour from `from` through `to` and waits for them all. Safe to repeat: an hour sent
 * before sends nothing again, and an hour whose run is in progress is waited for.
 */
export async function backfillEventSyncs(
  client: Client,
  range: { from: string; to: string },
  input: EventSyncInput,
  options: BackfillEventSyncsOptions = {},
): Promise<EventSyncResult[]> {
  const hours = exportHoursBetween(range.from, range.to);
  if (hours.length === 0) throw new InvalidInputError(`"${range.to}" is before "${range.from}"`);
  parseEventSyncInput(input);
  const results: EventSyncResult[] = [];
  let next = 0;
  const lane = async () => {
    while (next < hours.length) {
      const hour = hours[next++]!;
      const workflowId = `${eventSyncId(hour)}-backfill-${Date.now()}`;
      const handle = await startEventSync(client, { ...input, hour, ifRunning: 'wait' }, { taskQueue: options.taskQueue, workflowId });
      const result = await handle.result();
      results.push(result);
      options.onHour?.(result);
    }
  };
  await Promise.all(Array.from({ length: Math.min(options.concurrency ?? 2, hours.length) }, lane));
  return results.sort((a, b) => a.hour.localeCompare(b.hour));
}

/** The live `progress` of a running (or finished) event sync. */
export async function getEventSyncProgress(client: Client, workflowId: string): Promise<EventSyncProgress> {
  return client.workflow.getHandle<typeof eventSync>(workflowId).query(eventProgressQuery);
}

function parseEventSyncInput(input: EventSyncInput): EventSyncOptions {
  return parseInput(eventSyncInputSchema, input, 'eventSync');
}

function eventSyncSummary(options: EventSyncOptions, hour?: string): string {
  const types =
    options.eventTypes.length === 0
      ? 'ingest only'
      : options.eventTypes.includes('*')
        ? 'all events → Braze'
        : `${options.eventTypes.join(', ')} → Braze`;
  return `Amplitude events of ${hour ? `hour ${hour}` : `the hour ${options.lagHours} h back`}: activity index, ${types}${options.dryRun ? ' (dry run)' : ''}`;
}

// ---------------------------------------------------------------------------------------------------------
// Trait sync

/** Starts a `traitSync` run; its workflow id is the sync's id (`trait-sync-<name or hash>`), so runs never overlap. */
export async function startTraitSync(
  client: Client,
  input: TraitSyncInput,
  options: StartCohortSyncOptions = {},
): Promise<WorkflowHandleWithFirstExecutionRunId<typeof traitSync>> {
  const parsed = parseInput(traitSyncInputSchema, input, 'traitSync');
  return client.workflow.start<typeof traitSync>('traitSync', {
    taskQueue: options.taskQueue ?? DEFAULT_TASK_QUEUE,
    workflowId: options.workflowId ?? traitSyncId(parsed),
    args: [input],
    workflowIdConflictPolicy: 'FAIL',
    staticSummary: traitSyncSummary(parsed),
    typedSearchAttributes: [
      { key: SYNC_KIND, value: 'trait' },
      { key: DATA_POINTS, value: 0 },
    ],
  });
}

export type ScheduleTraitSyncOptions = Omit<ScheduleCohortSyncOptions, 'cadence'> & { cadence: 'hourly' | 'daily' };

/** Creates a Temporal Schedule for a trait sync (hourly or daily, optionally pinned): overlapping runs are skipped. */
export async function scheduleTraitSync(client: Client, input: TraitSyncInput, options: ScheduleTraitSyncOptions): Promise<ScheduleHandle> {
  const parsed = parseInput(traitSyncInputSchema, input, 'traitSync');
  const syncId = traitSyncId(parsed);
  return client.schedule.create({
    scheduleId: options.scheduleId ?? `${syncId}-schedule`,
    spec: { cronExpressions: [cronFor(options.cadence, options.at)], timezone: options.timeZone },
    action: {
      type: 'startWorkflow',
      workflowType: 'traitSync',
      args: [input],
      taskQueue: options.taskQueue ?? DEFAULT_TASK_QUEUE,
      workflowId: syncId,
      staticSummary: traitSyncSummary(parsed),
      typedSearchAttributes: [{ key: SYNC_KIND, value: 'trait' }],
    },
    policies: { overlap: ScheduleOverlapPolicy.SKIP, catchupWindow: CATCHUP_WINDOW[options.cadence] },
    state: { paused: options.paused ?? false, note: `${options.cadence} trait sync ${syncId}` },
  });
}

/** The live `progress` of a running (or finished) trait sync. */
export async function getTraitSyncProgress(client: Client, workflowId: string): Promise<TraitSyncProgress> {
  return client.workflow.getHandle<typeof traitSync>(workflowId).query(traitProgressQuery);
}

/**
 * Starts the Currents forwarding workflow (`currents-forward`), or wakes the one running: what the receiver does
 * whenever it spools a batch, so nothing has to be started by hand.
 */
export async function nudgeCurrentsForward(client: Client, options: { taskQueue?: string } = {}): Promise<void> {
  await client.workflow.signalWithStart(currentsForward, {
    workflowId: CURRENTS_FORWARD_WORKFLOW_ID,
    taskQueue: options.taskQueue ?? DEFAULT_TASK_QUEUE,
    args: [{}],
    signal: spooledSignal,
  });
}

/** What the running forwarder has done and the backlog it sees. */
export async function getCurrentsProgress(client: Client): Promise<CurrentsForwardProgress> {
  return client.workflow.getHandle<typeof currentsForward>(CURRENTS_FORWARD_WORKFLOW_ID).query(currentsProgressQuery);
}

/**
 * Starts the cohort's webhook stream (`cohort-stream-<cohortId>` plus the target suffix), or wakes the one running:
 * what the receiver does whenever it spools a cohort webhook batch. Resolves with the workflow id.
 */
export async function nudgeCohortStream(client: Client, input: CohortStreamInput, options: { taskQueue?: string } = {}): Promise<string> {
  const workflowId = cohortStreamWorkflowId(parseInput(cohortStreamInputSchema, input, 'cohortStream'));
  await client.workflow.signalWithStart(cohortStream, {
    workflowId,
    taskQueue: options.taskQueue ?? DEFAULT_TASK_QUEUE,
    args: [input],
    signal: spooledSignal,
    typedSearchAttributes: [
      { key: SYNC_KIND, value: 'cohort_stream' },
      { key: COHORT_ID, value: input.cohortId },
    ],
  });
  return workflowId;
}

/** What a cohort's webhook stream has applied, and the backlog it sees. */
export async function getCohortStreamProgress(client: Client, target: CohortStreamInput): Promise<CohortStreamProgress> {
  const workflowId = cohortStreamWorkflowId(parseInput(cohortStreamInputSchema, target, 'cohortStream'));
  return client.workflow.getHandle<typeof cohortStream>(workflowId).query(cohortStreamProgressQuery);
}

function traitSyncSummary(options: TraitSyncOptions): string {
  const attributes = traitAttributes(options).map(({ key, attribute }) => (key === attribute ? key : `${key} → ${attribute}`));
  return `Amplitude ${attributes.join(', ')} → Braze custom attributes, users active in ${options.windowDays} days${options.dryRun ? ' (dry run)' : ''}`;
}

export class InvalidInputError extends Error {
  override readonly name = 'InvalidInputError';
}

function parseCohortSyncInput(input: CohortSyncInput): CohortSyncOptions {
  return parseInput(cohortSyncInputSchema, input, 'cohortSync');
}

/** Validates a workflow input here, before anything starts, with the message the workflow itself would give. */
function parseInput<S extends z.ZodType>(schema: S, input: unknown, workflowType: string): z.output<S> {
  const parsed = schema.safeParse(input);
  if (!parsed.success) throw new InvalidInputError(`Invalid ${workflowType} input:\n${describeInputProblems(parsed.error)}`);
  return parsed.data;
}

function cohortSyncSummary(options: CohortSyncOptions): string {
  const target = options.target === 'attribute' ? `custom attribute "${options.attributeName}"` : 'native partner cohort';
  return `Amplitude cohort ${options.cohortId} → Braze ${target}, identified by ${options.identifiers.join(' → ')}${options.dryRun ? ' (dry run)' : ''}`;
}
