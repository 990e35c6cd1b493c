/**
 * How the operator's view names a sync. Each Amplitude hour is a sync of its own to the store (its lease and
 * ledger entries), but to an operator the hourly event pipeline is one sync: its hours are shown together.
 */
const EVENT_HOUR_SYNC = /^event-sync-\d{8}T\d{2}$/;

export const EVENT_PIPELINE = 'event-sync (hourly export)';

export function syncGroupOf(syncId: string): string {
  return EVENT_HOUR_SYNC.test(syncId) ? EVENT_PIPELINE : syncId;
}

/**
 * Who spent a ledger entry. A run's id is `<workflow or sync id>/<Temporal run id>`: a stream's runs are named after
 * its workflow (`cohort-stream-…`) though they write under the sync they feed, and are shown apart from it.
 */
export function spenderOf(entry: { syncId: string; runId: string }): string {
  const runOf = entry.runId.slice(0, Math.max(0, entry.runId.lastIndexOf('/')));
  return runOf !== '' && runOf !== entry.syncId ? runOf : syncGroupOf(entry.syncId);
}
