/**
 * `npm run bench:stream`: real-time events through every real part. An app tracks BENCH_RATE events a second (1,000)
 * for BENCH_SECONDS (300) into the Amplitude sandbox over HTTP V2; its Webhooks streaming destination posts each one
 * to the receiver (a process of its own); one worker's `eventStream` sends them to the Braze sandbox. Reports the
 * end-to-end latency (tracked → recorded by Braze, from the Braze sandbox's own arrival times) at p50/p99/max, the
 * receiver's acknowledge latency as the sender saw it, the sustained rate against the offered one, data points against
 * the minimum, the worker's CPU per event and the peak and late RSS of receiver and worker. Then a reconciliation
 * pass: BENCH_RECONCILE_EVENTS (20,000) more with 5% of the webhooks dropped, and the hourly `eventSync` of their
 * hour(s), which must send exactly the dropped ones and nothing else. A warm-up of 1,000 events is not measured.
 * Writes bench-results/stream-<rate>x<seconds>s[-<store>].json.
 */
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { startEventStream, startEventSync } from '../src/client.js';
import { loadStoreConfig } from '../src/config.js';
import { openStateStore } from '../src/store/index.js';
import { PROJECT_ROOT } from '../src/temporal/cli.js';
import { freePort } from '../src/temporal/dev-server.js';
import { eventStreamSpool } from '../kinds/event-stream/input.js';
import { exportHourOf } from '../kinds/event-sync/input.js';
import type { EventStreamReport } from '../src/sandbox/amplitude/event-stream-webhooks.js';
import {
  brazeSandboxState,
  control,
  cpuSecondsOf,
  efficiencyFigures,
  percentile,
  round,
  RssSampler,
  spawnNpmScript,
  startBenchWorld,
  waitUntil,
  writeFigures,
} from './bench-support.js';

const RATE = Number(process.env.BENCH_RATE ?? 1_000);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 300);
const RECONCILE_EVENTS = Number(process.env.BENCH_RECONCILE_EVENTS ?? 20_000);
const USERS = Number(process.env.BENCH_USERS ?? 20_000);
const STORE = process.env.BENCH_STORE === 'postgres' ? 'postgres' : 'sqlite';
const DROP_FRACTION = 0.05;
const WARM_UP_EVENTS = 1_000;
/** Events tracked per HTTP V2 request: the app sends a batch every tick. */
const TICK_MS = 100;
const EVENT_TYPE = 'Bench Streamed';
const STREAM = 'bench';
/** The targets. */
const TARGETS = { endToEndP50Ms: 1_000, endToEndP99Ms: 5_000, ackP99Ms: 100, peakRssMB: 300 };
const benchDir = join(PROJECT_ROOT, 'data', 'bench-stream');
const resultName = ['stream', `${RATE}x${SECONDS}s`, ...(STORE === 'sqlite' ? [] : [STORE])].join('-');
const resultFile = join(PROJECT_ROOT, 'bench-results', `${resultName}.json`);

const world = await startBenchWorld({
  dir: benchDir,
  sandboxEnv: { SANDBOX_USERS: '1000', SANDBOX_BRAZE_KNOWN_FRACTION: '1', SANDBOX_IDENTIFIED_FRACTION: '1' },
  rateCeiling: { requests: 1_000, windowMs: 1_000 },
  store: STORE,
  workers: 1,
});
const amplitudeUrl = world.config.amplitude.ingestUrl;
const apiKey = world.config.amplitude.apiKey.reveal();
const { taskQueue } = world.config.temporal;
const token = randomBytes(24).toString('hex');
const receiverPort = await freePort();
const receiver = spawnNpmScript('receiver', {
  ...world.storeEnv,
  TEMPORAL_ADDRESS: world.config.temporal.address,
  TEMPORAL_TASK_QUEUE: taskQueue,
  AMPLITUDE_STREAM_TOKEN: token,
  RECEIVER_HOST: '127.0.0.1',
  RECEIVER_PORT: String(receiverPort),
  RECEIVER_LOG_LEVEL: 'warn',
});
const receiverUrl = `http://127.0.0.1:${receiverPort}`;
const store = await openStateStore(loadStoreConfig(world.storeEnv));

