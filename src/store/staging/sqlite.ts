/**
 * What a run stages from its source (members, events, trait changes), its staging checkpoint, and its plan: the
 * staged rows diffed against the snapshots, numbered into pages. On SQLite; the same contract as
 * src/store/staging/postgres.ts.
 */
import type Database from 'better-sqlite3';
import { UPSERT_ACTIVITY } from '../activity-index/sqlite.js';
import { type SqliteDb } from '../sqlite-db.js';
import {
  FIRST_KEY,
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
  checkpointColumns,
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

/** Placeholders of planPagesSql; the cast keeps the page number an integer division. */
const PLAN_PLACEHOLDERS = { runId: '?', pageSize: 'CAST(? AS INTEGER)' };

/** A page of staged trait changes, optionally bounded above by `through`. */
const stagedTraitPage = (through: string) =>
  `SELECT user_key AS userKey, changes FROM staged_traits WHERE run_id = ? AND user_key > ? ${through} ORDER BY user_key LIMIT ?`;

export class SqliteStaging implements Staging {
  readonly #db: SqliteDb;
  readonly #sql;

  constructor(db: SqliteDb) {
    this.#db = db;
    this.#sql = prepareStatements(db.handle);
  }

  async stageChunk(runId: string, rows: readonly StagedMember[], checkpoint: StagingCheckpoint): Promise<void> {
    await this.#stageInTransactions(runId, rows, checkpoint, (member) => {
      const row = toStagedRow(member);
      this.#sql.insertStaged.run(runId, row.memberKey, row.amplitudeId, row.userId, row.deviceId, row.props);
    });
  }

  stagingCheckpoint(runId: string): Promise<StagingCheckpoint | undefined> {
    return this.#db.settle(() => {
      const row = this.#sql.checkpoint.get(runId);
      return row && toStagingCheckpoint(row);
    });
  }

  stagedCount(runId: string): Promise<number> {
    return this.#db.settle(() => this.#sql.stagedCount.get(runId)?.count ?? 0);
  }

  async clearStaging(runId: string): Promise<void> {
    for (const deleteChunk of this.#sql.deleteStagedChunks) {
      while (deleteChunk.run(runId, runId, MAX_ROWS_PER_TRANSACTION).changes === MAX_ROWS_PER_TRANSACTION) await yieldToEventLoop();
    }
    this.#sql.deleteCheckpoint.run(runId);
    this.#sql.deletePlan.run(runId);
  }

  async diffPage(runId: string, syncId: string, options: DiffPageOptions & { kind: DiffKind }): Promise<Page<string>> {
    const limit = pageLimit(options.limit);
    const afterKey = options.afterKey ?? FIRST_KEY;
    const { throughKey } = options;
    let keys: string[];
    if (options.kind === 'leave') {
      keys =
        throughKey === undefined
          ? this.#sql.leavePage.all(syncId, afterKey, runId, limit)
          : this.#sql.leaveRange.all(syncId, afterKey, throughKey, runId, limit);
    } else {
      keys =
        throughKey === undefined
          ? this.#sql.enterPage.all(runId, afterKey, syncId, limit)
          : this.#sql.enterRange.all(runId, afterKey, throughKey, syncId, limit);
    }
    await yieldToEventLoop();
    return toKeyedPage(keys, limit, (key) => key);
  }

  diffCounts(runId: string, syncId: string): Promise<DiffCounts> {
    return this.#db.settle(() => ({
      enter: this.#sql.enterCount.get(runId, syncId)?.count ?? 0,
      leave: this.#sql.leaveCount.get(syncId, runId)?.count ?? 0,
    }));
  }

  planPages(runId: string, syncId: string, pageSize: number): Promise<PlannedPages> {
    requirePageSize(pageSize);
    const plan = this.#db.handle.transaction((): PlannedPages => {
      this.#sql.deletePlan.run(runId);
      this.#sql.planEnterPages.run(runId, pageSize, runId, syncId);
      this.#sql.planLeavePages.run(runId, pageSize, syncId, runId);
      const counts = {
        enter: this.#sql.enterCount.get(runId, syncId)?.count ?? 0,
        leave: this.#sql.leaveCount.get(syncId, runId)?.count ?? 0,
      };
      return plannedPages(counts, pageSize);
    });
    return this.#db.settle(() => plan());
  }

  plannedPage(runId: string, kind: PlanKind, page: number): Promise<PageRange | undefined> {
    return this.#db.settle(() => toPageRange(this.#sql.plannedPage.all(runId, kind, page - 1, page), page));
  }

  async stageEvents(
    runId: string,
    chunk: { events: readonly StagedEvent[]; activity: readonly UserActivity[] },
    checkpoint: StagingCheckpoint,
  ): Promise<void> {
    const apply = this.#db.handle.transaction(() => {
      for (const event of chunk.events) this.#sql.insertStagedEvent.run(runId, requireKey(event.eventKey), JSON.stringify(event.body));
      for (const user of chunk.activity)
        this.#sql.upsertActivity.run(requireKey(user.userKey), user.lastEventMs, JSON.stringify(user.properties));
      this.#sql.upsertCheckpoint.run(...checkpointColumns(runId, checkpoint));
    });
    await this.#db.settle(() => apply.immediate());
    await yieldToEventLoop();
  }

  stagedEventCount(runId: string): Promise<number> {
    return this.#db.settle(() => this.#sql.stagedEventCount.get(runId)?.count ?? 0);
  }

  async planEventPages(runId: string, pageSize: number): Promise<{ events: number; pages: number }> {
    const { count, pages } = await this.#planRunPages(runId, pageSize, this.#sql.planEventPages, this.#sql.unsentEventCount);
    return { events: count, pages };
  }

  async unsentEvents(runId: string, options: DiffPageOptions): Promise<Page<StagedEvent>> {
    const limit = pageLimit(options.limit);
    const afterKey = options.afterKey ?? FIRST_KEY;
    const rows =
      options.throughKey === undefined
        ? this.#sql.unsentEvents.all(runId, afterKey, limit)
        : this.#sql.unsentEventRange.all(runId, afterKey, options.throughKey, limit);
    await yieldToEventLoop();
    return toKeyedPage(rows.map(toStagedEvent), limit, (event) => event.eventKey);
  }

  async stageTraitChanges(runId: string, rows: readonly StagedTraitChange[], checkpoint: StagingCheckpoint): Promise<void> {
    await this.#stageInTransactions(
      runId,
      rows,
      checkpoint,
      (row) => void this.#sql.upsertStagedTrait.run(runId, requireKey(row.userKey), JSON.stringify(row.changes)),
    );
  }

  stagedTraitCounts(runId: string): Promise<{ users: number; attributes: number }> {
    return this.#db.settle(() => this.#sql.stagedTraitCounts.get(runId)!);
  }

  async planTraitPages(runId: string, pageSize: number): Promise<{ users: number; pages: number }> {
    const { count, pages } = await this.#planRunPages(runId, pageSize, this.#sql.planTraitPages, this.#sql.stagedTraitUsers);
    return { users: count, pages };
  }

  async stagedTraitChanges(runId: string, options: DiffPageOptions): Promise<Page<StagedTraitChange>> {
    const limit = pageLimit(options.limit);
    const afterKey = options.afterKey ?? FIRST_KEY;
    const rows =
      options.throughKey === undefined
        ? this.#sql.stagedTraits.all(runId, afterKey, limit)
        : this.#sql.stagedTraitRange.all(runId, afterKey, options.throughKey, limit);
    await yieldToEventLoop();
    return toKeyedPage(rows.map(toStagedTraitChange), limit, (change) => change.userKey);
  }

  /** Replaces the run's plan with the pages `plan` numbers; `count` counts the rows they cover. */
  #planRunPages(
    runId: string,
    pageSize: number,
    plan: Database.Statement<[string, number, string]>,
    count: Database.Statement<[string], { count: number }>,
  ): Promise<{ count: number; pages: number }> {
    const replace = this.#db.handle.transaction(() => {
      this.#sql.deletePlan.run(runId);
      plan.run(runId, pageSize, runId);
      const rows = count.get(runId)?.count ?? 0;
      return { count: rows, pages: Math.ceil(rows / pageSize) };
    });
    return this.#db.settle(() => {
      requirePageSize(pageSize);
      return replace();
    });
  }

  /**
   * Stages rows in transactions of at most MAX_ROWS_PER_TRANSACTION. Only the last carries the checkpoint: rows
   * committed before a crash are staged again, to the same effect.
   */
  async #stageInTransactions<T>(runId: string, rows: readonly T[], checkpoint: StagingCheckpoint, stage: (row: T) => void): Promise<void> {
    await this.#db.inTransactions(rows, (chunk, isLast) => {
      for (const row of chunk) stage(row);
      if (isLast) this.#sql.upsertCheckpoint.run(...checkpointColumns(runId, checkpoint));
    });
  }
}

