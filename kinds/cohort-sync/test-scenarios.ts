/**
 * The cohort sync end to end — real Temporal, a real worker, the sandboxes over HTTP — on a store of a given kind.
 * cohort-sync.test.ts (SQLite) and cohort-sync-postgres.test.ts share this harness and the core
 * scenarios every store must pass. Every test asserts on the sandbox's final Braze state and its own data-point
 * count, not on the calls we made.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { startCohortSync } from '../../src/client.js';
import type { CohortSyncInput } from './input.js';
import { setBudgetUpdate } from './workflow.js';
import { brazeMembers, expectedMembers } from '../../test/helpers/braze-state.js';
import { changeCohortMembership, waitUntilPaused } from '../../test/helpers/cohort-sync.js';
import type { TestStoreKind } from '../../test/helpers/stores.js';
import { WorkerHarness } from '../../test/helpers/worker-harness.js';

export const SMALL_COHORT = '26umsb5'; // ~1% of users
export const MEDIUM_COHORT = '3k9x2pq'; // ~10%

/** The sandboxes and a worker on a fresh store of `storeKind`, for the file that creates it. */
export class CohortSyncHarness extends WorkerHarness {
  constructor(storeKind: TestStoreKind) {
    super(
      storeKind,
      { seed: 11, users: 3_000, dataset: { brazeKnownFraction: 1 }, amplitude: { exportJobDurationMs: 200 } },
      { queuePrefix: 'cohort-sync' },
    );
  }

  sync = async (input: CohortSyncInput) => {
    const handle = await startCohortSync(this.env.client, input, { taskQueue: this.taskQueue });
    return handle.result();
  };

  expectedMembers = (cohortId: string): Set<string> => expectedMembers(this.sandboxes, cohortId);

  brazeMembers = (cohortId: string, attribute?: string): Set<string> => brazeMembers(this.sandboxes, cohortId, attribute);

  anonymousMemberCount = (cohortId: string): number => {
    let count = 0;
    for (const member of this.sandboxes.dataset.cohortMembers(cohortId)) if (!member.userId) count += 1;
    return count;
  };
}

/**
 * First sync, unchanged rerun, exact delta, per-object failures, a 5xx/429 storm (the request ledger), budget pause and
 * the daily ledger: what every store must get right.
 */
