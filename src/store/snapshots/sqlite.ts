/**
 * What Braze confirmed: each sync's members and each user's attributes, the state every plan is diffed against. On
 * SQLite; the same contract as src/store/snapshots/postgres.ts.
 */
import type Database from 'better-sqlite3';
import { attributePatchesJson, type SqliteDb } from '../sqlite-db.js';
import { FIRST_KEY, chunks, pageLimit, requireKey, toPage, snapshotAttributes, yieldToEventLoop } from '../shared.js';
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

export class SqliteSnapshots implements Snapshots {
  readonly #db: SqliteDb;
  readonly #sql;

  constructor(db: SqliteDb) {
    this.#db = db;
    this.#sql = prepareStatements(db.handle);
  }

  async commitSnapshot(syncId: string, changes: { added?: readonly string[]; removed?: readonly string[] }): Promise<void> {
    await this.#db.inTransactions(changes.added ?? [], (chunk) => {
      for (const memberKey of chunk) this.#sql.insertSnapshotMember.run(syncId, requireKey(memberKey));
    });
    await this.#db.inTransactions(changes.removed ?? [], (chunk) => {
      for (const memberKey of chunk) this.#sql.deleteSnapshotMember.run(syncId, memberKey);
    });
  }

  async snapshotMembers(syncId: string, options: PageOptions): Promise<Page<SnapshotMember>> {
    const limit = pageLimit(options.limit);
    const rows = this.#sql.snapshotPage.all(syncId, options.afterKey ?? FIRST_KEY, limit);
    await yieldToEventLoop();
    return toPage(rows, limit);
  }

  snapshotCount(syncId: string): Promise<number> {
    return this.#db.settle(() => this.#sql.snapshotCount.get(syncId)?.count ?? 0);
  }

  async membershipStates(syncId: string, memberKeys: readonly string[]): Promise<Map<string, MembershipState>> {
    const states = new Map<string, MembershipState>();
    for (const chunk of chunks(memberKeys)) {
      for (const row of this.#sql.membershipStates.all({ syncId, keys: JSON.stringify(chunk) })) {
        states.set(row.memberKey, { inSnapshot: row.inSnapshot === 1, ...(row.markedAt !== null && { markedAt: row.markedAt }) });
      }
      await yieldToEventLoop();
    }
    return states;
  }

  async recordMembershipMarks(syncId: string, marks: readonly MembershipMark[]): Promise<void> {
    await this.#db.inTransactions(marks, (chunk) => {
      for (const { memberKey, computedTime } of chunk) this.#sql.upsertMembershipMark.run(syncId, requireKey(memberKey), computedTime);
    });
  }

  async attributeSnapshots(scope: string, memberKeys: readonly string[]): Promise<Map<string, Map<string, string>>> {
    const snapshots = new Map<string, Map<string, string>>();
    for (const chunk of chunks(memberKeys)) {
      for (const { memberKey, attributes } of this.#sql.attributeSnapshots.all(scope, JSON.stringify(chunk))) {
        const values = snapshotAttributes(JSON.parse(attributes) as JsonObject);
        if (values.size > 0) snapshots.set(memberKey, values);
      }
      await yieldToEventLoop();
    }
    return snapshots;
  }

  async upsertAttributeSnapshots(scope: string, rows: readonly AttributeSnapshot[]): Promise<void> {
    await this.#db.inTransactions(rows, (chunk) => void this.#sql.mergeAttributePatches.run(scope, attributePatchesJson(chunk)));
  }
}

function prepareStatements(db: Database.Database) {
  return {
    attributeSnapshots: db.prepare<[string, string], { memberKey: string; attributes: string }>(
      `SELECT member_key AS memberKey, attributes FROM user_attribute_snapshots
       WHERE scope = ? AND member_key IN (SELECT value FROM json_each(?))`,
    ),
    // Patches travel as one JSON array of [member, patch]; json_patch merges one (a null removes the attribute).
    deleteSnapshotMember: db.prepare<[string, string]>('DELETE FROM snapshot_members WHERE sync_id = ? AND member_key = ?'),
    insertSnapshotMember: db.prepare<[string, string]>(
      'INSERT INTO snapshot_members (sync_id, member_key) VALUES (?, ?) ON CONFLICT DO NOTHING',
    ),
    membershipStates: db.prepare<[{ syncId: string; keys: string }], { memberKey: string; inSnapshot: number; markedAt: number | null }>(
      `SELECT keys.value AS memberKey, s.member_key IS NOT NULL AS inSnapshot, m.computed_time AS markedAt
       FROM json_each(@keys) AS keys
       LEFT JOIN snapshot_members AS s ON s.sync_id = @syncId AND s.member_key = keys.value
       LEFT JOIN membership_marks AS m ON m.sync_id = @syncId AND m.member_key = keys.value
       WHERE s.member_key IS NOT NULL OR m.member_key IS NOT NULL`,
    ),
    mergeAttributePatches: db.prepare<[string, string]>(
      `INSERT INTO user_attribute_snapshots (scope, member_key, attributes)
       SELECT ?, json_extract(value, '$[0]'), json_extract(value, '$[1]') FROM json_each(?) WHERE true
       ON CONFLICT (member_key, scope) DO UPDATE SET attributes = json_patch(attributes, excluded.attributes)`,
    ),

    snapshotCount: db.prepare<[string], { count: number }>('SELECT count(*) AS count FROM snapshot_members WHERE sync_id = ?'),
    snapshotPage: db.prepare<[string, string, number], SnapshotMember>(
      'SELECT member_key AS memberKey FROM snapshot_members WHERE sync_id = ? AND member_key > ? ORDER BY member_key LIMIT ?',
    ),
    upsertMembershipMark: db.prepare<[string, string, number]>(
      `INSERT INTO membership_marks (sync_id, member_key, computed_time) VALUES (?, ?, ?)
       ON CONFLICT (sync_id, member_key) DO UPDATE SET computed_time = max(computed_time, excluded.computed_time)`,
    ),
  };
}
