/**
 * `npm run bench:currents`: BENCH_EVENTS Braze Currents events (100,000 by default) for BENCH_USERS users (20,000),
 * posted by the Braze sandbox's Currents sender to the receiver (a process of its own, `npm run receiver`) and
 * forwarded by a worker into the Amplitude sandbox, on SQLite or PostgreSQL (BENCH_STORE). Two passes of new events:
 * one unhindered, one with 5% of the user ids throttled by Amplitude (hot ids: other sources push them over the
 * per-id limit) until everyone else's events are in. Reports end-to-end events/s (first post to last arrival, by the
 * Amplitude sandbox's own receive times), the receiver's acknowledge latency as the sender saw it (p50/p99), the
 * others' throughput in the throttled pass against the unhindered one, and the peak RSS of receiver and worker. A
 * first, unmeasured pass of 1,000 events warms the processes up.
 * Writes bench-results/currents-<events>[-<store>].json.
 */
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { loadStoreConfig } from '../src/config.js';
import { CURRENTS_STREAM } from '../src/currents/amplitude-events.js';
import { isHotId } from '../src/sandbox/amplitude/ingestion.js';
import type { CurrentsSendReport } from '../src/sandbox/braze/index.js';
import { PROJECT_ROOT } from '../src/temporal/cli.js';
import { openStateStore } from '../src/store/index.js';
import { freePort } from '../src/temporal/dev-server.js';
import { control, peakRssOf, percentile, round, spawnNpmScript, startBenchWorld, waitUntil, writeFigures } from './bench-support.js';

const EVENTS = Number(process.env.BENCH_EVENTS ?? 100_000);
const USERS = Number(process.env.BENCH_USERS ?? 20_000);
const STORE = process.env.BENCH_STORE === 'postgres' ? 'postgres' : 'sqlite';
const HOT_FRACTION = 0.05;
const WARM_UP_EVENTS = 1_000;
/** The targets: the receiver answers within 100 ms at p99; throttling 5% of ids costs the others at most 5%. */
const TARGETS = { ackP99Ms: 100, othersThroughputRatio: 1 - HOT_FRACTION };
const benchDir = join(PROJECT_ROOT, 'data', 'bench-currents');
const resultName = ['currents', EVENTS, ...(STORE === 'sqlite' ? [] : [STORE])].join('-');
const resultFile = join(PROJECT_ROOT, 'bench-results', `${resultName}.json`);

const world = await startBenchWorld({
  dir: benchDir,
  sandboxEnv: { SANDBOX_USERS: String(USERS), SANDBOX_BRAZE_KNOWN_FRACTION: '1', SANDBOX_IDENTIFIED_FRACTION: '1' },
  rateCeiling: { requests: 1_000, windowMs: 1_000 },
  store: STORE,
  workers: 1,
});
const amplitudeUrl = world.config.amplitude.ingestUrl;
const token = randomBytes(24).toString('hex');
const receiverPort = await freePort();
const receiver = spawnNpmScript('receiver', {
  ...world.storeEnv,
  TEMPORAL_ADDRESS: world.config.temporal.address,
  CURRENTS_TOKEN: token,
  RECEIVER_HOST: '127.0.0.1',
  RECEIVER_PORT: String(receiverPort),
  RECEIVER_LOG_LEVEL: 'warn',
});
const receiverUrl = `http://127.0.0.1:${receiverPort}`;
// The spool as it stands (the forwarder's own progress only reports the backlog as of its last round).
const store = await openStateStore(loadStoreConfig(world.storeEnv));
const backlog = () => store.ingressBacklog(CURRENTS_STREAM, Date.now());

try {
  await waitUntil(async () => (await fetch(`${receiverUrl}/readyz`).catch(() => undefined))?.ok === true, 'the receiver is ready');
  // Not measured: the forwarder's first start and the processes' warm-up would otherwise count against pass 1 only.
  console.log(`Warm-up: ${WARM_UP_EVENTS.toLocaleString('en')} events …`);
  await pass(0, 0, WARM_UP_EVENTS);
  console.log(`Pass 1: ${EVENTS.toLocaleString('en')} Currents events for ${USERS.toLocaleString('en')} users, nobody throttled …`);
  const open = await pass(1);
  console.log(`Pass 2: ${EVENTS.toLocaleString('en')} new events, ${HOT_FRACTION * 100}% of user ids throttled by Amplitude …`);
  const throttled = await pass(2, HOT_FRACTION);
  const othersRatio = throttled.others.eventsPerSecond / open.others.eventsPerSecond;
  const figures = {
    date: new Date().toISOString(),
    store: STORE,
    events: EVENTS,
    users: USERS,
    unhindered: open,
    hotIdsThrottled: { hotFraction: HOT_FRACTION, ...throttled },
    othersThroughputRatio: Math.round(othersRatio * 1000) / 1000,
    targets: {
      ...TARGETS,
      ackP99Met: Math.max(open.ackLatencyMs.p99, throttled.ackLatencyMs.p99) < TARGETS.ackP99Ms,
      othersThroughputMet: othersRatio >= TARGETS.othersThroughputRatio,
    },
    peakRssMB: {
      receiver: round((await peakRssOf(receiver.pid!)) / 2 ** 20),
      worker: round((await peakRssOf(world.workerProcesses[0]!.pid!)) / 2 ** 20),
    },
  };
  await writeFigures(resultFile, figures);
} finally {
  receiver.kill('SIGTERM');
  await store.close();
  await world.stop();
}
process.exit(0);

