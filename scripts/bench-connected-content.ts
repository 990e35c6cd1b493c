/**
 * `npm run bench:connected-content`: the receiver answering Braze Connected Content's profile lookups. BENCH_USERS
 * users (20,000); 95% of them are warmed first by a `profileWarmup` of a saved list (with the Profile API's limit
 * lifted for that phase only), 5% are never fetched. Then, with Amplitude's limit back at 600 a minute and the
 * receiver's share of it at AMPLITUDE_PROFILE_RATE (300 a minute), a Connected-Content-like client sends BENCH_RATE
 * lookups a second (2,000) for BENCH_SECONDS (60), open loop (latency counts from when a request was due, so a slow
 * answer cannot hide the ones queued behind it), each asking what a Braze template asks for (a recommendation, a
 * computation, the cohort ids). Reports latency percentiles, statuses and sources, the Profile API requests Amplitude
 * answered and refused during the load (per minute, against the budget), the receiver's RSS and CPU, and whether
 * answers equal, byte for byte, what Amplitude's Profile API gives for the same query. On SQLite or PostgreSQL
 * (BENCH_STORE). Writes bench-results/connected-content-<rate>x<seconds>s[-<store>].json.
 */
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Pool } from 'undici';
import { startProfileWarmup } from '../src/client.js';
import { loadStoreConfig } from '../src/config.js';
import { openStateStore } from '../src/store/index.js';
import { PROJECT_ROOT } from '../src/temporal/cli.js';
import { freePort } from '../src/temporal/dev-server.js';
import { saveProfileList } from '../kinds/profile-warmup/kind.js';
import {
  control,
  cpuSecondsOf,
  percentile,
  round,
  RssSampler,
  spawnNpmScript,
  startBenchWorld,
  waitUntil,
  writeFigures,
} from './bench-support.js';

const RATE = Number(process.env.BENCH_RATE ?? 2_000);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 60);
const USERS = Number(process.env.BENCH_USERS ?? 20_000);
const STORE = process.env.BENCH_STORE === 'postgres' ? 'postgres' : 'sqlite';
const WARM_FRACTION = 0.95;
/** Amplitude's limit for the organisation, and the receiver's share of it (the default AMPLITUDE_PROFILE_RATE). */
const AMPLITUDE_LIMIT_PER_MINUTE = 600;
const RECEIVER_BUDGET_PER_MINUTE = 300;
/** Lookups compared with Amplitude's own answer afterwards (each is one Profile API request). */
const COMPARED = 300;
const TEMPLATE_QUERY = 'get_recs=true&rec_id=rec-top-picks&get_computations=true&comp_id=lifetime_spend&get_cohort_ids=true';
const TARGETS = { p99Ms: 20, errors: 0, profileApi429s: 0 };
/** Requests are issued in slices of this length, each slice's share at once. */
const TICK_MS = 5;
const benchDir = join(PROJECT_ROOT, 'data', 'bench-connected-content');
const resultName = ['connected-content', `${RATE}x${SECONDS}s`, ...(STORE === 'sqlite' ? [] : [STORE])].join('-');
const resultFile = join(PROJECT_ROOT, 'bench-results', `${resultName}.json`);

const userId = (index: number) => `user-${String(index).padStart(6, '0')}`;
const warmCount = Math.floor(USERS * WARM_FRACTION);

const world = await startBenchWorld({
  dir: benchDir,
  sandboxEnv: { SANDBOX_USERS: String(USERS), SANDBOX_IDENTIFIED_FRACTION: '1' },
  rateCeiling: { requests: 1_000, windowMs: 1_000 },
  store: STORE,
  workers: 1,
  // The warm-up phase only: its fetches are not what is measured.
  workerEnv: { AMPLITUDE_PROFILE_RATE: '1000000/1m' },
});
const amplitudeUrl = world.config.amplitude.profileApiUrl!;
const token = randomBytes(24).toString('hex');
const receiverPort = await freePort();
const receiverUrl = `http://127.0.0.1:${receiverPort}`;
const sandboxEnv = {
  AMPLITUDE_API_KEY: world.config.amplitude.apiKey.reveal(),
  AMPLITUDE_SECRET_KEY: world.config.amplitude.secretKey.reveal(),
  AMPLITUDE_API_URL: world.config.amplitude.apiUrl,
  AMPLITUDE_PROFILE_API_URL: amplitudeUrl,
  AMPLITUDE_INGEST_URL: world.config.amplitude.ingestUrl,
};
const store = await openStateStore(loadStoreConfig(world.storeEnv));
let receiver: ReturnType<typeof spawnNpmScript> | undefined;

