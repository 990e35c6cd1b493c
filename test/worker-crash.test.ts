/**
 * A worker process is SIGKILLed in the middle of a sync and another one takes over. Killed while applying pages:
 * the final Braze state is exact, at most the pages in flight are sent again, and every data point Braze billed is
 * counted. Killed while staging the cohort
 * file: the next attempt resumes after the rows already staged, and no download quota is spent again (on each store).
 * Killed while ingesting an hour of events: the next attempt resumes after the committed line, and Braze holds each
 * event exactly once. Killed while fetching User Profile API answers: the next attempt fetches only the users left.
 * Killed while forwarding Braze Currents events: the next worker sends the rest, and Amplitude holds each event once.
 * Killed with an event stream's requests in flight: at-least-once sends them again, at-most-once reports them.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { defaultPayloadConverter } from '@temporalio/common';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { StagedCohort } from '../kinds/cohort-sync/activity-types.js';
import type { IngestedHour } from '../kinds/event-sync/activity-types.js';
import {
  getEventStreamProgress,
  getSyncProgress,
  nudgeCurrentsForward,
  startCohortSync,
  startEventStream,
  startEventSync,
  startTraitSync,
} from '../src/client.js';
import { eventStreamSpool, eventStreamWorkflowId } from '../kinds/event-stream/input.js';
import { CURRENTS_FORWARD_WORKFLOW_ID, CURRENTS_STREAM } from '../src/currents/amplitude-events.js';
import { cohortSyncId, cohortSyncInputSchema } from '../kinds/cohort-sync/input.js';
import { eventSyncId, exportHourOf, exportHourStart } from '../kinds/event-sync/input.js';
import { startSandboxes, type Sandboxes } from '../src/sandbox/sandboxes.js';
import type { JsonObject, StateStore } from '../src/store/store.js';
import { traitSyncId, traitSyncInputSchema } from '../kinds/trait-sync/input.js';
import { freePort } from '../src/temporal/dev-server.js';
import { PROJECT_ROOT } from '../src/temporal/cli.js';
import { brazeMembers, expectedMembers } from './helpers/braze-state.js';
import { forEachStore, openStoreFrom, SQLITE, type StoreEnv } from './helpers/stores.js';
import { connectTestEnvironment, uniqueTaskQueue, testTemporalEnv } from './helpers/temporal.js';

const COHORT = '5fh7t0w'; // ~40% of users
const PAGE_SIZE = 150; // two /users/track requests per page

let env: TestWorkflowEnvironment;
let sandboxes: Sandboxes;
const workers: ChildProcess[] = [];

before(async () => {
  env = await connectTestEnvironment();
  sandboxes = await startSandboxes({ seed: 5, users: 2_500, dataset: { brazeKnownFraction: 1 }, amplitude: { exportJobDurationMs: 100 } });
});

after(async () => {
  for (const worker of workers) worker.kill('SIGKILL');
  await sandboxes?.close();
  await env?.teardown();
});

/** The real worker entry point, as its own process. */
function startWorkerProcess(
  taskQueue: string,
  storeEnv: StoreEnv,
  vendors: Sandboxes = sandboxes,
  extraEnv: Record<string, string> = {},
): ChildProcess {
  const worker = spawn(process.execPath, ['--import', 'tsx', join(PROJECT_ROOT, 'src', 'worker.ts')], {
    env: {
      ...process.env,
      ...vendors.env,
      ...testTemporalEnv(),
      TEMPORAL_TASK_QUEUE: taskQueue,
      ...storeEnv,
      ...extraEnv,
    },
    stdio: 'ignore',
  });
  workers.push(worker);
  return worker;
}