/**
 * Posts a pass of new events and waits until the forwarder has nothing left; with `hotFraction`, that share of the
 * user ids is hot until everyone else's events are in Amplitude, then cools down so theirs follow.
 */
async function pass(seed: number, hotFraction = 0, events = EVENTS) {
  const before = await ingestedCount();
  if (hotFraction > 0) await control(amplitudeUrl, '/_sandbox/hot-ids', { fraction: hotFraction, forMs: 3_600_000 });
  const startMs = Date.now();
  const report = await control<CurrentsSendReport>(world.brazeUrl, '/_sandbox/currents/send', {
    url: `${receiverUrl}/currents`,
    headers: { Authorization: `Bearer ${token}` },
    generate: { count: events, seed, anonymousFraction: 0, brazeIdOnlyFraction: 0 },
    concurrency: 4,
    collectAckLatencies: true,
  });
  const postedMs = Date.now() - startMs;
  // The same 95% of users are "the others" in both passes, throttled or not, so the passes compare like with like.
  const isHot = (event: LandedEvent) => isHotId(String(event.user_id), HOT_FRACTION);
  // The others' events are in once the spool holds only hot users' events, held back after Amplitude's 429.
  await waitUntil(async () => {
    const { pending, deferred } = await backlog();
    return pending === deferred;
  }, 'every event not held back is in Amplitude');
  const others = (await eventsSince(before)).filter((event) => !isHot(event));
  // On a small machine every process here shares the cores: how busy they were says whether the pass was CPU-bound.
  const cpu = world.cpu.usedBetween(startMs, Math.max(...others.map((event) => event.receivedAt)));
  if (hotFraction > 0) await control(amplitudeUrl, '/_sandbox/hot-ids', { fraction: 0, forMs: 0 });
  await waitUntil(async () => (await backlog()).pending === 0, 'the spool is empty');
  const landed = await eventsSince(before);
  const lastMs = (events: LandedEvent[]) => Math.max(...events.map((event) => event.receivedAt));
  const latencies = [...(report.ackLatenciesMs ?? [])].sort((a, b) => a - b);
  return {
    posts: report.posts,
    retriedPosts: report.retriedPosts,
    statuses: report.statuses,
    postingSeconds: round(postedMs / 1000),
    inAmplitude: landed.length,
    endToEnd: {
      seconds: round((lastMs(landed) - startMs) / 1000),
      eventsPerSecond: Math.round(landed.length / ((lastMs(landed) - startMs) / 1000)),
    },
    others: { events: others.length, eventsPerSecond: Math.round(others.length / ((lastMs(others) - startMs) / 1000)) },
    hotEvents: landed.length - others.length,
    machineCoresBusyUntilOthersIn: `${round(cpu.machine / cpu.seconds)} of ${world.cpu.machineCores}`,
    ackLatencyMs: { p50: percentile(latencies, 0.5), p99: percentile(latencies, 0.99), max: latencies.at(-1) ?? 0 },
  };
}

interface LandedEvent {
  user_id?: string;
  receivedAt: number;
}

async function ingestedCount(): Promise<number> {
  return ((await (await fetch(`${amplitudeUrl}/_sandbox/state`)).json()) as { ingestedEvents: number }).ingestedEvents;
}

/** The events Amplitude took after the first `before`, with when it received each. */
async function eventsSince(before: number): Promise<LandedEvent[]> {
  const { events } = (await (await fetch(`${amplitudeUrl}/_sandbox/events`)).json()) as {
    events: Array<{ receivedAt: number; event: { user_id?: string } }>;
  };
  return events.slice(before).map(({ receivedAt, event }) => ({ user_id: event.user_id, receivedAt }));
}
