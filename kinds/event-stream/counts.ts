/** What a stream's drains did, and its totals since it started: counts only (they are kept in history). */

export interface EventStreamCounts {
  /** Spooled items read. */
  read: number;
  /** Events Braze accepted. */
  sent: number;
  /** Selected events the sent-event ledger already held (sent by `eventSync`, or by this stream before): not sent again. */
  alreadySent: number;
  /** Events Braze rejected. */
  failed: number;
  /** Items not sent on purpose, by reason. */
  skipped: number;
  skipReasons: Record<string, number>;
  /** Items that could not be read from the spool (kept as dead letters with the reason). */
  deadLettered: number;
  /** Users whose activity the stream recorded (a user counted once per batch). */
  activityRecorded: number;
  dataPoints: number;
  brazeRequests: number;
}

const SUMMED = [
  'read',
  'sent',
  'alreadySent',
  'failed',
  'skipped',
  'deadLettered',
  'activityRecorded',
  'dataPoints',
  'brazeRequests',
] as const;

export function noEventStreamCounts(): EventStreamCounts {
  return { ...(Object.fromEntries(SUMMED.map((key) => [key, 0])) as Omit<EventStreamCounts, 'skipReasons'>), skipReasons: {} };
}

export function addEventStreamCounts(totals: EventStreamCounts, more: EventStreamCounts): void {
  for (const key of SUMMED) totals[key] += more[key];
  for (const [reason, n] of Object.entries(more.skipReasons)) totals.skipReasons[reason] = (totals.skipReasons[reason] ?? 0) + n;
}
