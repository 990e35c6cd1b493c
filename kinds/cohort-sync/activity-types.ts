/**
 * The shapes that cross between the `cohortSync` workflow and its activities. They are kept in history, so
 * they carry references and counts only: no secrets, no user ids (pages are named by number, not by key).
 */
import type { CloseRunInput, PageBudgets } from '../../activities/engine.js';

export type { PageOutcome, RunFailures } from '../../activities/engine.js';
import type { RunRef } from '../../activities/sync-lease.js';

export type { RunRef } from '../../activities/sync-lease.js';

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

export interface ApplyCohortPageInput extends PageBudgets {
  run: RunRef;
  cohortId: string;
  cohortName: string;
  target: CohortTarget;
  attributeName: string;
  kind: ChangeKind;
  /** The planned page's number within its kind (0-based). */
  page: number;
}

export type FinishCohortRunInput = CloseRunInput;
