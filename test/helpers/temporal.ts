/**
 * Access to the one real Temporal dev server (and its Web UI) and workflow bundle that `npm test`
 * (scripts/run-tests.ts) starts for the whole run. Each test file works in its own namespace and task queues, so
 * files never see each other's work.
 */
import { randomUUID } from 'node:crypto';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { DefaultLogger, Runtime, Worker, type WorkerOptions } from '@temporalio/worker';
import type { ActivityFunctions } from '../../activities/index.js';
import { activityInterceptors } from '../../activities/interceptors.js';
import { testNamespace } from './namespace.js';

// Workers log every state change at INFO; tests want only what went wrong.
Runtime.install({ logger: new DefaultLogger('WARN') });

export function testServerAddress(): string {
  const address = process.env.TEST_TEMPORAL_ADDRESS;
  if (!address) throw new Error('TEST_TEMPORAL_ADDRESS is not set: run the tests with `npm test` (add file names to run only those)');
  return address;
}

export { testNamespace };

/** The test server as a process started by a test (the CLI, a worker, the receiver) is pointed at it. */
export function testTemporalEnv(): { TEMPORAL_ADDRESS: string; TEMPORAL_NAMESPACE: string } {
  return { TEMPORAL_ADDRESS: testServerAddress(), TEMPORAL_NAMESPACE: testNamespace() };
}

/** The dev server's Web UI, e.g. `http://127.0.0.1:41234`. */
export function testUiUrl(): string {
  const url = process.env.TEST_TEMPORAL_UI_URL;
  if (!url) throw new Error('TEST_TEMPORAL_UI_URL is not set: run the tests with `npm test` (add file names to run only those)');
  return url;
}

export async function connectTestEnvironment(): Promise<TestWorkflowEnvironment> {
  return TestWorkflowEnvironment.createFromExistingServer({ address: testServerAddress(), namespace: testNamespace() });
}

export function uniqueTaskQueue(prefix: string): string {
  return `${prefix}-${randomUUID()}`;
}

/** The workflow bundle of the current `workflows/` code, built once per test run. */
export function testWorkflowBundlePath(): string {
  const codePath = process.env.TEST_WORKFLOW_BUNDLE;
  if (!codePath) throw new Error('TEST_WORKFLOW_BUNDLE is not set: run the tests with `npm test`');
  return codePath;
}

export async function createTestWorker(
  env: TestWorkflowEnvironment,
  options: Pick<WorkerOptions, 'taskQueue'> & Partial<WorkerOptions> & { activities: ActivityFunctions },
): Promise<Worker> {
  return Worker.create({
    connection: env.nativeConnection,
    namespace: testNamespace(),
    workflowBundle: { codePath: testWorkflowBundlePath() },
    // As every worker has them (src/worker.ts): vendor errors become Temporal failures for every activity.
    interceptors: { activity: activityInterceptors },
    ...options,
  });
}