test('killed mid-apply, another worker finishes: exact state, at most the pages in flight resent, every point counted', async () => {
  const taskQueue = uniqueTaskQueue('crash');
  const storeEnv = await SQLITE.freshEnv();
  const pagesInFlight = 2;
  // Slow Braze down so the kill lands while pages are being applied.
  sandboxes.braze.control.setFaults({ latencyMs: 40 });
  const first = startWorkerProcess(taskQueue, storeEnv);

  const handle = await startCohortSync(env.client, { cohortId: COHORT, pageSize: PAGE_SIZE, pagesInFlight }, { taskQueue });
  let progress = await getSyncProgress(env.client, handle.workflowId).catch(() => undefined);
  for (let i = 0; i < 600 && !(progress && progress.phase === 'applying' && progress.page >= 2); i++) {
    await new Promise((r) => setTimeout(r, 50));
    progress = await getSyncProgress(env.client, handle.workflowId).catch(() => undefined);
  }
  assert.equal(progress?.phase, 'applying', 'the sync reached the apply phase');
  first.kill('SIGKILL');
  const pagesBeforeKill = progress.page;

  startWorkerProcess(taskQueue, storeEnv);
  const result = await handle.result();
  sandboxes.braze.control.setFaults({});

  const expected = expectedMembers(sandboxes, COHORT);
  assert.deepEqual(brazeMembers(sandboxes, COHORT), expected, 'final Braze state is exact');
  assert.equal(result.added, expected.size, 'each member counted once');
  assert.ok(pagesBeforeKill < Math.ceil(expected.size / PAGE_SIZE), 'the kill happened before the last page');

  const minimumRequests = Math.ceil(expected.size / 75);
  const requestsPerPage = Math.ceil(PAGE_SIZE / 75);
  const sent = sandboxes.braze.control.requestCounts()['POST /users/track'] ?? 0;
  assert.ok(
    sent <= minimumRequests + pagesInFlight * requestsPerPage,
    `sent ${sent} requests, ${minimumRequests} needed: at most the pages in flight again`,
  );
  // Requests cut off by the kill were recorded before they went, so what Braze billed for them is counted too;
  // those recorded but not yet sent when it landed are counted as well (at most one per request in flight).
  const inFlightAtMost = pagesInFlight * 8;
  const billed = sandboxes.braze.control.dataPoints().total;
  assert.ok(
    result.brazeRequests >= sent && result.brazeRequests - sent <= inFlightAtMost,
    `${result.brazeRequests} requests counted, ${sent} received`,
  );
  assert.ok(
    result.dataPoints >= billed && result.dataPoints - billed <= inFlightAtMost * 75,
    `${result.dataPoints} data points counted, ${billed} billed`,
  );
});

forEachStore((kind) => {
  test('killed mid-staging, another worker resumes the file after the rows already staged', async () => {
    // A cohort file of about 8,000 rows served at 32 KiB/s: several seconds of download to land the kill in.
    const amplitude = { exportJobDurationMs: 100, fileBytesPerSecond: 32 * 1024 };
    const slow = await startSandboxes({ seed: 6, users: 20_000, dataset: { brazeKnownFraction: 1 }, amplitude });
    let store: StateStore | undefined;
    try {
      const taskQueue = uniqueTaskQueue('crash-staging');
      const storeEnv = await kind.freshEnv();
      const first = startWorkerProcess(taskQueue, storeEnv, slow);
      const input = { cohortId: COHORT };
      const handle = await startCohortSync(env.client, input, { taskQueue });
      const runId = `${cohortSyncId(cohortSyncInputSchema.parse(input))}/${handle.firstExecutionRunId}`;

      let rowsAtKill = 0;
      for (let i = 0; i < 600 && rowsAtKill < 2_000; i++) {
        await new Promise((r) => setTimeout(r, 50));
        const progress = await getSyncProgress(env.client, handle.workflowId).catch(() => undefined);
        if (progress?.phase !== 'staging') continue;
        store ??= await openStoreFrom(storeEnv);
        rowsAtKill = (await store.stagingCheckpoint(runId))?.rowsConsumed ?? 0;
      }
      assert.ok(rowsAtKill >= 2_000, 'the first worker had committed a staging chunk');
      first.kill('SIGKILL');
      const metricsAddress = `127.0.0.1:${await freePort()}`;
      startWorkerProcess(taskQueue, storeEnv, slow, { WORKER_PROMETHEUS_ADDRESS: metricsAddress });
      const result = await handle.result();

      const staging = await completedActivities<StagedCohort>(handle.workflowId, handle.firstExecutionRunId, 'stageCohortMembers');
      assert.equal(staging.length, 1);
      const { rows, resumedFromRow, staged, skipped } = staging[0]!;
      assert.ok(
        resumedFromRow >= rowsAtKill && resumedFromRow < rows,
        `resumed at row ${resumedFromRow} of ${rows}, killed after ${rowsAtKill}`,
      );
      const expected = expectedMembers(slow, COHORT);
      assert.equal(staged, expected.size, 'each member staged once');
      assert.equal(rows, [...slow.dataset.cohortMembers(COHORT)].length, "every row of Amplitude's file was read");
      assert.equal(staged + skipped, rows);
      assert.equal(slow.amplitude.control.downloadRequestsThisMonth(), 1, 'the retry re-read the file; it did not request another export');
      assert.deepEqual(brazeMembers(slow, COHORT), expected, 'final Braze state is exact');
      assert.equal(result.added, expected.size);
      // The second worker sent every page, so its data-point metric holds the whole run.
      assert.equal(await scrapedDataPoints(metricsAddress), result.dataPoints);
    } finally {
      await store?.close();
      await slow.close();
    }
  });
});

