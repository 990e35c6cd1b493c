/**
 * Every failure type a run can end with, named once: activities throw them, workflows name the ones never worth
 * retrying, and operators find them in the Temporal UI. Plain constants, safe to import into workflow code.
 */
export const FailureType = {
  /** A vendor refused the request (4xx): retrying changes nothing; the message is the vendor's own. */
  VendorRejected: 'VendorRejected',
  /** A vendor failed or did not answer (5xx, 423, a timeout, a reset connection): retried with back-off. */
  VendorUnavailable: 'VendorUnavailable',
  /** A vendor's rate limit: retried after the delay the vendor implied. A wait, not a failure. */
  RateLimited: 'RateLimited',
  /** Another run of the sync holds its lease (`ifRunning: "wait"`): polled until it is free. A wait, not a failure. */
  SyncLeaseHeld: 'SyncLeaseHeld',
  /** Another run took the sync's lease after this one's lapsed: this run stops. */
  SyncLeaseLost: 'SyncLeaseLost',
  /** The month's cohort downloads are spent. */
  QuotaExhausted: 'QuotaExhausted',
  /** A vendor's job (a cohort export, an hour's export) did not finish within its limit. */
  ExportTimedOut: 'ExportTimedOut',
  ExportTooLarge: 'ExportTooLarge',
  /** No event sync has fed the activity index lately: a trait sync's audience would be stale. */
  ActivityIndexStale: 'ActivityIndexStale',
  /** The run found something its plan does not hold (a page it did not plan). */
  PlanMissing: 'PlanMissing',
  /** Amplitude lists no cohort of that id for this project. */
  CohortNotFound: 'CohortNotFound',
  /** The suppression list was hashed with another key than this worker's: it would miss every erased user. */
  SuppressionKeyChanged: 'SuppressionKeyChanged',
  /** An erasure request the store does not hold (done already, or never saved). */
  ErasureRequestMissing: 'ErasureRequestMissing',
} as const;

export type FailureType = (typeof FailureType)[keyof typeof FailureType];

/** The failure types of one workflow type: its input refused, and the run failed (when the cause has no type). */
export function workflowFailureTypes(workflowType: string): { invalidInput: string; failed: string } {
  const named = workflowType.charAt(0).toUpperCase() + workflowType.slice(1);
  return { invalidInput: `Invalid${named}`, failed: `${named}Failed` };
}

/** The types no retry can help, whichever activity throws them. */
export const NON_RETRYABLE_FAILURES: readonly string[] = [
  FailureType.VendorRejected,
  FailureType.SyncLeaseLost,
  FailureType.QuotaExhausted,
  FailureType.ExportTimedOut,
  FailureType.ExportTooLarge,
  FailureType.ActivityIndexStale,
  FailureType.PlanMissing,
  FailureType.CohortNotFound,
  FailureType.SuppressionKeyChanged,
  FailureType.ErasureRequestMissing,
];