export function coreCohortScenarios(h: CohortSyncHarness): void {
  const { sync, expectedMembers, anonymousMemberCount, brazeMembers, brazeDataPoints, trackRequests } = h;

  describe('cohort sync into a custom-attribute array', () => {
    test('first run sends everyone; anonymous members are skipped with a reason; our data points equal the sandbox’s', async () => {
      const pointsBefore = brazeDataPoints();
      const result = await sync({ cohortId: MEDIUM_COHORT, pageSize: 100 });
      const expected = expectedMembers(MEDIUM_COHORT);
      assert.deepEqual(brazeMembers(MEDIUM_COHORT), expected);
      assert.equal(result.added, expected.size);
      assert.equal(result.removed, 0);
      assert.equal(result.failed, 0);
      assert.equal(result.amplitudeDownloads, 1);
      assert.equal(result.skipped, anonymousMemberCount(MEDIUM_COHORT));
      assert.ok(result.skipped > 0, 'the dataset has anonymous members');
      assert.match(Object.keys(result.skipReasons).join(), /anonymous member \(no user_id\)/);
      assert.equal(result.dataPoints, brazeDataPoints() - pointsBefore);
      assert.equal(result.dataPoints, expected.size, 'one array add per member');
    });

    test('an unchanged rerun downloads nothing, sends nothing and spends nothing', async () => {
      // Synced first here too (after the test above, a rerun itself), so that this test stands on its own.
      await sync({ cohortId: MEDIUM_COHORT, pageSize: 100 });
      const requestsBefore = trackRequests();
      const downloadsBefore = h.sandboxes.amplitude.control.downloadRequestsThisMonth();
      const pointsBefore = brazeDataPoints();
      const result = await sync({ cohortId: MEDIUM_COHORT, pageSize: 100 });
      assert.equal(result.unchanged, true);
      assert.deepEqual([result.brazeRequests, result.dataPoints, result.amplitudeDownloads], [0, 0, 0]);
      assert.equal(trackRequests(), requestsBefore);
      assert.equal(h.sandboxes.amplitude.control.downloadRequestsThisMonth(), downloadsBefore);
      assert.equal(brazeDataPoints(), pointsBefore);
    });

    test('a membership change sends exactly who entered and who left', async () => {
      await sync({ cohortId: MEDIUM_COHORT, pageSize: 100 }); // Braze holds the cohort first: only this change is new
      changeCohortMembership(h.sandboxes.dataset, MEDIUM_COHORT, { leave: 5, enter: 7 });
      const pointsBefore = brazeDataPoints();

      const result = await sync({ cohortId: MEDIUM_COHORT, pageSize: 100 });
      assert.deepEqual([result.added, result.removed, result.failed], [7, 5, 0]);
      assert.equal(result.brazeRequests, 2, 'one request for the 7 entering, one for the 5 leaving');
      assert.deepEqual(brazeMembers(MEDIUM_COHORT), expectedMembers(MEDIUM_COHORT));
      assert.equal(result.dataPoints, 12);
      assert.equal(brazeDataPoints() - pointsBefore, 12);
    });

    test('per-object Braze errors are mapped to the right users, kept out of the snapshot, and retried next run', async () => {
      const blocked = [...expectedMembers(SMALL_COHORT)].slice(0, 3);
      h.sandboxes.braze.control.setBlockedExternalIds(blocked);
      try {
        const first = await sync({ cohortId: SMALL_COHORT, attributeName: 'blocked_cohorts' });
        assert.equal(first.failed, 3);
        assert.deepEqual(first.failureReasons, { 'provided external_id is blacklisted and disallowed': 3 });
        const synced = brazeMembers(SMALL_COHORT, 'blocked_cohorts');
        assert.deepEqual(
          [...synced].filter((id) => blocked.includes(id)),
          [],
        );
        assert.equal(synced.size, expectedMembers(SMALL_COHORT).size - 3);
      } finally {
        h.sandboxes.braze.control.setBlockedExternalIds([]);
      }
      const retry = await sync({ cohortId: SMALL_COHORT, attributeName: 'blocked_cohorts' });
      assert.equal(retry.unchanged, false, 'a run with failures does not let the next one skip');
      assert.deepEqual([retry.added, retry.removed, retry.failed], [3, 0, 0]);
      assert.deepEqual(brazeMembers(SMALL_COHORT, 'blocked_cohorts'), expectedMembers(SMALL_COHORT));
    });

    test('a 5xx/429 storm still ends in the exact expected state, each user sent until accepted', async () => {
      h.sandboxes.braze.control.setFaults({ serverErrorRate: 0.3, rateLimitBurstEvery: 7, rateLimitBurstLength: 2 });
      const [pointsBefore, requestsBefore] = [brazeDataPoints(), trackRequests()];
      try {
        const result = await sync({ cohortId: MEDIUM_COHORT, attributeName: 'storm_cohorts', pageSize: 100 });
        assert.equal(result.added, expectedMembers(MEDIUM_COHORT).size);
        // Refused requests (5xx, 429) are counted as requests, at no data points, as Braze counts them.
        assert.equal(result.dataPoints, brazeDataPoints() - pointsBefore);
        assert.equal(result.brazeRequests, trackRequests() - requestsBefore);
        assert.ok(result.brazeRequests > Math.ceil(result.added / 75), 'the storm refused some requests');
      } finally {
        h.sandboxes.braze.control.setFaults({});
      }
      assert.deepEqual(brazeMembers(MEDIUM_COHORT, 'storm_cohorts'), expectedMembers(MEDIUM_COHORT));
    });

    test('over its budget a run pauses (not fails), reports why, and finishes once the budget is raised', async () => {
      const handle = await startCohortSync(
        h.env.client,
        { cohortId: MEDIUM_COHORT, attributeName: 'budget_cohorts', pageSize: 50, maxDataPoints: 120 },
        { taskQueue: h.taskQueue },
      );
      const progress = await waitUntilPaused(h.env.client, handle.workflowId);
      assert.match(progress.pausedReason ?? '', /over the run budget/);
      assert.equal(progress.totals.dataPoints, 100, 'two pages of 50 fit in 120, the third does not');
      assert.equal(brazeMembers(MEDIUM_COHORT, 'budget_cohorts').size, 100);

      await handle.executeUpdate(setBudgetUpdate, { args: [{ maxDataPoints: 10_000 }] });
      const result = await handle.result();
      assert.equal(result.added, expectedMembers(MEDIUM_COHORT).size);
      assert.deepEqual(brazeMembers(MEDIUM_COHORT, 'budget_cohorts'), expectedMembers(MEDIUM_COHORT));
    });

    test('a daily budget across all syncs pauses a run; the per-day ledger holds every point spent', async () => {
      const today = new Date().toISOString().slice(0, 10);
      // Another sync spends data points today first, so that this test stands on its own.
      await sync({ cohortId: SMALL_COHORT, attributeName: 'daily_other_cohorts' });
      const spentToday = await h.context.store.dataPointsOnDay(today);
      assert.ok(spentToday > 0, 'another sync spent data points today');
      const pointsBefore = brazeDataPoints();
      const input = { cohortId: MEDIUM_COHORT, attributeName: 'daily_cohorts', pageSize: 50, maxDataPointsPerDay: spentToday + 120 };
      const handle = await startCohortSync(h.env.client, input, { taskQueue: h.taskQueue });
      const progress = await waitUntilPaused(h.env.client, handle.workflowId);
      assert.match(progress.pausedReason ?? '', /over the daily budget/);
      assert.equal(progress.totals.dataPoints, 100, 'what other syncs spent today counts against the budget');

      await handle.executeUpdate(setBudgetUpdate, { args: [{ maxDataPointsPerDay: spentToday + 100_000 }] });
      const result = await handle.result();
      assert.deepEqual(brazeMembers(MEDIUM_COHORT, 'daily_cohorts'), expectedMembers(MEDIUM_COHORT));
      assert.equal((await h.context.store.dataPointsOnDay(today)) - spentToday, result.dataPoints);
      assert.equal(brazeDataPoints() - pointsBefore, result.dataPoints);
    });
  });
}