/** For each side of the diff: the table it walks in key order, and the other side each of its keys must be missing from. */
const DIFF_SIDES = {
  enter: {
    table: 'staged_members s',
    owner: 's.run_id',
    key: 's.member_key',
    other: { table: 'snapshot_members m', owner: 'm.sync_id', key: 'm.member_key' },
  },
  leave: {
    table: 'snapshot_members m',
    owner: 'm.sync_id',
    key: 'm.member_key',
    other: { table: 'staged_members s', owner: 's.run_id', key: 's.member_key' },
  },
} as const;

/**
 * The diff's keys after a key (and through one, when `bounded`), in key order. Only the keys are read (`pluck`: plain
 * strings, no row objects): a page reads thousands of them. Parameters: the side's run or sync, the key after which
 * to start, [the last key,] the other side's run or sync, the limit.
 */
function diffKeysStatement(db: Database.Database, kind: DiffKind, { bounded }: { bounded: boolean }) {
  const { table, owner, key, other } = DIFF_SIDES[kind];
  return db
    .prepare<unknown[], string>(
      `SELECT ${key} FROM ${table}
       WHERE ${owner} = ? AND ${key} > ? ${bounded ? `AND ${key} <= ?` : ''}
         AND NOT EXISTS (SELECT 1 FROM ${other.table} WHERE ${other.owner} = ? AND ${other.key} = ${key})
       ORDER BY ${key} LIMIT ?`,
    )
    .pluck();
}