async function main(): Promise<void> {
  const arrivals = new ArrivalProbe(world.brazeUrl);
  try {
    await waitUntil(async () => (await fetch(`${receiverUrl}/readyz`).catch(() => undefined))?.ok === true, 'the receiver is ready');
    await startEventStream(world.client, { name: STREAM, eventTypes: [EVENT_TYPE] }, { taskQueue });
    await destination({ collectAckLatencies: true });

    console.log(`Warm-up: ${WARM_UP_EVENTS.toLocaleString('en')} events …`);
    await trackAtRate('warm', WARM_UP_EVENTS, RATE);
    await waitUntil(async () => (await arrivals.count()) >= WARM_UP_EVENTS, 'the warm-up is in Braze');

    const streamed = RATE * SECONDS;
    console.log(`Streaming: ${RATE.toLocaleString('en')} events/s for ${SECONDS} s (${streamed.toLocaleString('en')} events) …`);
    const sentBefore = await senderReport();
    const pointsBefore = (await brazeSandboxState(world.brazeUrl)).dataPoints.total;
    const rss = new RssSampler({ receiver: receiver.pid!, worker: world.workerProcesses[0]!.pid! });
    const receiverCpuBefore = await cpuSecondsOf(receiver.pid!);
    const startMs = Date.now();
    const tracking = await trackAtRate('stream', streamed, RATE);
    await waitUntil(async () => (await arrivals.count()) >= WARM_UP_EVENTS + streamed, 'every streamed event is in Braze');
    const endMs = arrivals.lastArrivalMs;
    const cpu = world.cpu.usedBetween(startMs, endMs);
    const receiverCpu = (await cpuSecondsOf(receiver.pid!)) - receiverCpuBefore;
    rss.stop();
    const latencies = arrivals.latenciesOf('stream').sort((a, b) => a - b);
    const sent = await senderReport();
    const acks = (sent.ackLatenciesMs ?? []).slice((sentBefore.ackLatenciesMs ?? []).length).sort((a, b) => a - b);
    const streamedState = await brazeSandboxState(world.brazeUrl);
    const dataPoints = streamedState.dataPoints.total - pointsBefore;
    // The stream drains one batch at a time, each sent on up to BRAZE_CONCURRENCY lanes.
    const cpuPerRequest = await efficiencyFigures(world, streamedState, { spans: [{ startMs, endMs }], pagesInFlight: 1 });

    console.log(`Reconciliation: ${RECONCILE_EVENTS.toLocaleString('en')} events, ${DROP_FRACTION * 100}% of the webhooks dropped …`);
    await destination({ dropFraction: DROP_FRACTION, seed: 5 });
    const droppedBefore = new Set(sent.droppedEventInsertIds);
    const firstHour = exportHourOf(Date.now());
    await trackAtRate('reconcile', RECONCILE_EVENTS, RATE);
    const lastHour = exportHourOf(Date.now());
    const dropped = (await senderReport()).droppedEventInsertIds.filter((id) => !droppedBefore.has(id));
    const delivered = RECONCILE_EVENTS - dropped.length;
    await waitUntil(async () => (await arrivals.count('reconcile')) >= delivered, 'the delivered events are in Braze');
    await waitUntil(async () => (await store.ingressBacklog(eventStreamSpool(STREAM), Date.now())).pending === 0, 'the spool is empty');
    let filledIn = 0;
    let alreadySent = 0;
    for (const hour of new Set([firstHour, lastHour])) {
      const handle = await startEventSync(world.client, { hour, eventTypes: [EVENT_TYPE] }, { taskQueue, workflowId: `reconcile-${hour}` });
      const result = await handle.result();
      filledIn += result.forwarded;
      alreadySent += result.alreadySent;
    }
    await waitUntil(async () => (await arrivals.count('reconcile')) >= RECONCILE_EVENTS, 'every reconcile event is in Braze');
    const reconcileCopies = arrivals.copiesOf('reconcile');

    const figures = {
      date: new Date().toISOString(),
      store: STORE,
      machineCores: world.cpu.machineCores,
      streaming: {
        offeredEventsPerSecond: RATE,
        seconds: SECONDS,
        events: streamed,
        trackingSeconds: round(tracking.seconds),
        sustainedEventsPerSecond: Math.round(streamed / ((endMs - startMs) / 1000)),
        sustainedOfOffered: round(streamed / ((endMs - startMs) / 1000) / RATE),
        endToEndLatencyMs: summary(latencies),
        receiverAckLatencyMs: summary(acks),
        dataPoints,
        dataPointsVsMinimum: round(dataPoints / streamed),
        workerCpuMsPerEvent: round((cpu.workers * 1000) / streamed),
        receiverCpuMsPerEvent: round((receiverCpu * 1000) / streamed),
        machineCoresBusy: round(cpu.machine / cpu.seconds),
        cpuPerRequest,
        rssMB: rss.figures(),
      },
      reconciliation: {
        events: RECONCILE_EVENTS,
        webhooksDropped: dropped.length,
        filledInByEventSync: filledIn,
        alreadySentFoundByEventSync: alreadySent,
        filledExactlyTheDropped: filledIn === dropped.length,
        eventsInBrazeOnce: [...reconcileCopies.values()].filter((n) => n === 1).length,
        eventsInBrazeMoreThanOnce: [...reconcileCopies.values()].filter((n) => n > 1).length,
      },
      targets: {
        ...TARGETS,
        endToEndP50Met: (latencies.length > 0 ? percentile(latencies, 0.5) : Infinity) < TARGETS.endToEndP50Ms,
        endToEndP99Met: (latencies.length > 0 ? percentile(latencies, 0.99) : Infinity) < TARGETS.endToEndP99Ms,
        ackP99Met: (acks.length > 0 ? percentile(acks, 0.99) : Infinity) < TARGETS.ackP99Ms,
      },
    };
    await writeFigures(resultFile, figures);
  } finally {
    arrivals.stop();
    receiver.kill('SIGTERM');
    await store.close();
    await world.stop();
  }
  process.exit(0);
}

