/**
 * Erasure and the suppression list on SQLite; the same contract as src/store/privacy/postgres.ts. Deleted rows
 * linger in free pages and WAL frames until overwritten: `clearFreedSpace` rewrites the file and empties the WAL.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type Database from 'better-sqlite3';
import { numbered } from '../dialect.js';
import type { SqliteDb } from '../sqlite-db.js';
import { chunks } from '../shared.js';
import type { AmplitudeIdentity, Erasure, ErasureIdentities, ErasureOutcome, Privacy, SuppressionSummary } from '../store.js';
import {
  aliasKeysSql,
  ERASED_STAGED_EVENT_LISTS,
  erasedFailuresSql,
  erasedStagedEventsSql,
  erasureLists,
  erasureStatements,
  rawIdsOf,
  IDENTITY_TIME_STEP_MS,
  RECOUNT_SUPPRESSION_KEYS,
  SQLITE_ERASURE,
  SUPPRESSION_SUMMARY,
  type ErasureLists,
} from './erasure-sql.js';
import { expandIdentities, identitiesJson, parseIdentities, type IdentityRow } from './identities.js';

/** How often a WAL checkpoint that readers keep from finishing is tried again. */
const CHECKPOINT_ATTEMPTS = 20;

export class SqlitePrivacy implements Privacy {
  readonly #db: SqliteDb;
  readonly #sql;

  constructor(db: SqliteDb) {
    this.#db = db;
    this.#sql = prepareStatements(db.handle);
  }

  saveErasureRequest(requestId: string, identities: ErasureIdentities, atMs: number): Promise<void> {
    return this.#db.settle(() => void this.#sql.saveRequest.run(requestId, identitiesJson(identities), atMs));
  }

