/**
 * Erasure and the suppression list on PostgreSQL; the same contract as src/store/privacy/sqlite.ts. A deleted row
 * stays in its page as a dead tuple until VACUUM: `clearFreedSpace` vacuums every table that holds user data.
 */
import { batches, type PostgresDb } from '../postgres-db.js';
import type { AmplitudeIdentity, Erasure, ErasureIdentities, ErasureOutcome, Privacy, SuppressionSummary } from '../store.js';
import {
  aliasKeysSql,
  ERASED_STAGED_EVENT_LISTS,
  erasedFailuresSql,
  erasedStagedEventsSql,
  erasureLists,
  erasureStatements,
  IDENTITY_TIME_STEP_MS,
  POSTGRES_ERASURE,
  rawIdsOf,
  RECOUNT_SUPPRESSION_KEYS,
  SUPPRESSION_SUMMARY,
  TABLES_WITH_USER_DATA,
  type ErasureLists,
} from './erasure-sql.js';
import { expandIdentities, identitiesJson, parseIdentities, type IdentityRow } from './identities.js';

const ALIAS_KEYS = aliasKeysSql(POSTGRES_ERASURE);
const ERASED_STAGED_EVENTS = erasedStagedEventsSql(POSTGRES_ERASURE);
const ERASED_FAILURES = erasedFailuresSql(POSTGRES_ERASURE);
const ERASURE = erasureStatements(POSTGRES_ERASURE);
const RECORD_ERASURE = 'INSERT INTO erasures (erasure_key, at_ms, source, summary) VALUES ($1, $2, $3, $4)';

export class PostgresPrivacy implements Privacy {
  readonly #db: PostgresDb;

  constructor(db: PostgresDb) {
    this.#db = db;
  }

