/**
 * The activity index: users seen in the last 90 days, the profiles fetched for them, the device ids they were seen
 * with, and the events claimed for sending. On PostgreSQL; the same contract as src/store/activity-index/sqlite.ts.
 */
import { batches, type PostgresDb } from '../postgres-db.js';
import {
  FIRST_KEY,
  pageLimit,
  profileFetchCountsSql,
  profileFetchQueueSql,
  requireKey,
  toKeyedPage,
  toProfileFetch,
  toProfileQueueEntry,
  toUserActivity,
  USER_TABLES,
  type ProfileFetchRow,
  type ProfileQueueRow,
} from '../shared.js';
import {
  type AmplitudeDeviceId,
  type EventClaim,
  type Page,
  type PageOptions,
  type ProfileFetch,
  type ProfileFetchCounts,
  type ProfileQueueEntry,
  type UserActivity,
  type ActivityIndex,
} from '../store.js';

// One statement, so one transaction. Every delete probes an index with `= ANY` of an array: as a join, the generic
// plan of a prepared statement scans the whole table.
const PRUNE_INACTIVE_USERS = `WITH pruned AS (
    DELETE FROM user_activity WHERE user_key = ANY (ARRAY(SELECT user_key FROM user_activity WHERE last_event_ms < $1 LIMIT $2)) RETURNING user_key
  ), ${USER_TABLES.map(({ table, key }) => `${table}_pruned AS (DELETE FROM ${table} WHERE ${key} = ANY (ARRAY(SELECT user_key FROM pruned)))`).join(', ')}
  SELECT count(*) AS count FROM pruned`;

const PROFILE_FETCH_QUEUE = profileFetchQueueSql({ syncId: '$1', sinceMs: '$2', limit: '$3' });

const PROFILE_FETCH_COUNTS = profileFetchCountsSql({ syncId: '$1', sinceMs: '$2', fetchedSinceMs: '$3' });

/** A user's latest event by event time wins; rows are locked in key order, so concurrent writers cannot deadlock. */
export const UPSERT_ACTIVITY = `INSERT INTO user_activity AS a (user_key, last_event_ms, properties)
  SELECT DISTINCT ON (k) k, t, p FROM unnest($1::text[], $2::bigint[], $3::text[]) AS u(k, t, p) ORDER BY k, t DESC
  ON CONFLICT (user_key) DO UPDATE SET last_event_ms = excluded.last_event_ms, properties = excluded.properties
  WHERE excluded.last_event_ms > a.last_event_ms`;

export function activityColumns(users: readonly UserActivity[]): [string[], number[], string[]] {
  return [
    users.map((user) => requireKey(user.userKey)),
    users.map((user) => user.lastEventMs),
    users.map((user) => JSON.stringify(user.properties)),
  ];
}

export class PostgresActivityIndex implements ActivityIndex {
  readonly #db: PostgresDb;

  constructor(db: PostgresDb) {
    this.#db = db;
  }

  async recordActivity(users: readonly UserActivity[]): Promise<void> {
    for (const batch of batches(users)) await this.#db.query(UPSERT_ACTIVITY, activityColumns(batch));
  }

