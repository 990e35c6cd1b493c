/**
 * The paged-sync lifecycle on its own: the real workflow code (a `cohortSync`) on the real dev server, with its
 * activities stubbed (as samples-typescript tests workflows), so each rule is met on purpose and fast — the cap on
 * pages in flight, a page refused for its budget while others were in flight and then applied alone, a pause and
 * its resume, continue-as-new with nothing in flight, and a vendor's refusal failing the run with its message.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { activityInfo } from '@temporalio/activity';
import { WorkflowFailedError } from '@temporalio/client';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { PageOutcome } from '../activities/engine.js';
import type { ApplyCohortPageInput, CohortPlan } from '../kinds/cohort-sync/activity-types.js';
import { startCohortSync } from '../src/client.js';
import { NonRetryableVendorError } from '../src/errors.js';
import { resumeSignal, setBudgetUpdate } from '../kinds/cohort-sync/workflow.js';
import { connectTestEnvironment, createTestWorker, uniqueTaskQueue } from './helpers/temporal.js';

let env: TestWorkflowEnvironment;
before(async () => {
  env = await connectTestEnvironment();
});
after(async () => {
  await env?.teardown();
});

/** Every page costs this many data points, as the plan says. */
const PAGE_POINTS = 10;

interface Stubs {
  /** Pages by number; the stub decides each page's outcome given its input. */
  applyCohortPage?: (input: ApplyCohortPageInput) => Promise<PageOutcome>;
}

/** A cohort sync whose activities are stubs: `pages` pages of who enters, applied as `stubs` say. */
async function runWithStubs<T>(
  pages: number,
  stubs: Stubs,
  body: (taskQueue: string) => Promise<T>,
): Promise<{ result: T; finished: string[] }> {
  const taskQueue = uniqueTaskQueue('lifecycle');
  const finished: string[] = [];
  const plan: CohortPlan = {
    enter: pages * 5,
    leave: 0,
    predictedDataPoints: pages * PAGE_POINTS,
    pages: { enter: pages, leave: 0 },
    maxPageDataPoints: PAGE_POINTS,
  };
  const activities = {
    prepareCohortRun: () => Promise.resolve({ status: 'changed', cohortName: 'Stubbed', lastComputed: 1, createdAt: 1, size: pages * 5 }),
    requestCohortExport: () => Promise.resolve({ requestId: 'request-1' }),
    waitForCohortExport: () => Promise.resolve(),
    stageCohortMembers: () => Promise.resolve({ rows: pages * 5, resumedFromRow: 0, staged: pages * 5, skipped: 0, skipReasons: {} }),
    planCohortRun: () => Promise.resolve(plan),
    ensurePartnerCohort: () => Promise.resolve(),
    applyCohortPage: stubs.applyCohortPage ?? (() => Promise.resolve(applied())),
    finishCohortRun: (input: { status: string }) => {
      finished.push(input.status);
      return Promise.resolve({ failed: 0, failureReasons: {} });
    },
  };
  const worker = await createTestWorker(env, { taskQueue, activities });
  const result = await worker.runUntil(body(taskQueue));
  return { result, finished };
}

/** A page Braze took: five members, costing `dataPoints` (at most the plan's PAGE_POINTS). */
const applied = (dataPoints = PAGE_POINTS): PageOutcome => ({
  status: 'applied',
  accepted: 5,
  failed: 0,
  dataPoints,
  brazeRequests: 1,
  pageDataPoints: PAGE_POINTS,
});

