/**
 * The usage report as one self-contained HTML page (inline SVG and CSS, no script, no external asset): what
 * `ampbraze usage --html FILE` writes and the receiver serves at `/status`. Every bar carries its figure (`data-value`,
 * a tooltip, and a label over each day's total), so the page can be read by eye and checked by a test.
 */
import type { DailySeries, UsageReport } from './usage.js';

const WIDTH = 760;
const HEIGHT = 220;
const MARGIN = { top: 24, right: 16, bottom: 40, left: 64 };
const COLOURS = ['#2563eb', '#f59e0b', '#10b981', '#ef4444', '#8b5cf6', '#0ea5e9', '#84cc16', '#ec4899'];

export function usagePage(report: UsageReport): string {
  const { days } = report;
  const downloads = report.cohortDownloads.map(({ month, used, quota }) => meter(`cohort-downloads-${month}`, month, used, quota)).join('');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>amplitude-braze-sync usage</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font:14px/1.45 system-ui,sans-serif;margin:24px;color:#111827;max-width:${WIDTH + 40}px}
h1{font-size:20px}h2{font-size:16px;margin:28px 0 4px}p.note{color:#6b7280;margin:0 0 8px}
svg text{font:11px system-ui,sans-serif;fill:#374151}.legend span{display:inline-block;margin-right:14px}
.legend i{display:inline-block;width:10px;height:10px;margin-right:4px;vertical-align:-1px}
table{border-collapse:collapse}td,th{padding:2px 10px 2px 0;text-align:left}td.n{text-align:right}
</style></head><body>
<h1>Usage, ${escape(days[0]!)} to ${escape(days.at(-1)!)} (UTC)</h1>
<p class="note">Generated ${escape(report.generatedAt)} from the state store's ledgers.</p>
<h2>Braze data points per day, by sync</h2>
${barChart('data-points', days, report.dataPoints, 'data points')}
<h2>Amplitude cohort downloads against the monthly quota</h2>
<div data-chart="cohort-downloads">${downloads}</div>
<h2>User Profile API requests per day, against this project's share</h2>
${barChart('profile-api', days, [{ name: 'requests', perDay: report.profileApi.perDay }], 'requests', report.profileApi.sharePerDay)}
<h2>429s per day, by vendor endpoint</h2>
${barChart('rate-limited', days, report.rateLimited, '429s')}
<h2>Vendor requests by answer</h2>
${requestsTable(report.requests)}
</body></html>
`;
}

/** Stacked bars, one per day, one colour per series; an optional dashed line marks a limit. */
function barChart(id: string, days: string[], series: DailySeries[], unit: string, limit?: number): string {
  const totals = days.map((_, day) => series.reduce((sum, line) => sum + line.perDay[day]!, 0));
  const top = niceCeiling(Math.max(1, limit ?? 0, ...totals));
  const plotWidth = WIDTH - MARGIN.left - MARGIN.right;
  const plotHeight = HEIGHT - MARGIN.top - MARGIN.bottom;
  const slot = plotWidth / days.length;
  const barWidth = Math.max(2, slot * 0.7);
  const y = (value: number) => MARGIN.top + plotHeight - (value / top) * plotHeight;
  const parts: string[] = [];
  for (const tick of [0, top / 2, top]) {
    parts.push(`<line x1="${MARGIN.left}" x2="${WIDTH - MARGIN.right}" y1="${y(tick)}" y2="${y(tick)}" stroke="#e5e7eb"/>`);
    parts.push(`<text x="${MARGIN.left - 6}" y="${y(tick) + 4}" text-anchor="end">${number(tick)}</text>`);
  }
  days.forEach((day, index) => {
    const x = MARGIN.left + index * slot + (slot - barWidth) / 2;
    let stacked = 0;
    series.forEach((line, lineIndex) => {
      const value = line.perDay[index]!;
      if (value === 0) return;
      const [from, to] = [y(stacked), y(stacked + value)];
      stacked += value;
      parts.push(
        `<rect data-series="${escape(line.name)}" data-day="${day}" data-value="${value}" x="${x}" y="${to}" width="${barWidth}" height="${from - to}" fill="${COLOURS[lineIndex % COLOURS.length]}"><title>${escape(line.name)}, ${day}: ${number(value)} ${unit}</title></rect>`,
      );
    });
    if (totals[index]! > 0) {
      parts.push(
        `<text class="total" data-day="${day}" x="${x + barWidth / 2}" y="${y(totals[index]!) - 4}" text-anchor="middle">${number(totals[index]!)}</text>`,
      );
    }
    // A label for every day when they fit, else for about eight of them.
    if (days.length <= 10 || index % Math.ceil(days.length / 8) === 0) {
      parts.push(`<text x="${x + barWidth / 2}" y="${HEIGHT - MARGIN.bottom + 16}" text-anchor="middle">${day.slice(5)}</text>`);
    }
  });
  if (limit !== undefined) {
    parts.push(
      `<line class="limit" data-value="${limit}" x1="${MARGIN.left}" x2="${WIDTH - MARGIN.right}" y1="${y(limit)}" y2="${y(limit)}" stroke="#dc2626" stroke-dasharray="6 4"><title>share: ${number(limit)} ${unit} a day</title></line>`,
    );
  }
  const legend = series.length === 0 ? `<p class="note">No ${unit} in these days.</p>` : legendOf(series);
  return `<figure data-chart="${id}" style="margin:0"><svg role="img" aria-label="${escape(unit)} per day" width="${WIDTH}" height="${HEIGHT}" viewBox="0 0 ${WIDTH} ${HEIGHT}">${parts.join('')}</svg>${legend}</figure>`;
}

/** One month's use of a quota as a horizontal bar. */
function meter(id: string, label: string, used: number, quota: number): string {
  const width = WIDTH - MARGIN.left - MARGIN.right - 120;
  const filled = Math.min(1, used / quota) * width;
  const colour = used >= quota ? '#dc2626' : used >= quota * 0.8 ? '#f59e0b' : '#2563eb';
  return `<svg data-meter="${escape(id)}" data-value="${used}" data-quota="${quota}" width="${WIDTH}" height="28" viewBox="0 0 ${WIDTH} 28">
<text x="${MARGIN.left - 6}" y="18" text-anchor="end">${escape(label)}</text>
<rect x="${MARGIN.left}" y="6" width="${width}" height="16" fill="#f3f4f6"/><rect x="${MARGIN.left}" y="6" width="${filled}" height="16" fill="${colour}"><title>${escape(label)}: ${number(used)} of ${number(quota)} downloads</title></rect>
<text class="used" x="${MARGIN.left + width + 8}" y="18">${number(used)} / ${number(quota)}</text></svg>`;
}

function legendOf(series: DailySeries[]): string {
  const entries = series.map(
    (line, index) =>
      `<span><i style="background:${COLOURS[index % COLOURS.length]}"></i>${escape(line.name)} (${number(line.perDay.reduce((a, b) => a + b, 0))})</span>`,
  );
  return `<div class="legend">${entries.join('')}</div>`;
}

function requestsTable(requests: UsageReport['requests']): string {
  if (requests.length === 0) return '<p class="note">No vendor requests in these days.</p>';
  const rows = requests.map(
    ({ vendor, endpoint, status, count }) =>
      `<tr><td>${escape(vendor)}</td><td>${escape(endpoint)}</td><td>${escape(status)}</td><td class="n">${number(count)}</td></tr>`,
  );
  return `<table data-table="requests"><tr><th>Vendor</th><th>Endpoint</th><th>Answer</th><th>Requests</th></tr>${rows.join('')}</table>`;
}

/** The smallest of 1, 2 or 5 × 10^n at or above `value`: axis tops that read well. */
function niceCeiling(value: number): number {
  const magnitude = 10 ** Math.floor(Math.log10(value));
  return [1, 2, 5, 10].map((step) => step * magnitude).find((candidate) => candidate >= value)!;
}

function number(value: number): string {
  return value.toLocaleString('en-US');
}

function escape(text: string): string {
  return text.replace(/[&<>"']/g, (char) => `&#${char.charCodeAt(0)};`);
}
