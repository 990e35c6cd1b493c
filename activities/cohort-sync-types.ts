/**
 * The shapes that cross between the `cohortSync` workflow and its activities. They are kept in history, so
 * they carry references and counts only: no secrets, no user ids (pages are named by number, not by key).
 */
import type { RunRef } from './sync-lease.js';

export type { RunRef } from './sync-lease.js';

export type CohortTarget = 'attribute' | 'partner_cohort';

/** What a run does when another run of the same sync holds the lease: end at once as skipped, or wait its turn. */
export type IfRunning = 'skip' | 'wait';

export interface PrepareCohortRunInput {
  run: RunRef;
  cohortId: string;
  target: CohortTarget;
  force: boolean;
  ifRunning: IfRunning;
}

export type PreparedCohortRun =
  | { status: 'busy'; runInProgress: string }
  | { status: 'unchanged'; cohortName: string; lastComputed: number }
  | { status: 'changed'; cohortName: string; lastComputed: number; createdAt: number; size: number };

export interface StageCohortMembersInput {
  run: RunRef;
  requestId: string;
  identifiers: Array<'user_id' | 'user_alias' | 'device_id'>;
  aliasLabel: string;
  aliasNameFrom: 'amplitude_id' | 'user_id';
}

export interface StagedCohort {
  /** Rows in the cohort file. */
  rows: number;
  /** Rows an earlier attempt had already staged, which this one skipped instead of staging again. */
  resumedFromRow: number;
  staged: number;
  skipped: number;
  /** Skipped members counted by reason. */
  skipReasons: Record<string, number>;
}

export interface CohortPlan {
  enter: number;
  leave: number;
  /** Data points the plan costs if every change is sent once. */
  predictedDataPoints: number;
  /** Pages per kind, applied by number. */
  pages: Record<ChangeKind, number>;
  /** The most one page can cost: what each page in flight holds back from the budgets. */
  maxPageDataPoints: number;
}

export type ChangeKind = 'enter' | 'leave';

export interface ApplyCohortPageInput {
  run: RunRef;
  cohortId: string;
  cohortName: string;
  target: CohortTarget;
  attributeName: string;
  kind: ChangeKind;
  /** The planned page's number within its kind (0-based). */
  page: number;
  /** Data points this run may still spend, if it has a budget. */
  runBudgetRemaining?: number;
  /** The per-day budget across all syncs, if any. */
  maxDataPointsPerDay?: number;
  /** Data points the run's other pages in flight may still spend: held back from both budgets. */
  inFlightDataPoints: number;
}

export interface PageOutcome {
  /** `over_budget`: nothing was sent because the page would exceed a budget. */
  status: 'applied' | 'over_budget';
  accepted: number;
  failed: number;
  dataPoints: number;
  brazeRequests: number;
  /** The page's cost, reported when it was over budget. */
  pageDataPoints: number;
  budget?: 'run' | 'day';
}

/** Members Braze rejected in a run, by the vendor's reason. */
export interface RunFailures {
  failed: number;
  failureReasons: Record<string, number>;
}

export interface FinishCohortRunInput {
  run: RunRef;
  status: 'succeeded' | 'failed' | 'dry_run' | 'unchanged';
  sourceVersion?: string;
  stats: Record<string, unknown>;
}
