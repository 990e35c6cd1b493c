import { runDoctor } from '../client.js';
import { withTemporalClient } from './temporal-client.js';
import { watchingForWorker } from './worker-watch.js';

const marks = { ok: '✓', warning: '!', failed: '✗', skipped: '–' } as const;

export async function doctorCommand(options: { timeoutMs: number }): Promise<void> {
  await withTemporalClient(async (client, config) => {
    console.log(`Running the doctor workflow on task queue "${config.taskQueue}" at ${config.address} …`);
    const report = await watchingForWorker(
      client,
      config.taskQueue,
      runDoctor(client, { taskQueue: config.taskQueue, timeoutMs: options.timeoutMs }),
    );
    const width = Math.max(...report.checks.map((check) => check.name.length));
    for (const check of report.checks) console.log(`  ${marks[check.status]} ${check.name.padEnd(width)}  ${check.detail}`);
    const failed = report.checks.filter((check) => check.status === 'failed').length;
    console.log(failed === 0 ? 'All checks passed.' : `${failed} check${failed === 1 ? '' : 's'} failed.`);
    process.exitCode = failed === 0 ? 0 : 1;
  });
}
