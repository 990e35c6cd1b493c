/**
 * `npm run demo`: everything on one machine — the embedded Temporal server with its Web UI, the Amplitude and
 * Braze sandboxes seeded with realistic data, and a worker — then a cohort sync, a membership change and a
 * second sync that sends only the delta; then a few hours of Amplitude events ingested (who is active) with one
 * event type streamed to Braze, and a rerun that sends nothing; then a trait sync of user properties that creates
 * users, one property change, and a rerun that sends only it; then the receiver: Amplitude's cohort webhooks moving
 * members in Braze within seconds (and a cohort sync after them that sends nothing), Braze Currents events
 * forwarded into Amplitude, and Amplitude's event streaming: an event and a property change in Braze within a
 * second, and a lost webhook filled in by the hourly run; and Braze Connected Content reading Amplitude profiles
 * (recommendations) from the receiver after a warm-up, never from Amplitude's rate-limited API. Keeps running (so the
 * UI can be explored) until Ctrl-C.
 */
import { randomBytes } from 'node:crypto';
import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { DefaultLogger, NativeConnection, Runtime } from '@temporalio/worker';
import {
  getSyncProgress,
  getTraitSyncProgress,
  nudgeCohortStream,
  nudgeCurrentsForward,
  nudgeEventStream,
  scheduleCohortSync,
  startCohortSync,
  startEventStream,
  startEventSync,
  startProfileWarmup,
  startTraitSync,
} from '../src/client.js';
import { followProgress } from '../src/cli/progress.js';
import { describeProgress, printResult } from '../kinds/cohort-sync/cli.js';
import type { cohortSync } from '../kinds/cohort-sync/workflow.js';
import { printEventResult } from '../kinds/event-sync/cli.js';
import { describeTraitProgress, printTraitResult } from '../kinds/trait-sync/cli.js';
import { exportHourOf } from '../kinds/event-sync/input.js';
import { loadConfig, Secret, temporalConnectionOptions } from '../src/config.js';
import { CURRENTS_STREAM } from '../src/currents/amplitude-events.js';
import { UNKNOWN_USER_ANSWER } from '../src/profiles/answer.js';
import { ConnectedContent } from '../src/profiles/connected-content.js';
import { buildReceiver } from '../src/receiver/server.js';
import { gatherSyncsReport, syncsText } from '../src/operator/syncs.js';
import { usagePage } from '../src/operator/usage-page.js';
import { usageReport } from '../src/operator/usage.js';
import { startSandboxes } from '../src/sandbox/sandboxes.js';
import { PROJECT_ROOT, resolveTemporalCli } from '../src/temporal/cli.js';
import { freePort, isPortFree, startDevServer } from '../src/temporal/dev-server.js';
import { createSyncWorker } from '../src/worker.js';
import { createWorkerContext } from '../src/worker-context.js';

const COHORT_ID = '3k9x2pq';
const USERS = Number(process.env.DEMO_USERS ?? 30_000);
const dataDir = join(PROJECT_ROOT, 'data', 'demo');

const step = (text: string) => console.log(`\n▶ ${text}`);
// The demo narrates itself; the worker speaks up only when something is wrong.
Runtime.install({ logger: new DefaultLogger('WARN') });

step('Starting the embedded Temporal server (Web UI included)');
const cli = await resolveTemporalCli({ log: (line) => console.log(`  ${line}`) });
const preferredPort = 7233;
const port = (await isPortFree(preferredPort)) ? preferredPort : await freePort();
// A fresh demo each time: the sandboxes start from their seed, so the sync state must too.
await rm(dataDir, { recursive: true, force: true });
const server = await startDevServer({ cli, port, uiPort: port + 1000, dbFilename: join(dataDir, 'temporal.db') });
console.log(`  Temporal at ${server.address}, Web UI at ${server.uiUrl}`);