/** Where the Amplitude sandbox's Webhooks streaming destination posts, and how. */
async function destination(options: Record<string, unknown>): Promise<void> {
  await control(amplitudeUrl, '/_sandbox/event-stream', {
    url: `${receiverUrl}/amplitude/stream/${STREAM}`,
    headers: { Authorization: `Bearer ${token}` },
    sendUsers: false,
    connections: 64,
    ...options,
  });
}

async function senderReport(): Promise<EventStreamReport> {
  return (await (await fetch(`${amplitudeUrl}/_sandbox/event-stream`)).json()) as EventStreamReport;
}

/**
 * Tracks `count` events into Amplitude at `rate` a second, a batch every tick, as an app's backend would. Each carries
 * its pass and the time it was tracked, which the arrival probe reads back from Braze.
 */
async function trackAtRate(pass: string, count: number, rate: number): Promise<{ seconds: number }> {
  const startMs = Date.now();
  const perTick = Math.max(1, Math.round((rate * TICK_MS) / 1000));
  for (let sent = 0, tick = 0; sent < count; tick++) {
    const size = Math.min(perTick, count - sent);
    const trackedAtMs = Date.now();
    const events = Array.from({ length: size }, (_, i) => ({
      event_type: EVENT_TYPE,
      user_id: `bench-user-${(sent + i) % USERS}`,
      insert_id: `${pass}-${sent + i}`,
      time: trackedAtMs,
      event_properties: { pass, tracked_at_ms: trackedAtMs },
    }));
    const response = await fetch(`${amplitudeUrl}/2/httpapi`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ api_key: apiKey, events }),
    });
    if (!response.ok) throw new Error(`Amplitude refused a batch: ${response.status} ${await response.text()}`);
    sent += size;
    const nextTickMs = startMs + (tick + 1) * TICK_MS;
    await sleep(Math.max(0, nextTickMs - Date.now()));
  }
  return { seconds: (Date.now() - startMs) / 1000 };
}

/** Reads what Braze recorded, as it records it: each bench event's arrival time against when it was tracked. */
class ArrivalProbe {
  private next = 0;
  private readonly byPass = new Map<string, number[]>();
  private readonly copies = new Map<string, Map<string, number>>();
  private readonly timer: NodeJS.Timeout;
  private polling: Promise<void> = Promise.resolve();
  lastArrivalMs = 0;

  constructor(private readonly brazeUrl: string) {
    this.timer = setInterval(() => void (this.polling = this.polling.then(() => this.poll()).catch(() => undefined)), 250);
  }

  /** Bench events recorded so far (of one pass, or of all). */
  async count(pass?: string): Promise<number> {
    await this.polling;
    const passes = pass === undefined ? [...this.byPass.values()] : [this.byPass.get(pass) ?? []];
    return passes.reduce((sum, latencies) => sum + latencies.length, 0);
  }

  latenciesOf(pass: string): number[] {
    return [...(this.byPass.get(pass) ?? [])];
  }

  /** How many times Braze recorded each of the pass's events (by the user and the time it was tracked). */
  copiesOf(pass: string): Map<string, number> {
    return this.copies.get(pass) ?? new Map<string, number>();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  private async poll(): Promise<void> {
    for (;;) {
      const answer = (await (await fetch(`${this.brazeUrl}/_sandbox/event-arrivals?from=${this.next}`)).json()) as {
        next: number;
        arrivals: Array<{ event: { name: string; external_id?: string; properties: Record<string, unknown> }; arrivedAtMs: number }>;
      };
      for (const { event, arrivedAtMs } of answer.arrivals) {
        if (event.name !== EVENT_TYPE) continue;
        const pass = String(event.properties.pass);
        const trackedAtMs = Number(event.properties.tracked_at_ms);
        const latencies = this.byPass.get(pass) ?? [];
        this.byPass.set(pass, latencies);
        latencies.push(arrivedAtMs - trackedAtMs);
        const copies = this.copies.get(pass) ?? new Map<string, number>();
        this.copies.set(pass, copies);
        const key = `${event.external_id} ${trackedAtMs}`;
        copies.set(key, (copies.get(key) ?? 0) + 1);
        this.lastArrivalMs = Math.max(this.lastArrivalMs, arrivedAtMs);
      }
      if (answer.arrivals.length === 0) return;
      this.next = answer.next;
    }
  }
}

function summary(sorted: readonly number[]) {
  return { p50: percentile(sorted, 0.5), p99: percentile(sorted, 0.99), max: sorted.at(-1) ?? 0, count: sorted.length };
}

// Last: the classes above are not hoisted, so the run starts once they are defined.
await main();
