/**
 * The operator's view end to end, on a real Temporal dev server against the sandboxes over HTTP: `ampbraze syncs`
 * (runs found whoever started them, schedules, outcomes, data points, exit status), `ampbraze usage --html` read in
 * headless Chromium, and the receiver's `/metrics` scraped while a sync runs. Figures are checked against the
 * sandboxes' own counts.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { pathToFileURL } from 'node:url';
import { chromium } from 'playwright-core';
import { scheduleCohortSync, startCohortSync } from '../src/client.js';
import { Secret } from '../src/config.js';
import type { SyncsReport } from '../src/operator/syncs.js';
import { buildReceiver } from '../src/receiver/server.js';
import { ampbraze } from './helpers/cli.js';
import { currentsEvent, waitUntil } from './helpers/currents-scenarios.js';
import { SQLITE } from './helpers/stores.js';
import { testTemporalEnv } from './helpers/temporal.js';
import { WorkerHarness } from './helpers/worker-harness.js';

const SMALL_COHORT = '26umsb5';
const MEDIUM_COHORT = '3k9x2pq';
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const QUOTAS = { cohortDownloadsPerMonth: 500, profileRate: { requests: 300, windowMs: 60_000 } };

const h = new WorkerHarness(
  SQLITE,
  { seed: 11, users: 3_000, dataset: { brazeKnownFraction: 1 }, amplitude: { exportJobDurationMs: 200 } },
  { queuePrefix: 'operator' },
);
const today = () => new Date().toISOString().slice(0, 10);
const cliEnv = () => ({ ...testTemporalEnv(), TEMPORAL_TASK_QUEUE: h.taskQueue, ...h.storeEnv });
const brazePoints = () => h.sandboxes.braze.control.dataPoints().total;

/** `ampbraze syncs --json`, parsed, with its exit code. */
async function syncs(): Promise<{ code: number | null; report: SyncsReport }> {
  const { code, stdout, stderr } = await ampbraze(['syncs', '--json'], cliEnv());
  assert.ok(code === 0 || code === 1, `ampbraze syncs exited ${code}: ${stderr}`);
  return { code, report: JSON.parse(stdout) as SyncsReport };
}

test('`ampbraze syncs` finds each sync whoever started it, with its outcome, schedule and data points, and exits 1 once one fails', async () => {
  await h.ready;
  const { client } = h.env;
  const beforeDirect = brazePoints();
  const direct = await startCohortSync(client, { cohortId: SMALL_COHORT }, { taskQueue: h.taskQueue });
  await direct.result();
  const directPoints = brazePoints() - beforeDirect;

  // A run a schedule started: triggered now, as the Temporal UI's "Trigger" does.
  const scheduleId = `operator-schedule-${process.pid}-${Date.now()}`;
  const schedule = await scheduleCohortSync(client, { cohortId: MEDIUM_COHORT }, { cadence: 'hourly', taskQueue: h.taskQueue, scheduleId });
  const beforeScheduled = brazePoints();
  await schedule.trigger();
  let started: { workflowId: string; firstExecutionRunId: string } | undefined;
  await waitUntil(async () => {
    started = (await schedule.describe()).info.recentActions[0]?.action.workflow;
    return started !== undefined;
  }, 'the schedule started its run');
  await client.workflow.getHandle(started!.workflowId, started!.firstExecutionRunId).result();
  const scheduledPoints = brazePoints() - beforeScheduled;
  assert.ok(directPoints > 0 && scheduledPoints > 0, 'both runs spent data points');

  const healthy = await syncs();
  assert.equal(healthy.code, 0, JSON.stringify(healthy.report));
  const rowOf = (report: SyncsReport, sync: string) => report.syncs.find((row) => row.sync === sync);
  const directRow = rowOf(healthy.report, `cohort-sync-${SMALL_COHORT}`);
  assert.ok(directRow, 'the directly started sync is listed');
  assert.deepEqual(
    [directRow.kind, directRow.lastRun?.status, directRow.lastRun?.outcome, directRow.lastRun?.startedBy, directRow.lastRun?.workflowId],
    ['cohort', 'COMPLETED', 'succeeded', 'direct', direct.workflowId],
  );
  assert.equal(directRow.dataPointsToday, directPoints, "today's data points are Braze's own count for the run");
  assert.equal(directRow.dataPointsMonth, directPoints);
  const scheduledRow = rowOf(healthy.report, `cohort-sync-${MEDIUM_COHORT}`);
  assert.ok(scheduledRow, 'the sync its schedule started is listed');
  assert.equal(scheduledRow.lastRun?.startedBy, `schedule ${scheduleId}`);
  assert.equal(scheduledRow.lastRun?.status, 'COMPLETED');
  assert.equal(scheduledRow.schedule?.scheduleId, scheduleId);
  assert.equal(scheduledRow.schedule?.periodMs, 3_600_000, 'the schedule runs hourly');
  assert.ok(Date.parse(scheduledRow.schedule?.nextRunAt ?? '') > Date.now(), 'the next run is ahead');
  assert.equal(scheduledRow.dataPointsToday, scheduledPoints);
  assert.ok(healthy.report.healthy);

  // A run that fails before it records anything: still listed, and the command exits 1.
  const failing = await startCohortSync(client, { cohortId: 'nosuchcohort' }, { taskQueue: h.taskQueue });
  await assert.rejects(failing.result());
  const unhealthy = await syncs();
  assert.equal(unhealthy.code, 1, 'a failed last run makes the check fail');
  const failedRow = unhealthy.report.syncs.find((row) => row.lastRun?.workflowId === failing.workflowId);
  assert.ok(failedRow, 'the failed run is listed');
  assert.deepEqual([failedRow.lastRun?.status, failedRow.problems], ['FAILED', ['last run failed']]);
  const text = await ampbraze(['syncs'], cliEnv());
  assert.equal(text.code, 1);
  assert.match(text.stdout, /✗ last run failed/);
  assert.match(text.stdout, /1 problem \(marked ✗\)\./);
  assert.match(text.stdout, new RegExp(`cohort-sync-${MEDIUM_COHORT} .* schedule ${scheduleId} .* in \\d+ (s|min)`));
  await schedule.delete();
});

