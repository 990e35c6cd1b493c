/**
 * `npm run bench:cohort`: syncs a large cohort (200k members by default; BENCH_MEMBERS=2000000 when asked)
 * against the sandboxes under a Braze rate ceiling (BENCH_BRAZE_REQUESTS_PER_SECOND, 25 by default, or a real
 * workspace's 1,000), on SQLite or PostgreSQL (BENCH_STORE) with one or more workers (BENCH_WORKERS), then reruns
 * it unchanged, and writes the figures to bench-results/cohort-<members>[-<n>rps][-postgres][-<n>workers].json.
 * Each worker runs in a process of its own, started with the very command of `npm run worker` and a prebuilt
 * workflow bundle (as in production), so its peak RSS (the kernel's high-water mark) is that worker's alone.
 */
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { getSyncProgress, startCohortSync } from '../src/client.js';
import { PROJECT_ROOT } from '../src/temporal/cli.js';
import type { CohortSyncResult } from '../kinds/cohort-sync/workflow.js';
import { brazeSandboxState, ceilingFigures, efficiencyFigures, peakRssOf, round, startBenchWorld, writeFigures } from './bench-support.js';

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

const world = await startBenchWorld({
  dir: benchDir,
  sandboxEnv: {
    SANDBOX_USERS: String(Math.floor((MEMBERS / 0.4) * 0.995)),
    SANDBOX_IDENTIFIED_FRACTION: '0.8',
    // Every identified member exists in Braze, so the minimum data points are known exactly.
    SANDBOX_BRAZE_KNOWN_FRACTION: '1',
  },
  rateCeiling: RATE_CEILING,
  store: STORE === 'postgres' ? 'postgres' : 'sqlite',
  workers: WORKERS,
});
const { client, config, workerProcesses } = world;

try {
  console.log(`Syncing a ${MEMBERS.toLocaleString('en')}-member cohort; Braze ceiling ${RATE_CEILING.requests} requests/s …`);
  const first = await timedSync();
  const brazeState = await brazeSandboxState(world.brazeUrl);
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
    brazeRequests: first.result.brazeRequests,
    applySeconds: round(first.applyMs / 1000),
    totalSeconds: round(first.totalMs / 1000),
    ...ceilingFigures(brazeState, RATE_CEILING.requests),
    cpuPerRequest: await efficiencyFigures(world, brazeState, { pagesInFlight: PAGES_IN_FLIGHT }),
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
  await writeFigures(resultFile, figures);
} finally {
  await world.stop();
}
process.exit(0);

/** One run: its result, its wall time, the time spent applying pages, and its history events across continue-as-new. */
async function timedSync(): Promise<{ result: CohortSyncResult; totalMs: number; applyMs: number; historyEvents: number }> {
  const started = Date.now();
  const handle = await startCohortSync(
    client,
    { cohortId: COHORT_ID, pageSize: PAGE_SIZE, pagesInFlight: PAGES_IN_FLIGHT },
    { taskQueue: config.temporal.taskQueue },
  );
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
