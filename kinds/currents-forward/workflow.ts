/**
 * `currentsForward` (id `currents-forward`): drains the Braze Currents events the receiver spooled into Amplitude,
 * a batch at a time. The receiver signal-with-starts it whenever it spools a batch; it waits for the next signal
 * when the spool is empty, ends itself after `idleTimeout` without one, and continues as new before its history
 * grows large. It carries counts and the backlog's size and age, never events.
 */
import { defineQuery, proxyActivities } from '@temporalio/workflow';
import { z } from 'zod';
import type { CurrentsActivities } from './activities.js';
import { durationSchema } from '../../src/sync-input.js';
import { syncActivities } from '../../workflows/engine.js';
import { runStream, type StreamKind, type StreamProgress } from '../../workflows/stream.js';

export { spooledSignal } from '../../workflows/engine.js';

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
export type CurrentsForwardOptions = z.output<typeof currentsForwardInputSchema>;

export interface CurrentsForwardTotals {
  forwarded: number;
  skipped: number;
  skipReasons: Record<string, number>;
  deadLettered: number;
  deadLetterReasons: Record<string, number>;
  /** Throttled events held back (each time one was). */
  deferrals: number;
}

export interface CurrentsForwardProgress extends StreamProgress<CurrentsForwardTotals> {
  phase: 'forwarding' | 'waiting' | 'done';
}

export const currentsProgressQuery = defineQuery<CurrentsForwardProgress>('progress');

/** With only throttled events left, look again after this long (a signal wakes the workflow sooner). */
const THROTTLED_RECHECK = '5s';

const currentsForwardKind: StreamKind<CurrentsForwardInput, CurrentsForwardOptions, CurrentsForwardTotals, CurrentsForwardProgress> = {
  workflowType: 'currentsForward',
  inputSchema: currentsForwardInputSchema,
  progressQuery: currentsProgressQuery,
  emptyTotals: () => ({ forwarded: 0, skipped: 0, skipReasons: {}, deadLettered: 0, deadLetterReasons: {}, deferrals: 0 }),
  progress: (_options, totals) => ({ phase: 'forwarding', totals }),

  async open() {
    await quick.pruneForwardedCurrents();
    return true;
  },

  async round({ options, totals, progress }) {
    progress.phase = 'forwarding';
    const batch = await quick.forwardCurrents({ maxEvents: options.batchSize });
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
    if (batch.read > 0 && batch.read > batch.deferred) return { next: 'round' };
    return batch.backlog.pending > 0 ? { next: 'recheck', wait: THROTTLED_RECHECK, wakeOnSpool: true } : { next: 'idle' };
  },

  describe({ totals, progress: { backlog } }) {
    const waiting = backlog
      ? `; backlog ${backlog.pending} (${backlog.deferred} throttled), oldest ${Math.round(backlog.oldestAgeMs / 1000)} s`
      : '';
    return `${totals.forwarded} forwarded to Amplitude, ${totals.skipped} skipped, ${totals.deadLettered} dead-lettered${waiting}`;
  },
};

export function currentsForward(input: CurrentsForwardInput = {}, carried?: CurrentsForwardTotals): Promise<CurrentsForwardTotals> {
  return runStream(currentsForwardKind, input, carried);
}
