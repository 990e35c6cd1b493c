/**
 * `npm run bench:cohort`: syncs a large cohort (200k members by default; BENCH_MEMBERS=2000000 when asked)
 * against the sandboxes with a deliberately low Braze rate ceiling, then reruns it unchanged, and writes the
 * figures to bench-results/cohort.json. The sandboxes run in a child process, so the peak RSS measured here is
 * the worker's own (worker, Temporal client, CSV streaming and the store).
 */
import { spawn } from 'node:child_process';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Client, Connection } from '@temporalio/client';
import { DefaultLogger, NativeConnection, Runtime } from '@temporalio/worker';
import { getSyncProgress, startCohortSync } from '../src/client.js';
import { loadConfig, temporalConnectionOptions } from '../src/config.js';
import { PROJECT_ROOT, resolveTemporalCli } from '../src/temporal/cli.js';
import { startDevServer } from '../src/temporal/dev-server.js';
import { createSyncWorker } from '../src/worker.js';
import { createWorkerContext } from '../src/worker-context.js';
import type { CohortSyncResult } from '../workflows/cohort-sync.js';

/** The sandbox's 40% cohort: the dataset is sized so that it has BENCH_MEMBERS members. */
const COHORT_ID = '5fh7t0w';
const MEMBERS = Number(process.env.BENCH_MEMBERS ?? 200_000);
const RATE_CEILING = { requests: Number(process.env.BENCH_BRAZE_REQUESTS_PER_SECOND ?? 25), windowMs: 1_000 };
const benchDir = join(PROJECT_ROOT, 'data', 'bench');
const resultFile = join(PROJECT_ROOT, 'bench-results', `cohort-${MEMBERS}.json`);

Runtime.install({ logger: new DefaultLogger('WARN') });
await rm(benchDir, { recursive: true, force: true });
await mkdir(benchDir, { recursive: true });

let peakRss = 0;
const rssSampler = setInterval(() => (peakRss = Math.max(peakRss, process.memoryUsage().rss)), 100);

const server = await startDevServer({ cli: await resolveTemporalCli(), uiPort: false });
const sandboxEnvFile = join(benchDir, 'sandbox.env');
const sandboxProcess = spawnSandboxes(sandboxEnvFile);
const sandboxEnv = await readSandboxEnv(sandboxEnvFile);
const brazeUrl = sandboxEnv.BRAZE_REST_ENDPOINT!;
await fetch(`${brazeUrl}/_sandbox/rate-limit`, { method: 'POST', body: JSON.stringify(RATE_CEILING) });

const config = loadConfig({
  ...sandboxEnv,
  TEMPORAL_ADDRESS: server.address,
  STATE_DB: join(benchDir, 'state.db'),
  BRAZE_RATE_LIMIT: `${RATE_CEILING.requests}/${RATE_CEILING.windowMs / 1000}s`,
});
const context = await createWorkerContext(config);
const workerConnection = await NativeConnection.connect(await temporalConnectionOptions(config.temporal));
const worker = await createSyncWorker(workerConnection, config.temporal, context, await buildWorkflowBundle());
const workerRun = worker.run();
const connection = await Connection.connect(await temporalConnectionOptions(config.temporal));
const client = new Client({ connection, namespace: config.temporal.namespace });

console.log(`Syncing a ${MEMBERS.toLocaleString('en')}-member cohort; Braze ceiling ${RATE_CEILING.requests} requests/s …`);
const first = await timedSync();
const brazeState = (await (await fetch(`${brazeUrl}/_sandbox/state`)).json()) as { dataPoints: { total: number } };
console.log('Rerunning it unchanged …');
const rerun = await timedSync();

