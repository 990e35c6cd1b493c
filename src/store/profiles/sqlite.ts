/**
 * Amplitude profiles kept for Connected Content (and every other reader), and warm-up audiences. On SQLite; the same
 * contract as src/store/profiles/postgres.ts.
 */
import type Database from 'better-sqlite3';
import { type SqliteDb } from '../sqlite-db.js';
import {
  audiencePageSql,
  chunks,
  FIRST_PAGE,
  pageLimit,
  requireKey,
  toCachedProfile,
  yieldToEventLoop,
  type CachedProfileRow,
} from '../shared.js';
import type { AudienceCursor, CachedProfile, ProfileAudienceCounts, ProfileCache } from '../store.js';

/** Audience rows deleted per statement, so a large audience never holds the event loop. */
const DELETE_CHUNK_ROWS = 5_000;

export class SqliteProfiles implements ProfileCache {
  readonly #db: SqliteDb;
  readonly #sql;

  constructor(db: SqliteDb) {
    this.#db = db;
    this.#sql = prepareStatements(db.handle);
  }

  cachedProfile(userKey: string): Promise<CachedProfile | undefined> {
    return this.#db.settle(() => {
      const row = this.#sql.cachedProfile.get(userKey);
      return row && toCachedProfile(row);
    });
  }

  async keepProfiles(profiles: readonly CachedProfile[]): Promise<void> {
    if (profiles.length === 0) return;
    await this.#db.inTransactions(profiles, (chunk) => {
      for (const profile of chunk)
        this.#sql.keepProfile.run(requireKey(profile.userKey), profile.fetchedAtMs, profile.userData && JSON.stringify(profile.userData));
    });
  }

  async addToProfileAudience(audienceId: string, userKeys: readonly string[]): Promise<void> {
    if (userKeys.length === 0) return;
    for (const chunk of chunks(userKeys)) {
      await this.#db.settle(() => this.#sql.addToAudience.run(audienceId, JSON.stringify(chunk.map(requireKey))));
      await yieldToEventLoop();
    }
  }

  profileAudiencePage(
    audienceId: string,
    options: { after?: AudienceCursor; limit: number; freshSinceMs: number },
  ): Promise<{ due: string[]; next?: AudienceCursor }> {
    const limit = pageLimit(options.limit);
    const after = options.after ?? FIRST_PAGE;
    return this.#db.settle(() => {
      const rows = this.#sql.audiencePage.all({
        audienceId,
        lastEventMs: after.lastEventMs,
        seq: after.seq,
        freshSinceMs: options.freshSinceMs,
        limit,
      });
      const last = rows.at(-1);
      return {
        due: rows.filter((row) => !row.fresh).map((row) => row.userKey),
        ...(rows.length === limit && last && { next: { lastEventMs: last.lastEventMs, seq: last.seq } }),
      };
    });
  }

  profileAudienceCounts(audienceId: string, freshSinceMs: number): Promise<ProfileAudienceCounts> {
    return this.#db.settle(() => this.#sql.audienceCounts.get({ audienceId, freshSinceMs })!);
  }

  async deleteProfileAudience(audienceId: string): Promise<void> {
    while ((await this.#db.settle(() => this.#sql.deleteAudienceChunk.run(audienceId, DELETE_CHUNK_ROWS))).changes > 0)
      await yieldToEventLoop();
  }
}

function prepareStatements(db: Database.Database) {
  return {
    cachedProfile: db.prepare<[string], CachedProfileRow>(
      'SELECT user_key AS userKey, fetched_at_ms AS fetchedAtMs, user_data AS userData FROM amplitude_profiles WHERE user_key = ?',
    ),
    keepProfile: db.prepare<[string, number, string | null]>(
      `INSERT INTO amplitude_profiles (user_key, fetched_at_ms, user_data) VALUES (?, ?, ?)
       ON CONFLICT (user_key) DO UPDATE SET fetched_at_ms = excluded.fetched_at_ms, user_data = excluded.user_data
       WHERE excluded.fetched_at_ms >= amplitude_profiles.fetched_at_ms`,
    ),
    // `WHERE true` tells SQLite's parser that ON CONFLICT belongs to the INSERT, not to a join.
    addToAudience: db.prepare<[string, string]>(
      `INSERT INTO profile_audiences (audience_id, user_key, last_event_ms)
       SELECT ?, j.value, coalesce((SELECT a.last_event_ms FROM user_activity a WHERE a.user_key = j.value), -1) FROM json_each(?) j WHERE true
       ON CONFLICT DO NOTHING`,
    ),
    audiencePage: db.prepare<
      { audienceId: string; lastEventMs: number; seq: number; freshSinceMs: number; limit: number },
      { userKey: string; lastEventMs: number; seq: number; fresh: number }
    >(
      audiencePageSql({
        audienceId: '@audienceId',
        lastEventMs: '@lastEventMs',
        seq: '@seq',
        freshSinceMs: '@freshSinceMs',
        limit: '@limit',
      }),
    ),
    audienceCounts: db.prepare<{ audienceId: string; freshSinceMs: number }, ProfileAudienceCounts>(
      `SELECT count(*) AS members,
         coalesce(sum(CASE WHEN p.fetched_at_ms >= @freshSinceMs THEN 1 ELSE 0 END), 0) AS fresh,
         coalesce(sum(CASE WHEN p.fetched_at_ms >= @freshSinceMs AND p.user_data IS NULL THEN 1 ELSE 0 END), 0) AS "unknown"
       FROM profile_audiences a LEFT JOIN amplitude_profiles p ON p.user_key = a.user_key WHERE a.audience_id = @audienceId`,
    ),
    deleteAudienceChunk: db.prepare<[string, number]>(
      `DELETE FROM profile_audiences WHERE seq IN (SELECT seq FROM profile_audiences WHERE audience_id = ? LIMIT ?)`,
    ),
  };
}
