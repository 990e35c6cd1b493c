/**
 * A credential the vendor no longer accepts, met in every activity that calls Amplitude or Braze: the run fails at
 * once — not retried — with the vendor's own message, whichever step met it. The worker talks to the sandboxes
 * through hops that revoke the credentials of one endpoint at a time, so each run gets as far as that endpoint.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { WorkflowFailedError, type WorkflowHandle } from '@temporalio/client';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { Worker } from '@temporalio/worker';
import { createActivities } from '../activities/index.js';
import {
  nudgeCohortStream,
  nudgeCurrentsForward,
  nudgeEventStream,
  startCohortSync,
  startEventStream,
  startEventSync,
  startTraitSync,
} from '../src/client.js';
import { eventStreamSpool } from '../kinds/event-stream/input.js';
import { exportHourStart } from '../kinds/event-sync/input.js';
import { cohortStreamName, cohortStreamWorkflowId } from '../kinds/cohort-sync/input.js';
import { loadConfig } from '../src/config.js';
import { CURRENTS_FORWARD_WORKFLOW_ID, CURRENTS_STREAM } from '../src/currents/amplitude-events.js';
import { startSandboxes, type Sandboxes } from '../src/sandbox/sandboxes.js';
import type { JsonObject } from '../src/store/store.js';
import { createWorkerContext, type WorkerContext } from '../src/worker-context.js';
import { currentsEvent } from './helpers/currents-scenarios.js';
import { hoursAgo } from '../kinds/event-sync/test-scenarios.js';
import { startRevokingProxy, type RevokingProxy } from './helpers/revoking-proxy.js';
import { SQLITE } from './helpers/stores.js';
import { connectTestEnvironment, createTestWorker, uniqueTaskQueue } from './helpers/temporal.js';

const COHORT = '3k9x2pq';
const taskQueue = uniqueTaskQueue('vendor-rejection');
let env: TestWorkflowEnvironment;
let sandboxes: Sandboxes;
let amplitude: RevokingProxy;
let braze: RevokingProxy;
let context: WorkerContext;
let worker: Worker;
let running: Promise<void>;

before(async () => {
  env = await connectTestEnvironment();
  sandboxes = await startSandboxes({
    seed: 43,
    users: 600,
    dataset: { brazeKnownFraction: 1, eventsPerHour: 300 },
    amplitude: { exportJobDurationMs: 100 },
  });
  amplitude = await startRevokingProxy(sandboxes.amplitude.url);
  braze = await startRevokingProxy(sandboxes.braze.url);
  const throughHops = {
    AMPLITUDE_API_URL: amplitude.url,
    AMPLITUDE_PROFILE_API_URL: amplitude.url,
    AMPLITUDE_INGEST_URL: amplitude.url,
    BRAZE_REST_ENDPOINT: braze.url,
  };
  context = await createWorkerContext(loadConfig({ ...sandboxes.env, ...(await SQLITE.freshEnv()), ...throughHops }));
  worker = await createTestWorker(env, { taskQueue, activities: await createActivities(context) });
  running = worker.run();
  // An activity index for the trait syncs, fed as production feeds it.
  await (await startEventSync(env.client, { hour: hoursAgo(2) }, { taskQueue, workflowId: uniqueTaskQueue('feed') })).result();
  await endForwarder();
});
after(async () => {
  await endForwarder();
  worker?.shutdown();
  await running;
  await context?.store.close();
  await amplitude?.close();
  await braze?.close();
  await sandboxes?.close();
  await env?.teardown();
});

const endForwarder = () =>
  env.client.workflow
    .getHandle(CURRENTS_FORWARD_WORKFLOW_ID)
    .terminate('the test is over')
    .catch(() => undefined);
const options = () => ({ taskQueue, workflowId: uniqueTaskQueue('rejected') });
const AMPLITUDE_DASHBOARD_401 = /401 rejected the credentials: Invalid API key or secret key/;
const BRAZE_401 = /401 rejected the credentials: Invalid API Key/;

/** Starts a cohort stream with one change spooled for it (as the receiver would). */
async function cohortStreamWithAChange(target: 'attribute' | 'partner_cohort'): Promise<WorkflowHandle> {
  const stream = { cohortId: COHORT, target, attributeName: 'amplitude_cohorts' };
  const [user] = [...sandboxes.dataset.identities()].filter((identity) => identity.userId);
  const change = { user_id: user!.userId!, in_cohort: true, computed_time: Math.floor(Date.now() / 1000) };
  const dedupeKey = `change-${Math.random()}`;
  await context.store.spoolIngress(cohortStreamName(stream), [{ dedupeKey, partitionKey: change.user_id, body: change }], Date.now());
  await nudgeCohortStream(env.client, stream, { taskQueue });
  return env.client.workflow.getHandle(cohortStreamWorkflowId(stream));
}

