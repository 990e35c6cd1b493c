/**
 * The shapes that cross between the `traitSync` workflow and its activities. They are kept in history, so they
 * carry references and counts only: no secrets, no user ids, no property values.
 */
import type { RealtimeTraitMapping } from './input.js';
import type { TraitSelection } from './input.js';
import type { CloseRunInput, PageBudgets } from '../../activities/engine.js';
import type { RunRef } from '../../activities/sync-lease.js';

export type { PageOutcome, RunFailures } from '../../activities/engine.js';

export interface PrepareTraitRunInput {
  run: RunRef;
  ifRunning: 'skip' | 'wait';
  windowDays: number;
  /** The audience is this cohort's members instead of the activity index's users. */
  audienceCohortId?: string;
  /** `selectionFingerprint` of what the sync writes: part of the cohort source version. */
  selectionFingerprint: string;
  /** Set (`realtime: true`): the property mapping the event streams apply in real time; absent: they stop applying it. */
  realtimeMapping?: RealtimeTraitMapping;
}

export type PreparedTraitRun =
  | { status: 'busy'; runInProgress: string }
  | { status: 'ready'; audience: 'activity index' }
  /** A cohort audience: download it (as `sourceVersion`), or not when the last success synced this version. */
  | { status: 'ready' | 'unchanged'; audience: 'cohort'; cohortName: string; size: number; sourceVersion: string };

export interface FetchProfilesInput {
  run: RunRef;
  selection: TraitSelection;
  windowDays: number;
  /** Profile API requests this run may make, all its attempts together. */
  maxFetches: number;
  /** When the run began: fetches since then are this run's. */
  runStartedMs: number;
}

/** What the run asked of the User Profile API, and how fresh the audience's profiles are now. */
export interface FetchedProfiles {
  profileApiRequests: number;
  /** Users in the window with a user id. */
  audience: number;
  /** Of them, users whose profile the sync has ever fetched, and fetched within the last 24 hours. */
  fetched: number;
  fetchedWithin24h: number;
}

export interface StageTraitChangesInput {
  run: RunRef;
  selection: TraitSelection;
  windowDays: number;
  /** A completed export of the audience cohort (with the properties as columns): the audience instead of the index. */
  cohortExport?: { requestId: string };
}

/** The audience as the run found it, and what it staged to send. */
export interface StagedTraits {
  /** Users in the window (or the audience cohort) with a user id: the users the sync considers. */
  users: number;
  /** Of them, users whose attributes Braze holds already as they should be. */
  unchanged: number;
  /** Users to write whom the workspace's snapshot has never seen (Braze creates those it does not have). */
  created: number;
  /** Users to write who had values before. */
  updated: number;
  /** Attribute values to write, and values to unset (`null`): one data point each. */
  set: number;
  unset: number;
  /** Users not synced, and attribute values not sent, counted by reason. */
  skipReasons: Record<string, number>;
}

export interface TraitPlan {
  users: number;
  pages: number;
  /** The most one page can cost: what each page in flight holds back from the budgets. */
  maxPageDataPoints: number;
}

export interface ApplyTraitPageInput extends PageBudgets {
  run: RunRef;
  page: number;
}

export type FinishTraitRunInput = CloseRunInput;
