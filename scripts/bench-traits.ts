/**
 * `npm run bench:traits`: BENCH_USERS users (145,000: about 100,000 identified users active) in one ingested hour,
 * then a trait sync of five user properties into Braze under a BENCH_BRAZE_REQUESTS_PER_SECOND ceiling (1,000): the
 * first run writes every value, then 2% of the values change in Amplitude and a rerun sends only those, then once
 * more unchanged. Last, a sync of two computations through the User Profile API for BENCH_PROFILE_USERS users
 * (20,000) at a share of BENCH_PROFILE_REQUESTS_PER_MINUTE (6,000, the sandbox's limit scaled up so the run takes
 * minutes, not hours).
 * Writes bench-results/traits-<users>[-<store>].json.
 */
import { join } from 'node:path';
import { startEventSync, startTraitSync } from '../src/client.js';
import { AmplitudeClient } from '../src/amplitude/client.js';
import { exportHourOf } from '../kinds/event-sync/input.js';
import { openStateStore } from '../src/store/index.js';
import type { JsonObject } from '../src/store/store.js';
import { DEFAULT_PAGES_IN_FLIGHT } from '../src/sync-input.js';
import { PROJECT_ROOT } from '../src/temporal/cli.js';
import type { TraitSyncInput } from '../kinds/trait-sync/input.js';
import type { TraitSyncResult } from '../kinds/trait-sync/workflow.js';
import {
  brazeSandboxState,
  ceilingFigures,
  efficiencyFigures,
  peakRssOf,
  round,
  startBenchWorld,
  writeFigures,
  type Span,
} from './bench-support.js';

const USERS = Number(process.env.BENCH_USERS ?? 145_000);
const PROFILE_USERS = Number(process.env.BENCH_PROFILE_USERS ?? 20_000);
const PROFILE_SHARE = Number(process.env.BENCH_PROFILE_REQUESTS_PER_MINUTE ?? 6_000);
const RATE_CEILING = { requests: Number(process.env.BENCH_BRAZE_REQUESTS_PER_SECOND ?? 1_000), windowMs: 1_000 };
const STORE = process.env.BENCH_STORE === 'postgres' ? 'postgres' : 'sqlite';
const PROPERTIES = ['plan', 'ltv', 'level', 'beta_tester', 'favorite_genres'];
const CHANGED_FRACTION = 0.02;
// An hour with about 20 events per user makes every user active in it.
const HOUR = exportHourOf(Date.now() - 4 * 3_600_000);
const resultFile = join(PROJECT_ROOT, 'bench-results', `traits-${USERS}${STORE === 'sqlite' ? '' : `-${STORE}`}.json`);

const world = await startBenchWorld({
  dir: join(PROJECT_ROOT, 'data', 'bench-traits'),
  sandboxEnv: {
    SANDBOX_USERS: String(USERS),
    SANDBOX_EVENTS_PER_HOUR: String(USERS * 20),
    SANDBOX_IDENTIFIED_FRACTION: '0.8',
    SANDBOX_BRAZE_KNOWN_FRACTION: '0.5',
    SANDBOX_PROFILE_REQUESTS_PER_MINUTE: String(PROFILE_SHARE),
  },
  rateCeiling: RATE_CEILING,
  store: STORE,
  workers: 1,
  workerEnv: { AMPLITUDE_PROFILE_RATE: `${PROFILE_SHARE}/1m` },
});
const { taskQueue } = world.config.temporal;
const store = await openStateStore(world.config.store);
const amplitude = new AmplitudeClient({
  apiKey: world.config.amplitude.apiKey.reveal(),
  secretKey: world.config.amplitude.secretKey.reveal(),
  apiUrl: world.config.amplitude.apiUrl,
  profileApiUrl: world.config.amplitude.profileApiUrl ?? world.config.amplitude.apiUrl,
  ingestUrl: world.config.amplitude.ingestUrl,
});