/** The worker's `ampbraze_data_points` counter, read from its Prometheus endpoint once it has caught up. */
async function scrapedDataPoints(address: string): Promise<number | undefined> {
  let value: number | undefined;
  for (let i = 0; i < 50; i++) {
    const metrics = await (await fetch(`http://${address}/metrics`)).text();
    const sample = /^ampbraze_data_points(?:_total)?\{[^}]*sync_kind="cohort"[^}]*\} (\d+)$/m.exec(metrics)?.[1];
    value = sample === undefined ? undefined : Number(sample);
    if (value !== undefined && value > 0) return value;
    await new Promise((r) => setTimeout(r, 100));
  }
  return value;
}

/** The results of one run's completed activities of a type, read back from its Temporal history. */
async function completedActivities<T>(workflowId: string, runId: string, activityType: string): Promise<T[]> {
  const events = (await env.client.workflow.getHandle(workflowId, runId).fetchHistory()).events ?? [];
  const scheduledOfType = new Set<string>();
  const results: T[] = [];
  for (const event of events) {
    const scheduled = event.activityTaskScheduledEventAttributes;
    if (scheduled?.activityType?.name === activityType) scheduledOfType.add(String(event.eventId));
    const completed = event.activityTaskCompletedEventAttributes;
    const payload = completed?.result?.payloads?.[0];
    if (payload && scheduledOfType.has(String(completed.scheduledEventId))) results.push(defaultPayloadConverter.fromPayload<T>(payload));
  }
  return results;
}