  async userActivities(userKeys: readonly string[]): Promise<Map<string, UserActivity>> {
    const rows = await this.#db.rows<{ userKey: string; lastEventMs: number; properties: string }>(
      `SELECT user_key AS "userKey", last_event_ms AS "lastEventMs", properties FROM user_activity WHERE user_key = ANY ($1::text[])`,
      [userKeys],
    );
    return new Map(rows.map((row) => [row.userKey, toUserActivity(row)]));
  }

  async claimEvents(claims: readonly EventClaim[]): Promise<string[][]> {
    if (claims.length === 0) return [];
    // Claims travel as flat lists tagged with their claim's 1-based position; keys are locked in key order, and of
    // a key wanted twice in one batch the earlier claim gets it.
    const positions: number[] = [];
    const keys: string[] = [];
    claims.forEach((claim, index) => claim.eventKeys.forEach((key) => (positions.push(index + 1), keys.push(requireKey(key)))));
    const rows = await this.#db.rows<{ n: number; eventKey: string }>(
      `WITH wanted AS (
         SELECT c.n, c.k, r.run_id, r.request_key, r.now_ms
         FROM unnest($1::int[], $2::text[]) AS c(n, k)
         JOIN unnest($3::text[], $4::text[], $5::bigint[]) WITH ORDINALITY AS r(run_id, request_key, now_ms, n) ON r.n = c.n
       ), claimed AS (
         INSERT INTO sent_events (event_key, run_id, request_key, sent_at_ms)
         SELECT k, run_id, request_key, now_ms FROM wanted ORDER BY k, n ON CONFLICT DO NOTHING
         RETURNING event_key, run_id, request_key
       )
       SELECT w.n, w.k AS "eventKey" FROM wanted w JOIN claimed c ON c.event_key = w.k AND c.run_id = w.run_id AND c.request_key = w.request_key`,
      [positions, keys, claims.map((claim) => claim.runId), claims.map((claim) => claim.requestKey), claims.map((claim) => claim.nowMs)],
    );
    const claimed = claims.map(() => [] as string[]);
    for (const row of rows) claimed[Number(row.n) - 1]!.push(row.eventKey);
    return claimed;
  }

  async releaseEventClaims(runId: string, requestKey: string): Promise<void> {
    await this.#db.query('DELETE FROM sent_events WHERE run_id = $1 AND request_key = $2', [runId, requestKey]);
  }

  async settleUnconfirmedClaims(runId: string, keyPrefix: string, how: 'release' | 'keep'): Promise<number> {
    // Keys are compared byte-wise: every key with the prefix sorts in [prefix, prefix + U+FFFF).
    const unconfirmed = `WHERE e.run_id = $1 AND e.request_key >= $2 AND e.request_key < $3
      AND NOT EXISTS (SELECT 1 FROM request_outcomes o WHERE o.run_id = e.run_id AND o.request_key = e.request_key AND o.completed)`;
    const settled = await this.#db.query(
      how === 'release'
        ? `DELETE FROM sent_events e ${unconfirmed}`
        : `UPDATE sent_events e SET run_id = e.run_id || '#unconfirmed' ${unconfirmed}`,
      [runId, keyPrefix, `${keyPrefix}\uffff`],
    );
    return settled.rowCount ?? 0;
  }

  async unconfirmedEventCount(runId: string): Promise<number> {
    const row = await this.#db.one<{ count: string }>(
      `SELECT count(*) AS count FROM sent_events e WHERE e.run_id = $1
       AND NOT EXISTS (SELECT 1 FROM request_outcomes o WHERE o.run_id = e.run_id AND o.request_key = e.request_key AND o.completed)`,
      [runId],
    );
    return Number(row.count);
  }

  async activeUsers(options: PageOptions & { sinceMs: number }): Promise<Page<UserActivity>> {
    const limit = pageLimit(options.limit);
    const rows = await this.#db.rows<{ userKey: string; lastEventMs: number; properties: string }>(
      `SELECT user_key AS "userKey", last_event_ms AS "lastEventMs", properties FROM user_activity
       WHERE user_key > $1 AND last_event_ms >= $2 ORDER BY user_key LIMIT $3`,
      [options.afterKey ?? FIRST_KEY, options.sinceMs, limit],
    );
    return toKeyedPage(rows.map(toUserActivity), limit, (user) => user.userKey);
  }

  async pruneInactiveUsers(beforeMs: number, limit: number): Promise<number> {
    return (await this.#db.one<{ count: number }>(PRUNE_INACTIVE_USERS, [beforeMs, pageLimit(limit)])).count;
  }

  async pruneSentEvents(beforeMs: number, limit: number): Promise<number> {
    const result = await this.#db.query(
      'DELETE FROM sent_events WHERE event_key IN (SELECT event_key FROM sent_events WHERE sent_at_ms < $1 LIMIT $2)',
      [beforeMs, pageLimit(limit)],
    );
    return result.rowCount ?? 0;
  }

  async profileFetchQueue(syncId: string, options: { sinceMs: number; limit: number }): Promise<ProfileQueueEntry[]> {
    const rows = await this.#db.rows<ProfileQueueRow>(PROFILE_FETCH_QUEUE, [syncId, options.sinceMs, pageLimit(options.limit)]);
    return rows.map(toProfileQueueEntry);
  }

  async recordProfileFetches(syncId: string, fetches: readonly ProfileFetch[]): Promise<void> {
    for (const chunk of batches(fetches)) {
      // One statement cannot update a row twice: of a user repeated in one batch the last wins, as row by row.
      await this.#db.query(
        `INSERT INTO profile_fetches (sync_id, user_key, fetched_at_ms, "values")
         SELECT DISTINCT ON (k) $1, k, t, v FROM unnest($2::text[], $3::bigint[], $4::text[]) WITH ORDINALITY AS f(k, t, v, n) ORDER BY k, n DESC
         ON CONFLICT (sync_id, user_key) DO UPDATE SET fetched_at_ms = excluded.fetched_at_ms, "values" = excluded."values"`,
        [
          syncId,
          chunk.map((profile) => requireKey(profile.userKey)),
          chunk.map((profile) => profile.fetchedAtMs),
          chunk.map((profile) => JSON.stringify(profile.values)),
        ],
      );
    }
  }

  async profileFetches(syncId: string, userKeys: readonly string[]): Promise<Map<string, ProfileFetch>> {
    const fetches = new Map<string, ProfileFetch>();
    for (const chunk of batches(userKeys)) {
      const rows = await this.#db.rows<ProfileFetchRow>(
        `SELECT user_key AS "userKey", fetched_at_ms AS "fetchedAtMs", "values" FROM profile_fetches WHERE sync_id = $1 AND user_key = ANY($2::text[])`,
        [syncId, chunk],
      );
      for (const row of rows) fetches.set(row.userKey, toProfileFetch(row));
    }
    return fetches;
  }

  profileFetchCounts(syncId: string, options: { sinceMs: number; fetchedSinceMs: number }): Promise<ProfileFetchCounts> {
    return this.#db.one<ProfileFetchCounts>(PROFILE_FETCH_COUNTS, [syncId, options.sinceMs, options.fetchedSinceMs]);
  }

  async knownDeviceIds(amplitudeIds: readonly string[]): Promise<Map<string, string | null>> {
    const known = new Map<string, string | null>();
    for (const chunk of batches(amplitudeIds)) {
      const rows = await this.#db.rows<AmplitudeDeviceId>(
        'SELECT amplitude_id AS "amplitudeId", device_id AS "deviceId" FROM amplitude_device_ids WHERE amplitude_id = ANY($1::text[])',
        [chunk],
      );
      for (const { amplitudeId, deviceId } of rows) known.set(amplitudeId, deviceId);
    }
    return known;
  }

  async recordDeviceIds(entries: readonly AmplitudeDeviceId[]): Promise<void> {
    for (const chunk of batches(entries)) {
      await this.#db.query(
        `INSERT INTO amplitude_device_ids (amplitude_id, device_id, looked_up_at)
         SELECT DISTINCT ON (a) a, d, now() FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS t(a, d, n) ORDER BY a, n DESC
         ON CONFLICT (amplitude_id) DO UPDATE SET device_id = excluded.device_id, looked_up_at = excluded.looked_up_at`,
        [chunk.map((entry) => entry.amplitudeId), chunk.map((entry) => entry.deviceId)],
      );
    }
  }
}
