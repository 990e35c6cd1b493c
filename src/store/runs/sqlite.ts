/**
 * Runs and sync leases: one row per run (what it did, how it ended), the per-member failures it recorded, and the
 * lease that lets only one run of a sync at a time. On SQLite; the same contract as src/store/runs/postgres.ts.
 */
import type Database from 'better-sqlite3';
import { numbered, SQLITE_DIALECT } from '../dialect.js';
import { type SqliteDb } from '../sqlite-db.js';
import { claimParameters, leaseStatements, type LeaseHolderRow } from './lease.js';
import { FIRST_KEY, pageLimit, requireKey, toPage, toRunRecord, type RunRow, yieldToEventLoop } from '../shared.js';
import {
  type MemberFailure,
  type Page,
  type PageOptions,
  type ReasonCount,
  type RunFinish,
  type RunRecord,
  type RunStart,
  type SyncLease,
  type SyncLeaseClaim,
  type RunsAndLeases,
} from '../store.js';

const RUN_COLUMNS =
  'run_id AS runId, sync_id AS syncId, kind, status, started_at AS startedAt, finished_at AS finishedAt, source_version AS sourceVersion, stats';

/** The latest run to finish successfully whose `column` is the parameter. */
const lastSucceededRun = (column: 'sync_id' | 'kind') =>
  `SELECT ${RUN_COLUMNS} FROM runs WHERE ${column} = ? AND status = 'succeeded' ORDER BY finished_at DESC LIMIT 1`;

export class SqliteRuns implements RunsAndLeases {
  readonly #db: SqliteDb;
  readonly #sql;

  constructor(db: SqliteDb) {
    this.#db = db;
    this.#sql = prepareStatements(db.handle);
  }

  startRun(run: RunStart): Promise<void> {
    return this.#db.settle(() => void this.#sql.insertRun.run(run.runId, run.syncId, run.kind, run.startedAt.toISOString()));
  }

  finishRun(finish: RunFinish): Promise<void> {
    return this.#db.settle(() => {
      const { changes } = this.#sql.finishRun.run(
        finish.status,
        finish.finishedAt.toISOString(),
        finish.sourceVersion ?? null,
        JSON.stringify(finish.stats),
        finish.runId,
      );
      if (changes === 0) throw new Error(`finishRun: run "${finish.runId}" was never started`);
    });
  }

  lastSuccessfulRun(syncId: string): Promise<RunRecord | undefined> {
    return this.#db.settle(() => {
      const row = this.#sql.lastSuccessfulRun.get(syncId);
      return row && toRunRecord(row);
    });
  }

  lastSucceededRunOfKind(kind: string): Promise<RunRecord | undefined> {
    return this.#db.settle(() => {
      const row = this.#sql.lastSucceededRunOfKind.get(kind);
      return row && toRunRecord(row);
    });
  }

  recentRuns(options: { syncId?: string; limit: number }): Promise<RunRecord[]> {
    return this.#db.settle(() => {
      const limit = pageLimit(options.limit);
      const rows = options.syncId === undefined ? this.#sql.recentRuns.all(limit) : this.#sql.recentRunsOfSync.all(options.syncId, limit);
      return rows.map(toRunRecord);
    });
  }

  async recordFailures(runId: string, failures: readonly MemberFailure[]): Promise<void> {
    await this.#db.inTransactions(failures, (chunk) => {
      for (const failure of chunk) this.#sql.upsertFailure.run(runId, requireKey(failure.memberKey), failure.reason);
    });
  }

  async failuresForRun(runId: string, options: PageOptions): Promise<Page<MemberFailure>> {
    const limit = pageLimit(options.limit);
    const rows = this.#sql.failurePage.all(runId, options.afterKey ?? FIRST_KEY, limit);
    await yieldToEventLoop();
    return toPage(rows, limit);
  }

  failureCountsByReason(runId: string): Promise<ReasonCount[]> {
    return this.#db.settle(() => this.#sql.failureCounts.all(runId));
  }

  claimSyncLease(claim: SyncLeaseClaim): Promise<SyncLease> {
    const take = this.#db.handle.transaction((): SyncLease => {
      if (this.#sql.claimSyncLease.run(numbered(claimParameters(claim))).changes === 1) return { held: true };
      return { held: false, ...this.#sql.syncLeaseHolder.get(numbered([claim.syncId]))! };
    });
    // IMMEDIATE: the claim and the read of who holds the lease see the same row.
    return this.#db.settle(() => take.immediate());
  }

  releaseSyncLease(syncId: string, holder: string): Promise<void> {
    return this.#db.settle(() => void this.#sql.releaseSyncLease.run(numbered([syncId, holder])));
  }
}

function prepareStatements(db: Database.Database) {
  const lease = leaseStatements(SQLITE_DIALECT);
  return {
    claimSyncLease: db.prepare<Record<number, unknown>>(lease.claim),
    syncLeaseHolder: db.prepare<Record<number, unknown>, LeaseHolderRow>(lease.holder),
    releaseSyncLease: db.prepare<Record<number, unknown>>(lease.release),
    failureCounts: db.prepare<[string], ReasonCount>(
      'SELECT reason, count(*) AS count FROM member_failures WHERE run_id = ? GROUP BY reason ORDER BY count DESC, reason',
    ),
    failurePage: db.prepare<[string, string, number], MemberFailure>(
      'SELECT member_key AS memberKey, reason FROM member_failures WHERE run_id = ? AND member_key > ? ORDER BY member_key LIMIT ?',
    ),
    finishRun: db.prepare<[string, string, string | null, string, string]>(
      `UPDATE runs SET status = ?, finished_at = ?, source_version = coalesce(?, source_version), stats = ? WHERE run_id = ?`,
    ),
    insertRun: db.prepare<[string, string, string, string]>(
      `INSERT INTO runs (run_id, sync_id, kind, status, started_at) VALUES (?, ?, ?, 'running', ?) ON CONFLICT (run_id) DO NOTHING`,
    ),
    lastSucceededRunOfKind: db.prepare<[string], RunRow>(lastSucceededRun('kind')),
    lastSuccessfulRun: db.prepare<[string], RunRow>(lastSucceededRun('sync_id')),
    recentRuns: db.prepare<[number], RunRow>(`SELECT ${RUN_COLUMNS} FROM runs ORDER BY started_at DESC, run_id DESC LIMIT ?`),
    recentRunsOfSync: db.prepare<[string, number], RunRow>(
      `SELECT ${RUN_COLUMNS} FROM runs WHERE sync_id = ? ORDER BY started_at DESC, run_id DESC LIMIT ?`,
    ),

    upsertFailure: db.prepare<[string, string, string]>(
      `INSERT INTO member_failures (run_id, member_key, reason) VALUES (?, ?, ?)
       ON CONFLICT (run_id, member_key) DO UPDATE SET reason = excluded.reason`,
    ),
  };
}
