/**
 * The typed client API for other services (and the `ampbraze` CLI, which is built on it). It needs only a
 * Temporal `Client`; credentials for Amplitude and Braze stay with the workers.
 */
import type { Client, ScheduleHandle, WorkflowHandleWithFirstExecutionRunId } from '@temporalio/client';
import proto from '@temporalio/proto';
import type { DoctorReport } from '../activities/doctor.js';
import { cohortStream, cohortStreamProgressQuery, type CohortStreamProgress } from '../kinds/cohort-stream/workflow.js';
import type { CohortSyncProgress } from '../kinds/cohort-sync/workflow.js';
import { currentsForward, currentsProgressQuery, spooledSignal, type CurrentsForwardProgress } from '../kinds/currents-forward/workflow.js';
import type { EventSyncProgress, EventSyncResult } from '../kinds/event-sync/workflow.js';
import type { cohortSync, doctor, eventSync, traitSync } from '../workflows/index.js';
import type { TraitSyncProgress } from '../kinds/trait-sync/workflow.js';
import {
  cohortStreamInputSchema,
  cohortStreamSearchAttributes,
  cohortStreamWorkflowId,
  cohortSyncId,
  type CohortStreamInput,
  type CohortSyncInput,
  type CohortSyncOptions,
} from '../kinds/cohort-sync/input.js';
import { DEFAULT_TASK_QUEUE } from './config.js';
import { CURRENTS_FORWARD_WORKFLOW_ID } from './currents/amplitude-events.js';
import { eventSyncId, exportHoursBetween, type EventSyncInput } from '../kinds/event-sync/input.js';
import { COHORT_SYNC } from '../kinds/cohort-sync/kind.js';
import { EVENT_SYNC, EVENT_SYNC_SCHEDULE_ID } from '../kinds/event-sync/kind.js';
import { TRAIT_SYNC } from '../kinds/trait-sync/kind.js';
import {
  InvalidInputError,
  parseInput,
  scheduleSync,
  startSync,
  syncProgress,
  type Cadence,
  type ScheduleSyncOptions,
  type StartSyncOptions,
} from './sync-kind.js';
import { COHORT_ID } from './temporal/search-attributes.js';
import type { TraitSyncInput } from '../kinds/trait-sync/input.js';
import type { ProfileWarmupInput } from '../kinds/profile-warmup/input.js';
import { PROFILE_WARMUP } from '../kinds/profile-warmup/kind.js';
import { FORGET_USERS, PRIVACY_SYNC, saveErasureRequest } from '../kinds/privacy/kind.js';
import type { ForgetUsersInput, PrivacySyncInput } from '../kinds/privacy/input.js';
import type { forgetUsers, privacySync } from '../kinds/privacy/workflow.js';
import type { ErasureIdentities, StateStore } from './store/store.js';
import type { profileWarmup, ProfileWarmupProgress } from '../kinds/profile-warmup/workflow.js';

export { DEFAULT_TASK_QUEUE, InvalidInputError };
export { EVENT_SYNC_SCHEDULE_ID };
export { cronFor, type Cadence, type ScheduleSyncOptions, type StartSyncOptions } from './sync-kind.js';
export { configureEventStream, getEventStreamProgress, nudgeEventStream, startEventStream } from '../kinds/event-stream/kind.js';
export { saveProfileList } from '../kinds/profile-warmup/kind.js';

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
// Every sync kind, through its descriptor (kinds/<kind>/kind.ts): start, schedule, progress.

/** Starts a `cohortSync` run (input validated here first); its workflow id is the sync's own, so runs never overlap. */
export const startCohortSync = (
  client: Client,
  input: CohortSyncInput,
  options?: StartSyncOptions,
): Promise<WorkflowHandleWithFirstExecutionRunId<typeof cohortSync>> => startSync(client, COHORT_SYNC, input, options);

/** Starts an `eventSync` run of one hour (input `hour`, or by default the latest available: now minus `lagHours`). */
export const startEventSync = (
  client: Client,
  input: EventSyncInput,
  options?: StartSyncOptions,
): Promise<WorkflowHandleWithFirstExecutionRunId<typeof eventSync>> => startSync(client, EVENT_SYNC, input, options);

/** Starts a `traitSync` run; its workflow id is the sync's id (`trait-sync-<name or hash>`), so runs never overlap. */
export const startTraitSync = (
  client: Client,
  input: TraitSyncInput,
  options?: StartSyncOptions,
): Promise<WorkflowHandleWithFirstExecutionRunId<typeof traitSync>> => startSync(client, TRAIT_SYNC, input, options);

/** A cohort sync's Schedule: every minute, hourly or daily (pinned to a time), overlapping runs skipped. */
export const scheduleCohortSync = (client: Client, input: CohortSyncInput, options: ScheduleSyncOptions): Promise<ScheduleHandle> =>
  scheduleSync(client, COHORT_SYNC, input, options);

