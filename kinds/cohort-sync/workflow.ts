/**
 * `cohortSync`: an Amplitude cohort → Braze cohort membership, sending only who entered or left since the last
 * successful run: the cohort's listing (unchanged since the last success: done), an export, its members staged,
 * the plan of who enters and who leaves, then its pages. The paged lifecycle (`lifecycle.ts`) does the rest.
 */
import { defineQuery } from '@temporalio/workflow';
import type { CohortExportActivities } from '../../activities/cohort-export.js';
import type { CohortSyncActivities } from './activities.js';
import type { ChangeKind, CohortPlan } from './activity-types.js';
import { DEFERRED_DEVICE_LOOKUP } from '../../src/cohort/identifiers.js';
import { cohortRunSearchAttributes, cohortSyncId, cohortSyncInputSchema, type CohortSyncInput, type CohortSyncOptions } from './input.js';
import { syncActivities } from '../../workflows/engine.js';
import { runPagedSync, type PagedCheckpoint, type PagedProgress, type PagedSyncKind, type PagedTotals } from '../../workflows/lifecycle.js';

export { resumeSignal, setBudgetUpdate } from '../../workflows/engine.js';

const { quick, streaming, pages, jobWait, lastWords } = syncActivities<CohortSyncActivities & CohortExportActivities>('cohortSync');

