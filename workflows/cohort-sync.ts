/**
 * `cohortSync`: an Amplitude cohort → Braze cohort membership, sending only who entered or left since the last
 * successful run. The workflow only orchestrates; every step is an idempotent activity over the shared store.
 */
import {
  ContinueAsNew,
  allHandlersFinished,
  condition,
  continueAsNew,
  defineQuery,
  setCurrentDetails,
  setHandler,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import type { CohortExportActivities } from '../activities/cohort-export.js';
import type { CohortSyncActivities } from '../activities/cohort-sync.js';
import type { ChangeKind, CohortPlan, PageOutcome, RunRef } from '../activities/cohort-sync-types.js';
import { DEFERRED_DEVICE_LOOKUP } from '../src/cohort/identifiers.js';
import { cohortSyncId, cohortSyncInputSchema, type CohortSyncInput, type CohortSyncOptions } from '../src/cohort/input.js';
import { COHORT_ID, DATA_POINTS, SYNC_KIND } from '../src/temporal/search-attributes.js';
import { applyPages, budgetControls, parseWorkflowInput, readableFailure, syncActivities } from './engine.js';

export { resumeSignal, setBudgetUpdate } from './engine.js';

const { quick, streaming, pages, jobWait } = syncActivities<CohortSyncActivities & CohortExportActivities>('cohortSync');

export interface CohortSyncTotals {
  added: number;
  removed: number;
  skipped: number;
  failed: number;
  failureReasons: Record<string, number>;
  dataPoints: number;
  brazeRequests: number;
  amplitudeDownloads: number;
}

export interface CohortSyncResult extends CohortSyncTotals {
  syncId: string;
  cohortId: string;
  cohortName: string;
  unchanged: boolean;
  dryRun: boolean;
  /** Set when this run sent nothing because another run of the same sync (this workflow id) was in progress. */
  runInProgress?: string;
  /** Who enters and leaves, and what sending it costs (also reported by dry runs). */
  plan?: CohortPlan;
  skipReasons: Record<string, number>;
}

export interface CohortSyncProgress {
  phase: 'preparing' | 'exporting' | 'staging' | 'planning' | 'applying' | 'paused' | 'finishing' | 'done';
  cohortId: string;
  kind?: ChangeKind;
  page: number;
  pagesTotal: number;
  totals: CohortSyncTotals;
  pausedReason?: string;
}

/** Where a continued-as-new run picks up: everything else is re-derived from the store. */
export interface CohortSyncCheckpoint {
  runId: string;
  cohortName: string;
  sourceVersion: string;
  plan: CohortPlan;
  skipReasons: Record<string, number>;
  /** Every page before this one is applied (entered pages are numbered first, then the pages of who left). */
  nextPage: number;
  totals: CohortSyncTotals;
}

export const progressQuery = defineQuery<CohortSyncProgress>('progress');

export async function cohortSync(input: CohortSyncInput, checkpoint?: CohortSyncCheckpoint): Promise<CohortSyncResult> {
  const options: CohortSyncOptions = parseWorkflowInput(cohortSyncInputSchema, input, 'cohortSync');
  const syncId = cohortSyncId(options);
  const runId = checkpoint?.runId ?? `${syncId}/${workflowInfo().runId}`;
  const run: RunRef = { syncId, runId, workflowId: workflowInfo().workflowId };
  const totals: CohortSyncTotals = checkpoint?.totals ?? emptyTotals();
  const controls = budgetControls({ maxDataPoints: options.maxDataPoints, maxDataPointsPerDay: options.maxDataPointsPerDay });
  const progress: CohortSyncProgress = {
    phase: 'preparing',
    cohortId: options.cohortId,
    page: checkpoint?.nextPage ?? 0,
    pagesTotal: 0,
    totals,
  };

  setHandler(progressQuery, () => progress);
  upsertSearchAttributes([
    { key: SYNC_KIND, value: 'cohort' },
    { key: COHORT_ID, value: options.cohortId },
    { key: DATA_POINTS, value: totals.dataPoints },
  ]);

  const finish = async (status: 'succeeded' | 'dry_run' | 'unchanged', result: CohortSyncResult, sourceVersion?: string) => {
    progress.phase = 'finishing';
    // The failure ledger counts each rejected member once, however often retries resent it.
    Object.assign(result, await quick.finishCohortRun({ run, status, sourceVersion, stats: { ...result } }));
    progress.phase = 'done';
    setCurrentDetails(describeResult(result));
    await condition(allHandlersFinished);
    return result;
  };

  let state = checkpoint;
  try {
    return await syncCohort();
  } catch (error) {
    if (error instanceof ContinueAsNew) throw error;
    await quick.finishCohortRun({ run, status: 'failed', stats: { ...totals } }).catch(() => undefined);
    throw readableFailure(error, 'cohortSync');
  }

  async function syncCohort(): Promise<CohortSyncResult> {
    if (!state) {
      const { cohortId, target, force, ifRunning } = options;
      const prepared = await quick.prepareCohortRun({ run, cohortId, target, force, ifRunning });
      if (prepared.status === 'busy') {
        // This run never held the lease: it has nothing to record or release.
        progress.phase = 'done';
        setCurrentDetails(`Skipped: run ${prepared.runInProgress} of this sync is in progress; nothing was sent`);
        return resultOf(options, syncId, '', totals, { unchanged: false, runInProgress: prepared.runInProgress, skipReasons: {} });
      }
      if (prepared.status === 'unchanged') {
        const result = resultOf(options, syncId, prepared.cohortName, totals, { unchanged: true, skipReasons: {} });
        return finish('unchanged', result, String(prepared.lastComputed));
      }
      progress.phase = 'exporting';
      setCurrentDetails(`Exporting cohort "${prepared.cohortName}" (${prepared.size} members) from Amplitude`);
      const { requestId } = await quick.requestCohortExport({ run, cohortId });
      totals.amplitudeDownloads += 1;
      await jobWait.waitForCohortExport({ run, requestId, cohortId });

      progress.phase = 'staging';
      setCurrentDetails(`Staging cohort "${prepared.cohortName}" members`);
      const { identifiers, aliasLabel, aliasNameFrom } = options;
      const staged = await streaming.stageCohortMembers({ run, requestId, identifiers, aliasLabel, aliasNameFrom });
      totals.skipped = staged.skipped;

      progress.phase = 'planning';
      const plan = await quick.planCohortRun({ run, pageSize: options.pageSize });
      state = {
        runId,
        cohortName: prepared.cohortName,
        sourceVersion: String(prepared.lastComputed),
        plan,
        skipReasons: staged.skipReasons,
        nextPage: 0,
        totals,
      };
      if (options.dryRun) {
        const result = resultOf(options, syncId, prepared.cohortName, totals, { unchanged: false, plan, skipReasons: staged.skipReasons });
        return finish('dry_run', result);
      }
      if (target === 'partner_cohort') {
        await quick.ensurePartnerCohort({ cohortId, cohortName: prepared.cohortName, createdAt: prepared.createdAt });
      }
    }

    await applyPlannedPages(state);

    const result = resultOf(options, syncId, state.cohortName, totals, {
      unchanged: false,
      plan: state.plan,
      skipReasons: state.skipReasons,
    });
    // With members Braze rejected or device ids still to look up, the source is not fully synced: the next run
    // must not skip the download.
    const complete = totals.failed === 0 && state.skipReasons[DEFERRED_DEVICE_LOOKUP] === undefined;
    return finish('succeeded', result, complete ? state.sourceVersion : undefined);
  }

  /** The plan's pages in order: who entered, then who left. */
  async function applyPlannedPages(state: CohortSyncCheckpoint): Promise<void> {
    const { plan } = state;
    const pageAt = (index: number) =>
      index < plan.pages.enter ? { kind: 'enter' as const, page: index } : { kind: 'leave' as const, page: index - plan.pages.enter };
    progress.pagesTotal = plan.pages.enter + plan.pages.leave;
    await applyPages(
      {
        pageCount: progress.pagesTotal,
        nextPage: state.nextPage,
        pagesInFlight: options.pagesInFlight,
        maxPageDataPoints: plan.maxPageDataPoints,
        apply: (index, inFlightDataPoints, ignoreBudgets) => applyPage(pageAt(index), inFlightDataPoints, ignoreBudgets),
        applied: (index, outcome) => addPage(pageAt(index).kind, outcome),
        continueAsNew: (nextPage) => continueAsNew<typeof cohortSync>({ ...input, ...controls.defined() }, { ...state, nextPage, totals }),
      },
      controls,
      progress,
    );
  }

  function applyPage(page: { kind: ChangeKind; page: number }, inFlightDataPoints: number, ignoreBudgets: boolean): Promise<PageOutcome> {
    return pages.applyCohortPage({
      run,
      cohortId: options.cohortId,
      cohortName: state?.cohortName ?? '',
      target: options.target,
      attributeName: options.attributeName,
      ...page,
      ...controls.pageBudgets(totals.dataPoints, inFlightDataPoints, ignoreBudgets),
    });
  }

  function addPage(kind: ChangeKind, outcome: PageOutcome): void {
    if (kind === 'enter') totals.added += outcome.accepted;
    else totals.removed += outcome.accepted;
    totals.failed += outcome.failed;
    totals.dataPoints += outcome.dataPoints;
    totals.brazeRequests += outcome.brazeRequests;
    progress.page += 1;
    upsertSearchAttributes([{ key: DATA_POINTS, value: totals.dataPoints }]);
    setCurrentDetails(
      `Page ${progress.page} of ${progress.pagesTotal}: ${totals.added} added, ${totals.removed} removed, ${totals.failed} failed, ${totals.dataPoints} data points`,
    );
  }
}

function emptyTotals(): CohortSyncTotals {
  return { added: 0, removed: 0, skipped: 0, failed: 0, failureReasons: {}, dataPoints: 0, brazeRequests: 0, amplitudeDownloads: 0 };
}

function resultOf(
  options: CohortSyncOptions,
  syncId: string,
  cohortName: string,
  totals: CohortSyncTotals,
  extra: Pick<CohortSyncResult, 'unchanged' | 'plan' | 'skipReasons' | 'runInProgress'>,
): CohortSyncResult {
  return { syncId, cohortId: options.cohortId, cohortName, dryRun: options.dryRun, ...totals, ...extra };
}

function describeResult(result: CohortSyncResult): string {
  if (result.runInProgress) return `Skipped: run ${result.runInProgress} of this sync is in progress; nothing was sent`;
  if (result.unchanged) return `Cohort "${result.cohortName}" unchanged since the last run: nothing downloaded or sent`;
  if (result.dryRun && result.plan) {
    return `Dry run: ${result.plan.enter} would enter, ${result.plan.leave} would leave, ${result.plan.predictedDataPoints} data points`;
  }
  return `Done: ${result.added} added, ${result.removed} removed, ${result.skipped} skipped, ${result.failed} failed, ${result.dataPoints} data points`;
}