  erasureRequest(requestId: string): Promise<ErasureIdentities | undefined> {
    return this.#db.settle(() => {
      const row = this.#sql.request.get(requestId);
      return row && parseIdentities(row.identities);
    });
  }

  deleteErasureRequest(requestId: string): Promise<void> {
    return this.#db.settle(() => void this.#sql.deleteRequest.run(requestId));
  }

  async recordAmplitudeIdentities(identities: readonly AmplitudeIdentity[]): Promise<void> {
    await this.#db.inTransactions(identities, (chunk) => {
      for (const { amplitudeId, userKey, seenAtMs } of chunk) this.#sql.upsertIdentity.run(amplitudeId, userKey, seenAtMs);
    });
  }

  identitiesSeenWith(identities: ErasureIdentities): Promise<ErasureIdentities> {
    return expandIdentities(identities, (amplitudeIds, userKeys) =>
      this.#db.settle(() => this.#sql.identitiesSeen.all(numbered([JSON.stringify(amplitudeIds), JSON.stringify(userKeys)]))),
    );
  }

  pruneAmplitudeIdentities(beforeMs: number, limit: number): Promise<number> {
    return this.#db.settle(() => this.#sql.pruneIdentities.run(beforeMs, limit).changes);
  }

  aliasKeysOf(identities: ErasureIdentities): Promise<string[]> {
    return this.#db.settle(() => this.#aliasKeys(identities));
  }

  #aliasKeys(identities: ErasureIdentities): string[] {
    return this.#sql.aliasKeys.pluck().all(numbered([JSON.stringify(rawIdsOf(identities))]));
  }

  eraseUsers(erasure: Erasure): Promise<ErasureOutcome> {
    const erase = this.#db.handle.transaction((): ErasureOutcome => {
      if (this.#sql.erasureRecorded.get(JSON.stringify([erasure.erasureKey]))) return { done: false };
      const lists = erasureLists(erasure.identities, this.#aliasKeys(erasure.identities));
      const bind = (names: readonly (keyof ErasureLists)[]) => numbered(names.map((name) => JSON.stringify(lists[name])));
      const removed: Record<string, number> = {};
      const count = (table: string, n: number) => (removed[table] = (removed[table] ?? 0) + n);

      // Ledgers keep counting, under a hash: sent events (the users' staged ones) and member failures.
      for (const { eventKey } of this.#sql.erasedStagedEvents.all(bind(ERASED_STAGED_EVENT_LISTS)))
        count('sent_events', this.#sql.hashSentEvent.run(erasure.hashKey(eventKey), eventKey).changes);
      for (const { runId, memberKey } of this.#sql.erasedFailures.all(bind(['keys'])))
        count('member_failures', this.#sql.hashFailure.run(erasure.hashKey(memberKey), runId, memberKey).changes);
      for (const { table, statement, lists: used } of this.#sql.erasure) count(table, statement.run(bind(used)).changes);

      for (const idHash of erasure.suppress) this.#sql.suppress.run(idHash, erasure.keyFingerprint, erasure.atMs);
      for (const statement of this.#sql.recountKeys) statement.run();
      this.#sql.recordErasure.run(erasure.erasureKey, erasure.atMs, erasure.source, JSON.stringify(removed));
      return { done: true, removed };
    });
    return this.#db.settle(() => erase.immediate());
  }

  erasuresRecorded(erasureKeys: readonly string[]): Promise<Set<string>> {
    return this.#db.settle(() => new Set(this.#sql.erasureRecorded.pluck().all(JSON.stringify(erasureKeys))));
  }

  async clearFreedSpace(): Promise<string> {
    await this.#db.settle(() => this.#db.handle.exec('VACUUM'));
    // Another process reading an older snapshot keeps WAL frames in use: wait for it to move on.
    for (let attempt = 1; ; attempt++) {
      const [result] = await this.#db.settle(() => this.#db.handle.pragma('wal_checkpoint(TRUNCATE)') as Array<{ busy: number }>);
      if (result?.busy === 0) return 'SQLite: the file rewritten (VACUUM) and its write-ahead log emptied';
      if (attempt === CHECKPOINT_ATTEMPTS)
        return 'SQLite: the file rewritten (VACUUM); its write-ahead log is still in use by another process and is emptied at its next checkpoint';
      await sleep(100 * attempt);
    }
  }

  suppressionSummary(): Promise<SuppressionSummary> {
    return this.#db.settle(() => {
      const rows = this.#sql.summary.all();
      return { active: rows.reduce((sum, row) => sum + row.active, 0), keyFingerprints: rows.map((row) => row.fingerprint) };
    });
  }

  async suppressedAmong(idHashes: readonly string[]): Promise<Map<string, number>> {
    const suppressed = new Map<string, number>();
    for (const chunk of chunks(idHashes)) {
      const rows = await this.#db.settle(() => this.#sql.suppressedAmong.all(JSON.stringify(chunk)));
      for (const { idHash, erasedAtMs } of rows) suppressed.set(idHash, erasedAtMs);
    }
    return suppressed;
  }

  liftSuppressions(idHashes: readonly string[], record: { erasureKey: string; source: string; atMs: number }): Promise<number> {
    const lift = this.#db.handle.transaction(() => {
      const lifted = this.#sql.lift.run(record.atMs, JSON.stringify(idHashes)).changes;
      for (const statement of this.#sql.recountKeys) statement.run();
      this.#sql.recordErasure.run(record.erasureKey, record.atMs, record.source, JSON.stringify({ suppressionsLifted: lifted }));
      return lifted;
    });
    return this.#db.settle(() => lift.immediate());
  }
}

function prepareStatements(db: Database.Database) {
  return {
    saveRequest: db.prepare<[string, string, number]>('INSERT INTO erasure_requests (request_id, identities, at_ms) VALUES (?, ?, ?)'),
    request: db.prepare<[string], { identities: string }>('SELECT identities FROM erasure_requests WHERE request_id = ?'),
    deleteRequest: db.prepare<[string]>('DELETE FROM erasure_requests WHERE request_id = ?'),
    upsertIdentity: db.prepare<[string, string, number]>(
      `INSERT INTO amplitude_identities (amplitude_id, user_key, last_seen_ms) VALUES (?, ?, ?)
       ON CONFLICT (amplitude_id, user_key) DO UPDATE SET last_seen_ms = excluded.last_seen_ms
       WHERE excluded.last_seen_ms > last_seen_ms + ${IDENTITY_TIME_STEP_MS}`,
    ),
    identitiesSeen: db.prepare<Record<number, unknown>, IdentityRow>(
      `SELECT amplitude_id AS amplitudeId, user_key AS userKey FROM amplitude_identities
       WHERE amplitude_id IN (SELECT value FROM json_each(?1))
          OR amplitude_id IN (SELECT amplitude_id FROM amplitude_identities WHERE user_key IN (SELECT value FROM json_each(?2)))
       UNION SELECT amplitude_id, 'device_id:' || device_id FROM amplitude_device_ids
       WHERE device_id IS NOT NULL AND amplitude_id IN (SELECT value FROM json_each(?1))`,
    ),
    pruneIdentities: db.prepare<[number, number]>(
      `DELETE FROM amplitude_identities WHERE (amplitude_id, user_key) IN
       (SELECT amplitude_id, user_key FROM amplitude_identities WHERE last_seen_ms < ? LIMIT ?)`,
    ),
    aliasKeys: db.prepare<Record<number, unknown>, string>(aliasKeysSql(SQLITE_ERASURE)),
    erasedStagedEvents: db.prepare<Record<number, unknown>, { runId: string; eventKey: string }>(erasedStagedEventsSql(SQLITE_ERASURE)),
    erasedFailures: db.prepare<Record<number, unknown>, { runId: string; memberKey: string }>(erasedFailuresSql(SQLITE_ERASURE)),
    hashSentEvent: db.prepare<[string, string]>("UPDATE sent_events SET event_key = 'erased:' || ? WHERE event_key = ?"),
    hashFailure: db.prepare<[string, string, string]>(
      "UPDATE member_failures SET member_key = 'erased:' || ? WHERE run_id = ? AND member_key = ?",
    ),
    erasure: erasureStatements(SQLITE_ERASURE).map(({ table, sql, lists }) => ({
      table,
      lists,
      statement: db.prepare<Record<number, unknown>>(sql),
    })),
    suppress: db.prepare<[string, string, number]>(
      `INSERT INTO suppressions (id_hash, key_fingerprint, erased_at_ms) VALUES (?, ?, ?)
       ON CONFLICT (id_hash) DO UPDATE SET key_fingerprint = excluded.key_fingerprint, erased_at_ms = excluded.erased_at_ms, lifted_at_ms = NULL`,
    ),
    recordErasure: db.prepare<[string, number, string, string]>(
      'INSERT INTO erasures (erasure_key, at_ms, source, summary) VALUES (?, ?, ?, ?)',
    ),
    erasureRecorded: db.prepare<[string], string>('SELECT erasure_key FROM erasures WHERE erasure_key IN (SELECT value FROM json_each(?))'),
    summary: db.prepare<[], { fingerprint: string; active: number }>(SUPPRESSION_SUMMARY),
    recountKeys: RECOUNT_SUPPRESSION_KEYS.map((sql) => db.prepare(sql)),
    suppressedAmong: db.prepare<[string], { idHash: string; erasedAtMs: number }>(
      `SELECT id_hash AS idHash, erased_at_ms AS erasedAtMs FROM suppressions
       WHERE lifted_at_ms IS NULL AND id_hash IN (SELECT value FROM json_each(?))`,
    ),
    lift: db.prepare<[number, string]>(
      'UPDATE suppressions SET lifted_at_ms = ? WHERE lifted_at_ms IS NULL AND id_hash IN (SELECT value FROM json_each(?))',
    ),
  };
}
