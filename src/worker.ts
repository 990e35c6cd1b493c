/**
 * The worker: polls the task queue and runs every sync. Run as many as you like against one Temporal
 * namespace and one shared store; none of them keeps sync state in memory.
 */
import { NativeConnection, Worker } from '@temporalio/worker';
import { createActivities } from '../activities/index.js';
import { loadConfig, temporalConnectionOptions } from './config.js';
import { PROJECT_ROOT } from './temporal/cli.js';
import { createWorkerContext } from './worker-context.js';
import { join } from 'node:path';

export async function main(): Promise<void> {
  const config = loadConfig();
  const context = await createWorkerContext(config);
  const connection = await NativeConnection.connect(await temporalConnectionOptions(config.temporal));
  const worker = await Worker.create({
    connection,
    namespace: config.temporal.namespace,
    taskQueue: config.temporal.taskQueue,
    identity: context.workerIdentity,
    workflowsPath: join(PROJECT_ROOT, 'workflows', 'index.ts'),
    activities: createActivities(context),
  });
  console.log(`Worker ${context.workerIdentity} polling task queue "${config.temporal.taskQueue}" at ${config.temporal.address}. Ctrl-C to stop.`);
  try {
    await worker.run();
  } finally {
    await connection.close();
    await context.store.close();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { reportAndExit } = await import('./cli/output.js');
  await main().catch(reportAndExit);
}
