/**
 * `npm run bench:cohort`: syncs a large cohort (200k members by default; BENCH_MEMBERS=2000000 when asked)
 * against the sandboxes under a Braze rate ceiling (BENCH_BRAZE_REQUESTS_PER_SECOND, 25 by default, or a real
 * workspace's 1,000), on SQLite or PostgreSQL (BENCH_STORE) with one or more workers (BENCH_WORKERS), then reruns
 * it unchanged, and writes the figures to bench-results/cohort-<members>[-<n>rps][-postgres][-<n>workers].json.
 * Each worker runs in a process of its own, started with the very command of `npm run worker` and a prebuilt
 * workflow bundle (as in production), so its peak RSS (the kernel's high-water mark) is that worker's alone.
 */
import { spawn } from 'node:child_process';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { delimiter, dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Client, Connection } from '@temporalio/client';
import { getSyncProgress, startCohortSync } from '../src/client.js';
import { loadConfig, temporalConnectionOptions } from '../src/config.js';
import { PROJECT_ROOT, resolveTemporalCli } from '../src/temporal/cli.js';
import { startPostgresServer } from '../src/store/postgres-server.js';
import { startDevServer } from '../src/temporal/dev-server.js';
import type { CohortSyncResult } from '../workflows/cohort-sync.js';
import packageJson from '../package.json' with { type: 'json' };

/** The sandbox's 40% cohort: the dataset is sized so that it has about BENCH_MEMBERS members, and never more
 * than Amplitude's 2M download maximum. */
const COHORT_ID = '5fh7t0w';
const MEMBERS = Number(process.env.BENCH_MEMBERS ?? 200_000);
const RATE_CEILING = { requests: Number(process.env.BENCH_BRAZE_REQUESTS_PER_SECOND ?? 25), windowMs: 1_000 };
/** Worker processes sharing the run (they share nothing but Temporal and the state store). */
const WORKERS = Number(process.env.BENCH_WORKERS ?? 1);
const PAGE_SIZE = Number(process.env.BENCH_PAGE_SIZE ?? 5_000);
const PAGES_IN_FLIGHT = Number(process.env.BENCH_PAGES_IN_FLIGHT ?? 4);
/** `sqlite` (a file shared by the workers) or `postgres` (a throw-away local cluster, as the tests use). */
const STORE = process.env.BENCH_STORE ?? 'sqlite';
const benchDir = join(PROJECT_ROOT, 'data', 'bench');
const variant = [
  RATE_CEILING.requests === 25 ? '' : `-${RATE_CEILING.requests}rps`,
  STORE === 'sqlite' ? '' : `-${STORE}`,
  WORKERS === 1 ? '' : `-${WORKERS}workers`,
].join('');
const resultFile = join(PROJECT_ROOT, 'bench-results', `cohort-${MEMBERS}${variant}.json`);

await rm(benchDir, { recursive: true, force: true });
await mkdir(benchDir, { recursive: true });

const server = await startDevServer({ cli: await resolveTemporalCli(), uiPort: false });
const postgres = STORE === 'postgres' ? await startPostgresServer() : undefined;
const sandboxEnvFile = join(benchDir, 'sandbox.env');
const sandboxProcess = spawnNpmScript('sandbox', {
  SANDBOX_USERS: String(Math.floor((MEMBERS / 0.4) * 0.995)),
  SANDBOX_IDENTIFIED_FRACTION: '0.8',
  // Every identified member exists in Braze, so the minimum data points are known exactly.
  SANDBOX_BRAZE_KNOWN_FRACTION: '1',
  AMPLITUDE_SANDBOX_PORT: '0',
  BRAZE_SANDBOX_PORT: '0',
  SANDBOX_ENV_FILE: sandboxEnvFile,
});
const sandboxEnv = await readSandboxEnv(sandboxEnvFile);
const brazeUrl = sandboxEnv.BRAZE_REST_ENDPOINT!;
await fetch(`${brazeUrl}/_sandbox/rate-limit`, { method: 'POST', body: JSON.stringify(RATE_CEILING) });

const workerEnv = {
  ...sandboxEnv,
  TEMPORAL_ADDRESS: server.address,
  ...(postgres ? { STATE_STORE_URL: postgres.url } : { STATE_DB: join(benchDir, 'state.db') }),
  BRAZE_RATE_LIMIT: `${RATE_CEILING.requests}/${RATE_CEILING.windowMs / 1000}s`,
  WORKFLOW_BUNDLE_PATH: await buildWorkflowBundle(),
};
const config = loadConfig(workerEnv);
// Each in a working directory of its own, as on separate hosts.
const workerProcesses = await Promise.all(
  Array.from({ length: WORKERS }, async (_, index) => {
    const cwd = join(benchDir, `worker-${index + 1}`);
    await mkdir(cwd, { recursive: true });
    return spawnNpmScript('worker', workerEnv, [], cwd);
  }),
);
const connection = await Connection.connect(await temporalConnectionOptions(config.temporal));
const client = new Client({ connection, namespace: config.temporal.namespace });

