/**
 * What a run stages from its source (members, events, trait changes), its staging checkpoint, and its plan: the
 * staged rows diffed against the snapshots, numbered into pages. On PostgreSQL; the same contract as
 * src/store/staging/sqlite.ts.
 */
import type pg from 'pg';
import { activityColumns, UPSERT_ACTIVITY } from '../activity-index/postgres.js';
import { type PostgresDb } from '../postgres-db.js';
import {
  FIRST_KEY,
  checkpointColumns,
  chunks,
  pageLimit,
  plannedPages,
  planPagesSql,
  requireKey,
  requirePageSize,
  STAGING_TABLES,
  toKeyedPage,
  toPageRange,
  toStagedEvent,
  toStagedRow,
  toStagedTraitChange,
  toStagingCheckpoint,
  yieldToEventLoop,
  type StagedRow,
} from '../shared.js';
import {
  MAX_ROWS_PER_TRANSACTION,
  type DiffCounts,
  type DiffKind,
  type DiffPageOptions,
  type Page,
  type PageRange,
  type PlanKind,
  type PlannedPages,
  type StagedEvent,
  type StagedMember,
  type StagedTraitChange,
  type StagingCheckpoint,
  type UserActivity,
  type Staging,
} from '../store.js';

const UPSERT_CHECKPOINT = `INSERT INTO staging_checkpoints (run_id, rows_consumed, bytes_consumed, after_key) VALUES ($1, $2, $3, $4)
  ON CONFLICT (run_id) DO UPDATE SET rows_consumed = excluded.rows_consumed, bytes_consumed = excluded.bytes_consumed, after_key = excluded.after_key`;

const DIFF_COUNTS = `SELECT
   (SELECT count(*) FROM staged_members s
    WHERE s.run_id = $1 AND NOT EXISTS (SELECT 1 FROM snapshot_members m WHERE m.sync_id = $2 AND m.member_key = s.member_key)) AS enter,
   (SELECT count(*) FROM snapshot_members m
    WHERE m.sync_id = $2 AND NOT EXISTS (SELECT 1 FROM staged_members s WHERE s.run_id = $1 AND s.member_key = m.member_key)) AS leave`;

// planPagesSql statements: $1 the run, $2 the page size.
const PLAN_PLACEHOLDERS = { runId: '$1', pageSize: '$2' };

const PLAN_ENTER_PAGES = planPagesSql(
  'enter',
  {
    from: 'staged_members s',
    key: 's.member_key',
    where: 's.run_id = $1 AND NOT EXISTS (SELECT 1 FROM snapshot_members m WHERE m.sync_id = $3 AND m.member_key = s.member_key)',
  },
  PLAN_PLACEHOLDERS,
);

const PLAN_LEAVE_PAGES = planPagesSql(
  'leave',
  {
    from: 'snapshot_members m',
    key: 'm.member_key',
    where: 'm.sync_id = $3 AND NOT EXISTS (SELECT 1 FROM staged_members s WHERE s.run_id = $1 AND s.member_key = m.member_key)',
  },
  PLAN_PLACEHOLDERS,
);

const PLAN_EVENT_PAGES = planPagesSql(
  'event',
  {
    from: 'staged_events s',
    key: 's.event_key',
    where: 's.run_id = $1 AND NOT EXISTS (SELECT 1 FROM sent_events e WHERE e.event_key = s.event_key)',
  },
  PLAN_PLACEHOLDERS,
);

const PLAN_TRAIT_PAGES = planPagesSql('trait', { from: 'staged_traits s', key: 's.user_key', where: 's.run_id = $1' }, PLAN_PLACEHOLDERS);

function stagedColumns(rows: readonly StagedRow[]): (string | null)[][] {
  const columns: (keyof StagedRow)[] = ['memberKey', 'amplitudeId', 'userId', 'deviceId', 'props'];
  return columns.map((column) => rows.map((row) => row[column]));
}

export class PostgresStaging implements Staging {
  readonly #db: PostgresDb;

  constructor(db: PostgresDb) {
    this.#db = db;
  }

