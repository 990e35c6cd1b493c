/**
 * The usage report behind `ampbraze usage` and the receiver's `/status`: data points per day per sync, cohort
 * downloads against the monthly quota, User Profile API requests against this project's share, and the 429s each
 * vendor answered, read from the store's ledgers and usage counts.
 */
import type { UsageQuotas } from '../config.js';
import type { StateStore } from '../store/store.js';
import { spenderOf } from './sync-groups.js';

export const PROFILE_API_ENDPOINT = 'GET /v1/userprofile';
const DAY_MS = 86_400_000;

/** One line of a chart: a value per day of the report. */
export interface DailySeries {
  name: string;
  perDay: number[];
}

export interface UsageReport {
  generatedAt: string;
  /** `YYYY-MM-DD`, oldest first; every series has one value per day. */
  days: string[];
  /** Data points per sync (the event pipeline's hours as one), most spent first. */
  dataPoints: DailySeries[];
  /** Cohort downloads reserved per month (this month and the two before), against the monthly quota. */
  cohortDownloads: Array<{ month: string; used: number; quota: number }>;
  /** User Profile API requests per day (every answer, workers and receivers), against the daily share. */
  profileApi: { perDay: number[]; sharePerDay: number };
  /** 429s per vendor endpoint per day. */
  rateLimited: DailySeries[];
  /** Requests per vendor endpoint and answer over the report's days. */
  requests: Array<{ vendor: string; endpoint: string; status: string; count: number }>;
}

export async function usageReport(store: StateStore, quotas: UsageQuotas, options: { days: number; nowMs?: number }): Promise<UsageReport> {
  const nowMs = options.nowMs ?? Date.now();
  const days = Array.from({ length: options.days }, (_, index) => dayOf(nowMs - (options.days - 1 - index) * DAY_MS));
  const firstDay = days[0]!;
  const dayIndex = new Map(days.map((day, index) => [day, index]));
  const seriesOf = (groups: Map<string, number[]>, name: string) => {
    let series = groups.get(name);
    if (!series) groups.set(name, (series = days.map(() => 0)));
    return series;
  };

  const bySync = new Map<string, number[]>();
  for (const entry of await store.dataPointsByDay(firstDay)) {
    const index = dayIndex.get(entry.day);
    if (index !== undefined) seriesOf(bySync, spenderOf(entry))[index]! += entry.points;
  }

  const profilePerDay = days.map(() => 0);
  const rateLimited = new Map<string, number[]>();
  const requests = new Map<string, { vendor: string; endpoint: string; status: string; count: number }>();
  for (const { day, metric, labels, count } of await store.usageCountsSince(firstDay)) {
    const index = dayIndex.get(day);
    if (metric !== 'vendor_requests' || index === undefined) continue;
    const { vendor = '', endpoint = '', status = '' } = labels;
    if (vendor === 'amplitude' && endpoint === PROFILE_API_ENDPOINT) profilePerDay[index]! += count;
    if (status === '429') seriesOf(rateLimited, `${vendor} ${endpoint}`)[index]! += count;
    const key = `${vendor} ${endpoint} ${status}`;
    const total = requests.get(key) ?? { vendor, endpoint, status, count: 0 };
    total.count += count;
    requests.set(key, total);
  }

  const months = [2, 1, 0].map((back) => monthOf(nowMs, back));
  const downloads = new Map((await store.cohortDownloadsByMonth(months[0]!)).map((row) => [row.month, row.downloads]));
  const { profileRate } = quotas;
  return {
    generatedAt: new Date(nowMs).toISOString(),
    days,
    dataPoints: toSeries(bySync),
    cohortDownloads: months.map((month) => ({ month, used: downloads.get(month) ?? 0, quota: quotas.cohortDownloadsPerMonth })),
    profileApi: { perDay: profilePerDay, sharePerDay: Math.floor((profileRate.requests * DAY_MS) / profileRate.windowMs) },
    rateLimited: toSeries(rateLimited),
    requests: [...requests.values()].sort((a, b) => b.count - a.count),
  };
}

/** The report as plain text: what `ampbraze usage` prints. */
export function usageText(report: UsageReport): string {
  const sum = (values: number[]) => values.reduce((total, value) => total + value, 0);
  const span = `${report.days[0]} – ${report.days.at(-1)}`;
  const lines = [`Usage ${span} (UTC)`, '', 'Data points by sync (today, all days):'];
  if (report.dataPoints.length === 0) lines.push('  none spent');
  for (const series of report.dataPoints)
    lines.push(`  ${series.name}: ${count(series.perDay.at(-1)!)} today, ${count(sum(series.perDay))} in all`);
  lines.push('', 'Amplitude cohort downloads:');
  for (const { month, used, quota } of report.cohortDownloads) lines.push(`  ${month}: ${count(used)} of ${count(quota)}`);
  const { perDay, sharePerDay } = report.profileApi;
  lines.push(
    '',
    `User Profile API: ${count(perDay.at(-1)!)} requests today, ${count(sum(perDay))} in all (share: ${count(sharePerDay)} a day)`,
  );
  lines.push('', '429s:');
  if (report.rateLimited.length === 0) lines.push('  none');
  for (const series of report.rateLimited)
    lines.push(`  ${series.name}: ${count(series.perDay.at(-1)!)} today, ${count(sum(series.perDay))} in all`);
  return lines.join('\n');
}

export function dayOf(ms: number): string {
  return new Date(ms).toISOString().slice(0, 10);
}

function monthOf(nowMs: number, monthsBack: number): string {
  const now = new Date(nowMs);
  return new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() - monthsBack, 1)).toISOString().slice(0, 7);
}

function toSeries(groups: Map<string, number[]>): DailySeries[] {
  const total = (values: number[]) => values.reduce((sum, value) => sum + value, 0);
  return [...groups]
    .map(([name, perDay]) => ({ name, perDay }))
    .sort((a, b) => total(b.perDay) - total(a.perDay) || (a.name < b.name ? -1 : 1));
}

function count(value: number): string {
  return value.toLocaleString('en-US');
}
