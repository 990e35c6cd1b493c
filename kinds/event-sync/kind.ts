/** The event sync as the client API and the CLI start, schedule and follow it. */
import { ScheduleOverlapPolicy } from '@temporalio/client';
import { dryRunNote, type SyncKind } from '../../src/sync-kind.js';
import {
  eventRunSearchAttributes,
  eventSyncId,
  eventSyncInputSchema,
  exportHourOf,
  type EventSyncInput,
  type EventSyncOptions,
} from './input.js';
import { eventSyncProgressQuery, type eventSync, type EventSyncProgress } from './workflow.js';

/** The schedule of an event sync: one a namespace, whose runs are buffered so hours go in order. */
export const EVENT_SYNC_SCHEDULE_ID = 'event-sync-schedule';

export const EVENT_SYNC: SyncKind<typeof eventSync, EventSyncInput, EventSyncOptions, EventSyncProgress> = {
  workflowType: 'eventSync',
  inputSchema: eventSyncInputSchema,
  progressQuery: eventSyncProgressQuery,
  run(options, input) {
    // A run started now processes the latest hour whose export is available, unless the input names one.
    const hour = options.hour ?? exportHourOf(Date.now() - options.lagHours * 3_600_000);
    return { input: { ...input, hour }, workflowId: eventSyncId(hour) };
  },
  summary(options) {
    const types =
      options.eventTypes.length === 0
        ? 'ingest only'
        : options.eventTypes.includes('*')
          ? 'all events → Braze'
          : `${options.eventTypes.join(', ')} → Braze`;
    const hour = options.hour ? `hour ${options.hour}` : `the hour ${options.lagHours} h back`;
    return `Amplitude events of ${hour}: activity index, ${types}${dryRunNote(options)}`;
  },
  searchAttributes: eventRunSearchAttributes,
  schedule: {
    cadences: ['hourly'],
    overlap: ScheduleOverlapPolicy.BUFFER_ALL,
    ids: () => ({ scheduleId: EVENT_SYNC_SCHEDULE_ID, workflowId: 'event-sync' }),
    note: (options) => `hourly event sync, ${options.lagHours} h behind`,
    catchupWindow: '1 day',
    refuse: (options) =>
      options.hour === undefined ? undefined : 'A scheduled event sync derives each run\'s hour from its nominal time: leave "hour" out',
  },
};
