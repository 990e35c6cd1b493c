/**
 * One run per sync, whatever the workflow id: a Schedule's run (id plus timestamp) and a manual start of the
 * same cohort racing each other spend the minimum data points and one download between them, on each store.
 */
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, test } from 'node:test';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { Worker } from '@temporalio/worker';
import { createActivities } from '../activities/index.js';
import { getSyncProgress, scheduleCohortSync, startCohortSync } from '../src/client.js';
import { loadConfig } from '../src/config.js';
import { startSandboxes, type Sandboxes } from '../src/sandbox/sandboxes.js';
import { createWorkerContext, type WorkerContext } from '../src/worker-context.js';
import type { cohortSync, CohortSyncResult } from '../kinds/cohort-sync/workflow.js';
import { ampbraze } from './helpers/cli.js';
import { forEachStore } from './helpers/stores.js';
import { connectTestEnvironment, createTestWorker, uniqueTaskQueue, testTemporalEnv } from './helpers/temporal.js';

const COHORT = '26umsb5';

let env: TestWorkflowEnvironment;
let sandboxes: Sandboxes;
let context: WorkerContext;
let worker: Worker;
let workerRun: Promise<void>;
let taskQueue: string;

function identifiedMembers(attribute: string): number {
  let count = 0;
  for (const member of sandboxes.dataset.cohortMembers(COHORT)) if (member.userId) count += 1;
  assert.ok(count > 0, `cohort ${COHORT} has identified members (${attribute})`);
  return count;
}

const brazeDataPoints = () => sandboxes.braze.control.dataPoints().total;
const downloads = () => sandboxes.amplitude.control.downloadRequestsThisMonth();

/** The result of the schedule's first run, found through the schedule's recent actions. */
async function scheduledRunResult(scheduleId: string): Promise<{ workflowId: string; result: CohortSyncResult }> {
  const schedule = env.client.schedule.getHandle(scheduleId);
  for (let i = 0; i < 150; i++) {
    const [action] = (await schedule.describe()).info.recentActions;
    if (action) {
      const { workflowId } = action.action.workflow;
      return { workflowId, result: await env.client.workflow.getHandle<typeof cohortSync>(workflowId).result() };
    }
    await sleep(100);
  }
  throw new Error(`schedule ${scheduleId} started no run`);
}

forEachStore((kind) => {
  before(async () => {
    taskQueue = uniqueTaskQueue('sync-lease');
    env = await connectTestEnvironment();
    // A slow export keeps the first run busy long enough for the second to find it in progress.
    sandboxes = await startSandboxes({
      seed: 23,
      users: 2_000,
      dataset: { brazeKnownFraction: 1 },
      amplitude: { exportJobDurationMs: 1_500 },
    });
    context = await createWorkerContext(loadConfig({ ...sandboxes.env, ...(await kind.freshEnv()) }));
    worker = await createTestWorker(env, { taskQueue, activities: await createActivities(context) });
    workerRun = worker.run();
  });

  after(async () => {
    worker?.shutdown();
    await workerRun;
    await context?.store.close();
    await sandboxes?.close();
    await env?.teardown();
  });

  test('a schedule and a manual start racing: one run sends, the other sends nothing and names it', async () => {
    const attributeName = 'raced_cohorts';
    const [pointsBefore, downloadsBefore] = [brazeDataPoints(), downloads()];
    const schedule = await scheduleCohortSync(
      env.client,
      { cohortId: COHORT, attributeName },
      { cadence: 'daily', taskQueue, paused: true },
    );
    try {
      const [, manual] = await Promise.all([
        schedule.trigger(),
        startCohortSync(env.client, { cohortId: COHORT, attributeName }, { taskQueue }),
      ]);
      const [scheduled, manualResult] = await Promise.all([scheduledRunResult(schedule.scheduleId), manual.result()]);
      assert.notEqual(scheduled.workflowId, manual.workflowId, 'the schedule appended a timestamp to the id');

      const results = [
        { workflowId: scheduled.workflowId, result: scheduled.result },
        { workflowId: manual.workflowId, result: manualResult },
      ];
      const skipped = results.filter(({ result }) => result.runInProgress !== undefined);
      const sent = results.filter(({ result }) => result.runInProgress === undefined);
      assert.equal(skipped.length, 1, 'exactly one run was skipped');
      assert.equal(skipped[0]!.result.runInProgress, sent[0]!.workflowId, 'the skipped run names the run in progress');
      assert.deepEqual([skipped[0]!.result.dataPoints, skipped[0]!.result.brazeRequests, skipped[0]!.result.amplitudeDownloads], [0, 0, 0]);

      const minimum = identifiedMembers(attributeName);
      assert.equal(sent[0]!.result.added, minimum);
      assert.equal(brazeDataPoints() - pointsBefore, minimum, 'Braze billed exactly the minimum');
      assert.equal(downloads() - downloadsBefore, 1, 'one download between them');
    } finally {
      await schedule.delete();
    }
  });

  test('with ifRunning "wait" the second run waits its turn, then finds the cohort unchanged', async () => {
    const attributeName = 'waited_cohorts';
    const [pointsBefore, downloadsBefore] = [brazeDataPoints(), downloads()];
    const first = await startCohortSync(env.client, { cohortId: COHORT, attributeName }, { taskQueue });
    // The first run holds the lease once it is exporting (the export takes 1.5 s).
    for (let i = 0; i < 100 && (await getSyncProgress(env.client, first.workflowId).catch(() => undefined))?.phase !== 'exporting'; i++)
      await sleep(50);
    const second = await startCohortSync(
      env.client,
      { cohortId: COHORT, attributeName, ifRunning: 'wait' },
      { taskQueue, workflowId: `${first.workflowId}-manual` },
    );
    const [firstResult, secondResult] = await Promise.all([first.result(), second.result()]);
    assert.equal(firstResult.added, identifiedMembers(attributeName));
    assert.equal(secondResult.runInProgress, undefined);
    assert.equal(secondResult.unchanged, true, 'it ran after the first one finished');
    assert.equal(brazeDataPoints() - pointsBefore, firstResult.added);
    assert.equal(downloads() - downloadsBefore, 1);
  });

  test('`ampbraze cohort status` finds the newest run, also when a schedule started it', async () => {
    const attributeName = 'status_cohorts';
    const schedule = await scheduleCohortSync(
      env.client,
      { cohortId: COHORT, attributeName },
      { cadence: 'daily', taskQueue, paused: true },
    );
    try {
      await schedule.trigger();
      const { workflowId, result } = await scheduledRunResult(schedule.scheduleId);
      assert.match(workflowId, /^cohort-sync-26umsb5-attribute-status_cohorts-\d{4}-/);
      let status = { code: null as number | null, stdout: '', stderr: '' };
      // Visibility is eventually consistent: the run shows up in listings a moment after it started.
      for (let i = 0; i < 50 && !status.stdout.includes(workflowId); i++) {
        status = await ampbraze(['cohort', 'status', COHORT, '--attribute', attributeName], {
          ...testTemporalEnv(),
          TEMPORAL_TASK_QUEUE: taskQueue,
        });
        if (!status.stdout.includes(workflowId)) await sleep(200);
      }
      assert.equal(status.code, 0, status.stderr);
      assert.match(status.stdout, new RegExp(`^Run ${workflowId}$`, 'm'));
      assert.match(status.stdout, new RegExp(`^done … \\+${result.added} −0`, 'm'));
    } finally {
      await schedule.delete();
    }
  });
});