/** Starts the Currents forwarder with one event spooled for it. */
async function forwarderWithAnEvent(): Promise<WorkflowHandle> {
  const event = currentsEvent(`rejected-${Math.random()}`, 'user-rejected-1');
  await context.store.spoolIngress(
    CURRENTS_STREAM,
    [{ dedupeKey: event.id, partitionKey: 'user_id:user-rejected-1', body: JSON.parse(JSON.stringify(event)) as JsonObject }],
    Date.now(),
  );
  await nudgeCurrentsForward(env.client, { taskQueue });
  return env.client.workflow.getHandle(CURRENTS_FORWARD_WORKFLOW_ID);
}

/** Starts an event stream that sends every event, with one identified user's event spooled for it. */
async function eventStreamWithAnEvent(): Promise<WorkflowHandle> {
  const name = `rejected-${Math.random().toString(36).slice(2)}`;
  const line = [...sandboxes.amplitude.control.exportedEvents(exportHourStart(hoursAgo(2))!)].find((event) => event.user_id)!;
  const body = JSON.parse(JSON.stringify({ ...line, $insert_id: `rejected-${name}` })) as JsonObject;
  await context.store.spoolIngress(
    eventStreamSpool(name),
    [{ dedupeKey: `insert:rejected-${name}`, partitionKey: 'user', body }],
    Date.now(),
  );
  const handle = await startEventStream(env.client, { name, eventTypes: ['*'] }, { taskQueue });
  await nudgeEventStream(env.client, name, { taskQueue });
  return handle;
}

interface Case {
  /** The activity that meets the revoked credential. */
  activity: string;
  vendor: 'amplitude' | 'braze';
  /** `METHOD /path` of the endpoint whose credentials are revoked. */
  endpoint: RegExp;
  /** The vendor's own answer, as the run's failure must carry it. */
  message: RegExp;
  start: () => Promise<WorkflowHandle>;
}

