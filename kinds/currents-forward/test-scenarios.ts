/**
 * Braze Currents → Amplitude end to end: the Braze sandbox's Currents sender posts to the receiver (a real process),
 * the receiver spools and starts `currentsForward` on a real Temporal server, and a worker forwards to the Amplitude
 * sandbox, which is the judge: each event exactly once, mapped as specified; bad input gets the documented answers
 * and nothing else is affected; throttled users wait while others flow; a 400's indexes dead-letter only those events.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { getCurrentsProgress, nudgeCurrentsForward } from '../../src/client.js';
import { CURRENTS_FORWARD_WORKFLOW_ID, CURRENTS_STREAM } from '../../src/currents/amplitude-events.js';
import { isHotId } from '../../src/sandbox/amplitude/ingestion.js';
import { ampbraze } from '../../test/helpers/cli.js';
import { amplitudeCounts, currentsEvent, poisonedBatchesFlow, waitUntil } from '../../test/helpers/currents-scenarios.js';
import { testTemporalEnv } from '../../test/helpers/temporal.js';
import { freePort } from '../../src/temporal/dev-server.js';
import { startHarnessReceiver, type ReceiverProcess } from '../../test/helpers/receiver.js';
import type { TestStoreKind } from '../../test/helpers/stores.js';
import { WorkerHarness } from '../../test/helpers/worker-harness.js';

const TOKEN = 'currents-test-token-0123456789';
const BODY_LIMIT = 200_000;

/** Every scenario, end to end on `kind`'s store (each store's test file runs them). */
export function currentsForwardScenarios(kind: TestStoreKind): void {
  // Registered before the harness's own (hooks run in order): the receiver and the stream stop while Temporal is still up.
  after(async () => {
    // One forwarder per namespace: the next test file's must not find this one waiting on a queue nobody polls. The
    // receiver goes first, so that nothing starts it again.
    await receiver?.stop();
    await h.env.client.workflow
      .getHandle(CURRENTS_FORWARD_WORKFLOW_ID)
      .terminate('the test file is over')
      .catch(() => undefined);
    if (process.exitCode) console.error(`The receiver printed:\n${receiver?.output()}`);
  });
  const h = new WorkerHarness(kind, { seed: 23, users: 2_000, dataset: { brazeKnownFraction: 1 } }, { queuePrefix: 'currents' });
  let receiver: ReceiverProcess;

  before(async () => {
    await h.ready;
    receiver = await startHarnessReceiver(h, { CURRENTS_TOKEN: TOKEN, RECEIVER_BODY_LIMIT: String(BODY_LIMIT) });
    // Every test finds the forwarder running, not only those after a test that posted.
    await nudgeCurrentsForward(h.env.client, { taskQueue: h.taskQueue });
  });

  const post = (body: string, headers: Record<string, string> = { authorization: `Bearer ${TOKEN}` }) =>
    fetch(`${receiver.url}/currents`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'braze-currents-version': '1', ...headers },
      body,
    });

  /** Amplitude's events by insert_id, as the sandbox holds them. */
  const inAmplitude = () => {
    const byId = new Map<string, Record<string, unknown>[]>();
    for (const { event } of h.sandboxes.amplitude.control.ingestedEvents()) {
      const id = String(event.insert_id);
      byId.set(id, [...(byId.get(id) ?? []), event]);
    }
    return byId;
  };

  /** Users whose ids `isHotId` draws at this fraction are throttled by the Amplitude sandbox while it is set. */
  const HOT_FRACTION = 0.25;
  const setHotIds = async (hot: { fraction: number; forMs: number }) => {
    const response = await fetch(`${h.sandboxes.amplitude.url}/_sandbox/hot-ids`, { method: 'POST', body: JSON.stringify(hot) });
    assert.equal(response.status, 200);
  };
  /** `<prefix>-<n>` for the first n that the sandbox makes hot at HOT_FRACTION. */
  const firstHotId = (prefix: string) => {
    for (let n = 0; ; n++) if (isHotId(`${prefix}-${n}`, HOT_FRACTION)) return `${prefix}-${n}`;
  };

  async function waitFor(condition: () => boolean | Promise<boolean>, what: string, timeoutMs = 60_000, pollMs = 100): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!(await condition())) {
      if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
      await new Promise((resolve) => setTimeout(resolve, pollMs));
    }
  }

  const event = currentsEvent;

  describe('the receiver’s door', () => {
    test('wrong or missing credentials 401, an oversize body 413, malformed JSON or a non-batch 400 — nothing spooled', async () => {
      const good = JSON.stringify({ events: [event('door-1', 'user-door-1')] });
      assert.equal((await post(good, {})).status, 401);
      assert.equal((await post(good, { authorization: 'Bearer wrong-token-0123456789' })).status, 401);
      assert.equal((await post(good, { authorization: TOKEN })).status, 401, 'the bearer scheme is required');
      assert.equal((await post(JSON.stringify({ events: [], padding: 'x'.repeat(BODY_LIMIT) }))).status, 413);
      assert.equal((await post('{"events": [')).status, 400);
      const notABatch = await post(JSON.stringify({ event: [] }));
      assert.equal(notABatch.status, 400);
      assert.match(((await notABatch.json()) as { error: string }).error, /not a Currents batch: events: Invalid input: expected array/);
      assert.deepEqual(await h.context.store.ingressBacklog(CURRENTS_STREAM, Date.now()), {
        pending: 0,
        deferred: 0,
        oldestReceivedAtMs: undefined,
        deadLetters: 0,
      });
      // The backlog counts only what waits: a good batch posted after them is forwarded, and the refused one never was.
      assert.equal((await post(JSON.stringify({ events: [event('door-after', 'user-door-after')] }))).status, 200);
      await waitUntil(() => amplitudeCounts(h).has('door-after'), 'the batch after the refused ones reached Amplitude');
      assert.equal(amplitudeCounts(h).has('door-1'), false, 'no refused event reached Amplitude');
      assert.equal((await fetch(`${receiver.url}/healthz`)).status, 200);
      assert.equal((await fetch(`${receiver.url}/readyz`)).status, 200);
    });

    test('a malformed event inside a good batch is dead-lettered with its reason; the others go through', async () => {
      const response = await post(
        JSON.stringify({
          events: [
            event('mixed-1', 'user-mixed-1'),
            { ...event('mixed-2', 'user-mixed-2'), time: 'yesterday' },
            event('mixed-3', 'user-mixed-3'),
          ],
        }),
      );
      assert.equal(response.status, 200);
      assert.deepEqual(await response.json(), { spooled: 2, duplicates: 0, deadLettered: 1 });
      const letters = await h.context.store.deadLetters({ stream: CURRENTS_STREAM, limit: 10 });
      assert.deepEqual(
        letters.map((letter) => [letter.dedupeKey.replace(/^content:[0-9a-f]{64}$/, 'content:<sha256>'), letter.reason]),
        [['content:<sha256>', 'events[1]: time: Invalid input: expected number, received string']],
      );
      await waitFor(() => inAmplitude().has('mixed-1') && inAmplitude().has('mixed-3'), 'the good events reached Amplitude');
    });
  });

  describe(`Currents content on ${kind.name}`, () => {
    test('poisoned events amid good ones, sent twice: 200, the good ones in Amplitude once, the poisoned dead-lettered with the reason', () =>
      poisonedBatchesFlow(h, receiver.url, TOKEN));
  });

  describe('Currents into Amplitude', () => {
    test('duplicates and retries from the sender: each event exactly once in Amplitude, mapped as Braze’s connector maps it', async () => {
      const types = [
        'users.messages.email.Send',
        'users.messages.pushnotification.Open',
        'users.behaviors.CustomEvent',
        'users.behaviors.Purchase',
      ];
      const events = Array.from({ length: 600 }, (_, i) => {
        const base = event(`once-${i}`, `user-once-${i % 150}`, { event_type: types[i % types.length]! });
        if (base.event_type === 'users.behaviors.CustomEvent') base.properties = { name: 'Played Song', properties: { genre: 'jazz' } };
        if (i % 50 === 7) base.user = { user_id: `braze-anon-${i}`, device_id: `device-anon-${i}`, timezone: 'UTC' };
        if (i % 100 === 13) base.user = { user_id: `braze-nobody-${i}`, timezone: 'UTC' };
        return base;
      });
      const nobody = events.filter((e) => !e.user.external_user_id && !e.user.device_id);
      const report = await h.sandboxes.braze.control.sendCurrents({
        url: `${receiver.url}/currents`,
        headers: { authorization: `Bearer ${TOKEN}` },
        events,
        duplicateBatchFraction: 0.3,
        duplicateEventFraction: 0.05,
        retry: { initialDelayMs: 50, maxDelayMs: 500, giveUpAfterMs: 60_000 },
      });
      assert.ok(report.duplicateEventsSent > 0, 'the sender delivered duplicates');
      assert.equal(report.gaveUp, 0);
      await waitFor(() => events.every((e) => nobody.includes(e) || inAmplitude().has(e.id)), 'every event with a user reached Amplitude');
      await waitFor(async () => (await h.context.store.ingressBacklog(CURRENTS_STREAM, Date.now())).pending === 0, 'the spool drained');

      const amplitude = inAmplitude();
      for (const sent of events) {
        const copies = amplitude.get(sent.id) ?? [];
        if (nobody.includes(sent)) {
          assert.equal(copies.length, 0, `${sent.id} has no Amplitude user: skipped`);
          continue;
        }
        assert.equal(copies.length, 1, `${sent.id} is in Amplitude exactly once`);
        const [forwarded] = copies as [Record<string, unknown>];
        assert.equal(forwarded.time, sent.time * 1000, 'seconds became milliseconds');
        assert.equal(forwarded.user_id, sent.user.external_user_id);
        assert.equal(forwarded.device_id, sent.user.device_id);
        assert.equal(forwarded.library, 'Braze');
        assert.match(String(forwarded.event_type), /^\[Appboy\] /);
      }
      const custom = amplitude.get(events.find((e) => e.event_type === 'users.behaviors.CustomEvent' && e.user.external_user_id)!.id)!;
      assert.equal(custom[0]!.event_type, '[Appboy] [Custom Event] Played Song');
      assert.equal((custom[0]!.event_properties as Record<string, unknown>)['[Custom event property] genre'], 'jazz');

      // A run that just continued as new reports its backlog after its first round: wait for a report, not a run.
      await waitFor(
        async () => (await getCurrentsProgress(h.env.client)).backlog?.pending === 0,
        'the forwarder reported an empty backlog',
      );
      const progress = await getCurrentsProgress(h.env.client);
      assert.equal(
        progress.totals.skipReasons['neither an external user id nor a device id (Braze’s connector skips these too)'],
        nobody.length,
      );
    });

    test('a throttled user waits while the others flow, and keeps the order of its events', async () => {
      // Amplitude throttles the hot user whatever this product sends (other sources push it over the per-id limit),
      // until the others' events are in: a deferral then happens however fast or slow the forwarding rounds are.
      const hotUser = firstHotId('user-hot');
      const hot = Array.from({ length: 25 }, (_, i) => event(`hot-${String(i).padStart(2, '0')}`, hotUser, { time: 1_764_000_000 + i }));
      const calm = Array.from({ length: 20 }, (_, i) => `user-calm-${i}`)
        .filter((id) => !isHotId(id, HOT_FRACTION))
        .map((id, i) => event(`calm-${i}`, id));
      const deferralsBefore = (await getCurrentsProgress(h.env.client)).totals.deferrals;
      await setHotIds({ fraction: HOT_FRACTION, forMs: 120_000 });
      try {
        const response = await post(JSON.stringify({ events: [...hot, ...calm] }));
        assert.equal(response.status, 200);
        await waitFor(() => calm.every((e) => inAmplitude().has(e.id)), 'the calm users’ events reached Amplitude', 20_000);
        const hotArrived = hot.filter((e) => inAmplitude().has(e.id)).length;
        assert.ok(hotArrived < hot.length, `the hot user is held back (${hotArrived} of ${hot.length} in Amplitude when the others were)`);
      } finally {
        await setHotIds({ fraction: HOT_FRACTION, forMs: 0 });
      }
      await waitFor(() => hot.every((e) => inAmplitude().has(e.id)), 'the hot user’s events followed after the wait', 120_000);
      const order = h.sandboxes.amplitude.control
        .ingestedEvents()
        .filter(({ event: e }) => e.user_id === hotUser)
        .map(({ event: e }) => String(e.insert_id));
      assert.deepEqual(
        order,
        hot.map((e) => e.id),
        'each event once, in the order Braze sent them',
      );
      assert.ok(
        (await getCurrentsProgress(h.env.client)).totals.deferrals > deferralsBefore,
        'Amplitude throttled the user, and it waited',
      );
    });

    test('a 400 naming events dead-letters exactly those, with Amplitude’s reason; the rest are forwarded', async () => {
      // Amplitude refuses user ids shorter than 5 characters.
      const batch = [event('short-1', 'ab'), event('fine-1', 'user-fine-1'), event('fine-2', 'user-fine-2')];
      assert.equal((await post(JSON.stringify({ events: batch }))).status, 200);
      await waitFor(() => inAmplitude().has('fine-1') && inAmplitude().has('fine-2'), 'the valid events reached Amplitude');
      await waitFor(
        async () => (await h.context.store.deadLetters({ stream: CURRENTS_STREAM, limit: 100 })).some((l) => l.dedupeKey === 'short-1'),
        'the refused event was dead-lettered',
      );
      const letter = (await h.context.store.deadLetters({ stream: CURRENTS_STREAM, limit: 100 })).find((l) => l.dedupeKey === 'short-1')!;
      assert.equal(letter.reason, 'Amplitude: invalid user_id');
      assert.ok(!inAmplitude().has('short-1'));
      // The store has the letter a moment before the workflow has recorded the round that wrote it.
      await waitFor(
        async () => (await getCurrentsProgress(h.env.client)).totals.deadLetterReasons['Amplitude: invalid user_id'] !== undefined,
        'the forwarder recorded the round',
      );
      const progress = await getCurrentsProgress(h.env.client);
      assert.equal(progress.totals.deadLetterReasons['Amplitude: invalid user_id'], 1);
    });

    test('`ampbraze currents status` reports what was forwarded and the backlog', async () => {
      // An event forwarded and one Amplitude refuses, so that the status has both to show.
      const refused = async () => (await getCurrentsProgress(h.env.client)).totals.deadLetterReasons['Amplitude: invalid user_id'] ?? 0;
      const refusedBefore = await refused();
      const batch = [event('status-1', 'user-status-1'), event('status-short', 'ab')];
      assert.equal((await post(JSON.stringify({ events: batch }))).status, 200);
      await waitFor(async () => inAmplitude().has('status-1') && (await refused()) === refusedBefore + 1, 'the forwarder recorded both');

      const status = await ampbraze(['currents', 'status'], { ...testTemporalEnv(), TEMPORAL_TASK_QUEUE: h.taskQueue });
      assert.equal(status.code, 0, status.stderr);
      const { totals } = await getCurrentsProgress(h.env.client);
      const line = `^(forwarding|waiting|done) … ${totals.forwarded} forwarded · ${totals.skipped} skipped · ${totals.deadLettered} dead-lettered`;
      assert.match(status.stdout, new RegExp(line, 'm'));
      assert.ok(totals.forwarded > 0 && totals.deadLettered > 0);
      assert.match(status.stdout, /^backlog: \d+ unforwarded \(\d+ throttled\), the oldest waiting \d+ s$/m);
      assert.match(status.stdout, new RegExp(`^ {2}${refusedBefore + 1} × Amplitude: invalid user_id$`, 'm'));
    });
  });

  describe('a receiver killed mid-stream', () => {
    test('kill -9 while Braze is sending, a new one on the same port: nothing lost, nothing twice in Amplitude', async () => {
      const port = await freePort();
      const env = { CURRENTS_TOKEN: TOKEN };
      const killed = await startHarnessReceiver(h, { ...env, RECEIVER_PORT: String(port) });
      const events = Array.from({ length: 3_000 }, (_, i) => event(`kill-${i}`, `user-kill-${i % 300}`));
      const sending = h.sandboxes.braze.control.sendCurrents({
        url: `http://127.0.0.1:${port}/currents`,
        headers: { authorization: `Bearer ${TOKEN}` },
        events,
        // Small batches one at a time: the stream is still far from its end when the receiver dies.
        batchSize: 10,
        concurrency: 1,
        retry: { initialDelayMs: 100, maxDelayMs: 1_000, giveUpAfterMs: 120_000 },
      });
      // Mid-stream: some batches acknowledged (spooled, perhaps forwarded already), the rest still to come.
      const acknowledged = async () => {
        const { pending } = await h.context.store.ingressBacklog(CURRENTS_STREAM, Date.now());
        const amplitude = inAmplitude();
        return pending + events.filter((e) => amplitude.has(e.id)).length;
      };
      await waitFor(async () => (await acknowledged()) >= 200, 'the first batches were acknowledged', 60_000, 10);
      killed.child.kill('SIGKILL');
      await new Promise((resolve) => killed.child.once('exit', resolve));
      const replacement = await startHarnessReceiver(h, { ...env, RECEIVER_PORT: String(port) });
      try {
        const report = await sending;
        assert.equal(report.gaveUp, 0);
        assert.ok(report.retriedPosts > 0, 'the sender had to retry while no receiver answered');
        await waitFor(() => events.every((e) => inAmplitude().has(e.id)), 'every event reached Amplitude', 120_000);
        const amplitude = inAmplitude();
        assert.deepEqual(
          events.filter((e) => amplitude.get(e.id)!.length !== 1).map((e) => e.id),
          [],
          'each event exactly once',
        );
      } finally {
        await replacement.stop();
      }
    });
  });
}
