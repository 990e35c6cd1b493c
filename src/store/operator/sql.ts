/**
 * The operator's reads and the usage counts, written once for both stores (`?n` on SQLite, `$n` on PostgreSQL).
 * Run times are ISO text on SQLite and TIMESTAMPTZ on PostgreSQL: each store binds `sinceMs` as its own type.
 */
import type { SqlDialect } from '../dialect.js';
import { toRunRecord, type RunRow } from '../shared.js';
import type { SyncSummary, UsageCount, UsageMetric } from '../store.js';

export const usageStatements = (d: SqlDialect) => ({
  add: `INSERT INTO usage_counts (day, metric, labels, count) VALUES (${d.param(1)}, ${d.param(2)}, ${d.param(3)}, ${d.param(4, 'number')})
    ON CONFLICT (day, metric, labels) DO UPDATE SET count = usage_counts.count + excluded.count`,
  since: `SELECT day, metric, labels, count FROM usage_counts WHERE day >= ${d.param(1)} ORDER BY day, metric, labels`,
  totals: 'SELECT metric, labels, sum(count) AS count FROM usage_counts GROUP BY metric, labels ORDER BY metric, labels',
  // A sync's latest run is the one no other run of it started after (ties broken by run id).
  latestRunOfEachSync: `SELECT run_id AS "runId", sync_id AS "syncId", kind, status, started_at AS "startedAt",
      finished_at AS "finishedAt", source_version AS "sourceVersion", stats,
      (SELECT max(done.finished_at) FROM runs done WHERE done.sync_id = latest.sync_id AND done.status = 'succeeded') AS "lastSucceededAt"
    FROM runs latest
    WHERE latest.started_at >= ${d.param(1)} AND NOT EXISTS (
      SELECT 1 FROM runs newer WHERE newer.sync_id = latest.sync_id
        AND (newer.started_at > latest.started_at OR (newer.started_at = latest.started_at AND newer.run_id > latest.run_id)))
    ORDER BY latest.sync_id`,
  runOutcomeCounts: 'SELECT kind, status, count(*) AS count FROM runs GROUP BY kind, status ORDER BY kind, status',
  dataPointsByDay: `SELECT day, sync_id AS "syncId", run_id AS "runId", sum(points) AS points FROM data_points
    WHERE day >= ${d.param(1)} GROUP BY day, sync_id, run_id ORDER BY day, sync_id, run_id`,
  cohortDownloadsByMonth: `SELECT month, count(*) AS downloads FROM cohort_downloads WHERE month >= ${d.param(1)} GROUP BY month ORDER BY month`,
});

/** Labels as stored: JSON with sorted keys, so one set of labels is always one row. */
export function labelsKey(labels: Record<string, string>): string {
  return JSON.stringify(Object.fromEntries(Object.entries(labels).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))));
}

export interface UsageRow {
  day: string;
  metric: string;
  labels: string;
  count: number | string;
}

export type UsageTotalRow = Omit<UsageRow, 'day'>;

export function toUsageTotal(row: UsageTotalRow): Omit<UsageCount, 'day'> {
  return { metric: row.metric as UsageMetric, labels: JSON.parse(row.labels) as Record<string, string>, count: Number(row.count) };
}

export function toUsageCount(row: UsageRow): UsageCount {
  return { day: row.day, ...toUsageTotal(row) };
}

export interface SyncSummaryRow extends RunRow {
  lastSucceededAt: string | Date | null;
}

export function toSyncSummary(row: SyncSummaryRow): SyncSummary {
  return { lastRun: toRunRecord(row), lastSucceededAt: row.lastSucceededAt === null ? undefined : new Date(row.lastSucceededAt) };
}
