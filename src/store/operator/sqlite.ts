/** The operator's view on SQLite; the same contract as src/store/operator/postgres.ts. */
import { numbered, SQLITE_DIALECT } from '../dialect.js';
import type { SqliteDb } from '../sqlite-db.js';
import { DAY, MONTH, requireFormat } from '../shared.js';
import type { DailyDataPoints, OperatorView, RunOutcomeCount, SyncSummary, UsageCount } from '../store.js';
import * as operatorSql from './sql.js';

export class SqliteOperatorView implements OperatorView {
  readonly #db: SqliteDb;
  readonly #sql;
  readonly #add;

  constructor(db: SqliteDb) {
    this.#db = db;
    const sql = operatorSql.usageStatements(SQLITE_DIALECT);
    const handle = db.handle;
    this.#sql = {
      add: handle.prepare<Record<number, unknown>>(sql.add),
      since: handle.prepare<Record<number, unknown>, operatorSql.UsageRow>(sql.since),
      totals: handle.prepare<[], operatorSql.UsageTotalRow>(sql.totals),
      latestRunOfEachSync: handle.prepare<Record<number, unknown>, operatorSql.SyncSummaryRow>(sql.latestRunOfEachSync),
      runOutcomeCounts: handle.prepare<[], RunOutcomeCount>(sql.runOutcomeCounts),
      dataPointsByDay: handle.prepare<Record<number, unknown>, DailyDataPoints>(sql.dataPointsByDay),
      cohortDownloadsByMonth: handle.prepare<Record<number, unknown>, { month: string; downloads: number }>(sql.cohortDownloadsByMonth),
    };
    this.#add = handle.transaction((counts: readonly UsageCount[]) => {
      for (const { day, metric, labels, count } of counts) this.#sql.add.run(numbered([day, metric, operatorSql.labelsKey(labels), count]));
    });
  }

  addUsageCounts(counts: readonly UsageCount[]): Promise<void> {
    return this.#db.settle(() => {
      for (const { day } of counts) requireFormat('day', day, DAY, 'YYYY-MM-DD');
      this.#add.immediate(counts);
    });
  }

  usageCountsSince(sinceDay: string): Promise<UsageCount[]> {
    return this.#db.settle(() => {
      requireFormat('day', sinceDay, DAY, 'YYYY-MM-DD');
      return this.#sql.since.all(numbered([sinceDay])).map(operatorSql.toUsageCount);
    });
  }

  usageCountTotals(): Promise<Array<Omit<UsageCount, 'day'>>> {
    return this.#db.settle(() => this.#sql.totals.all().map(operatorSql.toUsageTotal));
  }

  latestRunOfEachSync(sinceMs: number): Promise<SyncSummary[]> {
    return this.#db.settle(() =>
      this.#sql.latestRunOfEachSync.all(numbered([new Date(sinceMs).toISOString()])).map(operatorSql.toSyncSummary),
    );
  }

  runOutcomeCounts(): Promise<RunOutcomeCount[]> {
    return this.#db.settle(() => this.#sql.runOutcomeCounts.all());
  }

  dataPointsByDay(sinceDay: string): Promise<DailyDataPoints[]> {
    return this.#db.settle(() => {
      requireFormat('day', sinceDay, DAY, 'YYYY-MM-DD');
      return this.#sql.dataPointsByDay.all(numbered([sinceDay]));
    });
  }

  cohortDownloadsByMonth(sinceMonth: string): Promise<Array<{ month: string; downloads: number }>> {
    return this.#db.settle(() => {
      requireFormat('month', sinceMonth, MONTH, 'YYYY-MM');
      return this.#sql.cohortDownloadsByMonth.all(numbered([sinceMonth]));
    });
  }
}
