/** The operator's view on PostgreSQL; the same contract as src/store/operator/sqlite.ts. */
import { POSTGRES_DIALECT } from '../dialect.js';
import type { PostgresDb } from '../postgres-db.js';
import { DAY, MONTH, requireFormat } from '../shared.js';
import type { DailyDataPoints, OperatorView, RunOutcomeCount, SyncSummary, UsageCount } from '../store.js';
import * as operatorSql from './sql.js';

const SQL = operatorSql.usageStatements(POSTGRES_DIALECT);

// One statement adds every count; rows repeated in the batch are summed first (an upsert cannot touch a row twice).
const ADD_MANY = `INSERT INTO usage_counts (day, metric, labels, count)
  SELECT day, metric, labels, sum(count) FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[]) AS t(day, metric, labels, count)
  GROUP BY day, metric, labels
  ON CONFLICT (day, metric, labels) DO UPDATE SET count = usage_counts.count + excluded.count`;

export class PostgresOperatorView implements OperatorView {
  readonly #db: PostgresDb;

  constructor(db: PostgresDb) {
    this.#db = db;
  }

  async addUsageCounts(counts: readonly UsageCount[]): Promise<void> {
    if (counts.length === 0) return;
    for (const { day } of counts) requireFormat('day', day, DAY, 'YYYY-MM-DD');
    await this.#db.query(ADD_MANY, [
      counts.map((count) => count.day),
      counts.map((count) => count.metric),
      counts.map((count) => operatorSql.labelsKey(count.labels)),
      counts.map((count) => count.count),
    ]);
  }

  async usageCountsSince(sinceDay: string): Promise<UsageCount[]> {
    requireFormat('day', sinceDay, DAY, 'YYYY-MM-DD');
    return (await this.#db.rows<operatorSql.UsageRow>(SQL.since, [sinceDay])).map(operatorSql.toUsageCount);
  }

  async usageCountTotals(): Promise<Array<Omit<UsageCount, 'day'>>> {
    return (await this.#db.rows<operatorSql.UsageTotalRow>(SQL.totals)).map(operatorSql.toUsageTotal);
  }

  async latestRunOfEachSync(sinceMs: number): Promise<SyncSummary[]> {
    return (await this.#db.rows<operatorSql.SyncSummaryRow>(SQL.latestRunOfEachSync, [new Date(sinceMs)])).map(operatorSql.toSyncSummary);
  }

  async runOutcomeCounts(): Promise<RunOutcomeCount[]> {
    const rows = await this.#db.rows<RunOutcomeCount & { count: string }>(SQL.runOutcomeCounts);
    return rows.map((row) => ({ ...row, count: Number(row.count) }));
  }

  async dataPointsByDay(sinceDay: string): Promise<DailyDataPoints[]> {
    requireFormat('day', sinceDay, DAY, 'YYYY-MM-DD');
    const rows = await this.#db.rows<DailyDataPoints & { points: string }>(SQL.dataPointsByDay, [sinceDay]);
    return rows.map((row) => ({ ...row, points: Number(row.points) }));
  }

  async cohortDownloadsByMonth(sinceMonth: string): Promise<Array<{ month: string; downloads: number }>> {
    requireFormat('month', sinceMonth, MONTH, 'YYYY-MM');
    const rows = await this.#db.rows<{ month: string; downloads: string }>(SQL.cohortDownloadsByMonth, [sinceMonth]);
    return rows.map((row) => ({ month: row.month, downloads: Number(row.downloads) }));
  }
}