try {
  console.log(`Warming ${warmCount.toLocaleString('en')} of ${USERS.toLocaleString('en')} users with a profileWarmup …`);
  await control(amplitudeUrl, '/_sandbox/profile-limit', { requestsPerMinute: 1_000_000 });
  await saveProfileList(
    store,
    'bench-warm',
    Array.from({ length: warmCount }, (_, index) => userId(index)),
  );
  const warmupStartMs = Date.now();
  const warmup = await startProfileWarmup(world.client, { list: 'bench-warm' }, { taskQueue: world.config.temporal.taskQueue });
  const warmed = await warmup.result();
  const warmupSeconds = (Date.now() - warmupStartMs) / 1000;
  await control(amplitudeUrl, '/_sandbox/profile-limit', { requestsPerMinute: AMPLITUDE_LIMIT_PER_MINUTE });

  receiver = spawnNpmScript('receiver', {
    ...world.storeEnv,
    ...sandboxEnv,
    TEMPORAL_ADDRESS: world.config.temporal.address,
    CONNECTED_CONTENT_TOKEN: token,
    AMPLITUDE_PROFILE_RATE: `${RECEIVER_BUDGET_PER_MINUTE}/1m`,
    RECEIVER_HOST: '127.0.0.1',
    RECEIVER_PORT: String(receiverPort),
    RECEIVER_LOG_LEVEL: 'warn',
  });
  await waitUntil(async () => (await fetch(`${receiverUrl}/healthz`).catch(() => undefined))?.ok === true, 'the receiver is up');
  // The warm-up spent this minute's window of the shared limiter: the load starts in a window of its own.
  await sleep(60_000 - (Date.now() % 60_000) + 100);

  const pool = new Pool(receiverUrl, { connections: 128, pipelining: 1 });
  // Not measured: the receiver's and the client's first requests (JIT, connections).
  await runLoad(pool, Math.min(RATE, 500), 3);
  const profileBefore = await profileRequests();
  const rss = new RssSampler({ receiver: receiver.pid! });
  const cpuBefore = await cpuSecondsOf(receiver.pid!);
  console.log(`Load: ${RATE} lookups/s for ${SECONDS} s …`);
  const load = await runLoad(pool, RATE, SECONDS);
  const receiverCpuSeconds = (await cpuSecondsOf(receiver.pid!)) - cpuBefore;
  rss.stop();
  const profileAfter = await profileRequests();
  // Amplitude's own count per minute, for the minutes of the load (all of them, when it started on a boundary).
  const { firstMinuteStartMs = 0, answered: perMinute } = profileAfter.byMinute;
  const duringLoad = perMinute
    .map((count, offset) => [firstMinuteStartMs + offset * 60_000, count] as const)
    .filter(([minuteStartMs]) => minuteStartMs + 60_000 > load.startMs && minuteStartMs <= load.endMs);

  console.log(`Comparing ${COMPARED} answers with Amplitude's own …`);
  await control(amplitudeUrl, '/_sandbox/profile-limit', { requestsPerMinute: 1_000_000 });
  const compared = await compareWithAmplitude(pool);
  await pool.close();

  const latencies = load.latenciesMs.sort((a, b) => a - b);
  const figures = {
    date: new Date().toISOString(),
    store: STORE,
    users: USERS,
    warmup: { members: warmed.members, fetched: warmed.fetched, freshShare: warmed.freshShare, seconds: round(warmupSeconds) },
    load: {
      offeredPerSecond: RATE,
      seconds: SECONDS,
      requests: latencies.length,
      achievedPerSecond: Math.round(latencies.length / ((load.endMs - load.startMs) / 1000)),
      latencyMs: {
        p50: round(percentile(latencies, 0.5)),
        p90: round(percentile(latencies, 0.9)),
        p99: round(percentile(latencies, 0.99)),
        max: round(latencies.at(-1) ?? 0),
      },
      p99MsBySource: Object.fromEntries(
        Object.entries(load.latenciesBySource).map(([source, latencies]) => [
          source,
          round(
            percentile(
              latencies.sort((a, b) => a - b),
              0.99,
            ),
          ),
        ]),
      ),
      statuses: load.statuses,
      errors: load.errors,
      sources: load.sources,
    },
    profileApiDuringLoad: {
      answered: profileAfter.answered - profileBefore.answered,
      refused429: profileAfter.refused - profileBefore.refused,
      receiverBudgetPerMinute: RECEIVER_BUDGET_PER_MINUTE,
      amplitudeLimitPerMinute: AMPLITUDE_LIMIT_PER_MINUTE,
      answeredByMinute: Object.fromEntries(duringLoad.map(([minuteStartMs, count]) => [new Date(minuteStartMs).toISOString(), count])),
    },
    receiver: { cpuMsPerRequest: round((receiverCpuSeconds * 1000) / latencies.length), rssMB: rss.figures().receiver },
    byteForByte: compared,
    targets: {
      ...TARGETS,
      p99Met: percentile(latencies, 0.99) < TARGETS.p99Ms,
      errorsMet: load.errors === 0 && Object.keys(load.statuses).every((status) => status === '200'),
      profileApiMet: profileAfter.refused === profileBefore.refused,
      byteForByteMet: compared.different === 0,
    },
  };
  await writeFigures(resultFile, figures);
} finally {
  receiver?.kill('SIGTERM');
  await store.close();
  await world.stop();
}
process.exit(0);