step(`Starting the Amplitude and Braze sandboxes (${USERS.toLocaleString('en')} users, several cohorts)`);
const sandboxes = await startSandboxes({ seed: 2026, users: USERS });
const cohort = sandboxes.dataset.cohort(COHORT_ID)!;
console.log(`  Amplitude ${sandboxes.amplitude.url} · Braze ${sandboxes.braze.url}`);
console.log(`  Cohort "${cohort.name}" (${COHORT_ID}): ${cohort.size.toLocaleString('en')} members, identified and anonymous`);

step('Starting a worker');
const config = loadConfig({ ...process.env, ...sandboxes.env, TEMPORAL_ADDRESS: server.address, STATE_DB: join(dataDir, 'state.db') });
const context = await createWorkerContext(config);
const workerConnection = await NativeConnection.connect(await temporalConnectionOptions(config.temporal));
const worker = await createSyncWorker(workerConnection, config.temporal, context);
const workerRun = worker.run();

const connection = await Connection.connect(await temporalConnectionOptions(config.temporal));
const client = new Client({ connection, namespace: config.temporal.namespace });
const runSync = async () => {
  const handle = await startCohortSync(client, { cohortId: COHORT_ID, identifiers: ['user_id'] }, { taskQueue: config.temporal.taskQueue });
  const result = await followProgress(
    () => getSyncProgress(client, handle.workflowId),
    describeProgress,
    () => handle.result(),
  );
  printResult(result);
  return result;
};

step('First sync: everyone in the cohort enters Braze');
const first = await runSync();

step('Second sync, nothing changed: the cohort was not recomputed, so nothing is downloaded or sent');
await runSync();

const members = [...sandboxes.dataset.cohortMembers(COHORT_ID)];
const leavers = members.slice(0, 40);
const leaving = leavers.map((m) => m.amplitudeId);
const entering = [...sandboxes.dataset.identities()]
  .filter((u) => !sandboxes.dataset.cohortIdsOf(u.index).includes(COHORT_ID))
  .slice(0, 60);
sandboxes.dataset.removeCohortMembers(COHORT_ID, leaving);
sandboxes.dataset.addCohortMembers(
  COHORT_ID,
  entering.map((u) => u.amplitudeId),
);
const identifiedLeaving = leavers.filter((m) => m.userId).length;
const identifiedEntering = entering.filter((u) => u.userId).length;
step(
  `Amplitude recomputed the cohort: ${leaving.length} members left, ${entering.length} joined ` +
    `(${identifiedLeaving} and ${identifiedEntering} of them identified; anonymous ones are skipped as before)`,
);
const third = await runSync();

const cohortPoints = sandboxes.braze.control.dataPoints().total;
const STREAMED_EVENT = 'Purchase Completed';
const demoHours = [5, 4, 3].map((hoursAgo) => exportHourOf(Date.now() - hoursAgo * 3_600_000));
step(
  `Event pipeline: ingesting hours ${demoHours.join(', ')} (who is active, latest user properties) and streaming "${STREAMED_EVENT}" to Braze`,
);
const syncHour = async (hour: string) => {
  const handle = await startEventSync(
    client,
    { hour, eventTypes: [STREAMED_EVENT] },
    { taskQueue: config.temporal.taskQueue, workflowId: `event-sync-${hour}-demo-${Date.now()}` },
  );
  const result = await handle.result();
  printEventResult(result);
  return result;
};
let eventsForwarded = 0;
for (const hour of demoHours) eventsForwarded += (await syncHour(hour)).forwarded;
step(`Rerunning hour ${demoHours[0]}: every event was sent before, so nothing is sent again`);
const rerun = await syncHour(demoHours[0]!);
const eventPoints = sandboxes.braze.control.dataPoints().total - cohortPoints;

const currentHour = exportHourOf(Date.now());
const ingestCurrentHour = async () =>
  (
    await startEventSync(
      client,
      { hour: currentHour },
      { taskQueue: config.temporal.taskQueue, workflowId: `event-sync-${currentHour}-demo-${Date.now()}` },
    )
  ).result();
