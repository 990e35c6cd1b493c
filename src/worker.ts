/**
 * The worker: polls the task queue and runs every sync. Run as many as you like against one Temporal
 * namespace and one shared store; none of them keeps sync state in memory.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { NativeConnection, Runtime, Worker } from '@temporalio/worker';
import { createActivities } from '../activities/index.js';
import { activityInterceptors } from '../activities/interceptors.js';
import { loadConfig, temporalConnectionOptions, type TemporalConfig } from './config.js';
import { PROJECT_ROOT } from './temporal/cli.js';
import { createWorkerContext, type WorkerContext } from './worker-context.js';

/** The workflow bundle `npm run build` writes next to the compiled code. */
export const BUILT_WORKFLOW_BUNDLE = join(PROJECT_ROOT, 'dist', 'workflow-bundle.js');

/** This module compiled (dist/src/worker.js), not run from its TypeScript source. */
const RUNNING_FROM_BUILD = import.meta.filename.endsWith('.js');

/**
 * A worker for every sync kind, on the configured task queue, with activities bound to `context`. It runs the
 * workflow bundle named by WORKFLOW_BUNDLE_PATH if set, else the build's own (dist/workflow-bundle.js) when it runs
 * from dist/, else (from the sources) bundles the workflows at start-up.
 */
export async function createSyncWorker(
  connection: NativeConnection,
  temporal: TemporalConfig,
  context: WorkerContext,
  workflowBundlePath = process.env.WORKFLOW_BUNDLE_PATH || (RUNNING_FROM_BUILD ? BUILT_WORKFLOW_BUNDLE : undefined),
): Promise<Worker> {
  if (workflowBundlePath && !existsSync(workflowBundlePath))
    throw new Error(`No workflow bundle at ${workflowBundlePath} (\`npm run build\` writes dist/workflow-bundle.js)`);
  return Worker.create({
    connection,
    namespace: temporal.namespace,
    taskQueue: temporal.taskQueue,
    identity: context.workerIdentity,
    maxConcurrentActivityTaskExecutions: temporal.workerMaxConcurrentActivities,
    // SIGTERM/SIGINT (the SDK's default shutdown signals) stop polling at once; running activities get this long
    // to finish, then are cancelled and retried elsewhere from their checkpoints, so a rolling deploy loses nothing.
    shutdownGraceTime: temporal.workerShutdownGraceMs,
    ...(workflowBundlePath
      ? { workflowBundle: { codePath: workflowBundlePath } }
      : { workflowsPath: join(PROJECT_ROOT, 'workflows', 'index.ts') }),
    activities: await createActivities(context),
    interceptors: { activity: activityInterceptors },
  });
}

export async function main(): Promise<void> {
  const config = loadConfig();
  const metricsAddress = config.temporal.workerPrometheusAddress;
  if (metricsAddress) Runtime.install({ telemetryOptions: { metrics: { prometheus: { bindAddress: metricsAddress } } } });
  const context = await createWorkerContext(config);
  const connection = await NativeConnection.connect(await temporalConnectionOptions(config.temporal));
  const worker = await createSyncWorker(connection, config.temporal, context);
  console.log(
    `Worker ${context.workerIdentity} polling task queue "${config.temporal.taskQueue}" at ${config.temporal.address}. Ctrl-C to stop.`,
  );
  if (metricsAddress) console.log(`Metrics for Prometheus at http://${metricsAddress}/metrics`);
  try {
    await worker.run();
    console.log(`Worker ${context.workerIdentity} stopped.`);
  } finally {
    await connection.close();
    await context.store.close();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { reportAndExit } = await import('./cli/output.js');
  await main().catch(reportAndExit);
}
