/**
 * `traitSync`: Amplitude user properties → Braze custom attributes of the same name (or as configured) for the
 * users active in the window, creating the Braze users it needs and sending only values that changed since
 * Braze last accepted them. The workflow only orchestrates; every step is an idempotent activity over the store.
 */
import { defineQuery } from '@temporalio/workflow';
import type { CohortExportActivities } from '../../activities/cohort-export.js';
import type { TraitSyncActivities } from './activities.js';
import type { FetchedProfiles, PreparedTraitRun, StagedTraits, TraitPlan } from './activity-types.js';
import {
  readsProfiles,
  realtimeMappingOf,
  selectionFingerprint,
  traitRunSearchAttributes,
  traitAttributes,
  traitSyncId,
  traitSyncInputSchema,
  type TraitSyncInput,
  type TraitSyncOptions,
} from './input.js';
import { syncActivities } from '../../workflows/engine.js';
import { runPagedSync, type PagedCheckpoint, type PagedProgress, type PagedSyncKind, type PagedTotals } from '../../workflows/lifecycle.js';

const { quick, streaming, pages, jobWait, lastWords } = syncActivities<TraitSyncActivities & CohortExportActivities>('traitSync');

export interface TraitSyncTotals extends PagedTotals {
  /** Users whose changes Braze accepted. */
  written: number;
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

export interface TraitSyncProgress extends PagedProgress<TraitSyncTotals> {
  phase: 'preparing' | 'exporting' | 'fetching' | 'staging' | 'planning' | 'applying' | 'paused' | 'finishing' | 'done';
}

/** Where a continued-as-new run picks up: everything else is in the store. */
export interface TraitSyncCheckpoint extends PagedCheckpoint<TraitSyncTotals> {
  /** What the run syncs, recorded when it succeeds in full (a cohort audience's version). */
  sourceVersion?: string;
  profiles?: FetchedProfiles;
  staged: StagedTraits;
  plan: TraitPlan;
}

export const traitSyncProgressQuery = defineQuery<TraitSyncProgress>('progress');

/** What the first step found of the audience, when there is something to sync. */
type TraitAudience = Exclude<PreparedTraitRun, { status: 'busy' }>;

const traitSyncKind: PagedSyncKind<TraitSyncInput, TraitSyncOptions, TraitSyncTotals, TraitSyncCheckpoint, TraitAudience, TraitSyncResult> =
  {
    workflowType: 'traitSync',
    inputSchema: traitSyncInputSchema,
    progressQuery: traitSyncProgressQuery,
    identify: (options) => ({ syncId: traitSyncId(options), searchAttributes: traitRunSearchAttributes() }),
    emptyTotals: () => ({ written: 0, failed: 0, failureReasons: {}, dataPoints: 0, brazeRequests: 0, amplitudeDownloads: 0 }),

    async begin({ options, run, totals }) {
      const { windowDays, audienceCohortId } = options;
      const prepared = await quick.prepareTraitRun({
        run,
        ifRunning: options.ifRunning,
        windowDays,
        audienceCohortId,
        selectionFingerprint: selectionFingerprint(selectionOf(options)),
        realtimeMapping: options.realtime ? realtimeMappingOf(options) : undefined,
      });
      if (prepared.status === 'busy') return prepared;
      if (prepared.status === 'ready') return { status: 'changed', found: prepared };
      const plan = { users: 0, pages: 0, maxPageDataPoints: 0 };
      return {
        status: 'unchanged',
        state: { runId: run.runId, sourceVersion: prepared.sourceVersion, staged: emptyStaged(), plan, nextPage: 0, totals },
      };
    },

    async stage({ options, run, totals, step }, audience) {
      const { windowDays, audienceCohortId, properties } = options;
      const selection = selectionOf(options);
      let cohortExport: { requestId: string } | undefined;
      if (audience.audience === 'cohort') {
        step('exporting', `Exporting the audience cohort "${audience.cohortName}" (${audience.size} members) with its properties`);
        cohortExport = await quick.requestCohortExport({ run, cohortId: audienceCohortId!, propKeys: properties });
        totals.amplitudeDownloads += 1;
        await jobWait.waitForCohortExport({ run, requestId: cohortExport.requestId, cohortId: audienceCohortId! });
      }
      let profiles: FetchedProfiles | undefined;
      if (readsProfiles(options)) {
        step(
          'fetching',
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
      step(
        'staging',
        cohortExport
          ? `Reading the members of the audience cohort and what changed for them`
          : `Reading the users active in the last ${windowDays} days and what changed for them`,
      );
      const staged = await streaming.stageTraitChanges({ run, selection, windowDays, cohortExport });
      step('planning');
      const plan = await quick.planTraitRun({ run, pageSize: options.pageSize, attributesPerUser: traitAttributes(options).length });
      const sourceVersion = audience.audience === 'cohort' ? audience.sourceVersion : undefined;
      return { runId: run.runId, sourceVersion, profiles, staged, plan, nextPage: 0, totals };
    },

    pageCount: ({ plan }) => plan.pages,
    maxPageDataPoints: ({ plan }) => plan.maxPageDataPoints,
    applyPage: ({ run }, _state, page, budgets) => pages.applyTraitPage({ run, page, ...budgets }),
    countPage: (totals, _state, _page, outcome) => void (totals.written += outcome.accepted),

    async finish({ options, run, totals }, status, state) {
      const result: TraitSyncResult = {
        ...resultOf(options, run.syncId, state.staged, totals),
        audienceUnchanged: status === 'unchanged',
        plan: state.plan,
      };
      if (state.profiles) {
        const { profileApiRequests, ...freshness } = state.profiles;
        Object.assign(result, { profileApiRequests, profiles: freshness });
      }
      // With users Braze rejected, the source is not fully synced: the next run must not skip the download.
      const complete = status === 'unchanged' || (status === 'succeeded' && totals.failed === 0);
      const sourceVersion = complete ? state.sourceVersion : undefined;
      const { failed, failureReasons } = await quick.finishTraitRun({ run, status, sourceVersion, stats: { ...result } });
      return Object.assign(result, { failed, failureReasons });
    },
    recordFailure: ({ run, totals }) => lastWords.finishTraitRun({ run, status: 'failed', stats: { ...totals } }),
    skippedResult: ({ options, run, totals }, runInProgress) => ({
      ...resultOf(options, run.syncId, emptyStaged(), totals),
      runInProgress,
    }),

    describePages: ({ totals }) => `${totals.written} users written, ${totals.failed} failed, ${totals.dataPoints} data points`,
    describeResult,
  };

export function traitSync(input: TraitSyncInput, checkpoint?: TraitSyncCheckpoint): Promise<TraitSyncResult> {
  return runPagedSync(traitSyncKind, input, checkpoint);
}

/** What the sync writes: every step that reads or stages values is given the same. */
function selectionOf(options: TraitSyncOptions) {
  const { properties, computations, recommendations, attributePrefix, rename, types, onMissing } = options;
  return { properties, computations, recommendations, attributePrefix, rename, types, onMissing };
}

function resultOf(options: TraitSyncOptions, syncId: string, staged: StagedTraits, totals: TraitSyncTotals): TraitSyncResult {
  const skipped = Object.values(staged.skipReasons).reduce((sum, n) => sum + n, 0);
  return { syncId, dryRun: options.dryRun, audienceUnchanged: false, ...staged, skipped, profileApiRequests: 0, ...totals };
}

function emptyStaged(): StagedTraits {
  return { users: 0, unchanged: 0, created: 0, updated: 0, set: 0, unset: 0, skipReasons: {} };
}

function describeResult(result: TraitSyncResult): string {
  if (result.runInProgress) return `Skipped: run ${result.runInProgress} of this sync is in progress; nothing was read or sent`;
  if (result.audienceUnchanged)
    return 'Unchanged: the audience cohort has not been recomputed since the last success; nothing was downloaded or sent';
  const read = `${result.users} users in the window: ${result.created} new, ${result.updated} updated, ${result.unchanged} unchanged`;
  if (result.dryRun) return `Dry run, ${read}; ${result.set} values would be set and ${result.unset} unset, ${result.skipped} skipped`;
  const profiles = result.profiles
    ? `; profiles fetched: ${result.profiles.fetched} of ${result.profiles.audience} (${result.profileApiRequests} requests)`
    : '';
  return `Done, ${read}; ${result.written} users written, ${result.unset} values unset, ${result.skipped} skipped, ${result.failed} failed, ${result.dataPoints} data points${profiles}`;
}