await ingestCurrentHour();
// `realtime`: the event stream below also writes these properties within seconds of a change.
const TRAITS = {
  name: 'demo',
  properties: ['plan', 'ltv', 'level', 'favorite_genres', 'country'],
  attributePrefix: 'amp_',
  realtime: true,
};
const runTraitSync = async () => {
  const handle = await startTraitSync(client, TRAITS, {
    taskQueue: config.temporal.taskQueue,
    workflowId: `trait-sync-demo-${Date.now()}`,
  });
  const result = await followProgress(
    () => getTraitSyncProgress(client, handle.workflowId),
    describeTraitProgress,
    () => handle.result(),
  );
  printTraitResult(result);
  return result;
};
step(`Trait sync: the active users' ${TRAITS.properties.join(', ')} become Braze custom attributes amp_… (users Braze lacks are created)`);
const brazeUserCount = () => [...sandboxes.braze.control.users()].length;
const brazeUsersBefore = brazeUserCount();
const traitsFirst = await runTraitSync();
const brazeUsersCreated = brazeUserCount() - brazeUsersBefore;
const { items: indexed } = await context.store.activeUsers({ limit: 100, sinceMs: 0 });
const changed = indexed.find((user) => user.userKey.startsWith('user_id:'))!;
const userId = changed.userKey.slice('user_id:'.length);
const newPlan = changed.properties.plan === 'premium' ? 'family' : 'premium';
await context.amplitude.ingestEvents(
  [
    {
      event_type: 'Plan Changed',
      user_id: userId,
      user_properties: { ...changed.properties, plan: newPlan },
      insert_id: `demo-plan-${Date.now()}`,
    },
  ],
  { api: 'httpapi' },
);
await ingestCurrentHour();
step(`${userId} changed plan to "${newPlan}" in Amplitude (ingested with the current hour); the trait sync sends only that value`);
const pointsBeforeChange = sandboxes.braze.control.dataPoints().total;
const traitsSecond = await runTraitSync();
const changePoints = sandboxes.braze.control.dataPoints().total - pointsBeforeChange;

step('Starting the receiver (Amplitude cohort webhooks, event streaming, Braze Currents and Connected Content land here)');
const [webhookToken, currentsToken, streamToken, contentToken, statusToken] = [1, 2, 3, 4, 5].map(() =>
  randomBytes(24).toString('hex'),
) as [string, string, string, string, string];
const { taskQueue } = config.temporal;
const profileLookups = new ConnectedContent({
  store: context.store,
  amplitude: context.amplitude,
  limiter: context.amplitudeProfiles,
  maxAgeMs: 3_600_000,
  fallbackBody: UNKNOWN_USER_ANSWER,
  fetchTimeoutMs: 1_500,
  suppression: context.suppression,
  onError: (error) => console.error(`  profile fetch failed: ${String(error)}`),
});
const receiver = buildReceiver({
  store: context.store,
  connectedContent: { lookups: profileLookups, token: new Secret(contentToken), cacheSeconds: 300, fallbackBody: UNKNOWN_USER_ANSWER },
  status: { token: new Secret(statusToken), quotas: config.amplitude },
  usage: context.usage,
  currentsToken: new Secret(currentsToken),
  onCurrentsSpooled: () => nudgeCurrentsForward(client, { taskQueue }),
  amplitudeWebhookToken: new Secret(webhookToken),
  onCohortSpooled: async ({ cohortId, target, attributeName }) => {
    await nudgeCohortStream(client, { cohortId, target, attributeName }, { taskQueue });
  },
  amplitudeStreamToken: new Secret(streamToken),
  onEventStreamSpooled: async (name) => void (await nudgeEventStream(client, name, { taskQueue })),
});
const receiverUrl = await receiver.listen({ host: '127.0.0.1', port: 0 });
console.log(`  Receiver at ${receiverUrl}`);
sandboxes.amplitude.control.configureCohortWebhooks({
  url: `${receiverUrl}/amplitude/cohorts`,
  headers: { Authorization: `Bearer ${webhookToken}` },
});

const brazeProfiles = () => [...sandboxes.braze.control.users()];
const inBraze = (user: { userId: string | null }) =>
  brazeProfiles().some((profile) => {
    const cohorts = profile.customAttributes?.get('amplitude_cohorts');
    return profile.externalId === user.userId && Array.isArray(cohorts) && cohorts.includes(COHORT_ID);
  });
