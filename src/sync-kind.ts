/**
 * A sync kind as the client API and the CLI offer it: its descriptor (kinds/<kind>/kind.ts) says how a run is
 * started (its workflow id, summary and search attributes), how it is scheduled, and how its progress is asked;
 * starting, scheduling and asking are written once here (`startSync`, `scheduleSync`, `syncProgress`).
 */
import type { ScheduleOverlapPolicy } from '@temporalio/client';
import {
  type Client,
  type ScheduleHandle,
  type WorkflowHandleWithFirstExecutionRunId,
  type WorkflowStartOptions,
} from '@temporalio/client';
import type { QueryDefinition, SearchAttributePair } from '@temporalio/common';
import type { z } from 'zod';
import { DEFAULT_TASK_QUEUE } from './config.js';
import { describeInputProblems } from './input-problems.js';
import { DATA_POINTS } from './temporal/search-attributes.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- any workflow function
export type WorkflowFn = (...args: any[]) => Promise<any>;

export type Cadence = 'every_minute' | 'hourly' | 'daily';

/** A sync kind: `W`, its workflow function, types the handles of the runs it starts. */
// eslint-disable-next-line @typescript-eslint/no-unused-vars -- `W` is only carried to the handles `startSync` returns
export interface SyncKind<W extends WorkflowFn, Input, Options, Progress> {
  workflowType: string;
  inputSchema: z.ZodType<Options, Input>;
  progressQuery: QueryDefinition<Progress>;
  /** What a run started now runs: its input (an event sync names its hour) and workflow id. */
  run(options: Options, input: Input): { input: Input; workflowId: string };
  /** What its runs do, in a line: the Temporal UI's summary of each run. */
  summary(options: Options): string;
  /** The search attributes its runs carry from the start (the workflow keeps them, and adds what it spends). */
  searchAttributes(options: Options): SearchAttributePair[];
  /** How its runs are scheduled; absent for a kind that is not (a stream, which the receiver starts). */
  schedule?: {
    cadences: readonly Cadence[];
    overlap: ScheduleOverlapPolicy;
    /** The schedule's id and the workflow id of its runs (Temporal appends each run's time). */
    ids(options: Options): { scheduleId: string; workflowId: string };
    note(options: Options, cadence: Cadence): string;
    /** How far back missed runs are caught up after an outage, if not one period. */
    catchupWindow?: string;
    /** Refuses an input a schedule cannot run (an event sync's fixed hour). */
    refuse?(options: Options): string | undefined;
  };
}

export class InvalidInputError extends Error {
  override readonly name = 'InvalidInputError';
}

/** Validates a workflow input here, before anything starts, with the message the workflow itself would give. */
export function parseInput<S extends z.ZodType>(schema: S, input: unknown, workflowType: string): z.output<S> {
  const parsed = schema.safeParse(input);
  if (!parsed.success) throw new InvalidInputError(`Invalid ${workflowType} input:\n${describeInputProblems(parsed.error)}`);
  return parsed.data;
}

export interface StartSyncOptions {
  taskQueue?: string;
  /** Defaults to the sync's own id, so two runs of one sync never overlap. */
  workflowId?: string;
}

/** Validates the input here (fail before starting anything), then starts a run of the kind. */
export async function startSync<W extends WorkflowFn, Input, Options, Progress>(
  client: Client,
  kind: SyncKind<W, Input, Options, Progress>,
  input: Input,
  options: StartSyncOptions = {},
): Promise<WorkflowHandleWithFirstExecutionRunId<W>> {
  const run = kind.run(parseInput(kind.inputSchema, input, kind.workflowType), input);
  const resolved = kind.inputSchema.parse(run.input);
  const start = {
    taskQueue: options.taskQueue ?? DEFAULT_TASK_QUEUE,
    workflowId: options.workflowId ?? run.workflowId,
    args: [run.input],
    workflowIdConflictPolicy: 'FAIL',
    staticSummary: kind.summary(resolved),
    typedSearchAttributes: [...kind.searchAttributes(resolved), { key: DATA_POINTS, value: 0 }],
  } as unknown as WorkflowStartOptions<W>;
  return client.workflow.start<W>(kind.workflowType, start);
}

export interface ScheduleSyncOptions {
  cadence: Cadence;
  /** `HH:MM` (daily) or `MM` (hourly): pin the run to a time, which Amplitude's own syncs cannot do. */
  at?: string;
  /** IANA time zone for `at` (default UTC). */
  timeZone?: string;
  /** How far back missed runs are caught up after an outage (default: one period). */
  catchupWindow?: string;
  scheduleId?: string;
  taskQueue?: string;
  paused?: boolean;
}

const CATCHUP_WINDOW: Record<Cadence, string> = { every_minute: '1 minute', hourly: '1 hour', daily: '1 day' };

/** Creates a Temporal Schedule of a kind's runs, with the overlap policy the kind needs. */
export async function scheduleSync<W extends WorkflowFn, Input, Options, Progress>(
  client: Client,
  kind: SyncKind<W, Input, Options, Progress>,
  input: Input,
  options: ScheduleSyncOptions,
): Promise<ScheduleHandle> {
  const parsed = parseInput(kind.inputSchema, input, kind.workflowType);
  const { schedule } = kind;
  if (!schedule) throw new InvalidInputError(`${kind.workflowType} is not scheduled`);
  const refused = schedule.refuse?.(parsed);
  if (refused) throw new InvalidInputError(refused);
  if (!schedule.cadences.includes(options.cadence)) {
    throw new InvalidInputError(`a ${kind.workflowType} schedule runs ${schedule.cadences.join(' or ')}, not ${options.cadence}`);
  }
  const { scheduleId, workflowId } = schedule.ids(parsed);
  return client.schedule.create({
    scheduleId: options.scheduleId ?? scheduleId,
    spec: { cronExpressions: [cronFor(options.cadence, options.at)], timezone: options.timeZone },
    action: {
      type: 'startWorkflow',
      workflowType: kind.workflowType,
      args: [input],
      taskQueue: options.taskQueue ?? DEFAULT_TASK_QUEUE,
      workflowId,
      staticSummary: kind.summary(parsed),
      typedSearchAttributes: kind.searchAttributes(parsed),
    },
    policies: {
      overlap: schedule.overlap,
      catchupWindow: options.catchupWindow ?? schedule.catchupWindow ?? CATCHUP_WINDOW[options.cadence],
    },
    state: { paused: options.paused ?? false, note: schedule.note(parsed, options.cadence) },
  });
}

/** The live `progress` of a running (or finished) run of the kind. */
export function syncProgress<W extends WorkflowFn, Input, Options, Progress>(
  client: Client,
  kind: SyncKind<W, Input, Options, Progress>,
  workflowId: string,
): Promise<Progress> {
  return client.workflow.getHandle<W>(workflowId).query(kind.progressQuery);
}

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

/** What a summary adds for a dry run. */
export const dryRunNote = (options: { dryRun: boolean }) => (options.dryRun ? ' (dry run)' : '');
