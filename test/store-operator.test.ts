/**
 * The operator's view in the store, on every store: usage counts add up per day and labels (in any label order, from
 * concurrent writers), and the run, data-point and download ledgers read by sync, by day and by month.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { UsageCounter } from '../src/operator/usage-counter.js';
import { forEachStore, openFreshStore } from './helpers/stores.js';

forEachStore((kind) => {
  test('usage counts add up per day, metric and labels, whatever the labels’ order, and sum over days', async () => {
    const { store } = await openFreshStore(kind);
    try {
      const track = { vendor: 'braze', endpoint: 'POST /users/track', status: '429' };
      await Promise.all([
        store.addUsageCounts([
          { day: '2026-12-06', metric: 'vendor_requests', labels: track, count: 2 },
          { day: '2026-12-07', metric: 'vendor_requests', labels: track, count: 1 },
        ]),
        store.addUsageCounts([
          {
            day: '2026-12-07',
            metric: 'vendor_requests',
            labels: { status: '429', endpoint: 'POST /users/track', vendor: 'braze' },
            count: 4,
          },
          { day: '2026-12-07', metric: 'rows_sent', labels: { kind: 'cohort' }, count: 75 },
          { day: '2026-12-07', metric: 'rows_sent', labels: { kind: 'cohort' }, count: 25 },
        ]),
      ]);
      assert.deepEqual(await store.usageCountsSince('2026-12-07'), [
        { day: '2026-12-07', metric: 'rows_sent', labels: { kind: 'cohort' }, count: 100 },
        {
          day: '2026-12-07',
          metric: 'vendor_requests',
          labels: { endpoint: 'POST /users/track', status: '429', vendor: 'braze' },
          count: 5,
        },
      ]);
      assert.deepEqual(await store.usageCountTotals(), [
        { metric: 'rows_sent', labels: { kind: 'cohort' }, count: 100 },
        { metric: 'vendor_requests', labels: { endpoint: 'POST /users/track', status: '429', vendor: 'braze' }, count: 7 },
      ]);
      await assert.rejects(store.addUsageCounts([{ day: '7 Dec', metric: 'rows_sent', labels: {}, count: 1 }]), /YYYY-MM-DD/);

      // A process's counter: many adds, one write a flush.
      const counter = new UsageCounter(store);
      for (let i = 0; i < 1_000; i++) counter.vendorAnswer('amplitude', 'GET /v1/userprofile', i % 10 === 0 ? 429 : 200);
      counter.vendorAnswer('amplitude', 'GET /v1/userprofile', undefined);
      await counter.flush();
      const today = new Date().toISOString().slice(0, 10);
      const profile = (await store.usageCountsSince(today)).filter((count) => count.labels.endpoint === 'GET /v1/userprofile');
      assert.deepEqual(
        profile.map(({ labels, count }) => [labels.status, count]),
        [
          ['2xx', 900],
          ['429', 100],
          ['network', 1],
        ],
      );
    } finally {
      await store.close();
    }
  });

  test('each sync’s latest run with its last success, runs by outcome, data points by day and downloads by month', async () => {
    const { store } = await openFreshStore(kind);
    try {
      const at = (iso: string) => new Date(iso);
      const run = async (runId: string, syncId: string, started: string, status?: 'succeeded' | 'failed', finished?: string) => {
        await store.startRun({ runId, syncId, kind: 'cohort', startedAt: at(started) });
        if (status) await store.finishRun({ runId, status, finishedAt: at(finished!), stats: { outcome: status } });
      };
      await run('a/1', 'a', '2026-12-05T10:00:00Z', 'succeeded', '2026-12-05T10:05:00Z');
      await run('a/2', 'a', '2026-12-06T10:00:00Z', 'failed', '2026-12-06T10:01:00Z');
      await run('b/1', 'b', '2026-12-06T11:00:00Z');
      await run('old/1', 'old', '2026-10-01T00:00:00Z', 'succeeded', '2026-10-01T00:01:00Z');

      const summaries = await store.latestRunOfEachSync(Date.parse('2026-12-01T00:00:00Z'));
      assert.deepEqual(
        summaries.map(({ lastRun, lastSucceededAt }) => [
          lastRun.syncId,
          lastRun.runId,
          lastRun.status,
          lastRun.stats?.outcome,
          lastSucceededAt?.toISOString(),
        ]),
        [
          ['a', 'a/2', 'failed', 'failed', '2026-12-05T10:05:00.000Z'],
          ['b', 'b/1', 'running', undefined, undefined],
        ],
        'the latest run of each sync that ran since, with its last success',
      );
      assert.deepEqual(
        (await store.runOutcomeCounts()).map(({ kind, status, count }) => `${kind} ${status} ${count}`),
        ['cohort failed 1', 'cohort running 1', 'cohort succeeded 2'],
      );

      for (const [day, syncId, pageKey, points] of [
        ['2026-12-06', 'a', 'p1', 10],
        ['2026-12-06', 'a', 'p2', 5],
        ['2026-12-07', 'a', 'p3', 7],
        ['2026-12-07', 'b', 'p1', 3],
        ['2026-11-30', 'a', 'p4', 100],
      ] as const) {
        await store.addDataPoints({ day, syncId, runId: `${syncId}/run`, pageKey, points });
      }
      assert.deepEqual(await store.dataPointsByDay('2026-12-01'), [
        { day: '2026-12-06', syncId: 'a', runId: 'a/run', points: 15 },
        { day: '2026-12-07', syncId: 'a', runId: 'a/run', points: 7 },
        { day: '2026-12-07', syncId: 'b', runId: 'b/run', points: 3 },
      ]);

      for (const [month, runId] of [
        ['2026-11', 'r1'],
        ['2026-12', 'r2'],
        ['2026-12', 'r3'],
      ] as const) {
        await store.reserveCohortDownload({ month, limit: 500, cohortId: 'c', runId });
      }
      assert.deepEqual(await store.cohortDownloadsByMonth('2026-11'), [
        { month: '2026-11', downloads: 1 },
        { month: '2026-12', downloads: 2 },
      ]);
    } finally {
      await store.close();
    }
  });
});