  async saveErasureRequest(requestId: string, identities: ErasureIdentities, atMs: number): Promise<void> {
    await this.#db.query('INSERT INTO erasure_requests (request_id, identities, at_ms) VALUES ($1, $2, $3)', [
      requestId,
      identitiesJson(identities),
      atMs,
    ]);
  }

  async erasureRequest(requestId: string): Promise<ErasureIdentities | undefined> {
    const [row] = await this.#db.rows<{ identities: string }>('SELECT identities FROM erasure_requests WHERE request_id = $1', [requestId]);
    return row && parseIdentities(row.identities);
  }

  async deleteErasureRequest(requestId: string): Promise<void> {
    await this.#db.query('DELETE FROM erasure_requests WHERE request_id = $1', [requestId]);
  }

  async recordAmplitudeIdentities(identities: readonly AmplitudeIdentity[]): Promise<void> {
    for (const batch of batches(identities)) {
      // Rows locked in key order, so concurrent writers cannot deadlock.
      await this.#db.query(
        `INSERT INTO amplitude_identities AS i (amplitude_id, user_key, last_seen_ms)
         SELECT a, k, max(t) FROM unnest($1::text[], $2::text[], $3::bigint[]) AS u(a, k, t) GROUP BY a, k ORDER BY a, k
         ON CONFLICT (amplitude_id, user_key) DO UPDATE SET last_seen_ms = excluded.last_seen_ms
         WHERE excluded.last_seen_ms > i.last_seen_ms + ${IDENTITY_TIME_STEP_MS}`,
        [batch.map((i) => i.amplitudeId), batch.map((i) => i.userKey), batch.map((i) => i.seenAtMs)],
      );
    }
  }

  identitiesSeenWith(identities: ErasureIdentities): Promise<ErasureIdentities> {
    return expandIdentities(identities, (amplitudeIds, userKeys) =>
      this.#db.rows<IdentityRow>(
        `SELECT amplitude_id AS "amplitudeId", user_key AS "userKey" FROM amplitude_identities
         WHERE amplitude_id = ANY ($1::text[])
            OR amplitude_id = ANY (ARRAY(SELECT amplitude_id FROM amplitude_identities WHERE user_key = ANY ($2::text[])))
         UNION SELECT amplitude_id, 'device_id:' || device_id FROM amplitude_device_ids
         WHERE device_id IS NOT NULL AND amplitude_id = ANY ($1::text[])`,
        [amplitudeIds, userKeys],
      ),
    );
  }

  async pruneAmplitudeIdentities(beforeMs: number, limit: number): Promise<number> {
    const result = await this.#db.query(
      `DELETE FROM amplitude_identities WHERE (amplitude_id, user_key) IN
       (SELECT amplitude_id, user_key FROM amplitude_identities WHERE last_seen_ms < $1 LIMIT $2)`,
      [beforeMs, limit],
    );
    return result.rowCount ?? 0;
  }

  async aliasKeysOf(identities: ErasureIdentities): Promise<string[]> {
    return (await this.#db.rows<{ member_key: string }>(ALIAS_KEYS, [rawIdsOf(identities)])).map((row) => row.member_key);
  }

  eraseUsers(erasure: Erasure): Promise<ErasureOutcome> {
    return this.#db.transaction(async (client): Promise<ErasureOutcome> => {
      // One erasure at a time: two of the same key must not both run, and their rows must not interleave.
      await client.query('LOCK TABLE erasures IN SHARE ROW EXCLUSIVE MODE');
      const recorded = await client.query('SELECT 1 FROM erasures WHERE erasure_key = $1', [erasure.erasureKey]);
      if (recorded.rowCount) return { done: false };
      const aliasKeys = (await client.query<{ member_key: string }>(ALIAS_KEYS, [rawIdsOf(erasure.identities)])).rows.map(
        (row) => row.member_key,
      );
      const lists = erasureLists(erasure.identities, aliasKeys);
      const bind = (names: readonly (keyof ErasureLists)[]) => names.map((name) => lists[name]);
      const removed: Record<string, number> = {};
      const count = (table: string, n: number | null) => (removed[table] = (removed[table] ?? 0) + (n ?? 0));

      const events = await client.query<{ eventKey: string }>(ERASED_STAGED_EVENTS, bind(ERASED_STAGED_EVENT_LISTS));
      for (const { eventKey } of events.rows) {
        const hashed = await client.query("UPDATE sent_events SET event_key = 'erased:' || $1 WHERE event_key = $2", [
          erasure.hashKey(eventKey),
          eventKey,
        ]);
        count('sent_events', hashed.rowCount);
      }
      const failures = await client.query<{ runId: string; memberKey: string }>(ERASED_FAILURES, bind(['keys']));
      for (const { runId, memberKey } of failures.rows) {
        const hashed = await client.query("UPDATE member_failures SET member_key = 'erased:' || $1 WHERE run_id = $2 AND member_key = $3", [
          erasure.hashKey(memberKey),
          runId,
          memberKey,
        ]);
        count('member_failures', hashed.rowCount);
      }
      for (const { table, sql, lists: used } of ERASURE) count(table, (await client.query(sql, bind(used))).rowCount);

      await client.query(
        `INSERT INTO suppressions (id_hash, key_fingerprint, erased_at_ms) SELECT DISTINCT h, $2::text, $3::bigint FROM unnest($1::text[]) AS h
         ON CONFLICT (id_hash) DO UPDATE SET key_fingerprint = excluded.key_fingerprint, erased_at_ms = excluded.erased_at_ms, lifted_at_ms = NULL`,
        [erasure.suppress, erasure.keyFingerprint, erasure.atMs],
      );
      for (const sql of RECOUNT_SUPPRESSION_KEYS) await client.query(sql);
      await client.query(RECORD_ERASURE, [erasure.erasureKey, erasure.atMs, erasure.source, JSON.stringify(removed)]);
      return { done: true, removed };
    });
  }

  async erasuresRecorded(erasureKeys: readonly string[]): Promise<Set<string>> {
    const rows = await this.#db.rows<{ key: string }>('SELECT erasure_key AS key FROM erasures WHERE erasure_key = ANY ($1::text[])', [
      erasureKeys,
    ]);
    return new Set(rows.map((row) => row.key));
  }

  async clearFreedSpace(): Promise<string> {
    await this.#db.query(`VACUUM ${TABLES_WITH_USER_DATA.join(', ')}`);
    return `PostgreSQL: ${TABLES_WITH_USER_DATA.length} tables that hold user data vacuumed`;
  }

  async suppressionSummary(): Promise<SuppressionSummary> {
    const rows = await this.#db.rows<{ fingerprint: string; active: number }>(SUPPRESSION_SUMMARY);
    return { active: rows.reduce((sum, row) => sum + row.active, 0), keyFingerprints: rows.map((row) => row.fingerprint) };
  }

  async suppressedAmong(idHashes: readonly string[]): Promise<Map<string, number>> {
    const suppressed = new Map<string, number>();
    for (const batch of batches(idHashes)) {
      const rows = await this.#db.rows<{ idHash: string; erasedAtMs: number }>(
        `SELECT id_hash AS "idHash", erased_at_ms AS "erasedAtMs" FROM suppressions WHERE lifted_at_ms IS NULL AND id_hash = ANY ($1::text[])`,
        [batch],
      );
      for (const { idHash, erasedAtMs } of rows) suppressed.set(idHash, erasedAtMs);
    }
    return suppressed;
  }

  liftSuppressions(idHashes: readonly string[], record: { erasureKey: string; source: string; atMs: number }): Promise<number> {
    return this.#db.transaction(async (client) => {
      await client.query('LOCK TABLE erasures IN SHARE ROW EXCLUSIVE MODE');
      const lifted =
        (
          await client.query('UPDATE suppressions SET lifted_at_ms = $1 WHERE lifted_at_ms IS NULL AND id_hash = ANY ($2::text[])', [
            record.atMs,
            idHashes,
          ])
        ).rowCount ?? 0;
      for (const sql of RECOUNT_SUPPRESSION_KEYS) await client.query(sql);
      await client.query(RECORD_ERASURE, [record.erasureKey, record.atMs, record.source, JSON.stringify({ suppressionsLifted: lifted })]);
      return lifted;
    });
  }
}