function prepareStatements(db: Database.Database) {
  return {
    checkpoint: db.prepare<[string], { rowsConsumed: number; bytesConsumed: number; afterKey: string | null }>(
      'SELECT rows_consumed AS rowsConsumed, bytes_consumed AS bytesConsumed, after_key AS afterKey FROM staging_checkpoints WHERE run_id = ?',
    ),
    deleteCheckpoint: db.prepare<[string]>('DELETE FROM staging_checkpoints WHERE run_id = ?'),

    // Both sides walk a primary key in key order and probe the other side's primary key.
    deletePlan: db.prepare<[string]>('DELETE FROM plan_pages WHERE run_id = ?'),

    deleteStagedChunks: STAGING_TABLES.map(({ table, key }) =>
      db.prepare<[string, string, number]>(
        `DELETE FROM ${table} WHERE run_id = ? AND ${key} IN (SELECT ${key} FROM ${table} WHERE run_id = ? ORDER BY ${key} LIMIT ?)`,
      ),
    ),
    enterCount: db.prepare<[string, string], { count: number }>(
      `SELECT count(*) AS count FROM staged_members s
       WHERE s.run_id = ? AND NOT EXISTS (SELECT 1 FROM snapshot_members m WHERE m.sync_id = ? AND m.member_key = s.member_key)`,
    ),
    enterPage: diffKeysStatement(db, 'enter', { bounded: false }),
    enterRange: diffKeysStatement(db, 'enter', { bounded: true }),
    insertStaged: db.prepare<[string, string, string, string | null, string | null, string | null]>(
      `INSERT INTO staged_members (run_id, member_key, amplitude_id, user_id, device_id, props) VALUES (?, ?, ?, ?, ?, ?)
       ON CONFLICT DO NOTHING`,
    ),
    insertStagedEvent: db.prepare<[string, string, string]>(
      'INSERT INTO staged_events (run_id, event_key, body) VALUES (?, ?, ?) ON CONFLICT DO NOTHING',
    ),
    // A user's latest event by event time wins; an older one (an hour processed late) changes nothing.
    leaveCount: db.prepare<[string, string], { count: number }>(
      `SELECT count(*) AS count FROM snapshot_members m
       WHERE m.sync_id = ? AND NOT EXISTS (SELECT 1 FROM staged_members s WHERE s.run_id = ? AND s.member_key = m.member_key)`,
    ),

    leavePage: diffKeysStatement(db, 'leave', { bounded: false }),
    leaveRange: diffKeysStatement(db, 'leave', { bounded: true }),
    planEnterPages: db.prepare<[string, number, string, string]>(
      planPagesSql(
        'enter',
        {
          from: 'staged_members s',
          key: 's.member_key',
          where: 's.run_id = ? AND NOT EXISTS (SELECT 1 FROM snapshot_members m WHERE m.sync_id = ? AND m.member_key = s.member_key)',
        },
        PLAN_PLACEHOLDERS,
      ),
    ),
    planEventPages: db.prepare<[string, number, string]>(
      planPagesSql(
        'event',
        {
          from: 'staged_events s',
          key: 's.event_key',
          where: 's.run_id = ? AND NOT EXISTS (SELECT 1 FROM sent_events e WHERE e.event_key = s.event_key)',
        },
        PLAN_PLACEHOLDERS,
      ),
    ),
    planLeavePages: db.prepare<[string, number, string, string]>(
      planPagesSql(
        'leave',
        {
          from: 'snapshot_members m',
          key: 'm.member_key',
          where: 'm.sync_id = ? AND NOT EXISTS (SELECT 1 FROM staged_members s WHERE s.run_id = ? AND s.member_key = m.member_key)',
        },
        PLAN_PLACEHOLDERS,
      ),
    ),
    planTraitPages: db.prepare<[string, number, string]>(
      planPagesSql('trait', { from: 'staged_traits s', key: 's.user_key', where: 's.run_id = ?' }, PLAN_PLACEHOLDERS),
    ),
    plannedPage: db.prepare<[string, string, number, number], { pageNo: number; throughKey: string }>(
      'SELECT page_no AS pageNo, through_key AS throughKey FROM plan_pages WHERE run_id = ? AND kind = ? AND page_no IN (?, ?)',
    ),
    stagedCount: db.prepare<[string], { count: number }>('SELECT count(*) AS count FROM staged_members WHERE run_id = ?'),
    stagedEventCount: db.prepare<[string], { count: number }>('SELECT count(*) AS count FROM staged_events WHERE run_id = ?'),
    stagedTraitCounts: db.prepare<[string], { users: number; attributes: number }>(
      'SELECT count(*) AS users, coalesce(sum((SELECT count(*) FROM json_each(t.changes))), 0) AS attributes FROM staged_traits t WHERE t.run_id = ?',
    ),
    stagedTraitRange: db.prepare<[string, string, string, number], { userKey: string; changes: string }>(
      stagedTraitPage('AND user_key <= ?'),
    ),
    // Named parameters: the shared statements use some more than once.
    stagedTraitUsers: db.prepare<[string], { count: number }>('SELECT count(*) AS count FROM staged_traits WHERE run_id = ?'),
    stagedTraits: db.prepare<[string, string, number], { userKey: string; changes: string }>(stagedTraitPage('')),
    unsentEventCount: db.prepare<[string], { count: number }>(
      'SELECT count(*) AS count FROM staged_events s WHERE s.run_id = ? AND NOT EXISTS (SELECT 1 FROM sent_events e WHERE e.event_key = s.event_key)',
    ),
    unsentEventRange: db.prepare<[string, string, string, number], { eventKey: string; body: string }>(
      `SELECT s.event_key AS eventKey, s.body FROM staged_events s
       WHERE s.run_id = ? AND s.event_key > ? AND s.event_key <= ? AND NOT EXISTS (SELECT 1 FROM sent_events e WHERE e.event_key = s.event_key)
       ORDER BY s.event_key LIMIT ?`,
    ),
    unsentEvents: db.prepare<[string, string, number], { eventKey: string; body: string }>(
      `SELECT s.event_key AS eventKey, s.body FROM staged_events s
       WHERE s.run_id = ? AND s.event_key > ? AND NOT EXISTS (SELECT 1 FROM sent_events e WHERE e.event_key = s.event_key)
       ORDER BY s.event_key LIMIT ?`,
    ),
    upsertActivity: db.prepare<[string, number, string]>(UPSERT_ACTIVITY),
    upsertCheckpoint: db.prepare<[string, number, number, string | null]>(
      `INSERT INTO staging_checkpoints (run_id, rows_consumed, bytes_consumed, after_key) VALUES (?, ?, ?, ?)
       ON CONFLICT (run_id) DO UPDATE SET rows_consumed = excluded.rows_consumed, bytes_consumed = excluded.bytes_consumed, after_key = excluded.after_key`,
    ),
    upsertStagedTrait: db.prepare<[string, string, string]>(
      'INSERT INTO staged_traits (run_id, user_key, changes) VALUES (?, ?, ?) ON CONFLICT (run_id, user_key) DO UPDATE SET changes = excluded.changes',
    ),
  };
}