// Cohort syncs only update users Braze knows: the newcomers are picked among them.
const knownToBraze = new Set(brazeProfiles().map((profile) => profile.externalId));
const joiners = [...sandboxes.dataset.identities()]
  .filter((u) => u.userId && knownToBraze.has(u.userId) && !sandboxes.dataset.cohortIdsOf(u.index).includes(COHORT_ID))
  .slice(0, 5);
step(`Real-time cohort: Amplitude recomputes "${cohort.name}" and its cohort webhook posts ${joiners.length} users entering`);
const { webhook } = await sandboxes.amplitude.control.recomputeCohort(COHORT_ID, { add: joiners.map((u) => u.amplitudeId) });
const acknowledgedAt = Date.now();
while (!joiners.every(inBraze)) await new Promise((resolve) => setTimeout(resolve, 50));
const webhookLatencyMs = Date.now() - acknowledgedAt;
console.log(`  ${webhook.batches} webhook batch acknowledged; all ${joiners.length} are in Braze ${webhookLatencyMs} ms later`);
step('An hourly Schedule of the cohort sync, triggered now: it downloads the recomputed cohort and finds nothing left to send');
const schedule = await scheduleCohortSync(client, { cohortId: COHORT_ID, identifiers: ['user_id'] }, { cadence: 'hourly', taskQueue });
await schedule.trigger();
let scheduledRun: { workflowId: string; firstExecutionRunId: string } | undefined;
while (!(scheduledRun = (await schedule.describe()).info.recentActions[0]?.action.workflow)) {
  await new Promise((resolve) => setTimeout(resolve, 100));
}
const reconciled = await client.workflow.getHandle<typeof cohortSync>(scheduledRun.workflowId, scheduledRun.firstExecutionRunId).result();
printResult(reconciled);

step('Braze Currents: the sandbox posts 1,000 engagement events to the receiver, with duplicates; workers forward them to Amplitude');
const amplitudeBefore = sandboxes.amplitude.control.ingestedEvents().length;
const currents = await sandboxes.braze.control.sendCurrents({
  url: `${receiverUrl}/currents`,
  headers: { Authorization: `Bearer ${currentsToken}` },
  generate: { count: 1_000 },
  duplicateBatchFraction: 0.1,
});
const backlog = async () => (await context.store.ingressBacklog(CURRENTS_STREAM, Date.now())).pending;
while ((await backlog()) > 0) await new Promise((resolve) => setTimeout(resolve, 100));
const currentsForwarded = sandboxes.amplitude.control.ingestedEvents().length - amplitudeBefore;
console.log(
  `  ${currents.events} events in ${currents.posts} posts (${currents.duplicateEventsSent} sent twice on purpose); ${currentsForwarded} in Amplitude, each once (events without an Amplitude user are skipped)`,
);

const REALTIME_EVENT = 'Checkout Started';
step(`Real-time events: Amplitude's Webhooks streaming destination posts each "${REALTIME_EVENT}" and each user update as it is ingested`);
await startEventStream(client, { name: 'demo', eventTypes: [REALTIME_EVENT] }, { taskQueue });
const streamTo = (dropFraction = 0) =>
  sandboxes.amplitude.control.configureEventStream({
    url: `${receiverUrl}/amplitude/stream/demo`,
    headers: { Authorization: `Bearer ${streamToken}` },
    sendUsers: true,
    dropFraction,
  });