test('`ampbraze usage --html` charts the ledgers: data points per sync, 429s, cohort downloads and Profile API use, as the sandboxes counted them', async () => {
  await h.ready;
  if (!existsSync(CHROMIUM)) throw new Error(`No browser at ${CHROMIUM}: run scripts/install-chromium.sh (or set CHROMIUM_PATH)`);
  // Every third Braze request is answered 429 while this sync runs: it waits them out and sends everything.
  h.sandboxes.braze.control.setFaults({ rateLimitBurstEvery: 3, rateLimitBurstLength: 1 });
  try {
    await (
      await startCohortSync(
        h.env.client,
        { cohortId: MEDIUM_COHORT, attributeName: 'usage_cohorts', pageSize: 50 },
        { taskQueue: h.taskQueue },
      )
    ).result();
  } finally {
    h.sandboxes.braze.control.setFaults({});
  }
  await h.context.usage.flush();
  const file = join(await mkdtemp(join(tmpdir(), 'ampbraze-usage-')), 'usage.html');
  const printed = await ampbraze(['usage', '--days', '7', '--html', file], cliEnv());
  assert.equal(printed.code, 0, printed.stderr);

  const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox'] });
  try {
    const page = await browser.newPage();
    await page.goto(pathToFileURL(file).href);
    /** A chart's bars as the browser drew them: each one's figure, and its rendered height. */
    const bars = async (chart: string) =>
      Promise.all(
        (await page.locator(`[data-chart="${chart}"] rect[data-value]`).all()).map(async (rect) => ({
          series: (await rect.getAttribute('data-series'))!,
          day: (await rect.getAttribute('data-day'))!,
          value: Number(await rect.getAttribute('data-value')),
          height: (await rect.boundingBox())!.height,
        })),
      );
    // Data points: one bar segment per sync today, each its ledger's figure; together Braze's own count.
    const pointBars = (await bars('data-points')).filter((bar) => bar.day === today());
    for (const bar of pointBars) assert.equal(bar.value, await h.context.store.dataPointsOnDay(today(), bar.series), bar.series);
    assert.equal(
      pointBars.reduce((sum, bar) => sum + bar.value, 0),
      brazePoints(),
      "the day's bars add up to Braze's own count",
    );
    assert.ok(pointBars.length >= 3, 'the three cohort syncs have their own segments');
    const tallest = pointBars.reduce((a, b) => (b.value > a.value ? b : a));
    const smallest = pointBars.reduce((a, b) => (b.value < a.value ? b : a));
    assert.ok(
      Math.abs(tallest.height / smallest.height - tallest.value / smallest.value) < 0.01,
      'bar heights are proportional to the figures',
    );
    const total = await page.locator(`[data-chart="data-points"] text.total[data-day="${today()}"]`).textContent();
    assert.equal(total, brazePoints().toLocaleString('en-US'), "the day's total is printed over its bar");

    // 429s: Braze's own count of the ones it answered.
    const rateLimited = await bars('rate-limited');
    const braze429s = h.sandboxes.braze.control.rateLimitedCounts()['POST /users/track'] ?? 0;
    assert.ok(braze429s > 0, 'the sandbox answered 429s');
    assert.deepEqual(
      rateLimited.map(({ series, day, value }) => ({ series, day, value })),
      [{ series: 'braze POST /users/track', day: today(), value: braze429s }],
    );

    // Cohort downloads against the quota: Amplitude's own count of this month's download requests.
    const meterOfMonth = page.locator(`[data-meter="cohort-downloads-${today().slice(0, 7)}"]`);
    const meter = {
      value: Number(await meterOfMonth.getAttribute('data-value')),
      quota: Number(await meterOfMonth.getAttribute('data-quota')),
      label: await meterOfMonth.locator('text.used').textContent(),
    };
    const downloads = h.sandboxes.amplitude.control.downloadRequestsThisMonth();
    assert.ok(downloads > 0, 'the cohort syncs downloaded');
    assert.deepEqual(meter, { value: downloads, quota: 500, label: `${downloads} / 500` });

    // The Profile API: no sync here reads profiles, as Amplitude's own count says; the share line is drawn.
    const { answered, refused } = h.sandboxes.amplitude.control.profileRequestTotals();
    assert.equal(
      (await bars('profile-api')).reduce((sum, bar) => sum + bar.value, 0),
      answered + refused,
    );
    const share = Number(await page.locator('[data-chart="profile-api"] line.limit').getAttribute('data-value'));
    assert.equal(share, 300 * 60 * 24, "the share is AMPLITUDE_PROFILE_RATE's requests a day");
  } finally {
    await browser.close();
  }
  assert.match(printed.stdout, new RegExp(`Amplitude cohort downloads:[\\s\\S]*${today().slice(0, 7)}: ${downloads()} of 500`));
  function downloads() {
    return h.sandboxes.amplitude.control.downloadRequestsThisMonth();
  }
});

