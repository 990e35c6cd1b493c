/**
 * `currentsForward` (id `currents-forward`): drains the Braze Currents events the receiver spooled into Amplitude,
 * a batch at a time. The receiver signal-with-starts it whenever it spools a batch; it waits for the next signal
 * when the spool is empty, ends itself after `idleTimeout` without one, and continues as new before its history
 * grows large. It carries counts and the backlog's size and age, never events.
 */
import {
  allHandlersFinished,
  condition,
  continueAsNew,
  defineQuery,
  proxyActivities,
  setCurrentDetails,
  setHandler,
  workflowInfo,
} from '@temporalio/workflow';
import { z } from 'zod';
import type { CurrentsActivities, ForwardedBatch } from '../activities/currents-forward.js';
import type { StreamBacklog } from '../activities/ingress-backlog.js';
import { durationSchema } from '../src/sync-input.js';
import { parseWorkflowInput, readableFailure, spooledSignal, syncActivities } from './engine.js';

export { spooledSignal } from './engine.js';

const { retry, scheduleToCloseTimeout } = syncActivities<CurrentsActivities>('currentsForward');
// One Amplitude request a round: an attempt lost with its worker is retried elsewhere within seconds, not minutes.
const quick = proxyActivities<CurrentsActivities>({ startToCloseTimeout: '30 seconds', scheduleToCloseTimeout, retry });

export const currentsForwardInputSchema = z.strictObject({
  /** Events per Amplitude request (HTTP V2 takes up to 2,000 and 1 MB; a 413 is split). */
  batchSize: z.number().int().min(1).max(2_000).default(1_000),
  /** How long an empty spool is waited on for the receiver's next signal before the workflow ends. */
  idleTimeout: durationSchema.default('5m'),
});
export type CurrentsForwardInput = z.input<typeof currentsForwardInputSchema>;

export interface CurrentsForwardTotals {
  forwarded: number;
  skipped: number;
  skipReasons: Record<string, number>;
  deadLettered: number;
  deadLetterReasons: Record<string, number>;
  /** Throttled events held back (each time one was). */
  deferrals: number;
}

export interface CurrentsForwardProgress {
  phase: 'forwarding' | 'waiting' | 'done';
  totals: CurrentsForwardTotals;
  backlog?: StreamBacklog;
}

export const currentsProgressQuery = defineQuery<CurrentsForwardProgress>('progress');

/** Rounds before continuing as new: each adds a few events to the history. */
const ROUNDS_PER_RUN = 500;
/** With only throttled events left, look again after this long (a signal wakes the workflow sooner). */
const THROTTLED_RECHECK = '5s';

export async function currentsForward(input: CurrentsForwardInput = {}, carried?: CurrentsForwardTotals): Promise<CurrentsForwardTotals> {
  const options = parseWorkflowInput(currentsForwardInputSchema, input, 'currentsForward');
  const totals: CurrentsForwardTotals = carried ?? {
    forwarded: 0,
    skipped: 0,
    skipReasons: {},
    deadLettered: 0,
    deadLetterReasons: {},
    deferrals: 0,
  };
  const progress: CurrentsForwardProgress = { phase: 'forwarding', totals };
  let spooled = false;
  setHandler(spooledSignal, () => void (spooled = true));
  setHandler(currentsProgressQuery, () => progress);

  try {
    await quick.pruneForwardedCurrents();
    for (let round = 0; round < ROUNDS_PER_RUN && !workflowInfo().continueAsNewSuggested; round++) {
      spooled = false;
      progress.phase = 'forwarding';
      const batch = await quick.forwardCurrents({ maxEvents: options.batchSize });
      add(batch);
      if (batch.read > 0 && batch.read > batch.deferred) continue;
      progress.phase = 'waiting';
      const onlyThrottledLeft = batch.backlog.pending > 0;
      const woken = await condition(() => spooled, onlyThrottledLeft ? THROTTLED_RECHECK : options.idleTimeout);
      if (!woken && !onlyThrottledLeft) {
        progress.phase = 'done';
        setCurrentDetails(`${describe()}; idle for ${options.idleTimeout}: ended (the receiver starts it again)`);
        await condition(allHandlersFinished);
        return totals;
      }
    }
  } catch (error) {
    throw readableFailure(error, 'currentsForward');
  }
  await condition(allHandlersFinished);
  return continueAsNew<typeof currentsForward>(input, totals);

  function add(batch: ForwardedBatch): void {
    totals.forwarded += batch.forwarded;
    totals.deferrals += batch.deferred;
    for (const [reason, n] of Object.entries(batch.skipReasons)) {
      totals.skipped += n;
      totals.skipReasons[reason] = (totals.skipReasons[reason] ?? 0) + n;
    }
    for (const [reason, n] of Object.entries(batch.deadLetterReasons)) {
      totals.deadLettered += n;
      totals.deadLetterReasons[reason] = (totals.deadLetterReasons[reason] ?? 0) + n;
    }
    progress.backlog = batch.backlog;
    setCurrentDetails(describe());
  }

  function describe(): string {
    const backlog = progress.backlog;
    const waiting = backlog
      ? `; backlog ${backlog.pending} (${backlog.deferred} throttled), oldest ${Math.round(backlog.oldestAgeMs / 1000)} s`
      : '';
    return `${totals.forwarded} forwarded to Amplitude, ${totals.skipped} skipped, ${totals.deadLettered} dead-lettered${waiting}`;
  }
}
