/**
 * The activity index: users seen in the last 90 days, the profiles fetched for them, the device ids they were seen
 * with, and the events claimed for sending. On SQLite; the same contract as src/store/activity-index/postgres.ts.
 */
import type Database from 'better-sqlite3';
import { type SqliteDb } from '../sqlite-db.js';
import {
  FIRST_KEY,
  chunks,
  pageLimit,
  profileFetchCountsSql,
  profileFetchQueueSql,
  requireKey,
  toKeyedPage,
  toProfileFetch,
  toProfileQueueEntry,
  toUserActivity,
  USER_TABLES,
  yieldToEventLoop,
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

/** A run's claims of requests named with a prefix (the range [prefix, prefix + U+FFFF)) that have no recorded answer. */
const UNCONFIRMED_CLAIMS = `WHERE run_id = ? AND request_key >= ? AND request_key < ?
  AND NOT EXISTS (SELECT 1 FROM request_outcomes o WHERE o.run_id = sent_events.run_id AND o.request_key = sent_events.request_key AND o.completed = 1)`;

/** A user's latest event by event time wins. */
export const UPSERT_ACTIVITY = `INSERT INTO user_activity (user_key, last_event_ms, properties) VALUES (?, ?, ?)
  ON CONFLICT (user_key) DO UPDATE SET last_event_ms = excluded.last_event_ms, properties = excluded.properties
  WHERE excluded.last_event_ms > user_activity.last_event_ms`;

export class SqliteActivityIndex implements ActivityIndex {
  readonly #db: SqliteDb;
  readonly #sql;

  constructor(db: SqliteDb) {
    this.#db = db;
    this.#sql = prepareStatements(db.handle);
  }

  async recordActivity(users: readonly UserActivity[]): Promise<void> {
    if (users.length === 0) return;
    await this.#db.inTransactions(users, (batch) => {
      for (const user of batch) this.#sql.upsertActivity.run(requireKey(user.userKey), user.lastEventMs, JSON.stringify(user.properties));
    });
  }

  userActivities(userKeys: readonly string[]): Promise<Map<string, UserActivity>> {
    return this.#db.settle(
      () => new Map(this.#sql.userActivities.all(JSON.stringify(userKeys)).map((row) => [row.userKey, toUserActivity(row)])),
    );
  }

  claimEvents(claims: readonly EventClaim[]): Promise<string[][]> {
    const claim = this.#db.handle.transaction(() =>
      claims.map(({ runId, requestKey, eventKeys, nowMs }) =>
        eventKeys.filter((key) => this.#sql.claimEvent.run(requireKey(key), runId, requestKey, nowMs).changes === 1),
      ),
    );
    return this.#db.settle(() => claim.immediate());
  }

  releaseEventClaims(runId: string, requestKey: string): Promise<void> {
    return this.#db.settle(() => void this.#sql.releaseEventClaims.run(runId, requestKey));
  }

  settleUnconfirmedClaims(runId: string, keyPrefix: string, how: 'release' | 'keep'): Promise<number> {
    // Keys are compared byte-wise: every key with the prefix sorts in [prefix, prefix + U+FFFF).
    const statement = how === 'release' ? this.#sql.releaseUnconfirmedClaims : this.#sql.keepUnconfirmedClaims;
    return this.#db.settle(() => statement.run(runId, keyPrefix, `${keyPrefix}\uffff`).changes);
  }

  unconfirmedEventCount(runId: string): Promise<number> {
    return this.#db.settle(() => this.#sql.unconfirmedEventCount.get(runId)?.count ?? 0);
  }

  async activeUsers(options: PageOptions & { sinceMs: number }): Promise<Page<UserActivity>> {
    const limit = pageLimit(options.limit);
    const rows = this.#sql.activeUsers.all(options.afterKey ?? FIRST_KEY, options.sinceMs, limit);
    await yieldToEventLoop();
    return toKeyedPage(rows.map(toUserActivity), limit, (user) => user.userKey);
  }

  pruneInactiveUsers(beforeMs: number, limit: number): Promise<number> {
    const prune = this.#db.handle.transaction((): number => {
      const userKeys = JSON.stringify(this.#sql.inactiveUsers.all(beforeMs, pageLimit(limit)).map((user) => user.userKey));
      for (const deleteUsersRows of this.#sql.deleteUsersRows) deleteUsersRows.run(userKeys);
      return this.#sql.deleteActivity.run(userKeys).changes;
    });
    // IMMEDIATE: the users read are deleted under the same write lock.
    return this.#db.settle(() => prune.immediate());
  }

  pruneSentEvents(beforeMs: number, limit: number): Promise<number> {
    return this.#db.settle(() => this.#sql.pruneSentEvents.run(beforeMs, pageLimit(limit)).changes);
  }

  async profileFetchQueue(syncId: string, options: { sinceMs: number; limit: number }): Promise<ProfileQueueEntry[]> {
    const rows = this.#sql.profileFetchQueue.all({ syncId, sinceMs: options.sinceMs, limit: pageLimit(options.limit) });
    await yieldToEventLoop();
    return rows.map(toProfileQueueEntry);
  }

  async recordProfileFetches(syncId: string, fetches: readonly ProfileFetch[]): Promise<void> {
    await this.#db.inTransactions(fetches, (chunk) => {
      for (const profile of chunk)
        this.#sql.upsertProfileFetch.run(syncId, requireKey(profile.userKey), profile.fetchedAtMs, JSON.stringify(profile.values));
    });
  }

  async profileFetches(syncId: string, userKeys: readonly string[]): Promise<Map<string, ProfileFetch>> {
    const fetches = new Map<string, ProfileFetch>();
    for (const chunk of chunks(userKeys)) {
      for (const row of this.#sql.profileFetches.all(syncId, JSON.stringify(chunk))) fetches.set(row.userKey, toProfileFetch(row));
      await yieldToEventLoop();
    }
    return fetches;
  }

  profileFetchCounts(syncId: string, options: { sinceMs: number; fetchedSinceMs: number }): Promise<ProfileFetchCounts> {
    return this.#db.settle(() => this.#sql.profileFetchCounts.get({ syncId, ...options })!);
  }

  async knownDeviceIds(amplitudeIds: readonly string[]): Promise<Map<string, string | null>> {
    const known = new Map<string, string | null>();
    for (const chunk of chunks(amplitudeIds)) {
      for (const { amplitudeId, deviceId } of this.#sql.knownDeviceIds.all(JSON.stringify(chunk))) known.set(amplitudeId, deviceId);
      await yieldToEventLoop();
    }
    return known;
  }

  async recordDeviceIds(entries: readonly AmplitudeDeviceId[]): Promise<void> {
    const lookedUpAt = new Date().toISOString();
    await this.#db.inTransactions(entries, (chunk) => {
      for (const { amplitudeId, deviceId } of chunk) this.#sql.upsertDeviceId.run(amplitudeId, deviceId, lookedUpAt);
    });
  }
}

