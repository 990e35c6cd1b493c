/** The shapes that cross between the `cohortSync` workflow and its activities (kept in history: no secrets). */

export type CohortTarget = 'attribute' | 'partner_cohort';

export interface PrepareCohortRunInput {
  syncId: string;
  runId: string;
  cohortId: string;
  target: CohortTarget;
  force: boolean;
}

export type PreparedCohortRun =
  | { status: 'unchanged'; cohortName: string; lastComputed: number }
  | { status: 'changed'; cohortName: string; lastComputed: number; createdAt: number; size: number };

export interface StageCohortMembersInput {
  runId: string;
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
}

export type ChangeKind = 'enter' | 'leave';

export interface ApplyCohortPageInput {
  syncId: string;
  runId: string;
  cohortId: string;
  cohortName: string;
  target: CohortTarget;
  attributeName: string;
  kind: ChangeKind;
  afterKey?: string;
  pageSize: number;
  /** Data points this run may still spend, if it has a budget. */
  runBudgetRemaining?: number;
  /** The per-day budget across all syncs, if any. */
  maxDataPointsPerDay?: number;
}

export interface PageOutcome {
  /** `over_budget`: nothing was sent because the page would exceed a budget. */
  status: 'applied' | 'over_budget';
  nextAfterKey?: string;
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
  syncId: string;
  runId: string;
  status: 'succeeded' | 'failed' | 'dry_run' | 'unchanged';
  sourceVersion?: string;
  stats: Record<string, unknown>;
}