/**
 * The hourly Schedule of an event sync: each run processes the hour `lagHours` before its nominal time, and runs that
 * overlap are buffered, so hours go in order; `temporal schedule backfill` (or `backfillEventSyncs`) replays a range.
 */
export const scheduleEventSync = (
  client: Client,
  input: EventSyncInput,
  options: Omit<ScheduleSyncOptions, 'cadence' | 'timeZone'> = {},
): Promise<ScheduleHandle> => scheduleSync(client, EVENT_SYNC, input, { ...options, cadence: 'hourly' });

/**
 * Erases users (GDPR/CCPA): saves who they are in the store (the one call here that needs it), then starts
 * `forgetUsers` with the request's id alone, so no user id enters Temporal. The result reports, in counts, what was
 * removed where; the users are suppressed from every sync and stream from then on.
 */
export async function startForgetUsers(
  client: Client,
  store: StateStore,
  ids: Partial<ErasureIdentities>,
  input: Omit<ForgetUsersInput, 'requestId'> = {},
  options?: StartSyncOptions,
): Promise<WorkflowHandleWithFirstExecutionRunId<typeof forgetUsers>> {
  const requestId = await saveErasureRequest(store, ids);
  return startSync(client, FORGET_USERS, { ...input, requestId }, options);
}

/** Starts a `privacySync` run: the users of Amplitude's deletion jobs forgotten, each once. */
export const startPrivacySync = (
  client: Client,
  input: PrivacySyncInput = {},
  options?: StartSyncOptions,
): Promise<WorkflowHandleWithFirstExecutionRunId<typeof privacySync>> => startSync(client, PRIVACY_SYNC, input, options);

/** The Schedule of privacy syncs (daily is plenty: Amplitude schedules its deletions 10 days ahead). */
export const schedulePrivacySync = (client: Client, input: PrivacySyncInput, options: ScheduleSyncOptions): Promise<ScheduleHandle> =>
  scheduleSync(client, PRIVACY_SYNC, input, options);

/** A trait sync's Schedule: hourly or daily (pinned to a time), overlapping runs skipped. */
export const scheduleTraitSync = (client: Client, input: TraitSyncInput, options: ScheduleSyncOptions): Promise<ScheduleHandle> =>
  scheduleSync(client, TRAIT_SYNC, input, options);

/** The live `progress` of a running (or finished) cohort sync. */
export const getCohortSyncProgress = (client: Client, workflowId: string): Promise<CohortSyncProgress> =>
  syncProgress(client, COHORT_SYNC, workflowId);
/** The same as `getCohortSyncProgress` (its first name). */
export const getSyncProgress = getCohortSyncProgress;

/** The live `progress` of a running (or finished) event sync. */
export const getEventSyncProgress = (client: Client, workflowId: string): Promise<EventSyncProgress> =>
  syncProgress(client, EVENT_SYNC, workflowId);

/** The live `progress` of a running (or finished) trait sync. */
export const getTraitSyncProgress = (client: Client, workflowId: string): Promise<TraitSyncProgress> =>
  syncProgress(client, TRAIT_SYNC, workflowId);

/** The options of `startCohortSync` (their first name; every kind takes the same). */
export type StartCohortSyncOptions = StartSyncOptions;
/** The options of `scheduleCohortSync` (their first name). */
export type ScheduleCohortSyncOptions = ScheduleSyncOptions;
/** The options of `scheduleTraitSync` (their first name). */
export type ScheduleTraitSyncOptions = Omit<ScheduleSyncOptions, 'cadence'> & { cadence: Extract<Cadence, 'hourly' | 'daily'> };

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
  parseInput(EVENT_SYNC.inputSchema, input, 'eventSync');
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
    typedSearchAttributes: cohortStreamSearchAttributes(input),
  });
  return workflowId;
}

/** What a cohort's webhook stream has applied, and the backlog it sees. */
export async function getCohortStreamProgress(client: Client, target: CohortStreamInput): Promise<CohortStreamProgress> {
  const workflowId = cohortStreamWorkflowId(parseInput(cohortStreamInputSchema, target, 'cohortStream'));
  return client.workflow.getHandle<typeof cohortStream>(workflowId).query(cohortStreamProgressQuery);
}

/** Starts a warm-up of an audience's profiles (`{ cohortId }`, `{ activeWithinDays }` or `{ list }`) for Connected Content. */
export const startProfileWarmup = (
  client: Client,
  input: ProfileWarmupInput,
  options?: StartSyncOptions,
): Promise<WorkflowHandleWithFirstExecutionRunId<typeof profileWarmup>> => startSync(client, PROFILE_WARMUP, input, options);

/** A Temporal Schedule of a warm-up, e.g. daily an hour before a campaign's send. */
export const scheduleProfileWarmup = (client: Client, input: ProfileWarmupInput, options: ScheduleSyncOptions): Promise<ScheduleHandle> =>
  scheduleSync(client, PROFILE_WARMUP, input, options);

export const getProfileWarmupProgress = (client: Client, workflowId: string): Promise<ProfileWarmupProgress> =>
  syncProgress(client, PROFILE_WARMUP, workflowId);