test('killed mid-export, another worker resumes the hour after the committed line; Braze holds each event once', async () => {
  // About 60,000 events in the hour, served at 1 MiB/s: several seconds of download to land the kill in, however fast
  // the worker ingests.
  const busy = await startSandboxes({
    seed: 7,
    users: 6_000,
    dataset: { brazeKnownFraction: 1, eventsPerHour: 60_000 },
    amplitude: { fileBytesPerSecond: 1024 * 1024 },
  });
  let store: StateStore | undefined;
  try {
    const taskQueue = uniqueTaskQueue('crash-events');
    const storeEnv = await SQLITE.freshEnv();
    const first = startWorkerProcess(taskQueue, storeEnv, busy);
    const hour = exportHourOf(Date.now() - 4 * 3_600_000);
    const handle = await startEventSync(env.client, { hour, eventTypes: ['*'] }, { taskQueue });
    const runId = `${eventSyncId(hour)}/${handle.firstExecutionRunId}`;

    let linesAtKill = 0;
    for (let i = 0; i < 600 && linesAtKill < 4_000; i++) {
      await new Promise((r) => setTimeout(r, 50));
      store ??= await openStoreFrom(storeEnv);
      linesAtKill = (await store.stagingCheckpoint(runId))?.rowsConsumed ?? 0;
    }
    assert.ok(linesAtKill >= 4_000, 'the first worker had committed some lines');
    const hourLines = busy.amplitude.control.exportedEventCount(exportHourStart(hour)!);
    assert.ok(linesAtKill < hourLines, `killed mid-export: ${linesAtKill} of ${hourLines} lines committed`);
    first.kill('SIGKILL');
    startWorkerProcess(taskQueue, storeEnv, busy);
    const result = await handle.result();

    const [ingested] = await completedActivities<IngestedHour>(handle.workflowId, handle.firstExecutionRunId, 'ingestEventHour');
    assert.ok(ingested, 'the hour was ingested');
    assert.ok(
      ingested.resumedFromLine >= linesAtKill && ingested.resumedFromLine < ingested.events,
      `resumed after line ${ingested.resumedFromLine} of ${ingested.events}, killed after ${linesAtKill}`,
    );
    const expected = busy.dataset.eventsInHour(exportHourStart(hour)!);
    const identified = [...expected].filter((event) => event.user_id);
    assert.equal(result.events, ingested.events);
    assert.equal(result.forwarded, identified.length);
    // Every identified event exactly once in Braze: the same multiset of (user, name, time, properties).
    const signature = (who: string | undefined, name: string, time: string, properties: unknown) =>
      `${who} ${name} ${time} ${JSON.stringify(properties ?? {})}`;
    const sent = busy.braze.control
      .events()
      .map((event) => signature('external_id' in event ? event.external_id : undefined, event.name, event.time, event.properties))
      .sort();
    const wanted = identified
      .map((event) => signature(event.user_id!, event.event_type, amplitudeIso(event.event_time), event.event_properties))
      .sort();
    assert.deepEqual(sent, wanted);
    assert.equal(busy.braze.control.dataPoints().total, result.dataPoints, 'one data point per event, counted once');
  } finally {
    await store?.close();
    await busy.close();
  }
});

