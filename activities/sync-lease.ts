/**
 * One run per sync, whatever its workflow id (a Schedule appends a timestamp to it): every activity of a run
 * renews the run's lease in the shared store before it touches a vendor, so two runs of one sync never send at
 * once, on any number of workers and hosts. A run that dies without releasing its lease frees it on expiry.
 */
import { ApplicationFailure, ApplicationFailureCategory } from '@temporalio/common';
import { FailureType } from '../src/failure-types.js';
import type { StateStore, SyncLeaseHold } from '../src/store/store.js';

/** Long enough to ride out a slow workflow task or a worker restart; short enough that a dead run blocks briefly. */
export const SYNC_LEASE_TTL_MS = 2 * 60_000;

/** Which run of which sync an activity works for: references only, safe in workflow history. */
export interface RunRef {
  syncId: string;
  /** `<syncId>/<first Temporal run id>`: the same across retries and continue-as-new. */
  runId: string;
  workflowId: string;
}

export type LeaseClaim = { held: true } | { held: false; runInProgress: string; hold: SyncLeaseHold; expiresAtMs: number };

/**
 * Takes or renews the lease, for the whole run or (`round`) for one short round; resolves with the workflow id of
 * the run in progress when another run has it.
 */
export async function claimLease(store: StateStore, run: RunRef, hold: SyncLeaseHold = 'run'): Promise<LeaseClaim> {
  const lease = await store.claimSyncLease({
    syncId: run.syncId,
    holder: run.runId,
    workflowId: run.workflowId,
    hold,
    ttlMs: SYNC_LEASE_TTL_MS,
    nowMs: Date.now(),
  });
  return lease.held ? lease : { held: false, runInProgress: lease.workflowId, hold: lease.hold, expiresAtMs: lease.expiresAtMs };
}

/** Renews the lease of a run that took it earlier; a run whose lease another run has since taken stops here. */
export async function keepLease(store: StateStore, run: RunRef): Promise<void> {
  const lease = await claimLease(store, run);
  if (!lease.held) {
    throw ApplicationFailure.create({
      type: FailureType.SyncLeaseLost,
      nonRetryable: true,
      message: `Run ${lease.runInProgress} took over sync "${run.syncId}" after this run's lease lapsed (it paused or stalled longer than ${SYNC_LEASE_TTL_MS / 60_000} minutes); this run stops and sends nothing more`,
    });
  }
}

/** A lease-wait retry polls at least this often, so a run freed early is noticed soon. */
const LEASE_WAIT_POLL_MS = Math.min(5_000, SYNC_LEASE_TTL_MS);
/** A stream's round ends within a second or two. */
const STREAM_ROUND_POLL_MS = 500;

/**
 * Takes the sync's lease at the start of a run. When another run has it: `skip` resolves with that run's
 * workflow id (this run then sends nothing), `wait` fails the attempt so that Temporal retries it until the
 * lease is free (no history grows while waiting). A lease held for one round (a cohort stream's) is waited for
 * either way: it is freed within seconds, and a scheduled run must not be skipped for it.
 */
export async function takeLease(
  store: StateStore,
  run: RunRef,
  ifRunning: 'skip' | 'wait',
): Promise<{ held: true } | { held: false; runInProgress: string }> {
  const lease = await claimLease(store, run);
  if (lease.held) return lease;
  const heldForARound = lease.hold === 'round';
  if (ifRunning === 'skip' && !heldForARound) return lease;
  throw ApplicationFailure.create({
    type: FailureType.SyncLeaseHeld,
    // A poll, not a failure: quiet in the logs, and not counted by the failure metrics.
    category: ApplicationFailureCategory.BENIGN,
    message: heldForARound
      ? `Waiting for a round of ${lease.runInProgress} (the cohort's webhook stream) to end`
      : `Waiting for run ${lease.runInProgress} of sync "${run.syncId}" to finish (ifRunning: "wait")`,
    nextRetryDelay: heldForARound ? STREAM_ROUND_POLL_MS : Math.min(Math.max(lease.expiresAtMs - Date.now(), 1_000), LEASE_WAIT_POLL_MS),
  });
}