try {
  console.log(`Ingesting an hour of events from ${USERS.toLocaleString('en')} users (and the current hour so far) …`);
  await ingest(HOUR);
  // The current hour now, so that ingesting it again later adds only the changes made below.
  await ingest(exportHourOf(Date.now()));
  const users = await identifiedUsers();
  const values = users.reduce((sum, [, properties]) => sum + PROPERTIES.filter((name) => properties[name] != null).length, 0);

  const input: TraitSyncInput = { name: 'bench', properties: PROPERTIES, attributePrefix: 'amp_', pageSize: 5_000 };
  console.log(`First trait sync: ${users.length.toLocaleString('en')} users, ${values.toLocaleString('en')} values …`);
  const first = await timedSync(input);
  const firstState = await brazeSandboxState(world.brazeUrl);

  const changing = Math.round(values * CHANGED_FRACTION);
  console.log(
    `${changing.toLocaleString('en')} users change plan in Amplitude (${CHANGED_FRACTION * 100}% of the values); syncing again …`,
  );
  await changePlans(users.slice(0, changing));
  // The minimum, counted in the activity index itself: every value that differs from before.
  const before = new Map(users);
  const changed = (await identifiedUsers()).reduce(
    (sum, [userId, properties]) =>
      sum + PROPERTIES.filter((name) => JSON.stringify(properties[name]) !== JSON.stringify(before.get(userId)?.[name])).length,
    0,
  );
  const pointsBefore = firstState.dataPoints.total;
  const delta = await timedSync(input);
  const deltaState = await brazeSandboxState(world.brazeUrl);
  console.log('Once more, unchanged …');
  const unchanged = await timedSync(input);

  console.log(`Computations for ${PROFILE_USERS.toLocaleString('en')} users through the User Profile API at ${PROFILE_SHARE}/min …`);
  const profiles = await timedSync({
    name: 'bench-profiles',
    computations: ['lifetime_spend', 'songs_played_30d'],
    maxProfileFetches: PROFILE_USERS,
  });
  const profileState = await amplitudeSandboxState();

  const figures = {
    date: new Date().toISOString(),
    store: STORE,
    usersInWindow: first.result.users,
    propertyValues: values,
    firstRun: {
      seconds: round(first.ms / 1000),
      written: first.result.written,
      created: first.result.created,
      brazeRequests: first.result.brazeRequests,
      ...ceilingFigures(firstState, RATE_CEILING.requests, [first.span]),
      cpuPerRequest: await efficiencyFigures(world, firstState, { spans: [first.span], pagesInFlight: DEFAULT_PAGES_IN_FLIGHT }),
      dataPointsSpent: first.result.dataPoints,
      dataPointsCountedByBraze: firstState.dataPoints.total,
      // Every value is new to Braze: each one is written once.
      dataPointsVsMinimum: round(first.result.dataPoints / values),
    },
    afterTwoPercentChanged: {
      valuesChanged: changed,
      valuesChangedFraction: round(changed / values),
      seconds: round(delta.ms / 1000),
      brazeRequests: delta.result.brazeRequests,
      dataPointsSpent: delta.result.dataPoints,
      dataPointsCountedByBraze: deltaState.dataPoints.total - pointsBefore,
      dataPointsVsMinimum: round(delta.result.dataPoints / changed),
    },
    unchangedRerun: {
      brazeRequests: unchanged.result.brazeRequests,
      dataPoints: unchanged.result.dataPoints,
      seconds: round(unchanged.ms / 1000),
    },
    profiles: {
      users: PROFILE_USERS,
      shareRequestsPerMinute: PROFILE_SHARE,
      profileApiRequests: profiles.result.profileApiRequests,
      seconds: round(profiles.ms / 1000),
      ...minuteFigures(profileState.profileRequests),
      sandbox429s: profileState.profileRequests.refused,
      dataPoints: profiles.result.dataPoints,
    },
    workerPeakRssMB: await Promise.all(world.workerProcesses.map(async (worker) => round((await peakRssOf(worker.pid!)) / 2 ** 20))),
  };
  await writeFigures(resultFile, figures);
} finally {
  await store.close();
  await world.stop();
}
process.exit(0);

async function ingest(hour: string): Promise<void> {
  await (await startEventSync(world.client, { hour }, { taskQueue, workflowId: `bench-ingest-${hour}-${Date.now()}` })).result();
}

async function timedSync(input: TraitSyncInput): Promise<{ result: TraitSyncResult; ms: number; span: Span }> {
  const startMs = Date.now();
  const handle = await startTraitSync(world.client, input, { taskQueue, workflowId: `bench-trait-${startMs}` });
  const result = await handle.result();
  return { result, ms: Date.now() - startMs, span: { startMs, endMs: Date.now() } };
}

/** The activity index's identified users and their latest properties, in key order. */
async function identifiedUsers(): Promise<Array<[string, JsonObject]>> {
  const users: Array<[string, JsonObject]> = [];
  let afterKey: string | undefined;
  do {
    const page = await store.activeUsers({ afterKey, limit: 5_000, sinceMs: 0 });
    for (const user of page.items)
      if (user.userKey.startsWith('user_id:')) users.push([user.userKey.slice('user_id:'.length), user.properties]);
    afterKey = page.nextAfterKey;
  } while (afterKey !== undefined);
  return users;
}

/** A new event per user carrying their properties with another plan (as Amplitude exports them), then the current hour ingested. */
async function changePlans(users: ReadonlyArray<[string, JsonObject]>): Promise<void> {
  const events = users.map(([userId, properties]) => ({
    event_type: 'Plan Changed',
    user_id: userId,
    insert_id: `bench-plan-${userId}`,
    user_properties: { ...properties, plan: properties.plan === 'premium' ? 'family' : 'premium' },
  }));
  for (let i = 0; i < events.length; i += 1_000) {
    const sent = await amplitude.ingestEvents(events.slice(i, i + 1_000), { api: 'batch' });
    if (sent.rejected.length > 0) throw new Error(`Amplitude rejected ${sent.rejected.length} events: ${sent.rejected[0]!.reason}`);
  }
  await ingest(exportHourOf(Date.now()));
}

interface ProfileRequests {
  answered: number;
  refused: number;
  limitPerMinute: number;
  byMinute: { answered: number[] };
}

async function amplitudeSandboxState(): Promise<{ profileRequests: ProfileRequests }> {
  return (await (await fetch(`${world.config.amplitude.apiUrl}/_sandbox/state`)).json()) as { profileRequests: ProfileRequests };
}

/** Requests per minute over the full minutes of the run (the first and last are only partly in it), vs the share. */
function minuteFigures({ byMinute }: ProfileRequests) {
  const full = byMinute.answered.length > 2 ? byMinute.answered.slice(1, -1) : byMinute.answered;
  const requests = full.reduce((sum, n) => sum + n, 0);
  return {
    fullMinutesMeasured: full.length,
    requestsPerMinute: round(requests / full.length),
    fractionOfShare: round(requests / (full.length * PROFILE_SHARE)),
  };
}
