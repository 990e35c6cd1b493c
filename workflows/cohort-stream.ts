/**
 * `cohortStream` (id `cohort-stream-<cohortId>` plus the target suffix of `cohortSync`): applies the cohort webhook
 * batches the receiver spooled to Braze within seconds, round by round, against the same last-sent snapshot and
 * lease as the cohort's `cohortSync`, which reconciles whatever a webhook missed. The receiver signal-with-starts it
 * whenever it spools a batch; it waits for the next signal when the spool is empty, ends itself after `idleTimeout`
 * without one, and continues as new before its history grows large. It carries counts, never user ids.
 */
import {
  allHandlersFinished,
  condition,
  continueAsNew,
  defineQuery,
  proxyActivities,
  setCurrentDetails,
  setHandler,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import type { CohortStreamActivities, CohortStreamRound } from '../activities/cohort-stream.js';
import { noCohortStreamCounts, type CohortStreamCounts } from '../src/cohort/webhook.js';
import type { StreamBacklog } from '../activities/ingress-backlog.js';
import type { RunRef } from '../activities/sync-lease.js';
import { cohortStreamInputSchema, cohortSyncId, type CohortStreamInput } from '../src/cohort/input.js';
import { COHORT_ID, DATA_POINTS, SYNC_KIND } from '../src/temporal/search-attributes.js';
import { budgetControls, parseWorkflowInput, readableFailure, spooledSignal, syncActivities } from './engine.js';

export { resumeSignal, setBudgetUpdate, spooledSignal } from './engine.js';

const { retry, scheduleToCloseTimeout } = syncActivities<CohortStreamActivities>('cohortStream');
// A round is one Braze page: an attempt lost with its worker is retried elsewhere within seconds.
const quick = proxyActivities<CohortStreamActivities>({ startToCloseTimeout: '1 minute', scheduleToCloseTimeout, retry });

/** What the stream has sent since it started, carried across continue-as-new. */
export type CohortStreamTotals = CohortStreamCounts;

export interface CohortStreamProgress {
  phase: 'applying' | 'waiting' | 'paused' | 'done';
  cohortId: string;
  cohortName?: string;
  totals: CohortStreamTotals;
  backlog?: StreamBacklog;
  /** The cohortSync run that has the cohort's lease while this stream waits for it. */
  waitingFor?: string;
  pausedReason?: string;
}

export const cohortStreamProgressQuery = defineQuery<CohortStreamProgress>('progress');

/** Rounds before continuing as new: each adds a few events to the history. */
const ROUNDS_PER_RUN = 500;
/** While a cohortSync run has the lease, look again this often (it may take minutes to export). */
const LEASE_RECHECK = '2s';

export async function cohortStream(input: CohortStreamInput, carried?: CohortStreamTotals): Promise<CohortStreamTotals> {
  const options = parseWorkflowInput(cohortStreamInputSchema, input, 'cohortStream');
  const { workflowId, firstExecutionRunId } = workflowInfo();
  // The same across continue-as-new: the ledger sums this stream's requests under one run.
  const run: RunRef = { syncId: cohortSyncId(options), runId: `${workflowId}/${firstExecutionRunId}`, workflowId };
  const target = { cohortId: options.cohortId, target: options.target, attributeName: options.attributeName };
  // Totals carried from a run before a count existed lack it: it starts at 0.
  const totals: CohortStreamTotals = { ...noCohortStreamCounts(), ...carried };
  const controls = budgetControls({ maxDataPointsPerDay: options.maxDataPointsPerDay });
  const progress: CohortStreamProgress = { phase: 'applying', cohortId: options.cohortId, totals };
  let spooled = false;
  setHandler(spooledSignal, () => void (spooled = true));
  setHandler(cohortStreamProgressQuery, () => progress);
  upsertSearchAttributes([
    { key: SYNC_KIND, value: 'cohort_stream' },
    { key: COHORT_ID, value: options.cohortId },
    { key: DATA_POINTS, value: totals.dataPoints },
  ]);

  try {
    const prepared = await quick.prepareCohortStream(target);
    if ('unknownCohort' in prepared) {
      totals.deadLettered += prepared.deadLettered;
      progress.phase = 'done';
      setCurrentDetails(
        `Amplitude lists no cohort "${options.cohortId}": ${prepared.deadLettered} spooled changes dead-lettered (ampbraze deadletters list); ended`,
      );
      await condition(allHandlersFinished);
      return totals;
    }
    progress.cohortName = prepared.cohortName;
    for (let rounds = 0; rounds < ROUNDS_PER_RUN && !workflowInfo().continueAsNewSuggested; rounds++) {
      spooled = false;
      progress.phase = 'applying';
      const budgets = controls.pageBudgets(0, 0, controls.takeResume());
      const round = await quick.applyCohortStreamRound({ run, ...target, ...budgets, maxChanges: options.batchSize });
      add(round);
      if (round.status === 'busy') {
        await condition(() => false, LEASE_RECHECK);
      } else if (round.status === 'over_budget') {
        await controls.pause(progress, round.overBudget!);
      } else if (round.read === 0) {
        progress.phase = 'waiting';
        if (!(await condition(() => spooled, options.idleTimeout))) {
          progress.phase = 'done';
          setCurrentDetails(`${describe()}; idle for ${options.idleTimeout}: ended (the receiver starts it again)`);
          await condition(allHandlersFinished);
          return totals;
        }
      }
    }
  } catch (error) {
    throw readableFailure(error, 'cohortStream');
  }
  await condition(allHandlersFinished);
  return continueAsNew<typeof cohortStream>({ ...input, ...controls.defined() }, totals);

  function add(round: CohortStreamRound): void {
    for (const key of Object.keys(totals) as Array<keyof CohortStreamTotals>) totals[key] += round[key];
    progress.backlog = round.backlog;
    progress.waitingFor = round.runInProgress;
    if (round.dataPoints > 0) upsertSearchAttributes([{ key: DATA_POINTS, value: totals.dataPoints }]);
    setCurrentDetails(describe());
  }

  function describe(): string {
    const { backlog, waitingFor } = progress;
    const waiting = waitingFor ? `; waiting for ${waitingFor}, which has the cohort` : '';
    const pending = backlog ? `; backlog ${backlog.pending}, oldest ${Math.round(backlog.oldestAgeMs / 1000)} s` : '';
    const deadLettered = totals.deadLettered > 0 ? `, ${totals.deadLettered} dead-lettered` : '';
    return `Cohort "${progress.cohortName ?? options.cohortId}": ${totals.added} added, ${totals.removed} removed, ${totals.superseded} superseded, ${totals.failed} failed${deadLettered}, ${totals.dataPoints} data points${pending}${waiting}`;
  }
}
