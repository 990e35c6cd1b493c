/**
 * `traitSync`: Amplitude user properties → Braze custom attributes of the same name (or as configured) for the
 * users active in the window, creating the Braze users it needs and sending only values that changed since
 * Braze last accepted them. The workflow only orchestrates; every step is an idempotent activity over the store.
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
import type { RunRef } from '../activities/sync-lease.js';
import type { TraitSyncActivities } from '../activities/trait-sync.js';
import type { FetchedProfiles, PageOutcome, StagedTraits, TraitPlan } from '../activities/trait-sync-types.js';
import { DATA_POINTS, SYNC_KIND } from '../src/temporal/search-attributes.js';
import {
  readsProfiles,
  selectionFingerprint,
  traitAttributes,
  traitSyncId,
  traitSyncInputSchema,
  type TraitSyncInput,
  type TraitSyncOptions,
} from '../src/traits/input.js';
import { applyPages, budgetControls, parseWorkflowInput, readableFailure, syncActivities } from './engine.js';

const { quick, streaming, pages, jobWait } = syncActivities<TraitSyncActivities & CohortExportActivities>('traitSync');

export interface TraitSyncTotals {
  /** Users whose changes Braze accepted. */
  written: number;
  failed: number;
  failureReasons: Record<string, number>;
  dataPoints: number;
  brazeRequests: number;
  /** Cohort downloads (a cohort audience whose cohort moved since the last success: one). */
  amplitudeDownloads: number;
}

export interface TraitSyncResult extends TraitSyncTotals, Omit<StagedTraits, 'skipReasons'> {
  syncId: string;
  dryRun: boolean;
  /** A cohort audience that has not been recomputed since the last success: nothing was downloaded or sent. */
  audienceUnchanged: boolean;
  /** Set when this run did nothing because another run of the same sync was in progress. */
  runInProgress?: string;
  /** Users not synced and values not sent, in all and by reason. */
  skipped: number;
  skipReasons: Record<string, number>;
  /** User Profile API requests (computations and recommendations; property syncs make none). */
  profileApiRequests: number;
  /** How fresh the audience's profiles are: fetched ever and within the last 24 hours, of all. */
  profiles?: Omit<FetchedProfiles, 'profileApiRequests'>;
  plan?: TraitPlan;
}

export interface TraitSyncProgress {
  phase: 'preparing' | 'exporting' | 'fetching' | 'staging' | 'planning' | 'applying' | 'paused' | 'finishing' | 'done';
  page: number;
  pagesTotal: number;
  totals: TraitSyncTotals;
  pausedReason?: string;
}

/** Where a continued-as-new run picks up: everything else is in the store. */
export interface TraitSyncCheckpoint {
  runId: string;
  /** What the run syncs, recorded when it succeeds in full (a cohort audience's version). */
  sourceVersion?: string;
  profiles?: FetchedProfiles;
  staged: StagedTraits;
  plan: TraitPlan;
  nextPage: number;
  totals: TraitSyncTotals;
}

export const traitProgressQuery = defineQuery<TraitSyncProgress>('progress');

