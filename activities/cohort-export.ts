/**
 * Amplitude cohort downloads, shared by every sync whose source is a cohort file (the cohort sync, and a trait
 * sync whose audience is a cohort): the cohort's listing, the monthly download quota, the export job and its wait.
 */
import { FailureType } from '../src/failure-types.js';
import { activityInfo, ApplicationFailure, heartbeat, sleep } from '@temporalio/activity';
import type { AmplitudeCohort } from '../src/amplitude/schemas.js';
import { RateLimitedError } from '../src/errors.js';
import type { WorkerContext } from '../src/worker-context.js';
import { keepLease, type RunRef } from './sync-lease.js';

/** Small jobs finish in seconds, big ones take minutes: poll soon, then every few seconds (as Amplitude's SDK). */
const EXPORT_POLL_INTERVALS_MS = [500, 1_000, 2_000, 3_000];

export interface RequestCohortExportInput {
  run: RunRef;
  cohortId: string;
  /** User properties to export as columns (`props=1&propKeys=…`); none: the ids only (`props=0`). */
  propKeys?: string[];
}

export function createCohortExportActivities(context: WorkerContext) {
  const { amplitude, store } = context;
  return {
    /** Spends one download from the monthly quota (once per run, however often retried) and requests the export. */
    requestCohortExport: async (input: RequestCohortExportInput): Promise<{ requestId: string }> => {
      await keepLease(store, input.run);
      const month = new Date().toISOString().slice(0, 7);
      const limit = context.cohortDownloadsPerMonth;
      const reservation = await store.reserveCohortDownload({ month, limit, cohortId: input.cohortId, runId: input.run.runId });
      if (!reservation.ok) {
        throw ApplicationFailure.create({
          type: FailureType.QuotaExhausted,
          nonRetryable: true,
          message: `Amplitude cohort download quota exhausted: ${reservation.used} of ${limit} downloads used in ${month}. Raise AMPLITUDE_COHORT_DOWNLOAD_QUOTA if your plan allows more.`,
        });
      }
      const props = input.propKeys !== undefined && input.propKeys.length > 0;
      const { requestId } = await amplitude.requestCohortExport(input.cohortId, { props, propKeys: input.propKeys });
      return { requestId };
    },

    /**
     * Polls the export until Amplitude reports it complete; a 429 on the status call means wait, not fail.
     * Amplitude documents no failure status, so a job still running at the deadline fails the run instead.
     */
    waitForCohortExport: async (input: { run: RunRef; requestId: string; cohortId: string }): Promise<void> => {
      // From the first attempt's scheduling: a retried attempt keeps the same deadline.
      const deadline = activityInfo().scheduledTimestampMs + context.cohortExportMaxWaitMs;
      for (let poll = 0; ; poll++) {
        heartbeat();
        await keepLease(store, input.run);
        const status = await amplitude.getCohortExportStatus(input.requestId).catch((error: unknown) => {
          if (error instanceof RateLimitedError) return 'in_progress' as const;
          throw error;
        });
        if (status === 'completed') return;
        if (Date.now() >= deadline) {
          throw ApplicationFailure.create({
            type: FailureType.ExportTimedOut,
            nonRetryable: true,
            message: `Amplitude has not finished exporting cohort "${input.cohortId}" after ${describeDuration(context.cohortExportMaxWaitMs)} (request ${input.requestId}); the next run requests a new export. AMPLITUDE_EXPORT_MAX_WAIT sets the limit.`,
          });
        }
        await sleep(EXPORT_POLL_INTERVALS_MS[Math.min(poll, EXPORT_POLL_INTERVALS_MS.length - 1)]!); // throws when cancelled
      }
    },
  };
}

export type CohortExportActivities = ReturnType<typeof createCohortExportActivities>;

/** The cohort's listing (free of the download quota), or a non-retryable failure naming it. */
export async function findCohort(context: WorkerContext, cohortId: string): Promise<AmplitudeCohort> {
  const cohort = (await context.amplitude.listCohorts()).find((c) => c.id === cohortId);
  if (!cohort) {
    throw ApplicationFailure.create({
      type: FailureType.CohortNotFound,
      nonRetryable: true,
      message: `Amplitude has no cohort "${cohortId}" visible to this project`,
    });
  }
  return cohort;
}

function describeDuration(ms: number): string {
  return ms >= 60_000 ? `${Math.round(ms / 60_000)} minutes` : `${Math.round(ms / 1000)} seconds`;
}
