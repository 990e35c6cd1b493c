/**
 * Runs and sync leases: one row per run (what it did, how it ended), the per-member failures it recorded, and the
 * lease that lets only one run of a sync at a time. On PostgreSQL; the same contract as src/store/runs/sqlite.ts.
 */
import { POSTGRES_DIALECT } from '../dialect.js';
import { batches, type PostgresDb } from '../postgres-db.js';
import { claimParameters, leaseStatements, type LeaseHolderRow } from './lease.js';
import { FIRST_KEY, pageLimit, requireKey, toPage, toRunRecord, type RunRow } from '../shared.js';
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

const LEASE = leaseStatements(POSTGRES_DIALECT);

// One statement cannot update a row twice: of a member repeated in one batch the last reason wins, as row by row.
const UPSERT_FAILURES = `INSERT INTO member_failures (run_id, member_key, reason)
  SELECT DISTINCT ON (k) $1, k, r FROM unnest($2::text[], $3::text[]) WITH ORDINALITY AS t(k, r, n) ORDER BY k, n DESC
  ON CONFLICT (run_id, member_key) DO UPDATE SET reason = excluded.reason`;

const RUN_COLUMNS = `run_id AS "runId", sync_id AS "syncId", kind, status, started_at AS "startedAt", finished_at AS "finishedAt",
  source_version AS "sourceVersion", stats`;

/** The latest run to finish successfully whose `column` is $1. */
const lastSucceededRun = (column: 'sync_id' | 'kind') =>
  `SELECT ${RUN_COLUMNS} FROM runs WHERE ${column} = $1 AND status = 'succeeded' ORDER BY finished_at DESC LIMIT 1`;

export class PostgresRuns implements RunsAndLeases {
  readonly #db: PostgresDb;

  constructor(db: PostgresDb) {
    this.#db = db;
  }

  async startRun(run: RunStart): Promise<void> {
    await this.#db.query(
      `INSERT INTO runs (run_id, sync_id, kind, status, started_at) VALUES ($1, $2, $3, 'running', $4) ON CONFLICT (run_id) DO NOTHING`,
      [run.runId, run.syncId, run.kind, run.startedAt],
    );
  }

  async finishRun(finish: RunFinish): Promise<void> {
    const { rowCount } = await this.#db.query(
      'UPDATE runs SET status = $1, finished_at = $2, source_version = coalesce($3, source_version), stats = $4 WHERE run_id = $5',
      [finish.status, finish.finishedAt, finish.sourceVersion ?? null, JSON.stringify(finish.stats), finish.runId],
    );
    if (rowCount === 0) throw new Error(`finishRun: run "${finish.runId}" was never started`);
  }

  async lastSuccessfulRun(syncId: string): Promise<RunRecord | undefined> {
    const [row] = await this.#db.rows<RunRow>(lastSucceededRun('sync_id'), [syncId]);
    return row && toRunRecord(row);
  }

  async lastSucceededRunOfKind(kind: string): Promise<RunRecord | undefined> {
    const [row] = await this.#db.rows<RunRow>(lastSucceededRun('kind'), [kind]);
    return row && toRunRecord(row);
  }

  async recentRuns(options: { syncId?: string; limit: number }): Promise<RunRecord[]> {
    const limit = pageLimit(options.limit);
    const rows =
      options.syncId === undefined
        ? await this.#db.rows<RunRow>(`SELECT ${RUN_COLUMNS} FROM runs ORDER BY started_at DESC, run_id DESC LIMIT $1`, [limit])
        : await this.#db.rows<RunRow>(`SELECT ${RUN_COLUMNS} FROM runs WHERE sync_id = $1 ORDER BY started_at DESC, run_id DESC LIMIT $2`, [
            options.syncId,
            limit,
          ]);
    return rows.map(toRunRecord);
  }

  async recordFailures(runId: string, failures: readonly MemberFailure[]): Promise<void> {
    for (const chunk of batches(failures)) {
      await this.#db.query(UPSERT_FAILURES, [
        runId,
        chunk.map((failure) => requireKey(failure.memberKey)),
        chunk.map((failure) => failure.reason),
      ]);
    }
  }

  async failuresForRun(runId: string, options: PageOptions): Promise<Page<MemberFailure>> {
    const limit = pageLimit(options.limit);
    const rows = await this.#db.rows<MemberFailure>(
      'SELECT member_key AS "memberKey", reason FROM member_failures WHERE run_id = $1 AND member_key > $2 ORDER BY member_key LIMIT $3',
      [runId, options.afterKey ?? FIRST_KEY, limit],
    );
    return toPage(rows, limit);
  }

  failureCountsByReason(runId: string): Promise<ReasonCount[]> {
    return this.#db.rows<ReasonCount>(
      'SELECT reason, count(*) AS count FROM member_failures WHERE run_id = $1 GROUP BY reason ORDER BY count DESC, reason',
      [runId],
    );
  }

  claimSyncLease(claim: SyncLeaseClaim): Promise<SyncLease> {
    return this.#db.transaction(async (client) => {
      if ((await client.query(LEASE.claim, claimParameters(claim))).rowCount === 1) return { held: true };
      const { rows } = await client.query<LeaseHolderRow>(LEASE.holder, [claim.syncId]);
      return { held: false, ...rows[0]! };
    });
  }

  async releaseSyncLease(syncId: string, holder: string): Promise<void> {
    await this.#db.query(LEASE.release, [syncId, holder]);
  }
}
