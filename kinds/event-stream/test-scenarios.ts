/**
 * Real-time events end to end, on a store of a given kind: events tracked into the Amplitude sandbox over HTTP are
 * posted by its Webhooks streaming sender to the receiver (a real process), which spools them and starts `eventStream`
 * on a real Temporal server; a worker sends them to the Braze sandbox, which is the judge. The sender duplicates,
 * reorders and drops on demand; the hourly `eventSync` of the same hour fills in exactly what was dropped.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { historyToJSON } from '@temporalio/common/lib/proto-utils.js';
import { startEventSync, startForgetUsers, startTraitSync } from '../../src/client.js';
import type { AmplitudeEvent } from '../../src/amplitude/schemas.js';
import type { EventStreamDestination } from '../../src/sandbox/amplitude/event-stream-webhooks.js';
import { startHarnessReceiver, type ReceiverProcess } from '../../test/helpers/receiver.js';
import { freePort } from '../../src/temporal/dev-server.js';
import type { TestStoreKind } from '../../test/helpers/stores.js';
import { WorkerHarness } from '../../test/helpers/worker-harness.js';
import { exportHourOf, exportHourStart } from '../event-sync/input.js';
import { eventStreamSpool, eventStreamWorkflowId, type EventStreamInput } from './input.js';
import { configureEventStream, getEventStreamProgress, startEventStream } from './kind.js';

const TOKEN = 'event-stream-test-token-0123456789';
/** The stream's promise is seconds: a tracked event must be in Braze well within this. */
const ARRIVAL_TIMEOUT_MS = 30_000;

export class EventStreamHarness extends WorkerHarness {
  receiver!: ReceiverProcess;

  constructor(storeKind: TestStoreKind) {
    super(storeKind, { seed: 31, users: 500, dataset: { brazeKnownFraction: 1 } }, { queuePrefix: 'event-stream' });
    before(async () => {
      await this.ready;
      this.receiver = await startHarnessReceiver(this, { AMPLITUDE_STREAM_TOKEN: TOKEN });
    });
    after(async () => {
      // The receiver goes first, so that nothing starts a stream again.
      await this.receiver?.stop();
      if (process.exitCode) console.error(`The receiver printed:\n${this.receiver?.output()}`);
    });
  }

  /** Points the Amplitude sandbox's Webhook destination at the stream `name`, with retries a test can wait for. */
  streamTo(name: string, destination: Partial<EventStreamDestination> = {}): void {
    this.sandboxes.amplitude.control.configureEventStream({
      url: `${this.receiver.url}/amplitude/stream/${name}`,
      headers: { Authorization: `Bearer ${TOKEN}` },
      retryDelaysMs: [200, 500, 1_000],
      ...destination,
    });
  }

  /** Tracks events into Amplitude over HTTP V2, as an app's backend would; resolves once the sender delivered them. */
  async track(events: readonly AmplitudeEvent[]): Promise<void> {
    const result = await this.context.amplitude.ingestEvents(events, { api: 'httpapi' });
    assert.equal(result.accepted.length, events.length, 'Amplitude took every event');
    await this.sandboxes.amplitude.control.eventStreamSettled();
  }

  /** How many of each custom event each Braze user holds: `<external_id> <name>` → count. */
  brazeEventCounts(): Map<string, number> {
    const counts = new Map<string, number>();
    for (const profile of this.sandboxes.braze.control.users()) {
      for (const [name, summary] of profile.customEvents ?? []) counts.set(`${profile.externalId} ${name}`, summary.count);
    }
    return counts;
  }

  async stop(name: string): Promise<void> {
    await this.env.client.workflow
      .getHandle(eventStreamWorkflowId(name))
      .terminate('the test is over')
      .catch(() => undefined);
  }
}

/** `count` events of `eventType` for each user, with insert ids of their own and event times a second apart. */
export function eventsFor(userIds: readonly string[], eventType: string, count = 1): AmplitudeEvent[] {
  const startMs = Date.now() - 60_000;
  return userIds.flatMap((userId) =>
    Array.from({ length: count }, (_, i) => ({
      event_type: eventType,
      user_id: userId,
      time: startMs + i * 1_000,
      insert_id: randomUUID(),
      event_properties: { step: i },
    })),
  );
}

function countsOf(events: readonly AmplitudeEvent[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const event of events)
    counts.set(`${event.user_id} ${event.event_type}`, (counts.get(`${event.user_id} ${event.event_type}`) ?? 0) + 1);
  return counts;
}

