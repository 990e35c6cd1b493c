/**
 * Real-time cohorts end to end: the Amplitude sandbox's cohort webhook sender posts each recompute's enter/leave
 * batches to the receiver (a real process), which spools them and starts `cohortStream` on a real Temporal server; a
 * worker applies them to the Braze sandbox, which is the judge: exact membership within seconds, every change sent
 * once (duplicates, out-of-order batches, a cohortSync at the same moment), a missed batch repaired by the next
 * cohortSync alone, and the documented answers at the door.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { getCohortStreamProgress, nudgeCohortStream, startCohortSync, startForgetUsers } from '../../src/client.js';
import { resumeSignal, type cohortStream } from './workflow.js';
import { cohortStreamName, cohortStreamWorkflowId, type CohortStreamInput } from '../cohort-sync/input.js';
import type { MembershipChange } from '../../src/sandbox/amplitude/index.js';
import type { SandboxIdentity } from '../../src/sandbox/dataset.js';
import { ampbraze } from '../../test/helpers/cli.js';
import { freePort } from '../../src/temporal/dev-server.js';
import { startHarnessReceiver, type ReceiverProcess } from '../../test/helpers/receiver.js';
import type { TestStoreKind } from '../../test/helpers/stores.js';
import { testTemporalEnv } from '../../test/helpers/temporal.js';
import { WorkerHarness } from '../../test/helpers/worker-harness.js';
import { brazeMembers, expectedMembers } from '../../test/helpers/braze-state.js';

const TOKEN = 'cohort-webhook-test-token-0123456789';
const BODY_LIMIT = 100_000;
/** The target: a change reaches Braze within 10 s of the receiver's acknowledgement (p95, at sandbox speed). */
const LATENCY_TARGET_MS = 10_000;
const COHORT = 'str3am1';

