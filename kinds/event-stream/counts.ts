/** What a stream's drains did, and its totals since it started: counts only (they are kept in history). */

export interface EventStreamCounts {
  /** Spooled items read. */
  read: number;
  /** Events Braze accepted. */
  sent: number;
  /** Selected events the sent-event ledger already held (sent by `eventSync`, or by this stream before): not sent again. */
  alreadySent: number;
  /** Events sent again after their request was cut off without an answer (`delivery: "at-least-once"`). */
  resent: number;
  /** Events whose request was cut off without an answer, left out (`delivery: "at-most-once"`). */
  unconfirmed: number;
  /** Events Braze rejected. */
  failed: number;
  /** Items not sent on purpose, by reason. */
  skipped: number;
  skipReasons: Record<string, number>;
  /** Items that could not be read from the spool (kept as dead letters with the reason). */
  deadLettered: number;
  /** Users whose activity the stream recorded (a user counted once per batch). */
  activityRecorded: number;
  /** User updates older than the user's recorded activity (arrived late): never applied over the newer one. */
  olderUpdates: number;
  /** Users whose mapped attributes the stream wrote (real-time trait syncs). */
  attributeUsers: number;
  /** Aliases of anonymous users who signed in, identified to their external id. */
  identified: number;
  dataPoints: number;
  brazeRequests: number;
}

export function noEventStreamCounts(): EventStreamCounts {
  return {
    read: 0,
    sent: 0,
    alreadySent: 0,
    resent: 0,
    unconfirmed: 0,
    failed: 0,
    skipped: 0,
    skipReasons: {},
    deadLettered: 0,
    activityRecorded: 0,
    olderUpdates: 0,
    attributeUsers: 0,
    identified: 0,
    dataPoints: 0,
    brazeRequests: 0,
  };
}

/** Every count but the reasons, which are added by reason. */
const SUMMED = Object.keys(noEventStreamCounts()).filter((key) => key !== 'skipReasons') as Array<
  Exclude<keyof EventStreamCounts, 'skipReasons'>
>;

export function addEventStreamCounts(totals: EventStreamCounts, more: EventStreamCounts): void {
  for (const key of SUMMED) totals[key] += more[key];
  for (const [reason, n] of Object.entries(more.skipReasons)) totals.skipReasons[reason] = (totals.skipReasons[reason] ?? 0) + n;
}

/** Counts an item not sent on purpose, by its reason. */
export function skipIn(counts: EventStreamCounts, reason: string): void {
  counts.skipped += 1;
  counts.skipReasons[reason] = (counts.skipReasons[reason] ?? 0) + 1;
}