for (const delivery of ['at-least-once', 'at-most-once'] as const) {
  test(`killed mid-request, an event sync ${delivery}: the retried page ${delivery === 'at-least-once' ? 'sends the lost requests again' : 'leaves them out and reports them'}`, async () => {
    const own = await startSandboxes({ seed: 8, users: 1_000, dataset: { brazeKnownFraction: 1, eventsPerHour: 600 } });
    try {
      const taskQueue = uniqueTaskQueue('crash-event-requests');
      const storeEnv = await SQLITE.freshEnv();
      // Braze holds each request a while before it answers: the kill lands with requests in flight, which Braze applies.
      own.braze.control.setFaults({ latencyMs: 1_500 });
      const first = startWorkerProcess(taskQueue, storeEnv, own);
      // Each test its own hour (an event sync's workflow id is its hour's): one that fails mid-run blocks no other.
      const hour = exportHourOf(Date.now() - (delivery === 'at-least-once' ? 5 : 6) * 3_600_000);
      const handle = await startEventSync(
        env.client,
        { hour, eventTypes: ['*'], delivery, pageSize: 300, pagesInFlight: 1 },
        { taskQueue },
      );
      const tracked = () => own.braze.control.requestCounts()['POST /users/track'] ?? 0;
      for (let i = 0; i < 1_200 && tracked() === 0; i++) await new Promise((r) => setTimeout(r, 25));
      assert.ok(tracked() > 0, 'requests went out before the kill');
      first.kill('SIGKILL');
      const trackedAtKill = tracked();
      own.braze.control.setFaults({});
      startWorkerProcess(taskQueue, storeEnv, own);
      const result = await handle.result();
      assert.ok(tracked() > trackedAtKill, `the kill landed mid-run: ${trackedAtKill} of ${tracked()} requests had arrived`);

      const identified = [...own.dataset.eventsInHour(exportHourStart(hour)!)].filter((event) => event.user_id);
      const copies = new Map<string, number>();
      for (const event of own.braze.control.events()) {
        const key = `${'external_id' in event ? event.external_id : ''} ${event.name} ${event.time} ${JSON.stringify(event.properties)}`;
        copies.set(key, (copies.get(key) ?? 0) + 1);
      }
      const duplicates = [...copies.values()].reduce((sum, n) => sum + n - 1, 0);
      const inFlightAtMost = 8 * 75;
      // Requests in flight at the kill that Braze applied after the worker had gone (no one got their answers).
      const applied = own.braze.control.unansweredTrack();
      assert.ok(applied.requests > 0, 'the kill left requests in flight, which Braze applied');
      if (delivery === 'at-least-once') {
        assert.ok(result.resent > 0 && result.resent <= inFlightAtMost, `${result.resent} events resent`);
        assert.equal(result.unconfirmed, 0);
        assert.equal(copies.size, identified.length, 'every identified event is in Braze');
        assert.ok(
          duplicates >= applied.events && duplicates <= result.resent,
          `${duplicates} duplicates: at least the ${applied.events} applied unanswered, only of the resent events`,
        );
      } else {
        assert.ok(result.unconfirmed > 0 && result.unconfirmed <= inFlightAtMost, `${result.unconfirmed} events unconfirmed`);
        assert.equal(result.resent, 0);
        assert.equal(duplicates, 0, 'nothing sent twice');
        assert.equal(result.forwarded + result.unconfirmed, identified.length, 'what was not confirmed is reported, exactly');
        // Braze's own view: every confirmed event, those of the requests it applied after the killed worker had gone,
        // and of the other unconfirmed ones at most those whose answer came just before the kill.
        assert.ok(
          copies.size >= result.forwarded + applied.events && copies.size <= result.forwarded + result.unconfirmed,
          `${copies.size} events in Braze: ${result.forwarded} confirmed, ${applied.events} applied unanswered, ${result.unconfirmed} unconfirmed`,
        );
      }
    } finally {
      await own.close();
    }
  });
}

function amplitudeIso(time: string): string {
  return new Date(`${time.replace(' ', 'T').slice(0, 23)}Z`).toISOString();
}

test('killed while fetching profiles, another worker resumes without fetching the finished users again', async () => {
  const busy = await startSandboxes({
    seed: 9,
    users: 3_000,
    dataset: { eventsPerHour: 800 },
    amplitude: { profileRequestsPerMinute: 6_000 },
  });
  let store: StateStore | undefined;
  try {
    const taskQueue = uniqueTaskQueue('crash-profiles');
    const storeEnv = await SQLITE.freshEnv();
    // Slow enough to land the kill mid-fetch: 20 profiles a second.
    const workerEnv = { AMPLITUDE_PROFILE_RATE: '20/1s' };
    const first = startWorkerProcess(taskQueue, storeEnv, busy, workerEnv);
    await (await startEventSync(env.client, { hour: exportHourOf(Date.now() - 3 * 3_600_000) }, { taskQueue })).result();
    const input = { name: 'crash', computations: ['lifetime_spend'] };
    const handle = await startTraitSync(env.client, input, { taskQueue });
    const syncId = traitSyncId(traitSyncInputSchema.parse(input));

    let fetchedAtKill = 0;
    for (let i = 0; i < 600 && fetchedAtKill < 60; i++) {
      await new Promise((r) => setTimeout(r, 50));
      store ??= await openStoreFrom(storeEnv);
      fetchedAtKill = (await store.profileFetchCounts(syncId, { sinceMs: 0, fetchedSinceMs: 0 })).fetched;
    }
    assert.ok(fetchedAtKill >= 60, 'the first worker had fetched some profiles');
    first.kill('SIGKILL');
    startWorkerProcess(taskQueue, storeEnv, busy, workerEnv);
    const result = await handle.result();

    const audience = result.profiles!.audience;
    assert.ok(audience > fetchedAtKill, `the kill came before the end (${fetchedAtKill} of ${audience})`);
    assert.equal(result.profiles!.fetched, audience);
    // Only the requests in flight at the kill (answered but not yet recorded) can go again.
    const { answered, refused } = busy.amplitude.control.profileRequestTotals();
    assert.ok(answered >= audience && answered <= audience + 4, `${answered} requests for ${audience} users`);
    assert.equal(refused, 0);
    assert.equal(result.written, audience, 'every user got the computation, once');
  } finally {
    await store?.close();
    await busy.close();
  }
});