streamTo();
const shopper = changed.userKey.slice('user_id:'.length);
const checkout = (insertId: string) => ({
  event_type: REALTIME_EVENT,
  user_id: shopper,
  insert_id: insertId,
  event_properties: { cart: 3 },
});
const checkoutsInBraze = () => sandboxes.braze.control.events({ name: REALTIME_EVENT, externalId: shopper }).length;
const until = async (condition: () => boolean) => {
  const startedAt = Date.now();
  while (!condition()) await new Promise((resolve) => setTimeout(resolve, 10));
  return Date.now() - startedAt;
};
await context.amplitude.ingestEvents([checkout(`demo-checkout-${Date.now()}`)], { api: 'httpapi' });
const eventLatencyMs = await until(() => checkoutsInBraze() === 1);
console.log(`  ${shopper} started a checkout: the event is in Braze ${eventLatencyMs} ms after Amplitude ingested it`);
const streamedPlan = 'enterprise';
// As an app's backend would call Amplitude's Identify API.
const identification = JSON.stringify({ user_id: shopper, user_properties: { plan: streamedPlan } });
const form = new URLSearchParams({ api_key: sandboxes.env.AMPLITUDE_API_KEY!, identification });
await fetch(`${sandboxes.amplitude.url}/identify`, { method: 'POST', body: form });
const planLatencyMs = await until(() => sandboxes.braze.control.user(shopper)?.customAttributes?.get('amp_plan') === streamedPlan);
console.log(
  `  ${shopper} moved to plan "${streamedPlan}" (an Identify call): amp_plan is "${streamedPlan}" in Braze ${planLatencyMs} ms later`,
);
streamTo(1);
await context.amplitude.ingestEvents([checkout(`demo-checkout-lost-${Date.now()}`)], { api: 'httpapi' });
await sandboxes.amplitude.control.eventStreamSettled();
streamTo();
console.log("  A second checkout's webhook is lost (dropped on purpose); the hourly run of the hour fills it in:");
const filled = await (
  await startEventSync(
    client,
    { hour: currentHour, eventTypes: [REALTIME_EVENT] },
    { taskQueue, workflowId: `event-sync-${currentHour}-fill-${Date.now()}` },
  )
).result();
console.log(
  `  it sent ${filled.forwarded} event (the lost one) and found ${filled.alreadySent} already sent; ${shopper} has ${checkoutsInBraze()} checkouts in Braze`,
);

const warmupSize = 20;
step(
  `Connected Content: a Braze campaign reads each user's Amplitude recommendations at send time; ${warmupSize} active users are warmed first`,
);
const warmup = await (
  await startProfileWarmup(
    client,
    { activeWithinDays: 1, maxFetches: warmupSize },
    { taskQueue, workflowId: `profile-warmup-demo-${Date.now()}` },
  )
).result();
console.log(
  `  profileWarmup fetched ${warmup.fetched} profiles within the Profile API budget (${warmup.fresh} of ${warmup.members} active users fresh)`,
);
const identified = (await context.store.activeUsers({ limit: 1_000, sinceMs: 0 })).items
  .map((user) => user.userKey)
  .filter((key) => key.startsWith('user_id:'));
const warmedKeys: string[] = [];
const coldKeys: string[] = [];
for (const key of identified) ((await context.store.cachedProfile(key)) ? warmedKeys : coldKeys).push(key);
/** A template's Connected Content call for a user: its top picks. */
const lookupProfile = async (userKey: string) => {
  const startedAt = Date.now();
  const response = await fetch(
    `${receiverUrl}/connected-content/userprofile?user_id=${userKey.slice('user_id:'.length)}&get_recs=true&rec_id=rec-top-picks`,
    { headers: { authorization: `Bearer ${contentToken}` } },
  );
  return { source: response.headers.get('x-profile-source'), body: await response.text(), ms: Date.now() - startedAt };
};
const profileRequests = () => sandboxes.amplitude.control.profileRequestTotals().answered;
const requestsBeforeWarm = profileRequests();
const warmLookups = await Promise.all(warmedKeys.slice(0, warmupSize).map(lookupProfile));
const items = warmLookups[0]?.body.match(/"items":(\[[^\]]*\])/)?.[1];
console.log(
  `  ${warmLookups.length} warmed users: ${warmLookups.filter((lookup) => lookup.source === 'store').length} answered from the store (slowest ${Math.max(...warmLookups.map((lookup) => lookup.ms))} ms), ${profileRequests() - requestsBeforeWarm} Profile API requests; e.g. items ${items}`,
);
const requestsBeforeCold = profileRequests();
const coldLookups = [];
for (const key of coldKeys.slice(0, 5)) coldLookups.push((await lookupProfile(key)).source, (await lookupProfile(key)).source);
console.log(
  `  5 users never warmed, looked up twice each: ${coldLookups.join(', ')} — ${profileRequests() - requestsBeforeCold} Profile API requests (fetched once within the budget, then kept)`,
);

