/**
 * The health rules of `ampbraze syncs` (pure): a failed last run, a scheduled sync late past its cadence, and a stream
 * backing up make the report unhealthy; a paused schedule is never late, and a run a schedule started is found under
 * its sync whatever its workflow id.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { buildSyncsReport, DEFAULT_THRESHOLDS, type SyncsSources } from '../src/operator/syncs.js';

const NOW = Date.parse('2026-12-07T12:00:00Z');
const HOUR = 3_600_000;
const at = (msAgo: number) => new Date(NOW - msAgo);

function sources(overrides: Partial<SyncsSources> = {}): SyncsSources {
  return {
    nowMs: NOW,
    executions: [],
    schedules: [],
    ledgerRuns: [],
    summaries: [],
    dataPoints: [],
    streams: [],
    thresholds: DEFAULT_THRESHOLDS,
    ...overrides,
  };
}

/** A trait sync whose last success ended `agoMs` ago, run hourly by a schedule (paused or not). */
function hourlySync(agoMs: number, paused = false): Partial<SyncsSources> {
  const run = { runId: 'trait-sync-plan/run-1', syncId: 'trait-sync-plan', kind: 'trait', status: 'succeeded' as const };
  const record = {
    ...run,
    startedAt: at(agoMs + 60_000),
    finishedAt: at(agoMs),
    sourceVersion: undefined,
    stats: { outcome: 'succeeded' },
  };
  return {
    executions: [
      {
        type: 'traitSync',
        workflowId: 'trait-sync-plan-2026-12-07T08:00:00Z',
        runId: 'run-1',
        status: { code: 2, name: 'COMPLETED' },
        startTime: at(agoMs + 61_000),
        closeTime: at(agoMs),
        kind: 'trait',
        scheduledBy: 'trait-sync-plan-schedule',
      },
    ],
    schedules: [
      {
        scheduleId: 'trait-sync-plan-schedule',
        state: { paused },
        info: {
          recentActions: [
            {
              scheduledAt: at(agoMs + 61_000),
              takenAt: at(agoMs + 61_000),
              action: { type: 'startWorkflow', workflow: { workflowId: 'w', firstExecutionRunId: 'run-1' } },
            },
          ],
          nextActionTimes: [new Date(NOW + HOUR / 2), new Date(NOW + (3 * HOUR) / 2)],
        },
        workflowType: 'traitSync',
      },
    ],
    ledgerRuns: [record],
    summaries: [{ lastRun: record, lastSucceededAt: at(agoMs) }],
    dataPoints: [{ day: '2026-12-07', syncId: 'trait-sync-plan', runId: 'trait-sync-plan/run-1', points: 12 }],
  };
}

test('a scheduled sync that succeeded within its cadence is healthy, found under its schedule', () => {
  const report = buildSyncsReport(sources(hourlySync(HOUR)));
  assert.equal(report.healthy, true);
  assert.deepEqual(
    report.syncs.map((row) => [row.sync, row.lastRun?.startedBy, row.lastRun?.outcome, row.schedule?.periodMs, row.dataPointsToday]),
    [['trait-sync-plan', 'schedule trait-sync-plan-schedule', 'succeeded', HOUR, 12]],
  );
});

test('late past two periods and a grace: unhealthy, unless the schedule is paused', () => {
  const late = buildSyncsReport(sources(hourlySync(3 * HOUR)));
  assert.equal(late.healthy, false);
  assert.deepEqual(late.syncs[0]?.problems, ['late: last succeeded 3 h ago, runs every 60 min']);
  assert.equal(buildSyncsReport(sources(hourlySync(2 * HOUR))).healthy, true, 'two periods and less than the grace is not late yet');
  assert.equal(buildSyncsReport(sources(hourlySync(3 * HOUR, true))).healthy, true, 'a paused schedule is never late');
});

test('a newer run that failed before it reached the ledger is the last run, and unhealthy', () => {
  const base = hourlySync(HOUR);
  const failed = {
    ...base.executions![0]!,
    workflowId: 'trait-sync-plan-2026-12-07T11:00:00Z',
    runId: 'run-2',
    status: { code: 3, name: 'FAILED' as const },
    startTime: at(10 * 60_000),
    closeTime: at(9 * 60_000),
  };
  const report = buildSyncsReport(sources({ ...base, executions: [...base.executions!, failed] }));
  assert.equal(report.healthy, false);
  assert.deepEqual(
    report.syncs.map((row) => [row.sync, row.lastRun?.status, row.lastRun?.workflowId, row.problems]),
    [['trait-sync-plan', 'FAILED', failed.workflowId, ['last run failed']]],
  );
});

test('a stream past its backlog or age threshold is unhealthy; dead letters alone are reported, not failed', () => {
  const stream = { stream: 'currents', pending: 0, deferred: 0, oldestAgeSeconds: 0, deadLetters: 3 };
  assert.equal(buildSyncsReport(sources({ streams: [stream] })).healthy, true);
  const backedUp = buildSyncsReport(sources({ streams: [{ ...stream, pending: 20_000, oldestAgeSeconds: 3_600 }] }));
  assert.equal(backedUp.healthy, false);
  assert.deepEqual(backedUp.streams[0]?.problems, ['backlog of 20000 over 10000', 'oldest item waiting 60 min, over 15 min']);
});