test('killed while forwarding Currents, another worker finishes: every spooled event in Amplitude exactly once', async () => {
  const taskQueue = uniqueTaskQueue('crash-currents');
  const storeEnv = await SQLITE.freshEnv();
  const store = await openStoreFrom(storeEnv);
  try {
    // What a receiver acknowledged: 6,000 events of 600 users.
    const time = Math.floor(Date.now() / 1000);
    const items = Array.from({ length: 6_000 }, (_, i) => {
      const user = `user-crash-${i % 600}`;
      const body = { event_type: 'users.messages.email.Open', id: `crash-${i}`, time, user: { external_user_id: user }, properties: {} };
      return { dedupeKey: body.id, partitionKey: `user_id:${user}`, body };
    });
    await store.spoolIngress(CURRENTS_STREAM, items, Date.now());
    await env.client.workflow
      .getHandle(CURRENTS_FORWARD_WORKFLOW_ID)
      .terminate('a fresh forwarder for this test')
      .catch(() => undefined);
    const first = startWorkerProcess(taskQueue, storeEnv);
    await nudgeCurrentsForward(env.client, { taskQueue });
    const stored = () => new Set(sandboxes.amplitude.control.ingestedEvents().map(({ event }) => String(event.insert_id)));
    const crashEvents = () => [...stored()].filter((id) => id.startsWith('crash-')).length;
    for (let i = 0; i < 1_200 && crashEvents() < 1_000; i++) await new Promise((r) => setTimeout(r, 50));
    const atKill = crashEvents();
    assert.ok(atKill >= 1_000 && atKill < items.length, `the kill came mid-stream (${atKill} of ${items.length} forwarded)`);
    first.kill('SIGKILL');
    const metricsAddress = `127.0.0.1:${await freePort()}`;
    startWorkerProcess(taskQueue, storeEnv, sandboxes, { WORKER_PROMETHEUS_ADDRESS: metricsAddress });
    for (let i = 0; i < 2_400 && (await store.ingressBacklog(CURRENTS_STREAM, Date.now())).pending > 0; i++)
      await new Promise((r) => setTimeout(r, 50));
    assert.equal((await store.ingressBacklog(CURRENTS_STREAM, Date.now())).pending, 0, 'the second worker drained the spool');
    const copies = new Map<string, number>();
    for (const { event } of sandboxes.amplitude.control.ingestedEvents())
      if (String(event.insert_id).startsWith('crash-')) copies.set(String(event.insert_id), (copies.get(String(event.insert_id)) ?? 0) + 1);
    assert.equal(copies.size, items.length, 'every event is in Amplitude');
    assert.deepEqual(
      [...copies.values()].filter((n) => n !== 1),
      [],
      'each exactly once',
    );
  } finally {
    await env.client.workflow
      .getHandle(CURRENTS_FORWARD_WORKFLOW_ID)
      .terminate('the test is over')
      .catch(() => undefined);
    await store.close();
  }
});

