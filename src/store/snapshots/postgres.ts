/**
 * What Braze confirmed: each sync's members and each user's attributes, the state every plan is diffed against. On
 * PostgreSQL; the same contract as src/store/snapshots/sqlite.ts.
 */
import { batches, type PostgresDb } from '../postgres-db.js';
import { attributePatches, FIRST_KEY, pageLimit, requireKey, toPage, snapshotAttributes } from '../shared.js';
import {
  type AttributeSnapshot,
  type JsonObject,
  type MembershipMark,
  type MembershipState,
  type Page,
  type PageOptions,
  type SnapshotMember,
  type Snapshots,
} from '../store.js';

// Rows are written in key order, so two writers of overlapping keys wait for each other instead of deadlocking.
const INSERT_SNAPSHOT_MEMBERS =
  'INSERT INTO snapshot_members (sync_id, member_key) SELECT $1, k FROM unnest($2::text[]) AS k ORDER BY k ON CONFLICT DO NOTHING';

const DELETE_SNAPSHOT_MEMBERS = 'DELETE FROM snapshot_members WHERE sync_id = $1 AND member_key = ANY($2::text[])';

export class PostgresSnapshots implements Snapshots {
  readonly #db: PostgresDb;

  constructor(db: PostgresDb) {
    this.#db = db;
  }

  async commitSnapshot(syncId: string, changes: { added?: readonly string[]; removed?: readonly string[] }): Promise<void> {
    for (const chunk of batches(changes.added ?? [])) {
      await this.#db.query(INSERT_SNAPSHOT_MEMBERS, [syncId, chunk.map(requireKey)]);
    }
    for (const chunk of batches(changes.removed ?? [])) {
      await this.#db.query(DELETE_SNAPSHOT_MEMBERS, [syncId, chunk]);
    }
  }

  async snapshotMembers(syncId: string, options: PageOptions): Promise<Page<SnapshotMember>> {
    const limit = pageLimit(options.limit);
    const rows = await this.#db.rows<SnapshotMember>(
      'SELECT member_key AS "memberKey" FROM snapshot_members WHERE sync_id = $1 AND member_key > $2 ORDER BY member_key LIMIT $3',
      [syncId, options.afterKey ?? FIRST_KEY, limit],
    );
    return toPage(rows, limit);
  }

  async snapshotCount(syncId: string): Promise<number> {
    return (await this.#db.one<{ count: number }>('SELECT count(*) AS count FROM snapshot_members WHERE sync_id = $1', [syncId])).count;
  }

  async membershipStates(syncId: string, memberKeys: readonly string[]): Promise<Map<string, MembershipState>> {
    const states = new Map<string, MembershipState>();
    for (const chunk of batches(memberKeys)) {
      const rows = await this.#db.rows<{ memberKey: string; inSnapshot: boolean; markedAt: string | null }>(
        `SELECT k AS "memberKey", s.member_key IS NOT NULL AS "inSnapshot", m.computed_time AS "markedAt"
         FROM unnest($2::text[]) AS k
         LEFT JOIN snapshot_members AS s ON s.sync_id = $1 AND s.member_key = k
         LEFT JOIN membership_marks AS m ON m.sync_id = $1 AND m.member_key = k
         WHERE s.member_key IS NOT NULL OR m.member_key IS NOT NULL`,
        [syncId, chunk],
      );
      for (const row of rows) {
        states.set(row.memberKey, { inSnapshot: row.inSnapshot, ...(row.markedAt !== null && { markedAt: Number(row.markedAt) }) });
      }
    }
    return states;
  }

  async recordMembershipMarks(syncId: string, marks: readonly MembershipMark[]): Promise<void> {
    for (const chunk of batches(marks)) {
      await this.#db.query(
        `INSERT INTO membership_marks (sync_id, member_key, computed_time)
         SELECT $1, k, max(t) FROM unnest($2::text[], $3::bigint[]) AS u(k, t) GROUP BY k
         ON CONFLICT (sync_id, member_key) DO UPDATE SET computed_time = greatest(membership_marks.computed_time, excluded.computed_time)`,
        [syncId, chunk.map((mark) => requireKey(mark.memberKey)), chunk.map((mark) => mark.computedTime)],
      );
    }
  }

  async attributeSnapshots(scope: string, memberKeys: readonly string[]): Promise<Map<string, Map<string, string>>> {
    const snapshots = new Map<string, Map<string, string>>();
    for (const chunk of batches(memberKeys)) {
      const rows = await this.#db.rows<{ memberKey: string; attributes: JsonObject }>(
        'SELECT member_key AS "memberKey", attributes FROM user_attribute_snapshots WHERE scope = $1 AND member_key = ANY($2::text[])',
        [scope, chunk],
      );
      for (const { memberKey, attributes } of rows) {
        const values = snapshotAttributes(attributes);
        if (values.size > 0) snapshots.set(memberKey, values);
      }
    }
    return snapshots;
  }

  async upsertAttributeSnapshots(scope: string, rows: readonly AttributeSnapshot[]): Promise<void> {
    for (const chunk of batches([...attributePatches(rows)])) {
      await this.#db.query(
        `INSERT INTO user_attribute_snapshots AS s (member_key, scope, attributes)
         SELECT k, $1, v FROM unnest($2::text[], $3::jsonb[]) AS t(k, v) ORDER BY k
         ON CONFLICT (member_key, scope) DO UPDATE SET attributes = jsonb_strip_nulls(s.attributes || excluded.attributes)`,
        [scope, chunk.map(([memberKey]) => requireKey(memberKey)), chunk.map(([, patch]) => JSON.stringify(patch))],
      );
    }
  }
}