/** Every scenario, end to end on `kind`'s store (each store's test file runs them). */
export function cohortStreamScenarios(kind: TestStoreKind): void {
  // Registered before the harness's own (hooks run in order): the receiver and the stream stop while Temporal is still up.
  after(async () => {
    // The receiver goes first, so that nothing starts a stream again.
    await receiver?.stop();
    for (const target of [{ cohortId: COHORT }, { cohortId: COHORT, target: 'partner_cohort' as const }]) {
      await h.env.client.workflow
        .getHandle(cohortStreamWorkflowId({ attributeName: 'amplitude_cohorts', target: 'attribute', ...target }))
        .terminate('the test file is over')
        .catch(() => undefined);
    }
    if (process.exitCode) console.error(`The receiver printed:\n${receiver?.output()}`);
  });
  const h = new WorkerHarness(kind, { seed: 29, users: 2_000, dataset: { brazeKnownFraction: 1 } }, { queuePrefix: 'cohort-stream' });
  let receiver: ReceiverProcess;

  before(async () => {
    await h.ready;
    receiver = await startHarnessReceiver(h, { AMPLITUDE_WEBHOOK_TOKEN: TOKEN, RECEIVER_BODY_LIMIT: String(BODY_LIMIT) });
    h.sandboxes.dataset.defineCohort({ id: COHORT, name: 'Streamed superfans', memberFraction: 0.01 });
    sendWebhooksTo('');
    // Every test starts from Braze holding the cohort and its stream running, not from the tests before it.
    await syncCohort();
    await nudgeCohortStream(h.env.client, streamInput, { taskQueue: h.taskQueue });
  });

  function sendWebhooksTo(query: string): void {
    h.sandboxes.amplitude.control.configureCohortWebhooks({
      url: `${receiver.url}/amplitude/cohorts${query}`,
      headers: { Authorization: `Bearer ${TOKEN}` },
      usersPerBatch: 3,
      retry: { initialDelayMs: 100, maxDelayMs: 1_000, giveUpAfterMs: 60_000 },
    });
  }

  const recompute = (change: MembershipChange) => h.sandboxes.amplitude.control.recomputeCohort(COHORT, change);
  const expected = () => expectedMembers(h.sandboxes, COHORT);
  const inBraze = () => brazeMembers(h.sandboxes, COHORT);
  const dataPoints = () => h.sandboxes.braze.control.dataPoints().total;
  const streamInput: CohortStreamInput = { cohortId: COHORT };
  const STREAM = cohortStreamName({ cohortId: COHORT, target: 'attribute', attributeName: 'amplitude_cohorts' });

  /** Identified users outside the cohort, and identified members: who a test moves in and out. */
  function outsiders(count: number): SandboxIdentity[] {
    return [...h.sandboxes.dataset.identities()]
      .filter((user) => user.userId && !h.sandboxes.dataset.cohortIdsOf(user.index).includes(COHORT))
      .slice(0, count);
  }
  function members(count: number): SandboxIdentity[] {
    return [...h.sandboxes.dataset.cohortMembers(COHORT)].filter((member) => member.userId).slice(0, count);
  }
  const ids = (users: readonly SandboxIdentity[]) => users.map((user) => user.amplitudeId);

  async function waitFor(condition: () => boolean | Promise<boolean>, what: string, timeoutMs = 60_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!(await condition())) {
      if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  const sameMembers = () => {
    const [want, have] = [expected(), inBraze()];
    return want.size === have.size && [...want].every((id) => have.has(id));
  };

  /** Every spooled change of the stream applied. */
  const streamDrained = async () => (await h.context.store.ingressBacklog(STREAM, Date.now())).pending === 0;

  async function syncCohort(): Promise<{ added: number; removed: number }> {
    const handle = await startCohortSync(h.env.client, { cohortId: COHORT, ifRunning: 'wait' }, { taskQueue: h.taskQueue });
    return handle.result();
  }

  describe('real-time cohorts from Amplitude’s cohort webhooks', () => {
    test('enter and leave batches make Braze’s membership exact within the latency target, each change sent once', async () => {
      await syncCohort();
      assert.ok(sameMembers(), 'the scheduled sync set the starting point');
      const latencies: number[] = [];
      for (let round = 0; round < 4; round++) {
        const pointsBefore = dataPoints();
        const [entering, leaving] = [outsiders(4), members(2)];
        const { webhook } = await recompute({ add: ids(entering), remove: ids(leaving) });
        const acknowledgedAt = Date.now();
        assert.deepEqual([webhook.batches, webhook.gaveUp], [3, 0], '4 entering in 2 batches of 3, 2 leaving in 1');
        await waitFor(sameMembers, 'Braze shows the recomputed cohort', LATENCY_TARGET_MS * 3);
        latencies.push(Date.now() - acknowledgedAt);
        await waitFor(() => dataPoints() - pointsBefore >= 6, 'the data points are counted');
        assert.equal(dataPoints() - pointsBefore, 6, 'one data point per membership change, none twice');
      }
      assert.ok(Math.max(...latencies) < LATENCY_TARGET_MS, `webhook → Braze latencies ${latencies.join(', ')} ms`);
      // Braze has a round's changes a moment before the workflow has recorded the round's result.
      const totals = async () => {
        const { added, removed, failed } = (await getCohortStreamProgress(h.env.client, streamInput)).totals;
        return [added, removed, failed];
      };
      await waitFor(async () => (await totals())[0] === 16, 'the stream recorded its last round').catch(() => undefined);
      assert.deepEqual(await totals(), [16, 8, 0]);
    });

    test('duplicated batches (Amplitude retrying after a time-out) are recognised at the door and sent once', async () => {
      const pointsBefore = dataPoints();
      const { webhook } = await recompute({ add: ids(outsiders(3)), remove: ids(members(1)), webhook: { duplicate: true } });
      assert.equal(webhook.duplicatesSent, 2, 'both batches were posted again and acknowledged');
      await waitFor(sameMembers, 'Braze shows the recomputed cohort');
      await waitFor(streamDrained, 'the stream drained its spool');
      assert.equal(dataPoints() - pointsBefore, 4);
    });

    test('batches arriving out of order: for each user the later computed_time wins', async () => {
      const [user] = outsiders(1);
      // The enter batch is held back, so the leave batch computed after it arrives first.
      const entering = recompute({ add: ids([user!]), webhook: { delayMs: 1_500 } });
      const leaving = recompute({ remove: ids([user!]) });
      await Promise.all([entering, leaving]);
      await waitFor(streamDrained, 'the stream applied both batches');
      assert.ok(!inBraze().has(user!.userId!), 'the older enter did not undo the newer leave');
      assert.ok(sameMembers());
      // The spool drains a moment before the workflow has recorded the round that drained it.
      await waitFor(
        async () => (await getCohortStreamProgress(h.env.client, streamInput)).totals.superseded >= 1,
        'the late enter was superseded',
      );
    });

    test('a missed batch is repaired by the next cohortSync, which sends nothing else', async () => {
      const [missedIn, missedOut] = [outsiders(2), members(1)];
      await recompute({ add: ids(missedIn), remove: ids(missedOut), webhook: { drop: true } });
      const [delivered] = outsiders(3).slice(2);
      await recompute({ add: ids([delivered!]) });
      await waitFor(() => inBraze().has(delivered!.userId!), 'the delivered batch reached Braze');
      assert.ok(!sameMembers(), 'the dropped batch is missing');
      const pointsBefore = dataPoints();
      const result = await syncCohort();
      assert.deepEqual([result.added, result.removed], [2, 1], 'only what the webhooks missed');
      assert.equal(dataPoints() - pointsBefore, 3);
      assert.ok(sameMembers());
    });

    test('a cohortSync and webhook batches at the same moment: exact, and no change sent twice', async () => {
      const pointsBefore = dataPoints();
      const [entering, leaving] = [outsiders(5), members(2)];
      await recompute({ add: ids(entering.slice(0, 2)), webhook: { drop: true } });
      const sync = syncCohort();
      await recompute({ add: ids(entering.slice(2)), remove: ids(leaving) });
      await sync;
      await waitFor(streamDrained, 'the stream applied its batches');
      await waitFor(sameMembers, 'Braze shows the cohort');
      assert.equal(dataPoints() - pointsBefore, 7, 'five entered and two left, each sent once by one path or the other');
    });

    test('the partner cohort target, chosen on the webhook URL', async () => {
      sendWebhooksTo('?target=partner_cohort');
      try {
        const entering = outsiders(2);
        await recompute({ add: ids(entering) });
        const partnerMembers = () => new Set(h.sandboxes.braze.control.cohort(COHORT)?.members);
        await waitFor(() => entering.every((user) => partnerMembers().has(user.userId!)), 'the partner cohort holds the newcomers');
      } finally {
        sendWebhooksTo('');
      }
    });

    test('a stream pauses at the daily data-point budget and goes on when resumed', async () => {
      const target = { cohortId: COHORT, target: 'attribute' as const, attributeName: 'budget_cohorts' };
      const entering = outsiders(3);
      const computedTime = Math.floor(Date.now() / 1000);
      const items = entering.map((user) => ({
        dedupeKey: `budget::enter::0|${user.userId}`,
        partitionKey: user.userId!,
        body: { user_id: user.userId!, in_cohort: true, computed_time: computedTime },
      }));
      await h.context.store.spoolIngress(cohortStreamName(target), items, Date.now());
      const spentToday = await h.context.store.dataPointsOnDay(new Date().toISOString().slice(0, 10));
      const workflowId = await nudgeCohortStream(
        h.env.client,
        { ...target, maxDataPointsPerDay: spentToday + 1 },
        { taskQueue: h.taskQueue },
      );
      try {
        await waitFor(async () => (await getCohortStreamProgress(h.env.client, target)).phase === 'paused', 'the stream paused');
        assert.equal(brazeMembers(h.sandboxes, COHORT, 'budget_cohorts').size, 0, 'nothing sent over the budget');
        await h.env.client.workflow.getHandle(workflowId).signal(resumeSignal);
        await waitFor(() => brazeMembers(h.sandboxes, COHORT, 'budget_cohorts').size === 3, 'the resumed round reached Braze');
      } finally {
        await h.env.client.workflow.getHandle(workflowId).terminate('the test is over');
      }
    });

    test('an erased user entering by webhook is never added, and their change is counted as suppressed', async () => {
      // The last outsiders: no earlier test moves them.
      const [erased, other] = [...h.sandboxes.dataset.identities()]
        .filter((user) => user.userId && !h.sandboxes.dataset.cohortIdsOf(user.index).includes(COHORT))
        .slice(-2);
      await (
        await startForgetUsers(h.env.client, h.context.store, { userIds: [erased!.userId!] }, {}, { taskQueue: h.taskQueue })
      ).result();
      const suppressedBefore = (await getCohortStreamProgress(h.env.client, streamInput)).totals.suppressed ?? 0;
      const pointsBefore = dataPoints();
      await recompute({ add: ids([erased!, other!]) });
      await waitFor(() => inBraze().has(other!.userId!), 'the other user is added');
      await waitFor(streamDrained, 'the stream applied every change');
      await waitFor(
        async () => (await getCohortStreamProgress(h.env.client, streamInput)).totals.suppressed === suppressedBefore + 1,
        'the stream counted the suppressed change',
      );
      assert.ok(expected().has(erased!.userId!), 'a member in Amplitude');
      assert.ok(!inBraze().has(erased!.userId!), 'never added in Braze');
      assert.equal(dataPoints() - pointsBefore, 1, 'one data point: the other user');
    });

    test('`ampbraze cohort stream status` shows what the stream applied and its backlog', async () => {
      const { stdout, stderr } = await ampbraze(['cohort', 'stream', 'status', COHORT], testTemporalEnv());
      assert.equal(stderr, '');
      assert.match(stdout, /Streamed superfans/);
      assert.match(stdout, /added \d+, removed \d+/);
      assert.match(stdout, /backlog 0/);
    });
  });

  describe('the webhook door', () => {
    const batch = (overrides: Record<string, unknown> = {}) => ({
      cohort_name: 'Streamed superfans',
      cohort_id: COHORT,
      in_cohort: true,
      // Newer than any recompute of the tests before, within the receiver's clock skew.
      computed_time: String(Math.floor(Date.now() / 1000) + 120),
      message_id: `door-${Math.random()}::enter::0`,
      users: [],
      ...overrides,
    });
    const post = (body: string, headers: Record<string, string> = { authorization: `Bearer ${TOKEN}` }, query = '') =>
      fetch(`${receiver.url}/amplitude/cohorts${query}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...headers },
        body,
      });

    test('wrong or missing credentials 401, oversize 413, malformed JSON, a non-batch or a bad target 400 — nothing spooled', async () => {
      // The batches of earlier tests are processed first, so that the backlog moves only with this test's posts.
      await waitFor(streamDrained, 'earlier batches were processed');
      const backlogBefore = await h.context.store.ingressBacklog(STREAM, Date.now());
      // Users no other test moves: neither is in Braze before.
      const [refused, after] = outsiders(32)
        .slice(30)
        .map((user) => user.userId!);
      assert.ok(!inBraze().has(refused!) && !inBraze().has(after!));
      const good = JSON.stringify(batch({ users: [{ user_id: refused }] }));
      assert.equal((await post(good, {})).status, 401);
      assert.equal((await post(good, { authorization: 'Bearer wrong-token-0123456789' })).status, 401);
      assert.equal(
        (await post(JSON.stringify(batch({ users: Array.from({ length: 5_000 }, (_, i) => ({ user_id: `u-${i}` })) })))).status,
        413,
      );
      const malformed = await post('{"cohort_id": ');
      assert.equal(malformed.status, 400);
      const noTime = await post(JSON.stringify(batch({ computed_time: undefined })));
      assert.equal(noTime.status, 400);
      assert.match(((await noTime.json()) as { error: string }).error, /computed_time/);
      const badTarget = await post(good, undefined, '?target=segment');
      assert.equal(badTarget.status, 400);
      assert.match(((await badTarget.json()) as { error: string }).error, /target/);
      const backlogAfter = await h.context.store.ingressBacklog(STREAM, Date.now());
      assert.equal(backlogAfter.pending, backlogBefore.pending);
      // The backlog counts only what waits: a good batch posted after them is applied, and the refused user never was.
      assert.equal((await post(JSON.stringify(batch({ users: [{ user_id: after }] })))).status, 200);
      await waitFor(() => inBraze().has(after!), 'the batch after the refused ones reached Braze');
      assert.equal(inBraze().has(refused!), false, 'no refused user reached Braze');
    });

    test('a user entry without a user id is dead-lettered with the reason; the rest of its batch is applied', async () => {
      const [newcomer] = outsiders(1);
      const response = await post(JSON.stringify(batch({ users: [{ user_id: newcomer!.userId }, { user_id: null }] })));
      assert.equal(response.status, 200);
      assert.deepEqual(await response.json(), { spooled: 1, duplicates: 0, deadLettered: 1 });
      await waitFor(() => inBraze().has(newcomer!.userId!), 'the good user reached Braze');
      const letters = await h.context.store.deadLetters({ stream: STREAM, limit: 10 });
      assert.equal(letters.length, 1);
      assert.match(letters[0]!.reason, /^users\[1\]: user_id/);
    });

    test('a computed_time of 400 digits or far in the future is dead-lettered with the reason; nothing is spooled', async () => {
      // Users no test before posted for.
      const [first, second] = outsiders(20).slice(10);
      assert.ok(!inBraze().has(first!.userId!) && !inBraze().has(second!.userId!));
      await waitFor(streamDrained, 'earlier batches were processed');
      const pendingBefore = (await h.context.store.ingressBacklog(STREAM, Date.now())).pending;
      for (const computedTime of ['9'.repeat(400), String(2 ** 60), String(Math.floor(Date.now() / 1000) + 86_400)]) {
        const response = await post(
          JSON.stringify(batch({ computed_time: computedTime, users: [{ user_id: first!.userId }, { user_id: second!.userId }] })),
        );
        assert.equal(response.status, 200);
        assert.deepEqual(await response.json(), { spooled: 0, duplicates: 0, deadLettered: 2 });
      }
      assert.equal((await h.context.store.ingressBacklog(STREAM, Date.now())).pending, pendingBefore);
      // Nothing of theirs was applied either: a good batch after them is, and neither user is in Braze.
      const [after] = outsiders(24).slice(23);
      assert.equal((await post(JSON.stringify(batch({ users: [{ user_id: after!.userId }] })))).status, 200);
      await waitFor(() => inBraze().has(after!.userId!), 'the batch after the refused ones reached Braze');
      assert.ok(!inBraze().has(first!.userId!) && !inBraze().has(second!.userId!), 'no dead-lettered user reached Braze');
      const reasons = (await h.context.store.deadLetters({ stream: STREAM, limit: 100 })).map((letter) => letter.reason);
      assert.equal(reasons.filter((reason) => reason.startsWith('computed_time: must be epoch seconds')).length, 4, '400 digits, 2^60');
      assert.equal(reasons.filter((reason) => /computed_time: \d+ is more than 300 s ahead/.test(reason)).length, 2, 'tomorrow');
      assert.ok(!inBraze().has(first!.userId!) && !inBraze().has(second!.userId!));
    });

    test('an id no store can index, a NUL or deep nesting in one user entry: that entry is dead-lettered, the rest applied', async () => {
      const [newcomer] = outsiders(21).slice(20);
      const users = [
        JSON.stringify({ user_id: 'x'.repeat(8 * 1024) }),
        JSON.stringify({ user_id: 'nul\u0000user' }),
        JSON.stringify({ user_id: '\ud800' }),
        // Written as text: JSON.stringify overflows on 5,000 levels, as the receiver once did.
        `{"user_id":"deep-user-1","user_properties":${'{"a":'.repeat(5_000)}{}${'}'.repeat(5_000)}}`,
        JSON.stringify({ user_id: newcomer!.userId }),
      ];
      const response = await post(JSON.stringify(batch()).replace('"users":[]', `"users":[${users.join(',')}]`));
      assert.equal(response.status, 200);
      assert.deepEqual(await response.json(), { spooled: 1, duplicates: 0, deadLettered: 4 });
      await waitFor(() => inBraze().has(newcomer!.userId!), 'the good user reached Braze');
    });
  });

  describe('a webhook for a cohort Amplitude does not list', () => {
    test('its changes are dead-lettered with the reason and its stream ends, not fails', async () => {
      const target = { cohortId: 'n0such', target: 'attribute' as const, attributeName: 'amplitude_cohorts' };
      const stream = cohortStreamName(target);
      const response = await fetch(`${receiver.url}/amplitude/cohorts`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${TOKEN}` },
        body: JSON.stringify({
          cohort_name: 'Deleted cohort',
          cohort_id: 'n0such',
          in_cohort: true,
          computed_time: String(Math.floor(Date.now() / 1000)),
          message_id: 'gone::enter::0',
          users: outsiders(2).map((user) => ({ user_id: user.userId })),
        }),
      });
      assert.deepEqual(await response.json(), { spooled: 2, duplicates: 0, deadLettered: 0 });
      const handle = h.env.client.workflow.getHandle<typeof cohortStream>(cohortStreamWorkflowId(target));
      await waitFor(async () => (await handle.describe().catch(() => undefined))?.status.name === 'COMPLETED', 'the stream ended');
      assert.equal((await handle.result()).deadLettered, 2);
      const letters = await h.context.store.deadLetters({ stream, limit: 10 });
      assert.deepEqual(
        letters.map((letter) => letter.reason),
        Array(2).fill('Amplitude lists no cohort "n0such" (deleted, or a webhook of another project): the change has nowhere to go'),
      );
      assert.equal((await h.context.store.ingressBacklog(stream, Date.now())).pending, 0);
    });
  });

  describe('a receiver killed mid-stream', () => {
    test('kill -9 while Amplitude sends a recompute, a new one on the same port: every user who entered is in Braze, each change applied once', async () => {
      const port = await freePort();
      const env = { AMPLITUDE_WEBHOOK_TOKEN: TOKEN };
      const killed = await startHarnessReceiver(h, { ...env, RECEIVER_PORT: String(port) });
      h.sandboxes.amplitude.control.configureCohortWebhooks({
        url: `http://127.0.0.1:${port}/amplitude/cohorts`,
        headers: { Authorization: `Bearer ${TOKEN}` },
        // A user a batch, posted one after another: the recompute is far from its end when the receiver dies.
        usersPerBatch: 1,
        retry: { initialDelayMs: 100, maxDelayMs: 1_000, giveUpAfterMs: 120_000 },
      });
      // Users no other test moves.
      const entering = outsiders(1_100).slice(100);
      const pointsBefore = dataPoints();
      const delivering = recompute({ add: ids(entering) });
      const enteredBraze = () => entering.filter((user) => inBraze().has(user.userId!)).length;
      await waitFor(() => enteredBraze() >= 20, 'the first batches were applied');
      killed.child.kill('SIGKILL');
      await new Promise((resolve) => killed.child.once('exit', resolve));
      const replacement = await startHarnessReceiver(h, { ...env, RECEIVER_PORT: String(port) });
      try {
        const { webhook } = await delivering;
        assert.equal(webhook.gaveUp, 0);
        assert.ok(webhook.retriedPosts > 0, 'the sender was still sending when the receiver died, and had to retry');
        await waitFor(() => enteredBraze() === entering.length, 'every user who entered is in Braze', 120_000);
        await waitFor(streamDrained, 'the stream drained its spool');
        assert.equal(dataPoints() - pointsBefore, entering.length, 'each change applied once, by Braze’s count');
      } finally {
        await replacement.stop();
        sendWebhooksTo('');
      }
    });
  });
}
