/**
 * `eventStream` (id `event-stream-<name>`): Amplitude's Webhooks streaming destination into Braze within seconds. The
 * receiver spools what the destination posts to `/amplitude/stream/<name>` and signal-with-starts this workflow; each
 * round drains the spool (events → the activity index and Braze custom events, through the sent-event ledger the
 * hourly `eventSync` shares, so that run fills in only what the stream never delivered). Its settings — the same
 * selection as `eventSync` — are saved in the store, outlive the workflow idling out, and change with the `configure`
 * update. It carries counts and settings, never user ids or property values.
 */
import {
  condition,
  defineQuery,
  defineUpdate,
  proxyActivities,
  setHandler,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import type { EventStreamActivities } from './activities.js';
import { addEventStreamCounts, noEventStreamCounts, type EventStreamCounts } from './counts.js';
import {
  eventStreamInputSchema,
  eventStreamSearchAttributes,
  eventStreamSettingsSchema,
  eventStreamSpool,
  namesSettings,
  type EventStreamInput,
  type EventStreamOptions,
  type EventStreamSettings,
  type EventStreamSettingsChange,
} from './input.js';
import type { RunRef } from '../../activities/sync-lease.js';
import { describeInputProblems } from '../../src/input-problems.js';
import { DATA_POINTS } from '../../src/temporal/search-attributes.js';
import { syncActivities } from '../../workflows/engine.js';
import { runStream, type StreamKind, type StreamProgress, type StreamRun } from '../../workflows/stream.js';

export { resumeSignal, setBudgetUpdate, spooledSignal } from '../../workflows/engine.js';

const { retry, scheduleToCloseTimeout } = syncActivities<EventStreamActivities>('eventStream');
// A drain heartbeats all along: an attempt lost with its worker is retried elsewhere within seconds.
const drains = proxyActivities<EventStreamActivities>({
  startToCloseTimeout: '2 minutes',
  heartbeatTimeout: '10 seconds',
  scheduleToCloseTimeout,
  retry,
});
const quick = proxyActivities<EventStreamActivities>({ startToCloseTimeout: '30 seconds', scheduleToCloseTimeout, retry });

/** What the stream has done since it started, carried across continue-as-new. */
export type EventStreamTotals = EventStreamCounts;

export interface EventStreamProgress extends StreamProgress<EventStreamTotals> {
  /** `opening`: its settings are being saved (or, started by the receiver with only its name, loaded). */
  phase: 'opening' | 'streaming' | 'waiting' | 'paused' | 'done';
  name: string;
  settings?: EventStreamSettings;
  pausedReason?: string;
}

export const eventStreamProgressQuery = defineQuery<EventStreamProgress>('progress');
/** Changes the stream's settings while it runs (the fields given; the others stay): saved, and used from the next round. */
export const configureUpdate = defineUpdate<EventStreamSettings, [EventStreamSettingsChange]>('configure');

type EventStreamRun = StreamRun<EventStreamOptions, EventStreamTotals, EventStreamProgress>;

const eventStreamKind: StreamKind<EventStreamInput, EventStreamOptions, EventStreamTotals, EventStreamProgress> = {
  workflowType: 'eventStream',
  inputSchema: eventStreamInputSchema,
  progressQuery: eventStreamProgressQuery,
  emptyTotals: noEventStreamCounts,
  progress: (options, totals) => ({ phase: 'opening', name: options.name, totals }),
  budgets: ({ maxDataPointsPerDay }) => ({ maxDataPointsPerDay }),
  setUp(stream) {
    // Settings given (a start, or a continued run) are the stream's from the first query on; a name only waits for open.
    if (namesSettings(stream.input)) stream.progress.settings = settingsOf(stream.options);
    upsertSearchAttributes([...eventStreamSearchAttributes(), { key: DATA_POINTS, value: stream.totals.dataPoints }]);
    setHandler(configureUpdate, (change) => configure(stream, change), {
      validator: (change: EventStreamSettingsChange) => void changedSettings(stream, change),
    });
  },

  async open(stream) {
    const { name } = stream.options;
    // Started by the receiver with only the name: the saved settings apply.
    const given = namesSettings(stream.input) ? settingsOf(stream.options) : undefined;
    const settings = await quick.openEventStream({ name, settings: given });
    stream.options = { ...settings, name };
    stream.progress.settings = settings;
    stream.controls!.budgets.maxDataPointsPerDay = settings.maxDataPointsPerDay;
    stream.progress.phase = 'streaming';
    return true;
  },

  async round({ options, totals, progress, controls }) {
    progress.phase = 'streaming';
    const budgets = controls!.pageBudgets(0, 0, controls!.takeResume());
    // The drain reads the saved settings itself, batch by batch: a change applies at once.
    const drained = await drains.drainEventStream({ run: runOf(options.name), name: options.name, ...budgets });
    addEventStreamCounts(totals, drained);
    progress.backlog = drained.backlog;
    if (drained.dataPoints > 0) upsertSearchAttributes([{ key: DATA_POINTS, value: totals.dataPoints }]);
    if (drained.status === 'over_budget') return { next: 'pause', pause: () => controls!.pause(progress, drained.overBudget!) };
    return drained.status === 'idle' ? { next: 'idle' } : { next: 'round' };
  },

  // The settings as they are now (changed by `configure` or not), so the continued run keeps them.
  continuedInput: ({ options, controls }) => ({ ...options, ...controls!.defined() }),

  describe({ options, totals, progress: { backlog } }) {
    const pending = backlog ? `; backlog ${backlog.pending}, oldest ${Math.round(backlog.oldestAgeMs / 1000)} s` : '';
    const selected = options.eventTypes.length === 0 ? ' (no event types selected: activity only)' : '';
    return `Stream "${options.name}"${selected}: ${totals.sent} events sent, ${totals.alreadySent} already sent, ${totals.skipped} skipped, ${totals.failed} failed, ${totals.deadLettered} dead-lettered, ${totals.dataPoints} data points${pending}`;
  },
};

export function eventStream(input: EventStreamInput, carried?: EventStreamTotals): Promise<EventStreamTotals> {
  return runStream(eventStreamKind, input, carried);
}

async function configure(stream: EventStreamRun, change: EventStreamSettingsChange): Promise<EventStreamSettings> {
  // Not before the run has its settings (saved or loaded when it opens), or the opening would overwrite the change.
  await condition(() => stream.progress.phase !== 'opening');
  const settings = changedSettings(stream, change);
  await quick.saveEventStreamSettings({ name: stream.options.name, settings });
  stream.options = { ...settings, name: stream.options.name };
  stream.progress.settings = settings;
  stream.controls!.budgets.maxDataPointsPerDay = settings.maxDataPointsPerDay;
  return settings;
}

/** The stream's settings with `change` applied; a change that makes them invalid is refused with what is wrong. */
function changedSettings(stream: EventStreamRun, change: EventStreamSettingsChange): EventStreamSettings {
  const parsed = eventStreamSettingsSchema.safeParse({ ...settingsOf(stream.options), ...change });
  if (!parsed.success) throw new Error(`Invalid eventStream settings:\n${describeInputProblems(parsed.error)}`);
  return parsed.data;
}

function settingsOf({ name: _name, ...settings }: EventStreamOptions): EventStreamSettings {
  return settings;
}

/** The same across continue-as-new: the ledgers sum this stream's requests under one run. */
function runOf(name: string): RunRef {
  const { workflowId, firstExecutionRunId } = workflowInfo();
  return { syncId: eventStreamSpool(name), runId: `${workflowId}/${firstExecutionRunId}`, workflowId };
}
