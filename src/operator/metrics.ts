/**
 * The deployment's metrics in Prometheus' text format, read from the shared store at each scrape, so one scrape of
 * any receiver sees every worker's work: vendor requests and 429s by endpoint, rows staged and sent by sync kind,
 * data points, run outcomes, cohort downloads, and each stream's backlog, its age and its dead letters.
 */
import type { UsageQuotas } from '../config.js';
import type { StateStore } from '../store/store.js';
import { streamBacklogs } from './receivers.js';
import { spenderOf } from './sync-groups.js';
import { dayOf } from './usage.js';

type Labels = Record<string, string>;

class Exposition {
  readonly #lines: string[] = [];

  metric(name: string, type: 'counter' | 'gauge', help: string, samples: ReadonlyArray<{ labels: Labels; value: number }>): void {
    this.#lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
    for (const { labels, value } of samples) this.#lines.push(`${name}${labelText(labels)} ${value}`);
  }

  text(): string {
    return `${this.#lines.join('\n')}\n`;
  }
}

export async function storeMetrics(store: StateStore, quotas: UsageQuotas, nowMs = Date.now()): Promise<string> {
  const out = new Exposition();
  const totals = await store.usageCountTotals();
  const ofMetric = (metric: string) =>
    totals.filter((total) => total.metric === metric).map(({ labels, count }) => ({ labels, value: count }));
  out.metric(
    'ampbraze_vendor_requests_total',
    'counter',
    'Vendor requests by vendor, endpoint and answer (2xx, 429, 4xx, 5xx, network).',
    ofMetric('vendor_requests'),
  );
  out.metric(
    'ampbraze_rows_staged_total',
    'counter',
    'Rows staged by sync kind (for streams: items the receivers spooled).',
    ofMetric('rows_staged'),
  );
  out.metric(
    'ampbraze_rows_sent_total',
    'counter',
    'Rows sent to Braze or Amplitude by sync kind, accepted or refused.',
    ofMetric('rows_sent'),
  );

  const today = dayOf(nowMs);
  const month = today.slice(0, 7);
  const [todayBySync, monthBySync] = [new Map<string, number>(), new Map<string, number>()];
  for (const { day, syncId, runId, points } of await store.dataPointsByDay(`${month}-01`)) {
    const sync = spenderOf({ syncId, runId });
    monthBySync.set(sync, (monthBySync.get(sync) ?? 0) + points);
    if (day === today) todayBySync.set(sync, (todayBySync.get(sync) ?? 0) + points);
  }
  const bySync = (points: Map<string, number>) => [...points].map(([sync, value]) => ({ labels: { sync }, value }));
  out.metric('ampbraze_data_points_today', 'gauge', 'Braze data points spent today (UTC), by sync.', bySync(todayBySync));
  out.metric('ampbraze_data_points_month', 'gauge', 'Braze data points spent this month (UTC), by sync.', bySync(monthBySync));

  const runs = await store.runOutcomeCounts();
  out.metric(
    'ampbraze_runs_total',
    'counter',
    'Sync runs by kind and status (running, succeeded, failed, cancelled).',
    runs.map(({ kind, status, count }) => ({ labels: { kind, status }, value: count })),
  );

  const downloads = (await store.cohortDownloadsByMonth(month)).find((row) => row.month === month)?.downloads ?? 0;
  out.metric('ampbraze_cohort_downloads_month', 'gauge', 'Amplitude cohort downloads this month.', [{ labels: {}, value: downloads }]);
  out.metric('ampbraze_cohort_downloads_quota', 'gauge', 'The monthly cohort download quota (AMPLITUDE_COHORT_DOWNLOAD_QUOTA).', [
    { labels: {}, value: quotas.cohortDownloadsPerMonth },
  ]);

  const backlogs = await streamBacklogs(store, nowMs);
  const byStream = (value: (backlog: (typeof backlogs)[number]) => number) =>
    backlogs.map((backlog) => ({ labels: { stream: backlog.stream }, value: value(backlog) }));
  out.metric(
    'ampbraze_spool_backlog',
    'gauge',
    'Items a stream has spooled and not processed yet.',
    byStream((backlog) => backlog.pending),
  );
  out.metric(
    'ampbraze_spool_oldest_age_seconds',
    'gauge',
    "Age of a stream's oldest unprocessed item.",
    byStream((backlog) => backlog.oldestAgeSeconds),
  );
  out.metric(
    'ampbraze_dead_letters',
    'gauge',
    'Dead letters a stream keeps (not replayed or discarded).',
    byStream((backlog) => backlog.deadLetters),
  );
  return out.text();
}

function labelText(labels: Labels): string {
  const entries = Object.entries(labels);
  if (entries.length === 0) return '';
  return `{${entries.map(([name, value]) => `${name}="${value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`).join(',')}}`;
}
