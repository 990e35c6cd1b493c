/**
 * `cohortStream` (id `cohort-stream-<cohortId>` plus the target suffix of `cohortSync`): applies the cohort webhook
 * batches the receiver spooled to Braze within seconds, round by round, against the same last-sent snapshot and
 * lease as the cohort's `cohortSync`, which reconciles whatever a webhook missed. The receiver signal-with-starts it
 * whenever it spools a batch; it waits for the next signal when the spool is empty, ends itself after `idleTimeout`
 * without one, and continues as new before its history grows large. It carries counts, never user ids.
 */
import { defineQuery, proxyActivities, setCurrentDetails, upsertSearchAttributes, workflowInfo } from '@temporalio/workflow';
import type { CohortStreamActivities } from './activities.js';
import type { RunRef } from '../../activities/sync-lease.js';
import {
  cohortStreamInputSchema,
  cohortStreamSearchAttributes,
  cohortSyncId,
  type CohortStreamInput,
  type CohortStreamOptions,
} from '../cohort-sync/input.js';
import { noCohortStreamCounts, type CohortStreamCounts } from '../../src/cohort/webhook.js';
import { DATA_POINTS } from '../../src/temporal/search-attributes.js';
import { syncActivities } from '../../workflows/engine.js';
import { runStream, type StreamKind, type StreamProgress } from '../../workflows/stream.js';

export { resumeSignal, setBudgetUpdate, spooledSignal } from '../../workflows/engine.js';

const { retry, scheduleToCloseTimeout } = syncActivities<CohortStreamActivities>('cohortStream');
// A round is one Braze page: an attempt lost with its worker is retried elsewhere within seconds.
const quick = proxyActivities<CohortStreamActivities>({ startToCloseTimeout: '1 minute', scheduleToCloseTimeout, retry });

/** What the stream has sent since it started, carried across continue-as-new. */
export type CohortStreamTotals = CohortStreamCounts;

export interface CohortStreamProgress extends StreamProgress<CohortStreamTotals> {
  phase: 'applying' | 'waiting' | 'paused' | 'done';
  cohortId: string;
  cohortName?: string;
  /** The cohortSync run that has the cohort's lease while this stream waits for it. */
  waitingFor?: string;
  pausedReason?: string;
}

export const cohortStreamProgressQuery = defineQuery<CohortStreamProgress>('progress');

/** While a cohortSync run has the lease, look again this often (it may take minutes to export). */
const LEASE_RECHECK = '2s';

const cohortStreamKind: StreamKind<CohortStreamInput, CohortStreamOptions, CohortStreamTotals, CohortStreamProgress> = {
  workflowType: 'cohortStream',
  inputSchema: cohortStreamInputSchema,
  progressQuery: cohortStreamProgressQuery,
  emptyTotals: noCohortStreamCounts,
  progress: (options, totals) => ({ phase: 'applying', cohortId: options.cohortId, totals }),
  budgets: ({ maxDataPointsPerDay }) => ({ maxDataPointsPerDay }),
  setUp: ({ options, totals }) =>
    upsertSearchAttributes([...cohortStreamSearchAttributes(options), { key: DATA_POINTS, value: totals.dataPoints }]),

  async open({ options, totals, progress }) {
    const prepared = await quick.prepareCohortStream(targetOf(options));
    if ('cohortName' in prepared) {
      progress.cohortName = prepared.cohortName;
      return true;
    }
    totals.deadLettered += prepared.deadLettered;
    setCurrentDetails(
      `Amplitude lists no cohort "${options.cohortId}": ${prepared.deadLettered} spooled changes dead-lettered (ampbraze deadletters list); ended`,
    );
    return false;
  },

  async round({ options, totals, progress, controls }) {
    progress.phase = 'applying';
    const budgets = controls!.pageBudgets(0, 0, controls!.takeResume());
    const round = await quick.applyCohortStreamRound({
      run: runOf(options),
      ...targetOf(options),
      ...budgets,
      maxChanges: options.batchSize,
    });
    for (const key of Object.keys(totals) as Array<keyof CohortStreamTotals>) totals[key] += round[key];
    progress.backlog = round.backlog;
    progress.waitingFor = round.runInProgress;
    if (round.dataPoints > 0) upsertSearchAttributes([{ key: DATA_POINTS, value: totals.dataPoints }]);
    if (round.status === 'busy') return { next: 'recheck', wait: LEASE_RECHECK, wakeOnSpool: false };
    if (round.status === 'over_budget') return { next: 'pause', pause: () => controls!.pause(progress, round.overBudget!) };
    return round.read === 0 ? { next: 'idle' } : { next: 'round' };
  },

  describe({ options, totals, progress }) {
    const { backlog, waitingFor } = progress;
    const waiting = waitingFor ? `; waiting for ${waitingFor}, which has the cohort` : '';
    const pending = backlog ? `; backlog ${backlog.pending}, oldest ${Math.round(backlog.oldestAgeMs / 1000)} s` : '';
    const deadLettered = totals.deadLettered > 0 ? `, ${totals.deadLettered} dead-lettered` : '';
    return `Cohort "${progress.cohortName ?? options.cohortId}": ${totals.added} added, ${totals.removed} removed, ${totals.superseded} superseded, ${totals.failed} failed${deadLettered}, ${totals.dataPoints} data points${pending}${waiting}`;
  },
};

export function cohortStream(input: CohortStreamInput, carried?: CohortStreamTotals): Promise<CohortStreamTotals> {
  return runStream(cohortStreamKind, input, carried);
}

function targetOf({ cohortId, target, attributeName }: CohortStreamOptions) {
  return { cohortId, target, attributeName };
}

/** The same across continue-as-new: the ledger sums this stream's requests under one run. */
function runOf(options: CohortStreamOptions): RunRef {
  const { workflowId, firstExecutionRunId } = workflowInfo();
  return { syncId: cohortSyncId(options), runId: `${workflowId}/${firstExecutionRunId}`, workflowId };
}