/** What `applyPage` answers for a page over a budget: nothing sent. */
function withinBudgets(input: ApplyCohortPageInput): PageOutcome | undefined {
  const atMost = PAGE_POINTS + input.inFlightDataPoints;
  if (input.runBudgetRemaining !== undefined && atMost > input.runBudgetRemaining) {
    return { status: 'over_budget', accepted: 0, failed: 0, dataPoints: 0, brazeRequests: 0, pageDataPoints: PAGE_POINTS, budget: 'run' };
  }
  return undefined;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('the paged-sync lifecycle, with its activities stubbed', () => {
  test('never more pages in flight than pagesInFlight, and every page applied once', async () => {
    let inFlight = 0;
    let most = 0;
    const seen: number[] = [];
    const { result } = await runWithStubs(
      12,
      {
        applyCohortPage: async (input) => {
          most = Math.max(most, ++inFlight);
          await sleep(50);
          inFlight--;
          seen.push(input.page);
          return applied();
        },
      },
      async (taskQueue) => (await startCohortSync(env.client, { cohortId: 'c1', pagesInFlight: 3 }, { taskQueue })).result(),
    );
    assert.equal(most, 3);
    assert.deepEqual(
      [...seen].sort((a, b) => a - b),
      Array.from({ length: 12 }, (_, i) => i),
    );
    assert.deepEqual([result.added, result.dataPoints], [60, 120]);
  });

  test('a page refused for what the pages in flight may spend is applied alone, without pausing', async () => {
    const inputs: ApplyCohortPageInput[] = [];
    // Pages cost 5 of the 10 they may: the fourth, launched while two are in flight (holding back 20), is refused
    // with 25 left; once they are done it goes alone, with 15 left.
    const { result, finished } = await runWithStubs(
      4,
      {
        applyCohortPage: async (input) => {
          inputs.push(input);
          await sleep(input.page === 0 ? 10 : 100);
          return withinBudgets(input) ?? applied(5);
        },
      },
      async (taskQueue) =>
        (await startCohortSync(env.client, { cohortId: 'c1', pagesInFlight: 3, maxDataPoints: 30 }, { taskQueue })).result(),
    );
    const refused = inputs.filter((input) => withinBudgets(input) !== undefined);
    assert.ok(refused.length > 0, 'a page was refused while others were in flight');
    for (const page of refused.map((input) => input.page)) {
      assert.ok(
        inputs.some((input) => input.page === page && input.inFlightDataPoints === 0),
        `page ${page} was tried again alone`,
      );
    }
    assert.equal(result.dataPoints, 20, 'four pages applied, within the budget');
    assert.deepEqual(finished, ['succeeded']);
  });

  test('a page over the budget on its own pauses the run; setBudget and resume each continue it', async () => {
    const { result } = await runWithStubs(
      3,
      { applyCohortPage: (input) => Promise.resolve(withinBudgets(input) ?? applied()) },
      async (taskQueue) => {
        const handle = await startCohortSync(env.client, { cohortId: 'c1', pagesInFlight: 1, maxDataPoints: 15 }, { taskQueue });
        const phase = async () => await handle.query<{ phase: string; page: number }>('progress');
        for (let i = 0; i < 100 && (await phase()).phase !== 'paused'; i++) await sleep(50);
        assert.deepEqual([(await phase()).phase, (await phase()).page], ['paused', 1], 'paused before the second page');
        assert.deepEqual(await handle.executeUpdate(setBudgetUpdate, { args: [{ maxDataPoints: 25 }] }), { maxDataPoints: 25 });
        for (let i = 0; i < 100 && (await phase()).page < 2; i++) await sleep(50);
        for (let i = 0; i < 100 && (await phase()).phase !== 'paused'; i++) await sleep(50);
        assert.equal((await phase()).page, 2, 'the raised budget paid for one more page, then it paused again');
        await handle.signal(resumeSignal);
        return handle.result();
      },
    );
    assert.equal(result.dataPoints, 30, 'resume sent the last page whatever the budget');
  });

  test('a long run continues as new only with no page in flight, and applies every page once across its runs', async () => {
    const pages: Array<{ page: number; run: string; startedAt: number; endedAt: number }> = [];
    const { result } = await runWithStubs(
      40,
      {
        applyCohortPage: async (input) => {
          const startedAt = Date.now();
          await sleep(10);
          pages.push({ page: input.page, run: activityInfo().workflowExecution?.runId ?? '', startedAt, endedAt: Date.now() });
          return applied();
        },
      },
      async (taskQueue) => (await startCohortSync(env.client, { cohortId: 'c1', pagesInFlight: 4 }, { taskQueue })).result(),
    );
    const runs = [...new Set(pages.map((page) => page.run))];
    assert.ok(runs.length > 1, 'the run continued as new (the test server suggests it early)');
    for (const [index, run] of runs.entries()) {
      const next = runs[index + 1];
      if (!next) break;
      const lastEnd = Math.max(...pages.filter((page) => page.run === run).map((page) => page.endedAt));
      const firstStart = Math.min(...pages.filter((page) => page.run === next).map((page) => page.startedAt));
      assert.ok(lastEnd <= firstStart, 'every page of a run ended before the next run began');
    }
    assert.deepEqual(
      pages.map(({ page }) => page).sort((a, b) => a - b),
      Array.from({ length: 40 }, (_, i) => i),
      'every page once',
    );
    assert.equal(result.added, 200);
  });

  test('a vendor’s refusal of a page fails the run at once with the vendor’s message, and records the failure', async () => {
    const { result, finished } = await runWithStubs(
      3,
      {
        applyCohortPage: () =>
          Promise.reject(
            new NonRetryableVendorError(
              { vendor: 'braze', endpoint: 'POST /users/track', status: 401, vendorMessage: 'Invalid API Key' },
              'rejected the credentials',
            ),
          ),
      },
      async (taskQueue) => {
        const handle = await startCohortSync(env.client, { cohortId: 'c1' }, { taskQueue });
        return handle.result().then(
          () => undefined,
          (error: unknown) => error,
        );
      },
    );
    assert.ok(result instanceof WorkflowFailedError);
    assert.match(String(result.cause?.message), /braze POST \/users\/track 401 rejected the credentials: Invalid API Key/);
    assert.deepEqual(finished, ['failed']);
  });
});