function prepareStatements(db: Database.Database) {
  return {
    userActivities: db.prepare<[string], { userKey: string; lastEventMs: number; properties: string }>(
      `SELECT user_key AS userKey, last_event_ms AS lastEventMs, properties FROM user_activity
       WHERE user_key IN (SELECT value FROM json_each(?))`,
    ),
    releaseUnconfirmedClaims: db.prepare<[string, string, string]>(`DELETE FROM sent_events ${UNCONFIRMED_CLAIMS}`),
    keepUnconfirmedClaims: db.prepare<[string, string, string]>(
      `UPDATE sent_events SET run_id = run_id || '#unconfirmed' ${UNCONFIRMED_CLAIMS}`,
    ),
    upsertActivity: db.prepare<[string, number, string]>(UPSERT_ACTIVITY),
    activeUsers: db.prepare<[string, number, number], { userKey: string; lastEventMs: number; properties: string }>(
      `SELECT user_key AS userKey, last_event_ms AS lastEventMs, properties FROM user_activity
       WHERE user_key > ? AND last_event_ms >= ? ORDER BY user_key LIMIT ?`,
    ),
    claimEvent: db.prepare<[string, string, string, number]>(
      'INSERT INTO sent_events (event_key, run_id, request_key, sent_at_ms) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING',
    ),
    deleteActivity: db.prepare<[string]>('DELETE FROM user_activity WHERE user_key IN (SELECT value FROM json_each(?))'),
    // The users' rows in every scope and sync, through each table's index on the user's key.
    deleteUsersRows: USER_TABLES.map(({ table, key }) =>
      db.prepare<[string]>(`DELETE FROM ${table} WHERE ${key} IN (SELECT value FROM json_each(?))`),
    ),
    inactiveUsers: db.prepare<[number, number], { userKey: string }>(
      'SELECT user_key AS userKey FROM user_activity WHERE last_event_ms < ? LIMIT ?',
    ),
    knownDeviceIds: db.prepare<[string], AmplitudeDeviceId>(
      'SELECT amplitude_id AS amplitudeId, device_id AS deviceId FROM amplitude_device_ids WHERE amplitude_id IN (SELECT value FROM json_each(?))',
    ),
    profileFetchCounts: db.prepare<{ syncId: string; sinceMs: number; fetchedSinceMs: number }, ProfileFetchCounts>(
      profileFetchCountsSql({ syncId: '@syncId', sinceMs: '@sinceMs', fetchedSinceMs: '@fetchedSinceMs' }),
    ),
    profileFetchQueue: db.prepare<{ syncId: string; sinceMs: number; limit: number }, ProfileQueueRow>(
      profileFetchQueueSql({ syncId: '@syncId', sinceMs: '@sinceMs', limit: '@limit' }),
    ),
    profileFetches: db.prepare<[string, string], ProfileFetchRow>(
      `SELECT user_key AS userKey, fetched_at_ms AS fetchedAtMs, "values" FROM profile_fetches
       WHERE sync_id = ? AND user_key IN (SELECT value FROM json_each(?))`,
    ),
    pruneSentEvents: db.prepare<[number, number]>(
      'DELETE FROM sent_events WHERE event_key IN (SELECT event_key FROM sent_events WHERE sent_at_ms < ? LIMIT ?)',
    ),
    releaseEventClaims: db.prepare<[string, string]>('DELETE FROM sent_events WHERE run_id = ? AND request_key = ?'),
    unconfirmedEventCount: db.prepare<[string], { count: number }>(
      `SELECT count(*) AS count FROM sent_events e WHERE e.run_id = ?
       AND NOT EXISTS (SELECT 1 FROM request_outcomes o WHERE o.run_id = e.run_id AND o.request_key = e.request_key AND o.completed = 1)`,
    ),
    upsertDeviceId: db.prepare<[string, string | null, string]>(
      `INSERT INTO amplitude_device_ids (amplitude_id, device_id, looked_up_at) VALUES (?, ?, ?)
       ON CONFLICT (amplitude_id) DO UPDATE SET device_id = excluded.device_id, looked_up_at = excluded.looked_up_at`,
    ),
    upsertProfileFetch: db.prepare<[string, string, number, string]>(
      `INSERT INTO profile_fetches (sync_id, user_key, fetched_at_ms, "values") VALUES (?, ?, ?, ?)
       ON CONFLICT (sync_id, user_key) DO UPDATE SET fetched_at_ms = excluded.fetched_at_ms, "values" = excluded."values"`,
    ),
  };
}