/** Open loop: every TICK_MS, the requests due by then; each one's latency counts from when it was due. */
async function runLoad(pool: Pool, rate: number, seconds: number) {
  const total = rate * seconds;
  const latenciesMs: number[] = [];
  const latenciesBySource: Record<string, number[]> = {};
  const statuses: Record<string, number> = {};
  const sources: Record<string, number> = {};
  let errors = 0;
  const inFlight = new Set<Promise<void>>();
  const startMs = performance.now();
  const wallStartMs = Date.now();
  for (let issued = 0; issued < total;) {
    const dueNow = Math.min(total, Math.floor(((performance.now() - startMs) / 1000) * rate) + 1);
    for (; issued < dueNow; issued++) {
      const dueAtMs = startMs + (issued / rate) * 1000;
      const request = lookup(pool, pickUser())
        .then(({ status, source }) => {
          const latencyMs = performance.now() - dueAtMs;
          latenciesMs.push(latencyMs);
          (latenciesBySource[source] ??= []).push(latencyMs);
          statuses[status] = (statuses[status] ?? 0) + 1;
          sources[source] = (sources[source] ?? 0) + 1;
        })
        .catch(() => void (errors += 1))
        .finally(() => inFlight.delete(request));
      inFlight.add(request);
    }
    await sleep(TICK_MS);
  }
  await Promise.all(inFlight);
  return { latenciesMs, latenciesBySource, statuses, sources, errors, startMs: wallStartMs, endMs: Date.now() };
}

/** 95% of lookups for a warmed user, 5% for one never fetched. */
function pickUser(): string {
  return Math.random() < WARM_FRACTION
    ? userId(Math.floor(Math.random() * warmCount))
    : userId(warmCount + Math.floor(Math.random() * (USERS - warmCount)));
}

async function lookup(pool: Pool, user: string, query = TEMPLATE_QUERY) {
  const response = await pool.request({
    method: 'GET',
    path: `/connected-content/userprofile?user_id=${user}&${query}`,
    headers: { authorization: `Bearer ${token}` },
  });
  const body = await response.body.text();
  return { status: response.statusCode, source: String(response.headers['x-profile-source'] ?? 'none'), body };
}

/** The receiver's answers against Amplitude's, for warmed users and for never-fetched ones the load fetched. */
async function compareWithAmplitude(pool: Pool) {
  let same = 0;
  let different = 0;
  let fallbacks = 0;
  for (let n = 0; n < COMPARED; n++) {
    const user = n % 10 === 0 ? userId(warmCount + (n % (USERS - warmCount))) : userId(Math.floor(Math.random() * warmCount));
    const ours = await lookup(pool, user);
    if (ours.source === 'fallback') {
      fallbacks += 1;
      continue;
    }
    const response = await fetch(`${amplitudeUrl}/v1/userprofile?user_id=${user}&${TEMPLATE_QUERY}`, {
      headers: { authorization: `Api-Key ${sandboxEnv.AMPLITUDE_SECRET_KEY}` },
    });
    if ((await response.text()) === ours.body) same += 1;
    else different += 1;
  }
  return { compared: same + different, same, different, fallbacksNotCompared: fallbacks };
}

interface ProfileRequests {
  answered: number;
  refused: number;
  byMinute: { firstMinuteStartMs?: number; answered: number[] };
}

async function profileRequests(): Promise<ProfileRequests> {
  const state = (await (await fetch(`${amplitudeUrl}/_sandbox/state`)).json()) as { profileRequests: ProfileRequests };
  return state.profileRequests;
}
