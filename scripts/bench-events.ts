/**
 * `npm run bench:events`: BENCH_EVENTS Amplitude events (1,000,000 by default) from BENCH_USERS users (100,000)
 * in BENCH_HOURS consecutive hours (1) through the event sync, one run per hour, against the sandboxes, on SQLite
 * or PostgreSQL (BENCH_STORE): first ingest only (the activity index), then again streaming a ~10% subset to
 * Braze under a BENCH_BRAZE_REQUESTS_PER_SECOND ceiling (1,000), then once more unchanged. Amplitude exports at
 * most 4 GB a request, so an hour of much more than 4M events needs several hours. Writes
 * bench-results/events-<events>[-<hours>h][-<store>].json.
 */
import { join } from 'node:path';
import Database from 'better-sqlite3';
import pg from 'pg';
import { startEventSync } from '../src/client.js';
import type { EventSyncInput } from '../kinds/event-sync/input.js';
import { exportHourOf } from '../kinds/event-sync/input.js';
import { DEFAULT_PAGES_IN_FLIGHT } from '../src/sync-input.js';
import { PROJECT_ROOT } from '../src/temporal/cli.js';
import type { EventSyncResult } from '../kinds/event-sync/workflow.js';
import {
  brazeSandboxState,
  ceilingFigures,
  efficiencyFigures,
  peakRssOf,
  round,
  startBenchWorld,
  writeFigures,
  type BenchWorld,
  type Span,
} from './bench-support.js';

const EVENTS = Number(process.env.BENCH_EVENTS ?? 1_000_000);
const USERS = Number(process.env.BENCH_USERS ?? 100_000);
const RATE_CEILING = { requests: Number(process.env.BENCH_BRAZE_REQUESTS_PER_SECOND ?? 1_000), windowMs: 1_000 };
const STORE = process.env.BENCH_STORE === 'postgres' ? 'postgres' : 'sqlite';
// "Song Played" in three of the sandbox's eight genres: about 9% of all events.
const STREAMED: EventSyncInput = { eventTypes: ['Song Played'], propertyFilters: { 'Song Played': { genre: ['rock', 'jazz', 'pop'] } } };
const HOUR_COUNT = Number(process.env.BENCH_HOURS ?? 1);
// Hours the Export API has: the last one ends four hours ago.
const HOURS = Array.from({ length: HOUR_COUNT }, (_, index) => exportHourOf(Date.now() - (3 + HOUR_COUNT - index) * 3_600_000));
const benchDir = join(PROJECT_ROOT, 'data', 'bench-events');
const resultName = ['events', EVENTS, ...(HOUR_COUNT > 1 ? [`${HOUR_COUNT}h`] : []), ...(STORE === 'sqlite' ? [] : [STORE])].join('-');
const resultFile = join(PROJECT_ROOT, 'bench-results', `${resultName}.json`);

const world = await startBenchWorld({
  dir: benchDir,
  sandboxEnv: {
    SANDBOX_USERS: String(USERS),
    SANDBOX_EVENTS_PER_HOUR: String(Math.round(EVENTS / HOUR_COUNT)),
    SANDBOX_IDENTIFIED_FRACTION: '0.8',
    SANDBOX_BRAZE_KNOWN_FRACTION: '1',
  },
  rateCeiling: RATE_CEILING,
  store: STORE,
  workers: 1,
});