forEachStore((kind) => {
  for (const delivery of ['at-least-once', 'at-most-once'] as const) {
    test(`killed mid-request, an event stream ${delivery}: the lost requests ${delivery === 'at-least-once' ? 'sent again, duplicates only of them' : 'left out and reported exactly'}`, async () => {
      const taskQueue = uniqueTaskQueue('crash-stream');
      const storeEnv = await kind.freshEnv();
      const store = await openStoreFrom(storeEnv);
      const name = `crash-${delivery}-${Date.now()}`;
      try {
        // What a receiver acknowledged: 600 events of 60 users, each event a name of its own so Braze tells them apart.
        const [line] = [...sandboxes.amplitude.control.exportedEvents(exportHourStart(exportHourOf(Date.now() - 3 * 3_600_000))!)];
        const items = Array.from({ length: 600 }, (_, i) => {
          const body = { ...line!, $insert_id: `${name}-${i}`, event_type: `${name}-${i}`, user_id: `user-crash-${i % 60}` };
          return {
            dedupeKey: `insert:${body.$insert_id}`,
            partitionKey: `user_id:${body.user_id}`,
            body: JSON.parse(JSON.stringify(body)) as JsonObject,
          };
        });
        await store.spoolIngress(eventStreamSpool(name), items, Date.now());
        // Braze holds each request a while before it answers: the kill lands with requests in flight, which Braze applies.
        sandboxes.braze.control.setFaults({ latencyMs: 1_500 });
        const tracked = () => sandboxes.braze.control.requestCounts()['POST /users/track'] ?? 0;
        const before = tracked();
        const first = startWorkerProcess(taskQueue, storeEnv);
        await startEventStream(env.client, { name, eventTypes: ['*'], delivery }, { taskQueue });
        for (let i = 0; i < 1_200 && tracked() === before; i++) await new Promise((r) => setTimeout(r, 25));
        assert.ok(tracked() > before, 'requests went out before the kill');
        first.kill('SIGKILL');
        sandboxes.braze.control.setFaults({});
        startWorkerProcess(taskQueue, storeEnv);
        const totals = async () => (await getEventStreamProgress(env.client, name)).totals;
        // Just after the kill a query can wait on the dead worker's sticky queue until it fails: it is asked again.
        const readSoFar = () =>
          totals().then(
            (t) => t.read,
            () => 0,
          );
        for (let i = 0; i < 2_400 && (await readSoFar()) < items.length; i++) await new Promise((r) => setTimeout(r, 50));

        const copies = new Map<string, number>();
        for (const profile of sandboxes.braze.control.users())
          for (const [eventName, summary] of profile.customEvents ?? [])
            if (eventName.startsWith(name)) copies.set(eventName, summary.count);
        const counted = await totals();
        const { read, sent, resent, unconfirmed } = counted;
        assert.equal(read, items.length, `the second worker drained the spool: ${JSON.stringify(counted)}`);
        const duplicates = [...copies.values()].reduce((sum, n) => sum + n - 1, 0);
        // Claimed for the requests in flight (8 at once, 75 events each): some had reached Braze, some not yet.
        assert.ok(
          resent + unconfirmed > 0 && resent + unconfirmed <= 8 * 75,
          `${resent + unconfirmed} events in lost requests: ${JSON.stringify(counted)}`,
        );
        if (delivery === 'at-least-once') {
          assert.equal(unconfirmed, 0);
          assert.equal(copies.size, items.length, 'every event is in Braze');
          assert.ok(duplicates > 0 && duplicates <= resent, `${duplicates} duplicates, all of them events of lost requests sent again`);
          assert.equal(sent, items.length, 'every event confirmed by Braze');
        } else {
          assert.equal(resent, 0);
          assert.equal(duplicates, 0, 'nothing sent twice');
          assert.equal(sent + unconfirmed, items.length, 'what was not confirmed is reported, exactly');
          assert.ok(
            copies.size >= sent && copies.size <= items.length,
            'Braze holds what was confirmed, and what of the lost requests arrived',
          );
        }
      } finally {
        sandboxes.braze.control.setFaults({});
        await env.client.workflow
          .getHandle(eventStreamWorkflowId(name))
          .terminate('the test is over')
          .catch(() => undefined);
        await store.close();
      }
    });
  }
});