test("the receiver's /metrics, scraped while a sync runs, has every documented metric with non-zero values; /status serves the charts", async () => {
  await h.ready;
  const token = 'status-token-0123456789';
  const currentsToken = 'currents-token-0123456789';
  const receiver = buildReceiver({
    store: h.context.store,
    status: { token: new Secret(token), quotas: QUOTAS },
    usage: h.context.usage,
    currentsToken: new Secret(currentsToken),
    // No forwarding workflow here: what is spooled stays in the backlog the metrics report.
    onCurrentsSpooled: () => Promise.resolve(),
  });
  const url = await receiver.listen({ host: '127.0.0.1', port: 0 });
  after(() => receiver.close());
  const posted = await fetch(`${url}/currents`, {
    method: 'POST',
    headers: { authorization: `Bearer ${currentsToken}`, 'content-type': 'application/json' },
    body: JSON.stringify({ events: [currentsEvent('metrics-1', 'user-000001'), currentsEvent('bad\u0000id', 'user-000002')] }),
  });
  assert.deepEqual(await posted.json(), { spooled: 1, duplicates: 0, deadLettered: 1 });
  assert.equal((await fetch(`${url}/metrics`)).status, 401, 'no token, no metrics');
  await h.context.usage.flush();

  // Braze answers slowly and sometimes 429, so the scrapes land while the run sends.
  h.sandboxes.braze.control.setFaults({ latencyMs: 300, rateLimitBurstEvery: 5, rateLimitBurstLength: 1 });
  const run = await startCohortSync(
    h.env.client,
    { cohortId: MEDIUM_COHORT, attributeName: 'metrics_cohorts', pageSize: 25 },
    { taskQueue: h.taskQueue },
  );
  const scrape = async () => (await fetch(`${url}/metrics`, { headers: { authorization: `Bearer ${token}` } })).text();
  /** The value of the sample of `name` whose labels are `labels` (`a="x",b="y"`, in any order), as Prometheus parses it. */
  const sample = (metrics: string, name: string, labels: string) => {
    const labelSet = (text: string) =>
      [...text.matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)]
        .map(([, key, value]) => `${key}=${value}`)
        .sort()
        .join(',');
    const wanted = labelSet(labels);
    for (const line of metrics.split('\n')) {
      const match = /^(\w+)(?:\{(.*)\})? (\S+)$/.exec(line);
      if (match?.[1] === name && labelSet(match[2] ?? '') === wanted) return Number(match[3]);
    }
    return undefined;
  };
  let during = '';
  try {
    await waitUntil(async () => {
      during = await scrape();
      // This run's own figure (the counters hold earlier runs' too): it has spent data points and still runs.
      return (
        (sample(during, 'ampbraze_data_points_today', `sync="cohort-sync-${MEDIUM_COHORT}-attribute-metrics_cohorts"`) ?? 0) > 0 &&
        (sample(during, 'ampbraze_runs_total', 'kind="cohort",status="running"') ?? 0) > 0 &&
        // The receiver counts what it spools too, written to the store within a second.
        (sample(during, 'ampbraze_rows_staged_total', 'kind="currents"') ?? 0) > 0
      );
    }, 'a scrape while the run sends');
    const sentSoFar = h.sandboxes.braze.control.requestCounts()['POST /users/track'] ?? 0;
    await run.result();
    assert.ok(
      (h.sandboxes.braze.control.requestCounts()['POST /users/track'] ?? 0) > sentSoFar,
      'the scrape landed before the run had sent everything',
    );
  } finally {
    h.sandboxes.braze.control.setFaults({});
  }
  const expected: Array<[string, string]> = [
    ['ampbraze_vendor_requests_total', 'vendor="braze",endpoint="POST /users/track",status="2xx"'],
    ['ampbraze_vendor_requests_total', 'vendor="braze",endpoint="POST /users/track",status="429"'],
    ['ampbraze_vendor_requests_total', 'vendor="amplitude",endpoint="GET /api/5/cohorts/request/:id",status="2xx"'],
    ['ampbraze_rows_staged_total', 'kind="cohort"'],
    ['ampbraze_rows_staged_total', 'kind="currents"'],
    ['ampbraze_rows_sent_total', 'kind="cohort"'],
    ['ampbraze_data_points_today', `sync="cohort-sync-${MEDIUM_COHORT}-attribute-metrics_cohorts"`],
    ['ampbraze_data_points_month', `sync="cohort-sync-${MEDIUM_COHORT}-attribute-metrics_cohorts"`],
    ['ampbraze_runs_total', 'kind="cohort",status="running"'],
    ['ampbraze_cohort_downloads_month', ''],
    ['ampbraze_cohort_downloads_quota', ''],
    ['ampbraze_spool_backlog', 'stream="currents"'],
    ['ampbraze_dead_letters', 'stream="currents"'],
  ];
  for (const [name, labels] of expected)
    assert.ok((sample(during, name, labels) ?? 0) > 0, `${name}{${labels}} is non-zero during the run:\n${during}`);
  assert.ok((sample(during, 'ampbraze_spool_oldest_age_seconds', 'stream="currents"') ?? 0) > 0, 'the spooled item has waited');
  for (const name of ['ampbraze_spool_backlog', 'ampbraze_dead_letters']) assert.equal(sample(during, name, 'stream="currents"'), 1, name);

  // After the run: its outcome and its data points, as Braze counted them.
  const afterRun = await scrape();
  assert.equal(sample(afterRun, 'ampbraze_runs_total', 'kind="cohort",status="running"'), undefined, 'no run is left running');
  const status = await fetch(`${url}/status?days=3`, { headers: { authorization: `Bearer ${token}` } });
  assert.equal(status.status, 200);
  assert.match(status.headers.get('content-type') ?? '', /text\/html/);
  assert.match(await status.text(), /data-chart="data-points"/);
  for (const days of ['0', '401', 'many']) {
    const refused = await fetch(`${url}/status?days=${days}`, { headers: { authorization: `Bearer ${token}` } });
    assert.equal(refused.status, 400, `days=${days}`);
    assert.match(((await refused.json()) as { error: string }).error, /^bad query: days: /);
  }
  assert.equal((await fetch(`${url}/status`)).status, 401);
});
