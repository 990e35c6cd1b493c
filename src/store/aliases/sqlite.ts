/** Alias identification on SQLite; the same contract as src/store/aliases/postgres.ts. */
import type Database from 'better-sqlite3';
import { numbered, SQLITE_DIALECT } from '../dialect.js';
import type { SqliteDb } from '../sqlite-db.js';
import type { AliasIdentification, AliasIdentities, AliasToIdentify, BrazeAliasRef } from '../store.js';
import { moveAliasKeySql, RECORD_IDENTIFICATION } from './sql.js';

export class SqliteAliases implements AliasIdentities {
  readonly #db: SqliteDb;
  readonly #sql;

  constructor(db: SqliteDb) {
    this.#db = db;
    this.#sql = prepareStatements(db.handle);
  }

  async recordAliasesWritten(aliases: readonly BrazeAliasRef[], atMs: number): Promise<void> {
    await this.#db.inTransactions(aliases, (chunk) => {
      for (const { aliasName, aliasLabel } of chunk) this.#sql.recordWritten.run(aliasName, aliasLabel, atMs);
    });
  }

  async markAliasesToIdentify(links: readonly { aliasName: string; externalId: string }[], atMs: number): Promise<number> {
    // No alias ever written (the common case: syncs that address identified users only): nothing to look up.
    if (links.length === 0 || !this.#sql.anyAlias.get()) return 0;
    let marked = 0;
    await this.#db.inTransactions(links, (chunk) => {
      for (const { aliasName, externalId } of chunk) marked += this.#sql.mark.run(externalId, atMs, aliasName).changes;
    });
    return marked;
  }

  claimAliasesToIdentify(limit: number, nowMs: number, leaseMs: number): Promise<AliasToIdentify[]> {
    return this.#db.settle(() => this.#sql.claim.all(numbered([nowMs + leaseMs, nowMs, limit])));
  }

  async recordIdentifications(results: readonly AliasIdentification[], atMs: number): Promise<void> {
    await this.#db.inTransactions(results, (chunk) => {
      for (const result of chunk) {
        const state = result.identified ? 'identified' : 'refused';
        this.#sql.record.run(numbered([state, result.reason ?? null, atMs, result.aliasName, result.aliasLabel]));
        if (!result.identified) continue;
        const [aliasKey, externalKey] = [`alias:${result.aliasLabel}:${result.aliasName}`, `ext:${result.externalId}`];
        for (const { statement, params } of this.#sql.moveKey) statement.run(numbered(params(aliasKey, externalKey)));
      }
    });
  }
}

function prepareStatements(db: Database.Database) {
  return {
    recordWritten: db.prepare<[string, string, number]>(
      `INSERT INTO braze_aliases (alias_name, alias_label, state, updated_at_ms) VALUES (?, ?, 'written', ?) ON CONFLICT DO NOTHING`,
    ),
    anyAlias: db.prepare<[], { one: number }>('SELECT 1 AS one FROM braze_aliases LIMIT 1'),
    mark: db.prepare<[string, number, string]>(
      `UPDATE braze_aliases SET state = 'pending', external_id = ?, updated_at_ms = ? WHERE alias_name = ? AND state = 'written'`,
    ),
    claim: db.prepare<Record<number, unknown>, AliasToIdentify>(
      `UPDATE braze_aliases SET claimed_until_ms = ?1 WHERE (alias_name, alias_label) IN
         (SELECT alias_name, alias_label FROM braze_aliases WHERE state = 'pending' AND claimed_until_ms <= ?2 LIMIT ?3)
       RETURNING alias_name AS aliasName, alias_label AS aliasLabel, external_id AS externalId`,
    ),
    record: db.prepare<Record<number, unknown>>(RECORD_IDENTIFICATION(SQLITE_DIALECT)),
    moveKey: moveAliasKeySql(SQLITE_DIALECT).map(({ sql, params }) => ({ statement: db.prepare<Record<number, unknown>>(sql), params })),
  };
}
