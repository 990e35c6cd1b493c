/**
 * `npm run bench:events`: one hour of BENCH_EVENTS Amplitude events (1,000,000 by default) from BENCH_USERS users
 * (100,000) through the event sync, against the sandboxes, on SQLite or PostgreSQL (BENCH_STORE): first ingest
 * only (the activity index), then again streaming a ~10% subset to Braze under a BENCH_BRAZE_REQUESTS_PER_SECOND
 * ceiling (1,000), then once more unchanged. Writes bench-results/events-<events>[-<store>].json.
 */
import { join } from 'node:path';
import Database from 'better-sqlite3';
import pg from 'pg';
import { startEventSync } from '../src/client.js';
import type { EventSyncInput } from '../src/events/input.js';
import { exportHourOf } from '../src/events/input.js';
import { PROJECT_ROOT } from '../src/temporal/cli.js';
import type { EventSyncResult } from '../workflows/event-sync.js';
import { brazeSandboxState, ceilingFigures, peakRssOf, round, startBenchWorld, writeFigures, type BenchWorld } from './bench-support.js';

const EVENTS = Number(process.env.BENCH_EVENTS ?? 1_000_000);
const USERS = Number(process.env.BENCH_USERS ?? 100_000);
const RATE_CEILING = { requests: Number(process.env.BENCH_BRAZE_REQUESTS_PER_SECOND ?? 1_000), windowMs: 1_000 };
const STORE = process.env.BENCH_STORE === 'postgres' ? 'postgres' : 'sqlite';
// "Song Played" in three of the sandbox's eight genres: about 9% of all events.
const STREAMED: EventSyncInput = { eventTypes: ['Song Played'], propertyFilters: { 'Song Played': { genre: ['rock', 'jazz', 'pop'] } } };
const HOUR = exportHourOf(Date.now() - 4 * 3_600_000);
const benchDir = join(PROJECT_ROOT, 'data', 'bench-events');
const resultFile = join(PROJECT_ROOT, 'bench-results', `events-${EVENTS}${STORE === 'sqlite' ? '' : `-${STORE}`}.json`);

const world = await startBenchWorld({
  dir: benchDir,
  sandboxEnv: { SANDBOX_USERS: String(USERS), SANDBOX_EVENTS_PER_HOUR: String(EVENTS), SANDBOX_IDENTIFIED_FRACTION: '0.8', SANDBOX_BRAZE_KNOWN_FRACTION: '1' },
  rateCeiling: RATE_CEILING,
  store: STORE,
  workers: 1,
});

try {
  console.log(`Ingesting an hour of ${EVENTS.toLocaleString('en')} events from ${USERS.toLocaleString('en')} users …`);
  const ingest = await timedSync({ hour: HOUR });
  console.log('Again, streaming about 10% of them to Braze …');
  const pointsBefore = (await brazeSandboxState(world.brazeUrl)).dataPoints.total;
  const stream = await timedSync({ hour: HOUR, ...STREAMED });
  const brazeState = await brazeSandboxState(world.brazeUrl);
  console.log('Once more, unchanged …');
  const rerun = await timedSync({ hour: HOUR, ...STREAMED });
  const activityBytes = await activityIndexBytes(world);

  const figures = {
    date: new Date().toISOString(),
    store: STORE,
    hourEvents: ingest.result.events,
    usersActive: ingest.result.usersActive,
    ingestion: {
      seconds: round(ingest.ms / 1000),
      eventsPerSecond: Math.round(ingest.result.events / (ingest.ms / 1000)),
    },
    activityIndexBytesPer100kActiveUsers: Math.round((activityBytes / ingest.result.usersActive) * 100_000),
    streaming: {
      brazeRateCeilingRequestsPerSecond: RATE_CEILING.requests,
      eventsSelected: stream.result.forwarded + stream.result.skipped,
      selectedFractionOfHour: round((stream.result.forwarded + stream.result.skipped) / stream.result.events),
      forwarded: stream.result.forwarded,
      skippedAnonymous: stream.result.skipped,
      brazeRequests: stream.result.brazeRequests,
      seconds: round(stream.ms / 1000),
      ...ceilingFigures(brazeState, RATE_CEILING.requests),
      dataPointsSpent: stream.result.dataPoints,
      dataPointsCountedByBraze: brazeState.dataPoints.total - pointsBefore,
      // One data point per event forwarded, each sent once.
      dataPointsVsMinimum: round(stream.result.dataPoints / stream.result.forwarded),
    },
    unchangedRerun: { forwarded: rerun.result.forwarded, alreadySent: rerun.result.alreadySent, brazeRequests: rerun.result.brazeRequests, dataPoints: rerun.result.dataPoints },
    workerPeakRssMB: await Promise.all(world.workerProcesses.map(async (worker) => round((await peakRssOf(worker.pid!)) / 2 ** 20))),
  };
  await writeFigures(resultFile, figures);
} finally {
  await world.stop();
}
process.exit(0);

async function timedSync(input: EventSyncInput): Promise<{ result: EventSyncResult; ms: number }> {
  const started = Date.now();
  const handle = await startEventSync(world.client, input, { taskQueue: world.config.temporal.taskQueue, workflowId: `bench-${HOUR}-${started}` });
  const result = await handle.result();
  return { result, ms: Date.now() - started };
}

/** The activity index's size on disk (table and indexes). */
async function activityIndexBytes({ storeEnv }: BenchWorld): Promise<number> {
  if (storeEnv.STATE_STORE_URL) {
    const client = new pg.Client({ connectionString: storeEnv.STATE_STORE_URL });
    await client.connect();
    try {
      const { rows } = await client.query<{ bytes: string }>(`SELECT pg_total_relation_size('user_activity') AS bytes`);
      return Number(rows[0]!.bytes);
    } finally {
      await client.end();
    }
  }
  const db = new Database(storeEnv.STATE_DB, { readonly: true });
  try {
    const row = db.prepare<[], { bytes: number }>(`SELECT sum(pgsize) AS bytes FROM dbstat WHERE name IN ('user_activity', 'user_activity_by_time')`).get();
    return row?.bytes ?? 0;
  } finally {
    db.close();
  }
}
