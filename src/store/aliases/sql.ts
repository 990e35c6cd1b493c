/**
 * The statements of alias identification, written once for both stores (`?n` on SQLite, `$n` on PostgreSQL): a
 * sync's snapshot keys move from the identified alias to the external id, where the sync does not hold that already.
 */
import type { SqlDialect } from '../dialect.js';

/** A statement of the move, and its parameters given the alias's member key (`alias:<label>:<name>`) and the external id's. */
export interface KeyMove {
  sql: string;
  params: (aliasKey: string, externalKey: string) => string[];
}

export function moveAliasKeySql(d: SqlDialect): KeyMove[] {
  return ['snapshot_members', 'membership_marks'].flatMap((table) => [
    {
      sql: `UPDATE ${table} SET member_key = ${d.param(2)} WHERE member_key = ${d.param(1)}
        AND NOT EXISTS (SELECT 1 FROM ${table} held WHERE held.sync_id = ${table}.sync_id AND held.member_key = ${d.param(2)})`,
      params: (aliasKey: string, externalKey: string) => [aliasKey, externalKey],
    },
    { sql: `DELETE FROM ${table} WHERE member_key = ${d.param(1)}`, params: (aliasKey: string) => [aliasKey] },
  ]);
}

export const RECORD_IDENTIFICATION = (d: SqlDialect) =>
  `UPDATE braze_aliases SET state = ${d.param(1)}, reason = ${d.param(2)}, updated_at_ms = ${d.param(3, 'number')}
   WHERE alias_name = ${d.param(4)} AND alias_label = ${d.param(5)} AND state = 'pending'`;