function added(after: Map<string, number>, before: Map<string, number>): Map<string, number> {
  const delta = new Map<string, number>();
  for (const [key, count] of after) if (count !== (before.get(key) ?? 0)) delta.set(key, count - (before.get(key) ?? 0));
  return delta;
}

async function waitFor(condition: () => boolean | Promise<boolean>, what: string, timeoutMs = ARRIVAL_TIMEOUT_MS): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

export function eventStreamScenarios(h: EventStreamHarness): void {
  const userIds = (from: number, count: number) =>
    [...h.sandboxes.dataset.identities()].flatMap((user) => (user.userId ? [user.userId] : [])).slice(from, from + count);
  const identify = async (userId: string, properties: Record<string, unknown>) => {
    const form = new URLSearchParams({
      api_key: h.sandboxes.env.AMPLITUDE_API_KEY!,
      identification: JSON.stringify({ user_id: userId, user_properties: properties }),
    });
    const response = await fetch(`${h.sandboxes.amplitude.url}/identify`, { method: 'POST', body: form });
    assert.equal(response.status, 200);
    await h.sandboxes.amplitude.control.eventStreamSettled();
  };
  const postToStream = (name: string, body: unknown) =>
    fetch(`${h.receiver.url}/amplitude/stream/${name}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
  const totals = async (name: string) => (await getEventStreamProgress(h.env.client, name)).totals;
  const drained = (name: string) => async () => (await h.context.store.ingressBacklog(eventStreamSpool(name), Date.now())).pending === 0;

  describe('real-time events from Amplitude’s Webhooks streaming destination', () => {
    test('an erased user’s streamed events reach neither Braze nor the activity index', async (t) => {
      const name = `erased-${h.storeKind.name}`;
      t.after(() => h.stop(name));
      await startEventStream(h.env.client, { name, eventTypes: ['Purchase'] }, { taskQueue: h.taskQueue });
      h.streamTo(name);
      const [erased, ...others] = userIds(390, 3);
      await (await startForgetUsers(h.env.client, h.context.store, { userIds: [erased!] }, {}, { taskQueue: h.taskQueue })).result();
      const purchases = eventsFor([erased!, ...others], 'Purchase', 2);
      const before = h.brazeEventCounts();
      await h.track(purchases);
      await waitFor(async () => (await totals(name)).skipped >= 2 && (await totals(name)).sent >= 4, 'the stream took every event');
      await waitFor(drained(name), 'the stream drained its spool');
      assert.deepEqual(added(h.brazeEventCounts(), before), countsOf(purchases.filter((event) => event.user_id !== erased)));
      const { skipReasons } = await totals(name);
      assert.equal(skipReasons[`suppressed: erased on ${new Date().toISOString().slice(0, 10)}`], 2);
      const active = await h.context.store.userActivities([erased!, ...others].map((id) => `user_id:${id}`));
      assert.deepEqual([...active.keys()].sort(), others.map((id) => `user_id:${id}`).sort(), 'only the others are active');
    });

    test('duplicated and reordered deliveries: each selected event in Braze once, within seconds; the rest only in the activity index', async (t) => {
      const name = `dup-${h.storeKind.name}`;
      t.after(() => h.stop(name));
      await startEventStream(h.env.client, { name, eventTypes: ['Purchase'] }, { taskQueue: h.taskQueue });
      h.streamTo(name, { duplicateFraction: 0.5, maxDelayMs: 300 });
      const users = userIds(0, 20);
      const purchases = eventsFor(users, 'Purchase', 3);
      const views = eventsFor(users, 'Page Viewed', 2);
      const [before, pointsBefore] = [h.brazeEventCounts(), h.brazeDataPoints()];
      await h.track([...purchases, ...views]);
      const { duplicatesSent } = h.sandboxes.amplitude.control.eventStreamReport();
      assert.ok(duplicatesSent > 10, `the sender posted ${duplicatesSent} deliveries twice`);
      await waitFor(() => h.brazeDataPoints() - pointsBefore >= purchases.length, 'Braze holds every purchase');
      await waitFor(drained(name), 'the stream drained its spool');
      assert.deepEqual(added(h.brazeEventCounts(), before), countsOf(purchases), 'each purchase once, no page view');
      assert.equal(h.brazeDataPoints() - pointsBefore, purchases.length, 'one data point per event, none twice');
      const users0 = await h.context.store.activeUsers({ limit: 1_000, sinceMs: Date.now() - 120_000 });
      const active = new Set(users0.items.map((user) => user.userKey));
      assert.ok(
        users.every((id) => active.has(`user_id:${id}`)),
        'every streamed user is active in the index at once',
      );
      // A drain reports to its workflow once it has drained (or after a few seconds).
      await waitFor(async () => (await totals(name)).sent >= purchases.length, 'the stream counted what it sent');
      const { sent, failed, deadLettered } = await totals(name);
      assert.deepEqual([sent, failed, deadLettered], [purchases.length, 0, 0]);
      // Counts and settings only: no user id, insert id or property value in the workflow's history.
      const history = await h.env.client.workflow.getHandle(eventStreamWorkflowId(name)).fetchHistory();
      const payloads = [...historyToJSON(history).matchAll(/"data":\s*"([A-Za-z0-9+/=]*)"/g)];
      const text = payloads.map(([, data]) => Buffer.from(data!, 'base64').toString()).join('\n');
      assert.ok(text.includes('Purchase'), 'the history is readable here');
      for (const event of purchases) assert.ok(!text.includes(event.user_id!) && !text.includes(event.insert_id!), 'no user data');
    });

    test('stream and hourly eventSync of one hour share one ledger: the hour fills in exactly what the stream never got', async (t) => {
      const name = `fill-${h.storeKind.name}`;
      t.after(() => h.stop(name));
      await startEventStream(h.env.client, { name, eventTypes: ['Signup'] }, { taskQueue: h.taskQueue });
      h.streamTo(name, { dropFraction: 0.25, seed: 7 });
      const signups = eventsFor(userIds(40, 40), 'Signup');
      const [before, pointsBefore] = [h.brazeEventCounts(), h.brazeDataPoints()];
      const hour = exportHourOf(Date.now());
      await h.track(signups);
      const dropped = h.sandboxes.amplitude.control
        .eventStreamReport()
        .droppedEventInsertIds.filter((id) => signups.some((event) => event.insert_id === id));
      assert.ok(dropped.length > 0 && dropped.length < signups.length, `${dropped.length} of ${signups.length} webhooks dropped`);
      await waitFor(() => h.brazeDataPoints() - pointsBefore >= signups.length - dropped.length, 'Braze holds what was delivered');
      await waitFor(drained(name), 'the stream drained its spool');
      const result = await (
        await startEventSync(h.env.client, { hour, eventTypes: ['Signup'] }, { taskQueue: h.taskQueue, workflowId: `fill-${randomUUID()}` })
      ).result();
      assert.equal(result.forwarded, dropped.length, 'the hourly run sent exactly the dropped events');
      assert.ok(result.alreadySent >= signups.length - dropped.length, 'and found the streamed ones already sent');
      assert.deepEqual(added(h.brazeEventCounts(), before), countsOf(signups), 'every signup in Braze exactly once');
      assert.equal(h.brazeDataPoints() - pointsBefore, signups.length);
    });

    test('the stream never sends what the hourly run sent first', async (t) => {
      const name = `late-${h.storeKind.name}`;
      t.after(() => h.stop(name));
      const hour = exportHourOf(Date.now());
      const orders = eventsFor(userIds(100, 10), 'Order Placed');
      h.sandboxes.amplitude.control.configureEventStream(undefined);
      await h.track(orders);
      const pointsBefore = h.brazeDataPoints();
      const synced = await (
        await startEventSync(
          h.env.client,
          { hour, eventTypes: ['Order Placed'] },
          { taskQueue: h.taskQueue, workflowId: `late-${randomUUID()}` },
        )
      ).result();
      assert.equal(synced.forwarded, orders.length);
      // The same events arrive late through the stream (a destination retrying after an outage).
      await startEventStream(h.env.client, { name, eventTypes: ['Order Placed'] }, { taskQueue: h.taskQueue });
      const ids = new Set(orders.map((event) => event.insert_id));
      const lines = [...h.sandboxes.amplitude.control.exportedEvents(exportHourStart(hour)!)].filter((line) =>
        ids.has(line.$insert_id ?? ''),
      );
      assert.equal(lines.length, orders.length);
      const response = await fetch(`${h.receiver.url}/amplitude/stream/${name}`, {
        method: 'POST',
        headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
        body: JSON.stringify(lines),
      });
      assert.equal(response.status, 200);
      await waitFor(async () => (await totals(name)).read >= orders.length, 'the stream read what arrived');
      assert.equal((await totals(name)).alreadySent, orders.length, 'every one found already sent');
      assert.equal(h.brazeDataPoints(), pointsBefore + orders.length, 'nothing sent twice');
    });

    test('settings outlive the workflow: changed by the configure update, used when the receiver starts it again', async (t) => {
      const name = `cfg-${h.storeKind.name}`;
      t.after(() => h.stop(name));
      const input: EventStreamInput = { name, eventTypes: ['Purchase'] };
      await startEventStream(h.env.client, input, { taskQueue: h.taskQueue });
      const settings = await configureEventStream(h.env.client, name, { eventTypes: ['Refund'] });
      assert.deepEqual(settings.eventTypes, ['Refund']);
      await assert.rejects(
        configureEventStream(h.env.client, name, { batchSize: 0 }),
        (error: Error) => /batchSize/.test(String(error.cause)),
        'a bad change is refused, saying why',
      );
      await h.stop(name);
      h.streamTo(name);
      const pointsBefore = h.brazeDataPoints();
      const refunds = eventsFor(userIds(200, 5), 'Refund');
      await h.track([...refunds, ...eventsFor(userIds(200, 5), 'Purchase')]);
      await waitFor(() => h.brazeDataPoints() - pointsBefore >= refunds.length, 'the refunds are in Braze');
      await waitFor(drained(name), 'the stream drained its spool');
      assert.equal(h.brazeDataPoints() - pointsBefore, refunds.length, 'only the configured type went');
      // The ended run's drain may have sent them while the run the receiver started was still opening (loading them).
      await waitFor(async () => (await getEventStreamProgress(h.env.client, name)).phase !== 'opening', 'the new run opened');
      const progress = await getEventStreamProgress(h.env.client, name);
      assert.deepEqual(progress.settings?.eventTypes, ['Refund']);
    });

    test('user properties: a real-time trait sync’s attributes in Braze within seconds, none sent again by its run, never an older value', async (t) => {
      const name = `users-${h.storeKind.name}`;
      const traitName = `realtime-${h.storeKind.name.toLowerCase()}`;
      t.after(() => h.stop(name));
      // The activity index fed as production feeds it, then a trait sync that opts in (its run saves the mapping).
      const fed = await startEventSync(
        h.env.client,
        { hour: exportHourOf(Date.now() - 5 * 3_600_000) },
        { taskQueue: h.taskQueue, workflowId: `feed-${randomUUID()}` },
      );
      await fed.result();
      const traits = { name: traitName, properties: ['tier'], attributePrefix: 'rt_', realtime: true };
      await (await startTraitSync(h.env.client, traits, { taskQueue: h.taskQueue, workflowId: `trait-${randomUUID()}` })).result();
      await startEventStream(h.env.client, { name }, { taskQueue: h.taskQueue });
      h.streamTo(name, { sendEvents: false, sendUsers: true });

      // An Identify call in Amplitude: the destination forwards the user, the stream writes the attribute.
      const [userId] = userIds(400, 1);
      const tier = `gold-${randomUUID().slice(0, 8)}`;
      await identify(userId!, { tier });
      const brazeTier = () => h.sandboxes.braze.control.user(userId!)?.customAttributes?.get('rt_tier');
      await waitFor(() => brazeTier() === tier, 'Braze holds the new tier');
      await waitFor(drained(name), 'the stream drained its spool');
      await waitFor(async () => (await totals(name)).attributeUsers >= 1, 'the stream counted the write');

      // The scheduled run finds the value written: it sends nothing for it.
      const pointsBefore = h.brazeDataPoints();
      const rerun = await (
        await startTraitSync(h.env.client, traits, { taskQueue: h.taskQueue, workflowId: `trait-${randomUUID()}` })
      ).result();
      assert.equal(rerun.dataPoints, 0, 'the trait run wrote nothing the stream had written');
      assert.equal(h.brazeDataPoints(), pointsBefore);

      // Two events carrying the user's properties arrive newest first: the older one never overwrites.
      // Both later than the Identify call (which counts at its arrival), 300 ms apart.
      const newerMs = Date.now();
      const line = (timeMs: number, value: string) => ({
        $insert_id: randomUUID(),
        amplitude_id: 1,
        user_id: userId,
        event_type: 'Profile Updated',
        event_time: new Date(timeMs).toISOString().replace('T', ' ').replace('Z', '000'),
        user_properties: { tier: value },
      });
      for (const body of [line(newerMs, 'platinum'), line(newerMs - 300, 'silver')]) {
        const response = await postToStream(name, body);
        assert.equal(response.status, 200);
        await waitFor(drained(name), 'the stream drained its spool');
      }
      await waitFor(async () => (await totals(name)).olderUpdates >= 1, 'the stream counted the late, older update');
      assert.equal(brazeTier(), 'platinum', 'the newer value stays');
    });

    test('the receiver SIGKILLed mid-stream: nothing acknowledged is lost, the sender resends the rest, each event in Braze once', async (t) => {
      const name = `kill-${h.storeKind.name}`;
      t.after(() => h.stop(name));
      const port = await freePort();
      const startReceiver = () => startHarnessReceiver(h, { AMPLITUDE_STREAM_TOKEN: TOKEN, RECEIVER_PORT: String(port) });
      const first = await startReceiver();
      t.after(() => first.stop());
      await startEventStream(h.env.client, { name, eventTypes: ['Checkout'] }, { taskQueue: h.taskQueue });
      h.sandboxes.amplitude.control.configureEventStream({
        url: `${first.url}/amplitude/stream/${name}`,
        headers: { Authorization: `Bearer ${TOKEN}` },
        // One post at a time, so that the kill surely lands mid-stream.
        connections: 1,
        retryDelaysMs: [200, 500, 1_000, 2_000, 4_000, 8_000],
      });
      const checkouts = eventsFor(userIds(0, 300), 'Checkout', 3);
      const [before, pointsBefore] = [h.brazeEventCounts(), h.brazeDataPoints()];
      const tracked = h.track(checkouts);
      const acknowledgedNow = () => h.sandboxes.amplitude.control.eventStreamReport().statuses['200'] ?? 0;
      const acknowledgedBefore = acknowledgedNow();
      await waitFor(() => acknowledgedNow() - acknowledgedBefore >= 100, 'the receiver took some of the stream');
      first.child.kill('SIGKILL');
      const acknowledged = acknowledgedNow() - acknowledgedBefore;
      assert.ok(acknowledged < checkouts.length, `the kill landed mid-stream (${acknowledged} of ${checkouts.length} acknowledged)`);
      const second = await startReceiver();
      t.after(() => second.stop());
      await tracked;
      await waitFor(() => h.brazeDataPoints() - pointsBefore >= checkouts.length, 'Braze holds every checkout');
      await waitFor(drained(name), 'the stream drained its spool');
      assert.deepEqual(added(h.brazeEventCounts(), before), countsOf(checkouts), 'each checkout once: nothing lost, nothing twice');
      assert.equal(h.brazeDataPoints() - pointsBefore, checkouts.length);
      assert.equal(h.sandboxes.amplitude.control.eventStreamReport().expired, 0);
    });

    test('the door: a wrong token is refused before the body is read; bad items are dead-lettered and the good ones flow', async (t) => {
      const name = `door-${h.storeKind.name}`;
      t.after(() => h.stop(name));
      const post = (body: unknown, token = TOKEN) =>
        fetch(`${h.receiver.url}/amplitude/stream/${name}`, {
          method: 'POST',
          headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
          body: JSON.stringify(body),
        });
      assert.equal((await post({}, 'wrong-token')).status, 401);
      assert.equal((await fetch(`${h.receiver.url}/amplitude/stream/bad%20name`, { method: 'POST' })).status, 401);
      await startEventStream(h.env.client, { name, eventTypes: ['*'] }, { taskQueue: h.taskQueue });
      const [good] = eventsFor(userIds(300, 1), 'Purchase');
      const line = {
        ...good,
        $insert_id: good!.insert_id,
        amplitude_id: 1,
        event_time: '2026-12-01 10:00:00.000000',
        insert_id: undefined,
      };
      const pointsBefore = h.brazeDataPoints();
      const response = await post([
        { ...line, $insert_id: null, uuid: null },
        { ...line, user_id: 'nul\u0000id' },
        { user_properties: { plan: 'pro' } },
        line,
      ]);
      assert.equal(response.status, 200);
      assert.deepEqual(await response.json(), { spooled: 1, duplicates: 0, deadLettered: 3 });
      await waitFor(() => h.brazeDataPoints() > pointsBefore, 'the good event reached Braze');
      const backlog = await h.context.store.ingressBacklog(eventStreamSpool(name), Date.now());
      assert.equal(backlog.deadLetters, 3);
    });
  });
}
