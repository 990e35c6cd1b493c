/** Alias identification on PostgreSQL; the same contract as src/store/aliases/sqlite.ts. */
import { POSTGRES_DIALECT } from '../dialect.js';
import { batches, type PostgresDb } from '../postgres-db.js';
import type { AliasIdentification, AliasIdentities, AliasToIdentify, BrazeAliasRef } from '../store.js';
import { moveAliasKeySql, RECORD_IDENTIFICATION } from './sql.js';

const MOVE_ALIAS_KEY = moveAliasKeySql(POSTGRES_DIALECT);
const RECORD = RECORD_IDENTIFICATION(POSTGRES_DIALECT);

export class PostgresAliases implements AliasIdentities {
  readonly #db: PostgresDb;

  constructor(db: PostgresDb) {
    this.#db = db;
  }

  async recordAliasesWritten(aliases: readonly BrazeAliasRef[], atMs: number): Promise<void> {
    for (const batch of batches(aliases)) {
      await this.#db.query(
        `INSERT INTO braze_aliases (alias_name, alias_label, state, updated_at_ms)
         SELECT DISTINCT n, l, 'written', $3::bigint FROM unnest($1::text[], $2::text[]) AS a(n, l) ORDER BY n, l
         ON CONFLICT DO NOTHING`,
        [batch.map((alias) => alias.aliasName), batch.map((alias) => alias.aliasLabel), atMs],
      );
    }
  }

  async markAliasesToIdentify(links: readonly { aliasName: string; externalId: string }[], atMs: number): Promise<number> {
    // No alias ever written (the common case: syncs that address identified users only): nothing to look up.
    if (links.length === 0 || (await this.#db.rows('SELECT 1 FROM braze_aliases LIMIT 1')).length === 0) return 0;
    let marked = 0;
    for (const batch of batches(links)) {
      // Of a name repeated in the batch (a shared device), the first external id wins, as on SQLite.
      const result = await this.#db.query(
        `UPDATE braze_aliases b SET state = 'pending', external_id = l.e, updated_at_ms = $3::bigint
         FROM (SELECT DISTINCT ON (n) n, e FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS u(n, e, i) ORDER BY n, i) l
         WHERE b.alias_name = l.n AND b.state = 'written'`,
        [batch.map((link) => link.aliasName), batch.map((link) => link.externalId), atMs],
      );
      marked += result.rowCount ?? 0;
    }
    return marked;
  }

  claimAliasesToIdentify(limit: number, nowMs: number, leaseMs: number): Promise<AliasToIdentify[]> {
    return this.#db.rows<AliasToIdentify>(
      `UPDATE braze_aliases SET claimed_until_ms = $1 WHERE (alias_name, alias_label) IN
         (SELECT alias_name, alias_label FROM braze_aliases WHERE state = 'pending' AND claimed_until_ms <= $2 LIMIT $3 FOR UPDATE SKIP LOCKED)
       RETURNING alias_name AS "aliasName", alias_label AS "aliasLabel", external_id AS "externalId"`,
      [nowMs + leaseMs, nowMs, limit],
    );
  }

  async recordIdentifications(results: readonly AliasIdentification[], atMs: number): Promise<void> {
    for (const batch of batches(results)) {
      await this.#db.transaction(async (client) => {
        for (const result of batch) {
          const state = result.identified ? 'identified' : 'refused';
          await client.query(RECORD, [state, result.reason ?? null, atMs, result.aliasName, result.aliasLabel]);
          if (!result.identified) continue;
          const [aliasKey, externalKey] = [`alias:${result.aliasLabel}:${result.aliasName}`, `ext:${result.externalId}`];
          for (const { sql, params } of MOVE_ALIAS_KEY) await client.query(sql, params(aliasKey, externalKey));
        }
      });
    }
  }
}