const brazePoints = sandboxes.braze.control.dataPoints().total;
step('Summary');
console.log(`  First sync:  ${first.added} users added, ${first.dataPoints} data points, ${first.brazeRequests} Braze requests`);
console.log(
  `  Delta sync:  +${third.added} −${third.removed}, ${third.dataPoints} data points (a full resend would cost ${first.added + third.added - third.removed})`,
);
console.log(
  `  Events:      ${eventsForwarded} "${STREAMED_EVENT}" events forwarded; the rerun sent ${rerun.forwarded} (${rerun.alreadySent} already sent)`,
);
console.log(`  Data points: ${eventsForwarded} for the events (one each, Braze's own count: ${eventPoints})`);
console.log(
  `  Traits:      ${traitsFirst.users} users written (${brazeUsersCreated} created in Braze), ${traitsFirst.dataPoints} data points; after one change: ${traitsSecond.set} value, ${traitsSecond.dataPoints} data point (Braze's own count: ${changePoints})`,
);
console.log(
  `  Real time:   ${joiners.length} cohort members via webhook in ${webhookLatencyMs} ms; the cohort sync after them sent +${reconciled.added} −${reconciled.removed}`,
);
console.log(`  Currents:    ${currentsForwarded} of ${currents.events} Braze events forwarded to Amplitude, none twice`);
console.log(
  `  Streaming:   an event in Braze ${eventLatencyMs} ms after Amplitude took it, a property change in ${planLatencyMs} ms; the hourly run filled in ${filled.forwarded} lost webhook, nothing else`,
);
console.log(`  Profiles:    ${warmup.fetched} warmed; Connected Content lookups answered from the store, a user never warmed fetched once`);
console.log(`  All syncs:   ${brazePoints} data points by Braze's own count`);
const ours = first.dataPoints + third.dataPoints;
console.log(`  Cohort syncs: Braze's own data-point count ${cohortPoints}; ours: ${ours}.`);
if (ours !== cohortPoints) {
  console.log(`  The ${ours - cohortPoints} between them are writes to members Braze does not know: update-only writes change`);
  console.log('  nothing there, so Braze bills nothing, and its answer does not say which users those were.');
}

step('The operator’s view: every sync at a glance (`ampbraze syncs`), and what they spent as charts (`ampbraze usage --html`)');
await context.usage.flush();
console.log(syncsText(await gatherSyncsReport(client, context.store, { taskQueue })).replace(/^/gm, '  '));
const usageFile = join(dataDir, 'usage.html');
await writeFile(usageFile, usagePage(await usageReport(context.store, config.amplitude, { days: 7 })));
console.log(`\n  Usage charts written to ${usageFile}; the receiver serves them at ${receiverUrl}/status`);
console.log(`  (Authorization: Bearer ${statusToken}), and Prometheus metrics at ${receiverUrl}/metrics.`);
console.log(`  From another terminal: TEMPORAL_ADDRESS=${server.address} STATE_DB=${join(dataDir, 'state.db')} npx ampbraze syncs`);
console.log(`  Temporal UI: ${server.uiUrl}/namespaces/default/workflows`);
console.log('\nEverything keeps running so you can explore the UI and the sandboxes. Ctrl-C to stop.');

let stopping = false;
const shutdown = async () => {
  if (stopping) return;
  stopping = true;
  console.log('\nShutting down …');
  await receiver.close();
  profileLookups.close();
  worker.shutdown();
  await workerRun;
  await Promise.all([connection.close(), workerConnection.close(), context.store.close(), sandboxes.close()]);
  await server.stop();
  process.exit(0);
};
process.once('SIGINT', () => void shutdown());
process.once('SIGTERM', () => void shutdown());