export async function traitSync(input: TraitSyncInput, checkpoint?: TraitSyncCheckpoint): Promise<TraitSyncResult> {
  const options: TraitSyncOptions = parseWorkflowInput(traitSyncInputSchema, input, 'traitSync');
  const syncId = traitSyncId(options);
  const run: RunRef = { syncId, runId: checkpoint?.runId ?? `${syncId}/${workflowInfo().runId}`, workflowId: workflowInfo().workflowId };
  const totals: TraitSyncTotals = checkpoint?.totals ?? {
    written: 0,
    failed: 0,
    failureReasons: {},
    dataPoints: 0,
    brazeRequests: 0,
    amplitudeDownloads: 0,
  };
  const controls = budgetControls({ maxDataPoints: options.maxDataPoints, maxDataPointsPerDay: options.maxDataPointsPerDay });
  const progress: TraitSyncProgress = {
    phase: 'preparing',
    page: checkpoint?.nextPage ?? 0,
    pagesTotal: checkpoint?.plan.pages ?? 0,
    totals,
  };
  setHandler(traitProgressQuery, () => progress);
  upsertSearchAttributes([
    { key: SYNC_KIND, value: 'trait' },
    { key: DATA_POINTS, value: totals.dataPoints },
  ]);

  // A run refused while preparing (a stale activity index, another run in progress) was never recorded.
  let started = checkpoint !== undefined;
  try {
    return await syncTraits();
  } catch (error) {
    if (error instanceof ContinueAsNew) throw error;
    if (started) await quick.finishTraitRun({ run, status: 'failed', stats: { ...totals } }).catch(() => undefined);
    throw readableFailure(error, 'traitSync');
  }

  async function syncTraits(): Promise<TraitSyncResult> {
    let state = checkpoint;
    if (!state) {
      const { properties, computations, recommendations, attributePrefix, rename, types, onMissing, windowDays, audienceCohortId } =
        options;
      const selection = { properties, computations, recommendations, attributePrefix, rename, types, onMissing };
      const prepared = await quick.prepareTraitRun({
        run,
        ifRunning: options.ifRunning,
        windowDays,
        audienceCohortId,
        selectionFingerprint: selectionFingerprint(selection),
      });
      started = prepared.status !== 'busy';
      if (prepared.status === 'busy') {
        progress.phase = 'done';
        setCurrentDetails(`Skipped: run ${prepared.runInProgress} of this sync is in progress; nothing was read or sent`);
        return { ...resultOf(emptyStaged()), runInProgress: prepared.runInProgress };
      }
      if (prepared.status === 'unchanged') {
        const unchanged = { runId: run.runId, sourceVersion: prepared.sourceVersion, staged: emptyStaged(), nextPage: 0, totals };
        return finish('unchanged', { ...unchanged, plan: { users: 0, pages: 0, maxPageDataPoints: 0 } });
      }
      let cohortExport: { requestId: string } | undefined;
      if (prepared.audience === 'cohort') {
        progress.phase = 'exporting';
        setCurrentDetails(`Exporting the audience cohort "${prepared.cohortName}" (${prepared.size} members) with its properties`);
        cohortExport = await quick.requestCohortExport({ run, cohortId: audienceCohortId!, propKeys: properties });
        totals.amplitudeDownloads += 1;
        await jobWait.waitForCohortExport({ run, requestId: cohortExport.requestId, cohortId: audienceCohortId! });
      }
      let profiles: FetchedProfiles | undefined;
      if (readsProfiles(options)) {
        progress.phase = 'fetching';
        setCurrentDetails(
          `Fetching computations and recommendations from Amplitude's User Profile API (at most ${options.maxProfileFetches})`,
        );
        profiles = await streaming.fetchProfiles({
          run,
          selection,
          windowDays,
          maxFetches: options.maxProfileFetches,
          runStartedMs: Date.now(),
        });
      }
      progress.phase = 'staging';
      setCurrentDetails(
        cohortExport
          ? `Reading the members of the audience cohort and what changed for them`
          : `Reading the users active in the last ${windowDays} days and what changed for them`,
      );
      const staged = await streaming.stageTraitChanges({ run, selection, windowDays, cohortExport });
      progress.phase = 'planning';
      const attributesPerUser = traitAttributes(options).length;
      const plan = await quick.planTraitRun({ run, pageSize: options.pageSize, attributesPerUser });
      const sourceVersion = prepared.audience === 'cohort' ? prepared.sourceVersion : undefined;
      state = { runId: run.runId, sourceVersion, profiles, staged, plan, nextPage: 0, totals };
      if (options.dryRun) return finish('dry_run', state);
    }
    progress.pagesTotal = state.plan.pages;
    const current = state;
    await applyPages(
      {
        pageCount: current.plan.pages,
        nextPage: current.nextPage,
        pagesInFlight: options.pagesInFlight,
        maxPageDataPoints: current.plan.maxPageDataPoints,
        apply: (page, inFlightDataPoints, ignoreBudgets) =>
          pages.applyTraitPage({ run, page, ...controls.pageBudgets(totals.dataPoints, inFlightDataPoints, ignoreBudgets) }),
        applied: (_page, outcome) => addPage(outcome),
        continueAsNew: (nextPage) => continueAsNew<typeof traitSync>({ ...input, ...controls.defined() }, { ...current, nextPage, totals }),
      },
      controls,
      progress,
    );
    return finish('succeeded', current);
  }

  async function finish(status: 'succeeded' | 'dry_run' | 'unchanged', state: TraitSyncCheckpoint): Promise<TraitSyncResult> {
    progress.phase = 'finishing';
    const result: TraitSyncResult = { ...resultOf(state.staged), audienceUnchanged: status === 'unchanged', plan: state.plan };
    if (state.profiles) {
      const { profileApiRequests, ...freshness } = state.profiles;
      Object.assign(result, { profileApiRequests, profiles: freshness });
    }
    // With users Braze rejected, the source is not fully synced: the next run must not skip the download.
    const complete = status === 'unchanged' || (status === 'succeeded' && totals.failed === 0);
    const sourceVersion = complete ? state.sourceVersion : undefined;
    const { failed, failureReasons } = await quick.finishTraitRun({ run, status, sourceVersion, stats: { ...result } });
    Object.assign(result, { failed, failureReasons });
    progress.phase = 'done';
    setCurrentDetails(describeResult(result));
    await condition(allHandlersFinished);
    return result;
  }

  function resultOf(staged: StagedTraits): TraitSyncResult {
    const skipped = Object.values(staged.skipReasons).reduce((sum, n) => sum + n, 0);
    return { syncId, dryRun: options.dryRun, audienceUnchanged: false, ...staged, skipped, profileApiRequests: 0, ...totals };
  }

  function addPage(outcome: PageOutcome): void {
    totals.written += outcome.accepted;
    totals.failed += outcome.failed;
    totals.dataPoints += outcome.dataPoints;
    totals.brazeRequests += outcome.brazeRequests;
    progress.page += 1;
    upsertSearchAttributes([{ key: DATA_POINTS, value: totals.dataPoints }]);
    setCurrentDetails(
      `Page ${progress.page} of ${progress.pagesTotal}: ${totals.written} users written, ${totals.failed} failed, ${totals.dataPoints} data points`,
    );
  }
}

function emptyStaged(): StagedTraits {
  return { users: 0, unchanged: 0, created: 0, updated: 0, set: 0, unset: 0, skipReasons: {} };
}

function describeResult(result: TraitSyncResult): string {
  if (result.audienceUnchanged)
    return 'Unchanged: the audience cohort has not been recomputed since the last success; nothing was downloaded or sent';
  const read = `${result.users} users in the window: ${result.created} new, ${result.updated} updated, ${result.unchanged} unchanged`;
  if (result.dryRun) return `Dry run, ${read}; ${result.set} values would be set and ${result.unset} unset, ${result.skipped} skipped`;
  const profiles = result.profiles
    ? `; profiles fetched: ${result.profiles.fetched} of ${result.profiles.audience} (${result.profileApiRequests} requests)`
    : '';
  return `Done, ${read}; ${result.written} users written, ${result.unset} values unset, ${result.skipped} skipped, ${result.failed} failed, ${result.dataPoints} data points${profiles}`;
}