try {
  console.log(`Syncing a ${MEMBERS.toLocaleString('en')}-member cohort; Braze ceiling ${RATE_CEILING.requests} requests/s …`);
  const first = await timedSync();
  const brazeState = (await (await fetch(`${brazeUrl}/_sandbox/state`)).json()) as BrazeSandboxState;
  // Braze's own count of requests per fixed window; the first and last windows are only partly inside the run.
  const { granted, windowMs } = brazeState.trackWindows;
  const fullWindows = granted.length > 2 ? granted.slice(1, -1) : granted;
  const fullWindowRequests = fullWindows.reduce((sum, n) => sum + n, 0);
  console.log('Rerunning it unchanged …');
  const rerun = await timedSync();
  const workerPeakRss = await Promise.all(workerProcesses.map((worker) => peakRssOf(worker.pid!)));

  const minimumDataPoints = first.result.added; // one array add per identified member, each written once
  const cohortMembers = first.result.added + first.result.skipped;
  const figures = {
    date: new Date().toISOString(),
    cohortMembers,
    identifiedMembersSynced: first.result.added,
    anonymousMembersSkipped: first.result.skipped,
    brazeRateCeilingRequestsPerSecond: RATE_CEILING.requests,
    store: STORE,
    workers: WORKERS,
    pageSize: PAGE_SIZE,
    pagesInFlight: PAGES_IN_FLIGHT,
    brazeRateLimited429s: brazeState.trackWindows.rejected.reduce((sum, n) => sum + n, 0),
    brazeRequests: first.result.brazeRequests,
    applySeconds: round(first.applyMs / 1000),
    totalSeconds: round(first.totalMs / 1000),
    fullRateWindowsMeasured: fullWindows.length,
    achievedRequestsPerSecond: round(fullWindowRequests / ((fullWindows.length * windowMs) / 1000)),
    fractionOfCeiling: round(fullWindowRequests / (fullWindows.length * RATE_CEILING.requests)),
    usersPerSecond: round(first.result.added / (first.totalMs / 1000)),
    workerPeakRssMB: workerPeakRss.map((bytes) => round(bytes / 2 ** 20)),
    historyEventsPer10kUsers: round((first.historyEvents / cohortMembers) * 10_000),
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
} finally {
  await connection.close();
  for (const child of [...workerProcesses, sandboxProcess]) child.kill('SIGTERM');
  await Promise.all(workerProcesses.map((worker) => new Promise((resolve) => (worker.exitCode === null ? worker.once('exit', resolve) : resolve(null)))));
  await postgres?.stop();
  await server.stop();
}
process.exit(0);

interface BrazeSandboxState {
  dataPoints: { total: number };
  trackWindows: { windowMs: number; granted: number[]; rejected: number[] };
}

/** One run: its result, its wall time, the time spent applying pages, and its history events across continue-as-new. */
async function timedSync(): Promise<{ result: CohortSyncResult; totalMs: number; applyMs: number; historyEvents: number }> {
  const started = Date.now();
  const handle = await startCohortSync(client, { cohortId: COHORT_ID, pageSize: PAGE_SIZE, pagesInFlight: PAGES_IN_FLIGHT }, { taskQueue: config.temporal.taskQueue });
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

/** Runs the command of an npm script with `exec`, so the child's pid is the command's own (not npm's or a shell's). */
function spawnNpmScript(name: keyof typeof packageJson.scripts, env: Record<string, string> = {}, args: string[] = [], cwd = PROJECT_ROOT) {
  // Run from elsewhere, the script's relative paths must still resolve inside the project.
  const command = [packageJson.scripts[name].replace(' src/', ` ${PROJECT_ROOT}/src/`), ...args].join(' ');
  const path = [join(PROJECT_ROOT, 'node_modules', '.bin'), dirname(process.execPath), process.env.PATH].join(delimiter);
  return spawn('sh', ['-c', `exec ${command}`], { cwd, stdio: ['ignore', 'ignore', 'inherit'], env: { ...process.env, ...env, PATH: path } });
}

/** The process's peak resident set so far (Linux `VmHWM`), in bytes. */
async function peakRssOf(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const kilobytes = /^VmHWM:\s+(\d+) kB$/m.exec(status)?.[1];
  if (kilobytes === undefined) throw new Error(`no VmHWM for process ${pid}`);
  return Number(kilobytes) * 1024;
}

async function readSandboxEnv(envFile: string): Promise<Record<string, string>> {
  for (let waited = 0; waited < 300_000; waited += 250) {
    const text = await readFile(envFile, 'utf8').catch(() => undefined);
    if (text) return Object.fromEntries(text.trim().split('\n').map((line) => line.split(/=(.*)/s).slice(0, 2) as [string, string]));
    await sleep(250);
  }
  throw new Error('the sandboxes did not start within 5 minutes');
}

/** Bundled ahead of time, as in production, so webpack's memory does not count as the worker's. */
async function buildWorkflowBundle(): Promise<string> {
  const bundlePath = join(benchDir, 'workflow-bundle.js');
  const builder = spawnNpmScript('build:workflows', {}, [bundlePath]);
  const code = await new Promise<number | null>((resolve) => builder.once('exit', resolve));
  if (code !== 0) throw new Error('building the workflow bundle failed');
  return bundlePath;
}

function round(value: number): number {
  return Math.round(value * 100) / 100;
}