export interface CohortSyncTotals extends PagedTotals {
  added: number;
  removed: number;
  skipped: number;
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

export interface CohortSyncProgress extends PagedProgress<CohortSyncTotals> {
  phase: 'preparing' | 'exporting' | 'staging' | 'planning' | 'applying' | 'paused' | 'finishing' | 'done';
  cohortId: string;
}

/** Where a continued-as-new run picks up: everything else is re-derived from the store. */
export interface CohortSyncCheckpoint extends PagedCheckpoint<CohortSyncTotals> {
  cohortName: string;
  sourceVersion: string;
  /** Unset for an unchanged run, which plans nothing. */
  plan?: CohortPlan;
  skipReasons: Record<string, number>;
}

export const cohortSyncProgressQuery = defineQuery<CohortSyncProgress>('progress');

/** What the cohort's listing said when it moved since the last success. */
interface ChangedCohort {
  cohortName: string;
  lastComputed: number;
  createdAt: number;
  size: number;
}

const cohortSyncKind: PagedSyncKind<
  CohortSyncInput,
  CohortSyncOptions,
  CohortSyncTotals,
  CohortSyncCheckpoint,
  ChangedCohort,
  CohortSyncResult
> = {
  workflowType: 'cohortSync',
  inputSchema: cohortSyncInputSchema,
  progressQuery: cohortSyncProgressQuery,
  identify: (options) => ({
    syncId: cohortSyncId(options),
    searchAttributes: cohortRunSearchAttributes(options),
    progress: { cohortId: options.cohortId },
  }),
  emptyTotals: () => ({
    added: 0,
    removed: 0,
    skipped: 0,
    failed: 0,
    failureReasons: {},
    dataPoints: 0,
    brazeRequests: 0,
    amplitudeDownloads: 0,
  }),

  async begin({ options, run, totals }) {
    const { cohortId, target, force, ifRunning } = options;
    const prepared = await quick.prepareCohortRun({ run, cohortId, target, force, ifRunning });
    if (prepared.status !== 'unchanged') return prepared.status === 'busy' ? prepared : { status: 'changed', found: prepared };
    const state = { runId: run.runId, cohortName: prepared.cohortName, sourceVersion: String(prepared.lastComputed), skipReasons: {} };
    return { status: 'unchanged', state: { ...state, nextPage: 0, totals } };
  },

  async stage({ options, run, totals, step }, cohort) {
    const { cohortId } = options;
    step('exporting', `Exporting cohort "${cohort.cohortName}" (${cohort.size} members) from Amplitude`);
    const { requestId } = await quick.requestCohortExport({ run, cohortId });
    totals.amplitudeDownloads += 1;
    await jobWait.waitForCohortExport({ run, requestId, cohortId });
    step('staging', `Staging cohort "${cohort.cohortName}" members`);
    const { identifiers, aliasLabel, aliasNameFrom } = options;
    const staged = await streaming.stageCohortMembers({ run, requestId, identifiers, aliasLabel, aliasNameFrom });
    totals.skipped = staged.skipped;
    step('planning');
    const plan = await quick.planCohortRun({ run, pageSize: options.pageSize });
    if (!options.dryRun && options.target === 'partner_cohort') {
      await quick.ensurePartnerCohort({ cohortId, cohortName: cohort.cohortName, createdAt: cohort.createdAt });
    }
    const { cohortName, lastComputed } = cohort;
    return {
      runId: run.runId,
      cohortName,
      sourceVersion: String(lastComputed),
      plan,
      skipReasons: staged.skipReasons,
      nextPage: 0,
      totals,
    };
  },

  pageCount: ({ plan }) => (plan ? plan.pages.enter + plan.pages.leave : 0),
  maxPageDataPoints: ({ plan }) => plan?.maxPageDataPoints ?? 0,
  applyPage: ({ options, run }, state, index, budgets) =>
    pages.applyCohortPage({
      run,
      cohortId: options.cohortId,
      cohortName: state.cohortName,
      target: options.target,
      attributeName: options.attributeName,
      ...pageAt(state, index),
      ...budgets,
    }),
  countPage(totals, state, index, outcome) {
    if (pageAt(state, index).kind === 'enter') totals.added += outcome.accepted;
    else totals.removed += outcome.accepted;
  },

  async finish({ options, run, totals }, status, state) {
    const result = resultOf(options, run.syncId, state.cohortName, totals, {
      unchanged: status === 'unchanged',
      skipReasons: state.skipReasons,
      ...(state.plan && { plan: state.plan }),
    });
    // With members Braze rejected or device ids still to look up, the source is not fully synced: the next run
    // must not skip the download.
    const complete = status === 'unchanged' || (totals.failed === 0 && state.skipReasons[DEFERRED_DEVICE_LOOKUP] === undefined);
    const sourceVersion = status !== 'dry_run' && complete ? state.sourceVersion : undefined;
    // The failure ledger counts each rejected member once, however often retries resent it.
    return Object.assign(result, await quick.finishCohortRun({ run, status, sourceVersion, stats: { ...result } }));
  },
  recordFailure: ({ run, totals }) => lastWords.finishCohortRun({ run, status: 'failed', stats: { ...totals } }),
  skippedResult: ({ options, run, totals }, runInProgress) =>
    resultOf(options, run.syncId, '', totals, { unchanged: false, runInProgress, skipReasons: {} }),

  describePages: ({ totals }) =>
    `${totals.added} added, ${totals.removed} removed, ${totals.failed} failed, ${totals.dataPoints} data points`,
  describeResult(result) {
    if (result.runInProgress) return `Skipped: run ${result.runInProgress} of this sync is in progress; nothing was sent`;
    if (result.unchanged) return `Cohort "${result.cohortName}" unchanged since the last run: nothing downloaded or sent`;
    if (result.dryRun && result.plan) {
      return `Dry run: ${result.plan.enter} would enter, ${result.plan.leave} would leave, ${result.plan.predictedDataPoints} data points`;
    }
    return `Done: ${result.added} added, ${result.removed} removed, ${result.skipped} skipped, ${result.failed} failed, ${result.dataPoints} data points`;
  },
};

export function cohortSync(input: CohortSyncInput, checkpoint?: CohortSyncCheckpoint): Promise<CohortSyncResult> {
  return runPagedSync(cohortSyncKind, input, checkpoint);
}

/** The plan's pages in order: who entered, then who left. */
function pageAt({ plan }: CohortSyncCheckpoint, index: number): { kind: ChangeKind; page: number } {
  const entering = plan?.pages.enter ?? 0;
  return index < entering ? { kind: 'enter', page: index } : { kind: 'leave', page: index - entering };
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
