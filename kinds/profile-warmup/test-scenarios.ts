/**
 * Profiles for Braze Connected Content end to end, on a store of a given kind: a trait sync and warm-ups (workflows
 * on a real Temporal server, a real worker) keep Amplitude profiles in the store; the receiver (a real process) answers
 * Connected-Content-shaped requests from it. The Amplitude sandbox is the judge: its own answers, byte for byte, and
 * its own count of Profile API requests (answered, and refused with 429).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { historyToJSON } from '@temporalio/common/lib/proto-utils.js';
import { startEventSync, startForgetUsers, startProfileWarmup, startTraitSync } from '../../src/client.js';
import { UNKNOWN_USER_ANSWER } from '../../src/profiles/answer.js';
import { SANDBOX_CREDENTIALS } from '../../src/sandbox/sandboxes.js';
import { waitUntil } from '../../test/helpers/currents-scenarios.js';
import { startHarnessReceiver, type ReceiverProcess } from '../../test/helpers/receiver.js';
import type { TestStoreKind } from '../../test/helpers/stores.js';
import { WorkerHarness } from '../../test/helpers/worker-harness.js';
import { exportHourOf } from '../event-sync/input.js';
import { saveProfileList } from './kind.js';
import type { ProfileWarmupInput } from './input.js';

const TOKEN = 'connected-content-test-token-0123';
const STATUS_TOKEN = 'status-test-token-0123456789';
/** The User Profile API budget of the workers and the receiver together, per minute (the sandbox allows 60). */
export const PROFILE_BUDGET = 40;
const SANDBOX_PROFILE_LIMIT = 60;
/** What a Braze template asks for: a recommendation, a computation and the cohort ids. */
const TEMPLATE_QUERY = 'get_recs=true&rec_id=rec-top-picks&get_computations=true&comp_id=lifetime_spend&get_cohort_ids=true';

export class ConnectedContentHarness extends WorkerHarness {
  receiver!: ReceiverProcess;

  constructor(storeKind: TestStoreKind) {
    super(
      storeKind,
      { seed: 47, users: 400, dataset: { eventsPerHour: 150 }, amplitude: { profileRequestsPerMinute: SANDBOX_PROFILE_LIMIT } },
      { queuePrefix: 'connected-content', workerEnv: { AMPLITUDE_PROFILE_RATE: `${PROFILE_BUDGET}/1m` } },
    );
    before(async () => {
      await this.ready;
      this.receiver = await startHarnessReceiver(this, {
        ...this.sandboxes.env,
        AMPLITUDE_PROFILE_RATE: `${PROFILE_BUDGET}/1m`,
        CONNECTED_CONTENT_TOKEN: TOKEN,
        STATUS_TOKEN: STATUS_TOKEN,
        // Every request is logged: the test checks that no log line names a user or a key.
        RECEIVER_LOG_LEVEL: 'info',
      });
    });
    after(async () => {
      await this.receiver?.stop();
      if (process.exitCode) console.error(`The receiver printed:\n${this.receiver?.output()}`);
    });
  }

  /** A Connected Content call: the template's query for a user, with the receiver's token. */
  lookup = (query: string, authorization = `Bearer ${TOKEN}`) =>
    fetch(`${this.receiver.url}/connected-content/userprofile?${query}`, { headers: { authorization } });

  /** What Amplitude's own Profile API answers the same query (one request of the organisation's limit). */
  amplitudeAnswer = async (query: string): Promise<string> => {
    const profileApiUrl = this.sandboxes.env.AMPLITUDE_PROFILE_API_URL!;
    const response = await fetch(`${profileApiUrl}/v1/userprofile?${query}`, {
      headers: { authorization: `Api-Key ${SANDBOX_CREDENTIALS.amplitudeSecretKey}` },
    });
    return response.text();
  };

  profileRequests = () => this.sandboxes.amplitude.control.profileRequestTotals();

  /** Identified users of the dataset the store has no profile of. */
  unfetchedUserIds = async (count: number): Promise<string[]> => {
    const ids: string[] = [];
    for (const user of this.sandboxes.dataset.users()) {
      if (ids.length === count) break;
      if (user.userId !== null && !(await this.context.store.cachedProfile(`user_id:${user.userId}`))) ids.push(user.userId);
    }
    assert.equal(ids.length, count, 'the dataset has enough users never fetched');
    return ids;
  };