try {
  console.log(`Ingesting ${HOUR_COUNT} hour(s) of ${EVENTS.toLocaleString('en')} events from ${USERS.toLocaleString('en')} users …`);
  const ingest = await timedPass({});
  console.log('Again, streaming about 10% of them to Braze …');
  const pointsBefore = (await brazeSandboxState(world.brazeUrl)).dataPoints.total;
  const stream = await timedPass(STREAMED);
  const brazeState = await brazeSandboxState(world.brazeUrl);
  console.log('Once more, unchanged …');
  const rerun = await timedPass(STREAMED);
  const activityIndex = await activityIndexSize(world);

  const figures = {
    date: new Date().toISOString(),
    store: STORE,
    hours: HOUR_COUNT,
    events: ingest.result.events,
    usersInActivityIndex: activityIndex.users,
    ingestion: {
      seconds: round(ingest.ms / 1000),
      eventsPerSecond: Math.round(ingest.result.events / (ingest.ms / 1000)),
    },
    activityIndexBytesPer100kActiveUsers: Math.round((activityIndex.bytes / activityIndex.users) * 100_000),
    streaming: {
      brazeRateCeilingRequestsPerSecond: RATE_CEILING.requests,
      eventsSelected: stream.result.forwarded + stream.result.skipped,
      selectedFraction: round((stream.result.forwarded + stream.result.skipped) / stream.result.events),
      forwarded: stream.result.forwarded,
      skippedAnonymous: stream.result.skipped,
      brazeRequests: stream.result.brazeRequests,
      seconds: round(stream.ms / 1000),
      ...ceilingFigures(brazeState, RATE_CEILING.requests, stream.runs),
      cpuPerRequest: await efficiencyFigures(world, brazeState, { spans: stream.runs, pagesInFlight: DEFAULT_PAGES_IN_FLIGHT }),
      dataPointsSpent: stream.result.dataPoints,
      dataPointsCountedByBraze: brazeState.dataPoints.total - pointsBefore,
      // One data point per event forwarded, each sent once.
      dataPointsVsMinimum: round(stream.result.dataPoints / stream.result.forwarded),
    },
    unchangedRerun: rerun.result,
    workerPeakRssMB: await Promise.all(world.workerProcesses.map(async (worker) => round((await peakRssOf(worker.pid!)) / 2 ** 20))),
  };
  await writeFigures(resultFile, figures);
} finally {
  await world.stop();
}
process.exit(0);

/** What a pass over every hour added up to. */
type PassTotals = Pick<EventSyncResult, 'events' | 'forwarded' | 'skipped' | 'alreadySent' | 'brazeRequests' | 'dataPoints'>;

/** Syncs the hours one after the other (a run per hour, as the hourly schedule does); `runs` says when each ran. */
async function timedPass(selection: EventSyncInput): Promise<{ result: PassTotals; ms: number; runs: Span[] }> {
  const started = Date.now();
  const result: PassTotals = { events: 0, forwarded: 0, skipped: 0, alreadySent: 0, brazeRequests: 0, dataPoints: 0 };
  const runs: Span[] = [];
  for (const hour of HOURS) {
    const startMs = Date.now();
    const handle = await startEventSync(
      world.client,
      { hour, ...selection },
      { taskQueue: world.config.temporal.taskQueue, workflowId: `bench-${hour}-${startMs}` },
    );
    const hourResult = await handle.result();
    runs.push({ startMs, endMs: Date.now() });
    for (const key of Object.keys(result) as Array<keyof PassTotals>) result[key] += hourResult[key];
  }
  return { result, ms: Date.now() - started, runs };
}

/** The activity index's users and size on disk (table and indexes). */
async function activityIndexSize({ storeEnv }: BenchWorld): Promise<{ users: number; bytes: number }> {
  if (storeEnv.STATE_STORE_URL) {
    const client = new pg.Client({ connectionString: storeEnv.STATE_STORE_URL });
    await client.connect();
    try {
      const { rows } = await client.query<{ users: string; bytes: string }>(
        `SELECT count(*) AS users, pg_total_relation_size('user_activity') AS bytes FROM user_activity`,
      );
      return { users: Number(rows[0]!.users), bytes: Number(rows[0]!.bytes) };
    } finally {
      await client.end();
    }
  }
  const db = new Database(storeEnv.STATE_DB, { readonly: true });
  try {
    const { users } = db.prepare<[], { users: number }>(`SELECT count(*) AS users FROM user_activity`).get()!;
    const row = db
      .prepare<[], { bytes: number }>(`SELECT sum(pgsize) AS bytes FROM dbstat WHERE name IN ('user_activity', 'user_activity_by_time')`)
      .get();
    return { users, bytes: row?.bytes ?? 0 };
  } finally {
    db.close();
  }
}
