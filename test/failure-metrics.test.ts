/**
 * The failure metric the README tells operators to watch (`temporal_activity_execution_failed`, from a real worker
 * process's Prometheus endpoint) counts failures only: a run waiting for another run's lease and requests Amplitude
 * answers 429 are waits, not failures, while a cohort Amplitude does not list is one.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { WorkflowFailedError } from '@temporalio/client';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { getSyncProgress, startCohortSync } from '../src/client.js';
import { startSandboxes, type Sandboxes } from '../src/sandbox/sandboxes.js';
import { PROJECT_ROOT } from '../src/temporal/cli.js';
import { freePort } from '../src/temporal/dev-server.js';
import { SQLITE } from './helpers/stores.js';
import { connectTestEnvironment, testWorkflowBundlePath, uniqueTaskQueue, testTemporalEnv } from './helpers/temporal.js';

const COHORT = '3k9x2pq';
/** 40% of the users: sixteen pages of 75, one at a time. */
const BIG_COHORT = '5fh7t0w';
const taskQueue = uniqueTaskQueue('failure-metrics');
let env: TestWorkflowEnvironment;
let sandboxes: Sandboxes;
let worker: ChildProcess;
let metricsAddress: string;

before(async () => {
  env = await connectTestEnvironment();
  sandboxes = await startSandboxes({ seed: 47, users: 3_000, dataset: { brazeKnownFraction: 1 }, amplitude: { exportJobDurationMs: 100 } });
  metricsAddress = `127.0.0.1:${await freePort()}`;
  worker = spawn(process.execPath, ['--import', 'tsx', join(PROJECT_ROOT, 'src', 'worker.ts')], {
    env: {
      PATH: process.env.PATH ?? '',
      ...sandboxes.env,
      ...(await SQLITE.freshEnv()),
      ...testTemporalEnv(),
      TEMPORAL_TASK_QUEUE: taskQueue,
      WORKER_PROMETHEUS_ADDRESS: metricsAddress,
      WORKFLOW_BUNDLE_PATH: testWorkflowBundlePath(),
    },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  // The runs below must meet their faults: the worker polls before the first one starts.
  await new Promise<void>((resolve, reject) => {
    let output = '';
    worker.stdout!.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      if (/polling task queue/.test(output)) resolve();
    });
    worker.once('exit', (code) => reject(new Error(`the worker exited (${code}): ${output}`)));
  });
});
after(async () => {
  worker?.kill('SIGKILL');
  await sandboxes?.close();
  await env?.teardown();
});

/** The worker's `temporal_activity_execution_failed`, summed over its labels. */
async function failedActivities(): Promise<number> {
  const metrics = await (await fetch(`http://${metricsAddress}/metrics`)).text();
  return [...metrics.matchAll(/^temporal_activity_execution_failed(?:_total)?(?:\{[^}]*\})? (\d+)$/gm)].reduce(
    (sum, [, value]) => sum + Number(value),
    0,
  );
}

test('429 waits and lease waits are not counted as failed activities; a real failure is, once', async () => {
  // For a few seconds Amplitude answers every request 429: the first run's first step waits them out.
  sandboxes.amplitude.control.setFaults({ rateLimitBurstEvery: 1, rateLimitBurstLength: 1 });
  const throttled = await startCohortSync(env.client, { cohortId: COHORT }, { taskQueue, workflowId: `${taskQueue}-throttled` });
  await new Promise((resolve) => setTimeout(resolve, 2_500));
  sandboxes.amplitude.control.setFaults({});
  assert.ok((await throttled.result()).added > 0);
  const rateLimitWaits = await attemptsOfFirstActivity(throttled.workflowId);
  assert.ok(rateLimitWaits > 1, `the first step waited for Amplitude's rate limit (${rateLimitWaits} attempts)`);

  // Braze answers slowly, so a full run holds the sync's lease a while; a second run with ifRunning "wait" waits for it.
  sandboxes.braze.control.setFaults({ latencyMs: 300 });
  const long = { cohortId: BIG_COHORT, pageSize: 75, pagesInFlight: 1 };
  const first = await startCohortSync(env.client, long, { taskQueue });
  await waitUntil(
    async () => (await getSyncProgress(env.client, first.workflowId).catch(() => undefined))?.phase === 'applying',
    'applying',
  );
  const waiting = await startCohortSync(env.client, { ...long, ifRunning: 'wait' }, { taskQueue, workflowId: `${taskQueue}-waits` });
  const [firstResult, waited] = await Promise.all([first.result(), waiting.result()]);
  assert.ok(firstResult.added > 0);
  sandboxes.braze.control.setFaults({});
  assert.equal(waited.runInProgress, undefined, 'the second run ran, after the first');
  const leaseWaits = await attemptsOfFirstActivity(waiting.workflowId);
  assert.ok(leaseWaits > 1, `the second run's first step waited for the lease (${leaseWaits} attempts)`);
  assert.equal(await failedActivities(), 0, 'no wait counted as a failure');

  const missing = await startCohortSync(env.client, { cohortId: 'n0such' }, { taskQueue });
  await assert.rejects(missing.result(), WorkflowFailedError);
  await waitUntil(async () => (await failedActivities()) === 1, 'the real failure was counted');
});

/** How many attempts the run's first activity made before it completed. */
async function attemptsOfFirstActivity(workflowId: string): Promise<number> {
  const events = (await env.client.workflow.getHandle(workflowId).fetchHistory()).events ?? [];
  return events.find((event) => event.activityTaskStartedEventAttributes)?.activityTaskStartedEventAttributes?.attempt ?? 0;
}

async function waitUntil(condition: () => Promise<boolean>, what: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}