  warmup = async (input: ProfileWarmupInput) => {
    const handle = await startProfileWarmup(this.env.client, input, {
      taskQueue: this.taskQueue,
      workflowId: `warmup-test-${Math.random()}`,
    });
    return { result: await handle.result(), history: JSON.stringify(historyToJSON(await handle.fetchHistory())) };
  };

  /** The receiver's Connected Content counters, as Prometheus scrapes them. */
  metrics = async () => {
    const metrics = await (await fetch(`${this.receiver.url}/metrics`, { headers: { authorization: `Bearer ${STATUS_TOKEN}` } })).text();
    return metrics
      .split('\n')
      .filter((line) => line.includes('ampbraze_connected_content_'))
      .join('\n');
  };
}

export function connectedContentScenarios(h: ConnectedContentHarness): void {
  describe('Connected Content: Amplitude profiles served from the store', () => {
    const fetchedByTraitSync: string[] = [];
    let traitSyncFetches = 0;

    // What every test here looks up: an hour in the activity index, and the profiles a trait sync fetched.
    before(async () => {
      await h.ready;
      const ingest = await startEventSync(
        h.env.client,
        { hour: exportHourOf(Date.now() - 3_600_000) },
        { taskQueue: h.taskQueue, workflowId: `cc-ingest-${Math.random()}` },
      );
      await ingest.result();
      const sync = await startTraitSync(
        h.env.client,
        { name: 'cc', recommendations: [{ id: 'rec-top-picks', attribute: 'top_picks' }], maxProfileFetches: 8 },
        { taskQueue: h.taskQueue, workflowId: `cc-traits-${Math.random()}` },
      );
      traitSyncFetches = (await sync.result()).profileApiRequests;
      for (const user of h.sandboxes.dataset.users()) {
        if (user.userId !== null && (await h.context.store.cachedProfile(`user_id:${user.userId}`))) fetchedByTraitSync.push(user.userId);
      }
    });

    test('a trait sync keeps the profiles it fetches; Braze-shaped lookups of them are answered from the store, as Amplitude answers', async () => {
      assert.equal(traitSyncFetches, 8);
      assert.equal(fetchedByTraitSync.length, 8, 'the trait sync kept every profile it fetched');

      const before = h.profileRequests();
      const answers = [];
      for (const userId of fetchedByTraitSync) {
        const response = await h.lookup(`user_id=${userId}&${TEMPLATE_QUERY}`);
        assert.equal(response.status, 200);
        assert.equal(response.headers.get('x-profile-source'), 'store');
        assert.match(response.headers.get('cache-control') ?? '', /max-age=\d+/);
        answers.push({ userId, body: await response.text() });
      }
      assert.deepEqual(h.profileRequests(), before, 'no Profile API request was made');
      for (const { userId, body } of answers.slice(0, 4)) {
        assert.equal(
          body,
          await h.amplitudeAnswer(`user_id=${userId}&${TEMPLATE_QUERY}`),
          `the answer for ${userId} is Amplitude's, byte for byte`,
        );
        assert.match(body, /"rec_id":"rec-top-picks"/);
      }
    });

    test('user properties come from the activity index, as of the last event', async () => {
      const userId = fetchedByTraitSync[0]!;
      const response = await h.lookup(`user_id=${userId}&get_amp_props=true`);
      const { userData } = (await response.json()) as { userData: { amp_props: Record<string, unknown>; recommendations: unknown } };
      const activity = (await h.context.store.userActivities([`user_id:${userId}`])).get(`user_id:${userId}`);
      assert.deepEqual(userData.amp_props, activity!.properties);
      assert.equal(userData.recommendations, null, 'what was not asked for is null, as from Amplitude');
    });

    test('a wrong or missing token is refused before any lookup; the token is taken as bearer, basic auth or Api-Key', async () => {
      const userId = fetchedByTraitSync[0]!;
      const answersBefore = await h.metrics();
      for (const authorization of [
        '',
        'Bearer wrong-token-0123456789',
        `Basic ${Buffer.from('braze:wrong').toString('base64')}`,
        `Api-Key ${SANDBOX_CREDENTIALS.amplitudeSecretKey}`,
      ]) {
        const response = await h.lookup(`user_id=${userId}&get_recs=true`, authorization);
        assert.equal(response.status, 401, `refused: "${authorization.split(' ')[0]}"`);
        assert.doesNotMatch(await response.text(), /userData/);
      }
      assert.equal(await h.metrics(), answersBefore, 'no lookup was made');
      for (const authorization of [`Basic ${Buffer.from(`braze:${TOKEN}`).toString('base64')}`, `Api-Key ${TOKEN}`]) {
        assert.equal((await h.lookup(`user_id=${userId}&get_recs=true`, authorization)).status, 200);
      }
    });

    test('a user never fetched is fetched once, then served from the store; a user Amplitude never saw gets its answer', async () => {
      const [userId] = await h.unfetchedUserIds(1);
      const query = `user_id=${userId}&${TEMPLATE_QUERY}`;
      const before = h.profileRequests().answered;
      const first = await h.lookup(query);
      assert.equal(first.headers.get('x-profile-source'), 'refreshed');
      const second = await h.lookup(query);
      assert.equal(second.headers.get('x-profile-source'), 'store');
      assert.equal(h.profileRequests().answered, before + 1, 'one Profile API request');
      const body = await second.text();
      assert.equal(await first.text(), body);
      assert.equal(body, await h.amplitudeAnswer(query));

      // Several of a message's lookups at once (or two templates) for one user never fetched: one fetch between them.
      const [together] = await h.unfetchedUserIds(1);
      const beforeTogether = h.profileRequests().answered;
      const concurrent = await Promise.all(Array.from({ length: 5 }, () => h.lookup(`user_id=${together}&${TEMPLATE_QUERY}`)));
      // Those that arrive after the fetch was kept are answered from the store.
      for (const response of concurrent) assert.match(response.headers.get('x-profile-source') ?? '', /^(refreshed|store)$/);
      assert.equal(new Set(await Promise.all(concurrent.map((response) => response.text()))).size, 1);
      assert.equal(h.profileRequests().answered, beforeTogether + 1, 'one Profile API request for five lookups');

      const stranger = `user_id=never-seen-${Date.now()}&get_recs=true`;
      const unknown = await h.lookup(stranger);
      assert.equal(unknown.status, 200);
      assert.equal(await unknown.text(), await h.amplitudeAnswer(stranger), "Amplitude's answer for a user it has not seen");
      assert.equal((await h.lookup(stranger)).headers.get('x-profile-source'), 'store');
    });

    test('a profile past its age is answered as kept, and refreshed in the background', async () => {
      const [userId] = await h.unfetchedUserIds(1);
      const userKey = `user_id:${userId}`;
      const keptAtMs = Date.now() - 2 * 3_600_000;
      await h.context.store.keepProfiles([{ userKey, fetchedAtMs: keptAtMs, userData: { user_id: userId!, recommendations: [] } }]);
      const query = `user_id=${userId}&get_recs=true`;
      const stale = await h.lookup(query);
      assert.equal(stale.headers.get('x-profile-source'), 'store');
      assert.equal(stale.headers.get('x-profile-refresh'), 'queued');
      assert.ok(Number(stale.headers.get('x-profile-age')) >= 7_200);
      assert.match(await stale.text(), /"recommendations":\[\]/, 'answered as kept, at once');
      await waitUntil(async () => ((await h.context.store.cachedProfile(userKey))?.fetchedAtMs ?? 0) > keptAtMs, 'the background refresh');
      const fresh = await h.lookup(query);
      assert.equal(fresh.headers.get('x-profile-refresh'), null);
      assert.equal(await fresh.text(), await h.amplitudeAnswer(query));
    });

    test('a warm-up refreshes a saved list, the active users and a cohort within the budget, and says how much is fresh', async () => {
      const unfetched = await h.unfetchedUserIds(3);
      const list = [...fetchedByTraitSync.slice(0, 3), ...unfetched];
      await saveProfileList(h.context.store, 'campaign', list);
      const before = h.profileRequests().answered;
      const listed = await h.warmup({ list: 'campaign' });
      assert.deepEqual(
        {
          members: listed.result.members,
          fetched: listed.result.fetched,
          fresh: listed.result.fresh,
          freshShare: listed.result.freshShare,
        },
        { members: 6, fetched: 3, fresh: 6, freshShare: 1 },
        'the three fetched within the hour are left alone',
      );
      assert.equal(h.profileRequests().answered - before, 3);
      for (const userId of unfetched)
        assert.equal((await h.lookup(`user_id=${userId}&get_recs=true`)).headers.get('x-profile-source'), 'store');
      for (const userId of list) assert.ok(!listed.history.includes(userId), 'no user id in the workflow history');
      assert.ok(!listed.history.includes(SANDBOX_CREDENTIALS.amplitudeSecretKey), 'no key in the workflow history');

      const active = await h.warmup({ activeWithinDays: 1, maxFetches: 3 });
      assert.equal(active.result.fetched, 3);
      assert.ok(active.result.members > active.result.fresh, 'the rest of the active users are not fresh yet');
      assert.ok(active.result.fresh >= 3, 'the three it fetched are fresh, with those fetched earlier');

      const smallest = h.sandboxes.dataset.cohorts().sort((a, b) => a.size - b.size)[0]!;
      const cohort = await h.warmup({ cohortId: smallest.id, maxFetches: 2 });
      const identifiedMembers = [...h.sandboxes.dataset.cohortMembers(smallest.id)].filter((member) => member.userId !== null).length;
      assert.equal(cohort.result.members, identifiedMembers, "the cohort's identified members");
      assert.ok(cohort.result.fetched <= 2);
    });

    test('a burst far above the budget: every answer is 200 (store, refreshed or fallback), Profile API calls stay within the budget, no 429', async () => {
      const userIds = await h.unfetchedUserIds(150);
      const before = h.profileRequests();
      const responses = await Promise.all(userIds.map((userId) => h.lookup(`user_id=${userId}&${TEMPLATE_QUERY}`)));
      const sources = new Map<string, number>();
      for (const response of responses) {
        assert.equal(response.status, 200);
        const source = response.headers.get('x-profile-source')!;
        sources.set(source, (sources.get(source) ?? 0) + 1);
        if (source === 'fallback') {
          assert.equal(response.headers.get('cache-control'), 'no-store', 'Braze does not cache a fallback');
          assert.equal(await response.text(), '{"error":"User id and device id not seen before"}');
        } else await response.body?.cancel();
      }
      const after = h.profileRequests();
      assert.equal(after.refused, before.refused, 'Amplitude refused nothing');
      assert.ok((sources.get('fallback') ?? 0) > 0, 'the budget ran out');
      assert.ok((sources.get('refreshed') ?? 0) <= 2 * PROFILE_BUDGET, `fetched within the budget: ${JSON.stringify([...sources])}`);
      assert.ok(after.answered - before.answered <= 2 * PROFILE_BUDGET);
      assert.match(await h.metrics(), /ampbraze_connected_content_answers_total\{source="fallback"\} [1-9]/);
      const log = h.receiver.output();
      assert.match(log, /connected-content\/userprofile/, 'requests are logged');
      for (const userId of userIds) assert.ok(!log.includes(userId), 'no user id in the log');
      assert.ok(!log.includes(TOKEN) && !log.includes(SANDBOX_CREDENTIALS.amplitudeSecretKey), 'no secret in the log');
    });

    test('an erased user is answered as a user Amplitude has not seen: never fetched, never kept', async () => {
      const [userId] = await h.unfetchedUserIds(1);
      const forget = await startForgetUsers(h.env.client, h.context.store, { userIds: [userId!] }, {}, { taskQueue: h.taskQueue });
      await forget.result();
      const before = h.profileRequests().answered;
      const response = await h.lookup(`user_id=${userId}&${TEMPLATE_QUERY}`);
      assert.equal(response.status, 200);
      assert.equal(response.headers.get('x-profile-source'), 'suppressed');
      assert.equal(await response.text(), UNKNOWN_USER_ANSWER);
      assert.equal(h.profileRequests().answered, before, 'no Profile API request');
      assert.equal(await h.context.store.cachedProfile(`user_id:${userId}`), undefined, 'nothing kept');
    });
  });
}
