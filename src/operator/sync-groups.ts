/**
 * How the operator's view names a sync. Each Amplitude hour is a sync of its own to the store (its lease and
 * ledger entries), but to an operator the hourly event pipeline is one sync: its hours are shown together.
 */
const EVENT_HOUR_SYNC = /^event-sync-\d{8}T\d{2}$/;

export const EVENT_PIPELINE = 'event-sync (hourly export)';

export function syncGroupOf(syncId: string): string {
  return EVENT_HOUR_SYNC.test(syncId) ? EVENT_PIPELINE : syncId;
}
