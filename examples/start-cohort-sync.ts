/**
 * Starting a cohort sync from another service: connect to Temporal, start, follow progress, read the result.
 * Run it with a worker up: `npx tsx examples/start-cohort-sync.ts 26umsb5`.
 */
import { Client, Connection } from '@temporalio/client';
import { getSyncProgress, startCohortSync } from '../src/client.js';
import { loadTemporalConfig, temporalConnectionOptions } from '../src/config.js';

const cohortId = process.argv[2] ?? '26umsb5';
const config = loadTemporalConfig();
const connection = await Connection.connect(await temporalConnectionOptions(config));
const client = new Client({ connection, namespace: config.namespace });

const handle = await startCohortSync(client, { cohortId, identifiers: ['user_id', 'user_alias'] }, { taskQueue: config.taskQueue });
const progress = setInterval(() => {
  getSyncProgress(client, handle.workflowId)
    .then((p) => console.log(`${p.phase}: page ${p.page}/${p.pagesTotal}, ${p.totals.dataPoints} data points`))
    .catch(() => undefined);
}, 1000);
const result = await handle.result().finally(() => clearInterval(progress));
console.log(result);
await connection.close();
