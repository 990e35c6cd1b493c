/**
 * The event stream as the client API, the receiver and the CLI start, wake, configure and follow it. A stream is not
 * scheduled: the receiver starts (or wakes) it whenever it spools something for it.
 */
import type { Client, WorkflowHandleWithFirstExecutionRunId } from '@temporalio/client';
import { DEFAULT_TASK_QUEUE } from '../../src/config.js';
import { parseInput, startSync, syncProgress, type StartSyncOptions, type SyncKind } from '../../src/sync-kind.js';
import {
  eventStreamInputSchema,
  eventStreamNameSchema,
  eventStreamSearchAttributes,
  eventStreamWorkflowId,
  type EventStreamInput,
  type EventStreamOptions,
  type EventStreamSettings,
  type EventStreamSettingsChange,
} from './input.js';
import { configureUpdate, eventStreamProgressQuery, spooledSignal, type eventStream, type EventStreamProgress } from './workflow.js';

export const EVENT_STREAM: SyncKind<typeof eventStream, EventStreamInput, EventStreamOptions, EventStreamProgress> = {
  workflowType: 'eventStream',
  inputSchema: eventStreamInputSchema,
  progressQuery: eventStreamProgressQuery,
  run: (options, input) => ({ input, workflowId: eventStreamWorkflowId(options.name) }),
  summary(options) {
    const types =
      options.eventTypes.length === 0
        ? 'no events selected'
        : options.eventTypes.includes('*')
          ? 'all events'
          : options.eventTypes.join(', ');
    return `Amplitude webhook stream "${options.name}": activity index, ${types} → Braze within seconds`;
  },
  searchAttributes: eventStreamSearchAttributes,
};

/** Starts a named stream with these settings (saved for its later runs); a running one is changed with `configureEventStream`. */
export const startEventStream = (
  client: Client,
  input: EventStreamInput,
  options?: StartSyncOptions,
): Promise<WorkflowHandleWithFirstExecutionRunId<typeof eventStream>> => startSync(client, EVENT_STREAM, input, options);

/**
 * Starts the named stream with its saved settings, or wakes the one running: what the receiver does whenever it spools
 * something for it. Resolves with the workflow id.
 */
export async function nudgeEventStream(client: Client, name: string, options: { taskQueue?: string } = {}): Promise<string> {
  const workflowId = eventStreamWorkflowId(parseInput(eventStreamNameSchema, name, 'eventStream'));
  await client.workflow.signalWithStart<typeof eventStream, []>('eventStream', {
    workflowId,
    taskQueue: options.taskQueue ?? DEFAULT_TASK_QUEUE,
    args: [{ name }],
    signal: spooledSignal,
    typedSearchAttributes: eventStreamSearchAttributes(),
  });
  return workflowId;
}

/** Changes a running stream's settings (the fields given; the others stay); resolves with its settings now. */
export function configureEventStream(client: Client, name: string, change: EventStreamSettingsChange): Promise<EventStreamSettings> {
  return client.workflow.getHandle<typeof eventStream>(eventStreamWorkflowId(name)).executeUpdate(configureUpdate, { args: [change] });
}

/** What the named stream has done since it started, its settings and its backlog. */
export function getEventStreamProgress(client: Client, name: string): Promise<EventStreamProgress> {
  return syncProgress(client, EVENT_STREAM, eventStreamWorkflowId(name));
}
