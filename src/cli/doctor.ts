import { Client, Connection } from '@temporalio/client';
import { runDoctor } from '../client.js';
import { loadTemporalConfig, temporalConnectionOptions } from '../config.js';

const marks = { ok: '✓', failed: '✗', skipped: '–' } as const;

export async function doctorCommand(options: { timeoutMs: number }): Promise<void> {
  const config = loadTemporalConfig();
  let connection: Connection;
  try {
    connection = await Connection.connect({ ...(await temporalConnectionOptions(config)), connectTimeout: 10_000 });
  } catch (error) {
    console.log(`${marks.failed} Temporal: cannot reach ${config.address} (${(error as Error).message}). Is \`npm run temporal\` running, or TEMPORAL_ADDRESS right?`);
    process.exit(1);
  }
  try {
    const client = new Client({ connection, namespace: config.namespace });
    console.log(`Running the doctor workflow on task queue "${config.taskQueue}" at ${config.address} …`);
    const report = await runDoctor(client, { taskQueue: config.taskQueue, timeoutMs: options.timeoutMs });
    const width = Math.max(...report.checks.map((check) => check.name.length));
    for (const check of report.checks) console.log(`  ${marks[check.status]} ${check.name.padEnd(width)}  ${check.detail}`);
    const failed = report.checks.filter((check) => check.status === 'failed').length;
    console.log(failed === 0 ? 'All checks passed.' : `${failed} check${failed === 1 ? '' : 's'} failed.`);
    process.exitCode = failed === 0 ? 0 : 1;
  } finally {
    await connection.close();
  }
}
