/**
 * Amplitude profiles kept for Connected Content (and every other reader), and warm-up audiences. On PostgreSQL; the
 * same contract as src/store/profiles/sqlite.ts.
 */
import { batches, type PostgresDb } from '../postgres-db.js';
import { audiencePageSql, FIRST_PAGE, pageLimit, requireKey, toCachedProfile, type CachedProfileRow } from '../shared.js';
import type { AudienceCursor, CachedProfile, ProfileAudienceCounts, ProfileCache } from '../store.js';

const DELETE_CHUNK_ROWS = 5_000;

const AUDIENCE_PAGE = audiencePageSql({ audienceId: '$1', lastEventMs: '$2', seq: '$3', freshSinceMs: '$4', limit: '$5' });

export class PostgresProfiles implements ProfileCache {
  readonly #db: PostgresDb;

  constructor(db: PostgresDb) {
    this.#db = db;
  }

  async cachedProfile(userKey: string): Promise<CachedProfile | undefined> {
    const [row] = await this.#db.rows<CachedProfileRow>(
      'SELECT user_key AS "userKey", fetched_at_ms AS "fetchedAtMs", user_data AS "userData" FROM amplitude_profiles WHERE user_key = $1',
      [userKey],
    );
    return row && toCachedProfile(row);
  }

  async keepProfiles(profiles: readonly CachedProfile[]): Promise<void> {
    for (const chunk of batches(profiles)) {
      // One statement cannot update a row twice: of a user repeated in one batch the latest fetch wins.
      await this.#db.query(
        `INSERT INTO amplitude_profiles AS p (user_key, fetched_at_ms, user_data)
         SELECT DISTINCT ON (k) k, t, d FROM unnest($1::text[], $2::bigint[], $3::text[]) AS f(k, t, d) ORDER BY k, t DESC
         ON CONFLICT (user_key) DO UPDATE SET fetched_at_ms = excluded.fetched_at_ms, user_data = excluded.user_data
         WHERE excluded.fetched_at_ms >= p.fetched_at_ms`,
        [
          chunk.map((profile) => requireKey(profile.userKey)),
          chunk.map((profile) => profile.fetchedAtMs),
          chunk.map((profile) => profile.userData && JSON.stringify(profile.userData)),
        ],
      );
    }
  }

  async addToProfileAudience(audienceId: string, userKeys: readonly string[]): Promise<void> {
    for (const chunk of batches(userKeys)) {
      await this.#db.query(
        `INSERT INTO profile_audiences (audience_id, user_key, last_event_ms)
         SELECT $1, k, coalesce(a.last_event_ms, -1) FROM unnest($2::text[]) AS u(k) LEFT JOIN user_activity a ON a.user_key = u.k
         ON CONFLICT DO NOTHING`,
        [audienceId, chunk.map(requireKey)],
      );
    }
  }

  async profileAudiencePage(
    audienceId: string,
    options: { after?: AudienceCursor; limit: number; freshSinceMs: number },
  ): Promise<{ due: string[]; next?: AudienceCursor }> {
    const limit = pageLimit(options.limit);
    const after = options.after ?? FIRST_PAGE;
    const rows = await this.#db.rows<{ userKey: string; lastEventMs: number; seq: number; fresh: boolean }>(AUDIENCE_PAGE, [
      audienceId,
      after.lastEventMs,
      after.seq,
      options.freshSinceMs,
      limit,
    ]);
    const last = rows.at(-1);
    return {
      due: rows.filter((row) => !row.fresh).map((row) => row.userKey),
      ...(rows.length === limit && last && { next: { lastEventMs: last.lastEventMs, seq: last.seq } }),
    };
  }

  async profileAudienceCounts(audienceId: string, freshSinceMs: number): Promise<ProfileAudienceCounts> {
    return this.#db.one<ProfileAudienceCounts>(
      `SELECT count(*) AS members,
         count(*) FILTER (WHERE p.fetched_at_ms >= $2) AS fresh,
         count(*) FILTER (WHERE p.fetched_at_ms >= $2 AND p.user_data IS NULL) AS "unknown"
       FROM profile_audiences a LEFT JOIN amplitude_profiles p ON p.user_key = a.user_key WHERE a.audience_id = $1`,
      [audienceId, freshSinceMs],
    );
  }

  async deleteProfileAudience(audienceId: string): Promise<void> {
    const deleteChunk = `DELETE FROM profile_audiences WHERE seq = ANY (ARRAY(SELECT seq FROM profile_audiences WHERE audience_id = $1 LIMIT $2))`;
    while (((await this.#db.query(deleteChunk, [audienceId, DELETE_CHUNK_ROWS])).rowCount ?? 0) > 0);
  }
}