  async stageChunk(runId: string, members: readonly StagedMember[], checkpoint: StagingCheckpoint): Promise<void> {
    await this.#stageInTransactions(runId, members, checkpoint, (client, chunk) =>
      client.query(
        `INSERT INTO staged_members (run_id, member_key, amplitude_id, user_id, device_id, props)
         SELECT $1, k, a, u, d, p FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::text[]) WITH ORDINALITY AS t(k, a, u, d, p, n)
         ORDER BY n ON CONFLICT DO NOTHING`,
        [runId, ...stagedColumns(chunk.map(toStagedRow))],
      ),
    );
  }

  async stagingCheckpoint(runId: string): Promise<StagingCheckpoint | undefined> {
    const [row] = await this.#db.rows<{ rowsConsumed: number; bytesConsumed: number; afterKey: string | null }>(
      'SELECT rows_consumed AS "rowsConsumed", bytes_consumed AS "bytesConsumed", after_key AS "afterKey" FROM staging_checkpoints WHERE run_id = $1',
      [runId],
    );
    return row && toStagingCheckpoint(row);
  }

  async stagedCount(runId: string): Promise<number> {
    return (await this.#db.one<{ count: number }>('SELECT count(*) AS count FROM staged_members WHERE run_id = $1', [runId])).count;
  }

  async clearStaging(runId: string): Promise<void> {
    for (const { table, key } of STAGING_TABLES) {
      const deleteChunk = `DELETE FROM ${table} WHERE run_id = $1 AND ${key} IN (SELECT ${key} FROM ${table} WHERE run_id = $1 ORDER BY ${key} LIMIT $2)`;
      while ((await this.#db.query(deleteChunk, [runId, MAX_ROWS_PER_TRANSACTION])).rowCount === MAX_ROWS_PER_TRANSACTION)
        await yieldToEventLoop();
    }
    await this.#db.query('DELETE FROM staging_checkpoints WHERE run_id = $1', [runId]);
    await this.#db.query('DELETE FROM plan_pages WHERE run_id = $1', [runId]);
  }

  async diffPage(runId: string, syncId: string, options: DiffPageOptions & { kind: DiffKind }): Promise<Page<string>> {
    const limit = pageLimit(options.limit);
    const { throughKey } = options;
    const values = [
      options.kind === 'leave' ? syncId : runId,
      options.afterKey ?? FIRST_KEY,
      options.kind === 'leave' ? runId : syncId,
      limit,
    ];
    // A planned page's range ends at its last key; the bound is left out (not NULL-tested) so the plan stays a plain range scan.
    const through = (column: string) => (throughKey === undefined ? '' : `AND ${column} <= $${values.push(throughKey)}`);
    // Both sides walk a primary key in key order and probe the other side's primary key; only the keys are read.
    const rows = await this.#db.rows<{ key: string }>(
      options.kind === 'leave'
        ? `SELECT m.member_key AS key FROM snapshot_members m
           WHERE m.sync_id = $1 AND m.member_key > $2 ${through('m.member_key')}
             AND NOT EXISTS (SELECT 1 FROM staged_members s WHERE s.run_id = $3 AND s.member_key = m.member_key)
           ORDER BY m.member_key LIMIT $4`
        : `SELECT s.member_key AS key FROM staged_members s
           WHERE s.run_id = $1 AND s.member_key > $2 ${through('s.member_key')}
             AND NOT EXISTS (SELECT 1 FROM snapshot_members m WHERE m.sync_id = $3 AND m.member_key = s.member_key)
           ORDER BY s.member_key LIMIT $4`,
      values,
    );
    return toKeyedPage(
      rows.map((row) => row.key),
      limit,
      (key) => key,
    );
  }

  diffCounts(runId: string, syncId: string): Promise<DiffCounts> {
    return this.#db.one<DiffCounts>(DIFF_COUNTS, [runId, syncId]);
  }

  async planPages(runId: string, syncId: string, pageSize: number): Promise<PlannedPages> {
    requirePageSize(pageSize);
    return this.#db.transaction(async (client) => {
      await client.query('DELETE FROM plan_pages WHERE run_id = $1', [runId]);
      await client.query(PLAN_ENTER_PAGES, [runId, pageSize, syncId]);
      await client.query(PLAN_LEAVE_PAGES, [runId, pageSize, syncId]);
      const { rows } = await client.query<DiffCounts>(DIFF_COUNTS, [runId, syncId]);
      return plannedPages(rows[0]!, pageSize);
    });
  }

  async plannedPage(runId: string, kind: PlanKind, page: number): Promise<PageRange | undefined> {
    const rows = await this.#db.rows<{ pageNo: number; throughKey: string }>(
      'SELECT page_no AS "pageNo", through_key AS "throughKey" FROM plan_pages WHERE run_id = $1 AND kind = $2 AND page_no IN ($3, $4)',
      [runId, kind, page - 1, page],
    );
    return toPageRange(rows, page);
  }

  async stageEvents(
    runId: string,
    chunk: { events: readonly StagedEvent[]; activity: readonly UserActivity[] },
    checkpoint: StagingCheckpoint,
  ): Promise<void> {
    chunk.events.forEach((event) => requireKey(event.eventKey));
    chunk.activity.forEach((user) => requireKey(user.userKey));
    await this.#db.transaction(async (client) => {
      await client.query(
        `INSERT INTO staged_events (run_id, event_key, body) SELECT $1, k, b FROM unnest($2::text[], $3::text[]) WITH ORDINALITY AS t(k, b, n)
         ORDER BY n ON CONFLICT DO NOTHING`,
        [runId, chunk.events.map((event) => event.eventKey), chunk.events.map((event) => JSON.stringify(event.body))],
      );
      await client.query(UPSERT_ACTIVITY, activityColumns(chunk.activity));
      await client.query(UPSERT_CHECKPOINT, checkpointColumns(runId, checkpoint));
    });
  }

  async stagedEventCount(runId: string): Promise<number> {
    return Number((await this.#db.one<{ count: string }>('SELECT count(*) AS count FROM staged_events WHERE run_id = $1', [runId])).count);
  }

  async planEventPages(runId: string, pageSize: number): Promise<{ events: number; pages: number }> {
    const { count, pages } = await this.#planRunPages(
      runId,
      pageSize,
      PLAN_EVENT_PAGES,
      'SELECT count(*) AS count FROM staged_events s WHERE s.run_id = $1 AND NOT EXISTS (SELECT 1 FROM sent_events e WHERE e.event_key = s.event_key)',
    );
    return { events: count, pages };
  }

  async unsentEvents(runId: string, options: DiffPageOptions): Promise<Page<StagedEvent>> {
    const limit = pageLimit(options.limit);
    const values: unknown[] = [runId, options.afterKey ?? FIRST_KEY, limit];
    const through = options.throughKey === undefined ? '' : `AND s.event_key <= $${values.push(options.throughKey)}`;
    const rows = await this.#db.rows<{ eventKey: string; body: string }>(
      `SELECT s.event_key AS "eventKey", s.body FROM staged_events s
       WHERE s.run_id = $1 AND s.event_key > $2 ${through} AND NOT EXISTS (SELECT 1 FROM sent_events e WHERE e.event_key = s.event_key)
       ORDER BY s.event_key LIMIT $3`,
      values,
    );
    return toKeyedPage(rows.map(toStagedEvent), limit, (event) => event.eventKey);
  }

  async stageTraitChanges(runId: string, rows: readonly StagedTraitChange[], checkpoint: StagingCheckpoint): Promise<void> {
    // One statement cannot update a row twice: of a user repeated in one chunk the last wins, as row by row.
    await this.#stageInTransactions(runId, rows, checkpoint, (client, chunk) =>
      client.query(
        `INSERT INTO staged_traits (run_id, user_key, changes)
         SELECT DISTINCT ON (k) $1, k, c FROM unnest($2::text[], $3::text[]) WITH ORDINALITY AS t(k, c, n) ORDER BY k, n DESC
         ON CONFLICT (run_id, user_key) DO UPDATE SET changes = excluded.changes`,
        [runId, chunk.map((row) => requireKey(row.userKey)), chunk.map((row) => JSON.stringify(row.changes))],
      ),
    );
  }

  stagedTraitCounts(runId: string): Promise<{ users: number; attributes: number }> {
    return this.#db.one<{ users: number; attributes: number }>(
      `SELECT count(*) AS users, coalesce(sum((SELECT count(*) FROM json_object_keys(t.changes::json))), 0)::bigint AS attributes
       FROM staged_traits t WHERE t.run_id = $1`,
      [runId],
    );
  }

  async planTraitPages(runId: string, pageSize: number): Promise<{ users: number; pages: number }> {
    const { count, pages } = await this.#planRunPages(
      runId,
      pageSize,
      PLAN_TRAIT_PAGES,
      'SELECT count(*) AS count FROM staged_traits WHERE run_id = $1',
    );
    return { users: count, pages };
  }

  async stagedTraitChanges(runId: string, options: DiffPageOptions): Promise<Page<StagedTraitChange>> {
    const limit = pageLimit(options.limit);
    const values: unknown[] = [runId, options.afterKey ?? FIRST_KEY, limit];
    const through = options.throughKey === undefined ? '' : `AND user_key <= $${values.push(options.throughKey)}`;
    const rows = await this.#db.rows<{ userKey: string; changes: string }>(
      `SELECT user_key AS "userKey", changes FROM staged_traits WHERE run_id = $1 AND user_key > $2 ${through} ORDER BY user_key LIMIT $3`,
      values,
    );
    return toKeyedPage(rows.map(toStagedTraitChange), limit, (change) => change.userKey);
  }

  /** Replaces the run's plan with the pages `planSql` numbers; `countSql` counts the rows they cover. */
  async #planRunPages(runId: string, pageSize: number, planSql: string, countSql: string): Promise<{ count: number; pages: number }> {
    requirePageSize(pageSize);
    return this.#db.transaction(async (client) => {
      await client.query('DELETE FROM plan_pages WHERE run_id = $1', [runId]);
      await client.query(planSql, [runId, pageSize]);
      const { rows } = await client.query<{ count: number }>(countSql, [runId]);
      const count = rows[0]!.count;
      return { count, pages: Math.ceil(count / pageSize) };
    });
  }

  /**
   * Stages rows in transactions of at most MAX_ROWS_PER_TRANSACTION. Only the last carries the checkpoint: rows
   * committed before a crash are staged again, to the same effect.
   */
  async #stageInTransactions<T>(
    runId: string,
    rows: readonly T[],
    checkpoint: StagingCheckpoint,
    stage: (client: pg.PoolClient, chunk: readonly T[]) => Promise<unknown>,
  ): Promise<void> {
    const all = chunks(rows);
    for (const [index, chunk] of all.entries()) {
      await this.#db.transaction(async (client) => {
        await stage(client, chunk);
        if (index === all.length - 1) await client.query(UPSERT_CHECKPOINT, checkpointColumns(runId, checkpoint));
      });
    }
  }
}