const minimumDataPoints = first.result.added; // one array add per identified member, each written once
const figures = {
  date: new Date().toISOString(),
  cohortMembers: MEMBERS,
  identifiedMembersSynced: first.result.added,
  anonymousMembersSkipped: first.result.skipped,
  brazeRateCeilingRequestsPerSecond: RATE_CEILING.requests,
  brazeRequests: first.result.brazeRequests,
  applySeconds: round(first.applyMs / 1000),
  totalSeconds: round(first.totalMs / 1000),
  achievedRequestsPerSecond: round(first.result.brazeRequests / (first.applyMs / 1000)),
  fractionOfCeiling: round(first.result.brazeRequests / (first.applyMs / 1000) / RATE_CEILING.requests),
  usersPerSecond: round(first.result.added / (first.totalMs / 1000)),
  peakRssMB: round(peakRss / 2 ** 20),
  historyEventsPer10kUsers: round((first.historyEvents / MEMBERS) * 10_000),
  dataPointsSpent: first.result.dataPoints,
  dataPointsCountedByBraze: brazeState.dataPoints.total,
  dataPointsVsMinimum: round(first.result.dataPoints / minimumDataPoints),
  unchangedRerun: {
    unchanged: rerun.result.unchanged,
    brazeRequests: rerun.result.brazeRequests,
    dataPoints: rerun.result.dataPoints,
    amplitudeDownloads: rerun.result.amplitudeDownloads,
    seconds: round(rerun.totalMs / 1000),
  },
};
await mkdir(join(PROJECT_ROOT, 'bench-results'), { recursive: true });
await writeFile(resultFile, `${JSON.stringify(figures, null, 2)}\n`);
console.log(figures);
console.log(`Written to ${resultFile}`);

clearInterval(rssSampler);
worker.shutdown();
await workerRun;
await Promise.all([connection.close(), workerConnection.close(), context.store.close()]);
sandboxProcess.kill('SIGTERM');
await server.stop();
process.exit(0);

/** One run: its result, its wall time, the time spent applying pages, and its history events across continue-as-new. */
async function timedSync(): Promise<{ result: CohortSyncResult; totalMs: number; applyMs: number; historyEvents: number }> {
  const started = Date.now();
  const handle = await startCohortSync(client, { cohortId: COHORT_ID, pageSize: 2_000 }, { taskQueue: config.temporal.taskQueue });
  let applyingSince: number | undefined;
  const watcher = (async () => {
    while (applyingSince === undefined) {
      const progress = await getSyncProgress(client, handle.workflowId).catch(() => undefined);
      if (progress?.phase === 'applying') applyingSince = Date.now();
      else if (progress?.phase === 'done' || progress?.phase === 'finishing') return;
      await sleep(100);
    }
  })();
  const result = await handle.result();
  const finished = Date.now();
  await watcher;
  let historyEvents = 0;
  for await (const execution of client.workflow.list({ query: `WorkflowId = '${handle.workflowId}'` })) {
    historyEvents += execution.historyLength;
  }
  return { result, totalMs: finished - started, applyMs: finished - (applyingSince ?? started), historyEvents };
}

function spawnSandboxes(envFile: string) {
  return spawn(process.execPath, ['--import', 'tsx', join(PROJECT_ROOT, 'src', 'sandbox', 'main.ts')], {
    stdio: 'ignore',
    env: {
      ...process.env,
      SANDBOX_USERS: String(Math.ceil(MEMBERS / 0.4)),
      SANDBOX_IDENTIFIED_FRACTION: '0.8',
      // Every identified member exists in Braze, so the minimum data points are known exactly.
      SANDBOX_BRAZE_KNOWN_FRACTION: '1',
      AMPLITUDE_SANDBOX_PORT: '0',
      BRAZE_SANDBOX_PORT: '0',
      SANDBOX_ENV_FILE: envFile,
    },
  });
}

async function readSandboxEnv(envFile: string): Promise<Record<string, string>> {
  for (let waited = 0; waited < 300_000; waited += 250) {
    const text = await readFile(envFile, 'utf8').catch(() => undefined);
    if (text) return Object.fromEntries(text.trim().split('\n').map((line) => line.split(/=(.*)/s).slice(0, 2) as [string, string]));
    await sleep(250);
  }
  throw new Error('the sandboxes did not start within 5 minutes');
}

/** Bundled in a child process, as in production, so webpack's memory does not count as the worker's. */
async function buildWorkflowBundle(): Promise<string> {
  const bundlePath = join(benchDir, 'workflow-bundle.js');
  const builder = spawn(process.execPath, ['--import', 'tsx', join(PROJECT_ROOT, 'scripts', 'build-workflow-bundle.ts'), bundlePath], { stdio: 'ignore' });
  const code = await new Promise<number | null>((resolve) => builder.once('exit', resolve));
  if (code !== 0) throw new Error('building the workflow bundle failed');
  return bundlePath;
}

function round(value: number): number {
  return Math.round(value * 100) / 100;
}
