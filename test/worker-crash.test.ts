/**
 * A worker process is SIGKILLed in the middle of applying pages and another one takes over: the final Braze
 * state is exact and at most the page in flight is sent twice.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { getSyncProgress, startCohortSync } from '../src/client.js';
import { startSandboxes, type Sandboxes } from '../src/sandbox/sandboxes.js';
import { PROJECT_ROOT } from '../src/temporal/cli.js';
import { connectTestEnvironment, testServerAddress, uniqueTaskQueue } from './helpers/temporal.js';

const COHORT = '5fh7t0w'; // ~40% of users
const PAGE_SIZE = 150; // two /users/track requests per page

let env: TestWorkflowEnvironment;
let sandboxes: Sandboxes;
const workers: ChildProcess[] = [];

before(async () => {
  env = await connectTestEnvironment();
  sandboxes = await startSandboxes({ seed: 5, users: 2_500, dataset: { brazeKnownFraction: 1 }, amplitude: { exportJobDurationMs: 100 } });
});

after(async () => {
  for (const worker of workers) worker.kill('SIGKILL');
  await sandboxes?.close();
  await env?.teardown();
});

/** The real worker entry point, as its own process. */
function startWorkerProcess(taskQueue: string, stateDb: string): ChildProcess {
  const worker = spawn(process.execPath, ['--import', 'tsx', join(PROJECT_ROOT, 'src', 'worker.ts')], {
    env: { ...process.env, ...sandboxes.env, TEMPORAL_ADDRESS: testServerAddress(), TEMPORAL_TASK_QUEUE: taskQueue, STATE_DB: stateDb },
    stdio: 'ignore',
  });
  workers.push(worker);
  return worker;
}

test('killed mid-apply, another worker finishes: exact state, at most one page sent twice', async () => {
  const taskQueue = uniqueTaskQueue('crash');
  const stateDb = join(await mkdtemp(join(tmpdir(), 'crash-')), 'state.db');
  // Slow Braze down so the kill lands while pages are being applied.
  sandboxes.braze.control.setFaults({ latencyMs: 40 });
  const first = startWorkerProcess(taskQueue, stateDb);

  const handle = await startCohortSync(env.client, { cohortId: COHORT, pageSize: PAGE_SIZE }, { taskQueue });
  let progress = await getSyncProgress(env.client, handle.workflowId).catch(() => undefined);
  for (let i = 0; i < 600 && !(progress && progress.phase === 'applying' && progress.page >= 2); i++) {
    await new Promise((r) => setTimeout(r, 100));
    progress = await getSyncProgress(env.client, handle.workflowId).catch(() => undefined);
  }
  assert.equal(progress?.phase, 'applying', 'the sync reached the apply phase');
  first.kill('SIGKILL');
  const pagesBeforeKill = progress.page;

  startWorkerProcess(taskQueue, stateDb);
  const result = await handle.result();
  sandboxes.braze.control.setFaults({});

  const expected = new Set<string>();
  for (const member of sandboxes.dataset.cohortMembers(COHORT)) if (member.userId) expected.add(member.userId);
  const synced = new Set<string>();
  for (const profile of sandboxes.braze.control.users()) {
    const cohorts = profile.customAttributes?.get('amplitude_cohorts');
    if (Array.isArray(cohorts) && cohorts.includes(COHORT) && profile.externalId) synced.add(profile.externalId);
  }
  assert.deepEqual(synced, expected, 'final Braze state is exact');
  assert.equal(result.added, expected.size);
  assert.ok(pagesBeforeKill < Math.ceil(expected.size / PAGE_SIZE), 'the kill happened before the last page');

  const minimumRequests = Math.ceil(expected.size / 75);
  const requestsPerPage = Math.ceil(PAGE_SIZE / 75);
  const sent = sandboxes.braze.control.requestCounts()['POST /users/track'] ?? 0;
  assert.ok(sent <= minimumRequests + requestsPerPage, `sent ${sent} /users/track requests; at most one page (${requestsPerPage}) more than ${minimumRequests}`);
  const { total } = sandboxes.braze.control.dataPoints();
  assert.ok(total - expected.size <= PAGE_SIZE, `at most one page of writes repeated (${total - expected.size} extra data points)`);
});