const cases: Case[] = [
  // cohortSync, by attribute and through the partner API (with device ids looked up).
  ...[
    ['prepareCohortRun', /^GET \/api\/3\/cohorts$/],
    ['requestCohortExport', /^GET \/api\/5\/cohorts\/request\/[^/]+$/],
    ['waitForCohortExport', /^GET \/api\/5\/cohorts\/request-status\//],
    ['stageCohortMembers', /^GET \/api\/5\/cohorts\/request\/[^/]+\/file$/],
  ].map(([activity, endpoint]) => ({
    activity: activity as string,
    vendor: 'amplitude' as const,
    endpoint: endpoint as RegExp,
    message: AMPLITUDE_DASHBOARD_401,
    start: () => startCohortSync(env.client, { cohortId: COHORT }, options()),
  })),
  {
    activity: 'stageCohortMembers',
    vendor: 'amplitude',
    endpoint: /^GET \/api\/2\/useractivity$/,
    message: AMPLITUDE_DASHBOARD_401,
    start: () => startCohortSync(env.client, { cohortId: '26umsb5', target: 'partner_cohort', identifiers: ['device_id'] }, options()),
  },
  {
    activity: 'applyCohortPage',
    vendor: 'braze',
    endpoint: /^POST \/users\/track$/,
    message: BRAZE_401,
    start: () => startCohortSync(env.client, { cohortId: COHORT }, options()),
  },
  {
    activity: 'ensurePartnerCohort',
    vendor: 'braze',
    endpoint: /^POST \/partners\/[^/]+\/cohorts$/,
    message: /401 rejected the credentials: Invalid partner_api_key or client_secret/,
    start: () => startCohortSync(env.client, { cohortId: COHORT, target: 'partner_cohort' }, options()),
  },
  {
    activity: 'applyCohortPage',
    vendor: 'braze',
    endpoint: /^POST \/partners\/[^/]+\/cohorts\/users$/,
    message: /401 rejected the credentials: Invalid partner_api_key or client_secret/,
    start: () => startCohortSync(env.client, { cohortId: COHORT, target: 'partner_cohort' }, options()),
  },
  // eventSync
  {
    activity: 'ingestEventHour',
    vendor: 'amplitude',
    endpoint: /^GET \/api\/2\/export$/,
    message: AMPLITUDE_DASHBOARD_401,
    start: () => startEventSync(env.client, { hour: hoursAgo(3) }, options()),
  },
  {
    activity: 'applyEventPage',
    vendor: 'braze',
    endpoint: /^POST \/users\/track$/,
    message: BRAZE_401,
    start: () => startEventSync(env.client, { hour: hoursAgo(4), eventTypes: ['*'] }, options()),
  },
  // traitSync
  {
    activity: 'prepareTraitRun',
    vendor: 'amplitude',
    endpoint: /^GET \/api\/3\/cohorts$/,
    message: AMPLITUDE_DASHBOARD_401,
    start: () => startTraitSync(env.client, { properties: ['plan'], audienceCohortId: COHORT }, options()),
  },
  {
    activity: 'stageTraitChanges',
    vendor: 'amplitude',
    endpoint: /^GET \/api\/5\/cohorts\/request\/[^/]+\/file$/,
    message: AMPLITUDE_DASHBOARD_401,
    start: () => startTraitSync(env.client, { properties: ['plan'], audienceCohortId: COHORT }, options()),
  },
  {
    activity: 'fetchProfiles',
    vendor: 'amplitude',
    endpoint: /^GET \/v1\/userprofile$/,
    message: /401 rejected the credentials: Invalid Api-Key/,
    start: () => startTraitSync(env.client, { computations: ['lifetime_spend'] }, options()),
  },
  {
    activity: 'applyTraitPage',
    vendor: 'braze',
    endpoint: /^POST \/users\/track$/,
    message: BRAZE_401,
    start: () => startTraitSync(env.client, { properties: ['plan'] }, options()),
  },
  // The streams.
  {
    activity: 'prepareCohortStream',
    vendor: 'amplitude',
    endpoint: /^GET \/api\/3\/cohorts$/,
    message: AMPLITUDE_DASHBOARD_401,
    start: () => cohortStreamWithAChange('attribute'),
  },
  {
    activity: 'prepareCohortStream',
    vendor: 'braze',
    endpoint: /^POST \/partners\/[^/]+\/cohorts$/,
    message: /401 rejected the credentials: Invalid partner_api_key or client_secret/,
    start: () => cohortStreamWithAChange('partner_cohort'),
  },
  {
    activity: 'applyCohortStreamRound',
    vendor: 'braze',
    endpoint: /^POST \/users\/track$/,
    message: BRAZE_401,
    start: () => cohortStreamWithAChange('attribute'),
  },
  {
    activity: 'drainEventStream',
    vendor: 'braze',
    endpoint: /^POST \/users\/track$/,
    message: BRAZE_401,
    start: eventStreamWithAnEvent,
  },
  {
    activity: 'forwardCurrents',
    vendor: 'amplitude',
    endpoint: /^POST \/2\/httpapi$/,
    message: /400 rejected the request: Invalid API key/,
    start: forwarderWithAnEvent,
  },
];

for (const { activity, vendor, endpoint, message, start } of cases) {
  test(`${activity}, ${vendor} ${endpoint.source.replaceAll('\\', '')} revoked: the run fails at once with the vendor’s message`, async () => {
    const hop = vendor === 'amplitude' ? amplitude : braze;
    hop.revoke(endpoint);
    try {
      const startedAt = Date.now();
      const handle = await start();
      await assert.rejects(handle.result(), (error: unknown) => {
        assert.ok(error instanceof WorkflowFailedError, String(error));
        assert.equal((error.cause as { type?: string } | undefined)?.type, 'VendorRejected');
        assert.match(String(error.cause?.message), message);
        return true;
      });
      assert.ok(Date.now() - startedAt < 60_000, `failed after ${Date.now() - startedAt} ms`);
      const failed = await failedActivity(handle);
      assert.deepEqual(failed, { activity, attempt: 1 }, 'the step that met the revoked key, not retried');
    } finally {
      hop.revoke(undefined);
    }
  });
}

/** The activity whose failure failed the run, from the run's history, and how many attempts it made. */
async function failedActivity(handle: WorkflowHandle): Promise<{ activity: string; attempt: number } | undefined> {
  const events = (await handle.fetchHistory()).events ?? [];
  const failure = events.findLast((event) => event.activityTaskFailedEventAttributes);
  const attributes = failure?.activityTaskFailedEventAttributes;
  const scheduled = events.find((event) => Number(event.eventId) === Number(attributes?.scheduledEventId));
  const started = events.find((event) => Number(event.eventId) === Number(attributes?.startedEventId));
  const name = scheduled?.activityTaskScheduledEventAttributes?.activityType?.name;
  return name ? { activity: name, attempt: started?.activityTaskStartedEventAttributes?.attempt ?? 0 } : undefined;
}
