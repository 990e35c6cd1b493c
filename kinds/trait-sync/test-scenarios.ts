/**
 * The trait sync end to end — real Temporal, a real worker, the sandboxes over HTTP — on a store of a given kind:
 * trait-sync.test.ts (SQLite) and trait-sync-postgres.test.ts share this harness and the core scenarios.
 * The activity index is fed the real way (event syncs of sandbox hours), and every test asserts on the Braze
 * sandbox's own profiles and data-point count.
 */
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import { startEventSync, startTraitSync } from '../../src/client.js';
import { exportHourOf } from '../event-sync/input.js';
import type { JsonObject, UserActivity } from '../../src/store/store.js';
import type { TraitSyncInput } from './input.js';
import { setBudgetUpdate } from '../../workflows/engine.js';
import type { TraitSyncResult } from './workflow.js';
import { waitUntilPaused } from '../../test/helpers/cohort-sync.js';
import { hoursAgo } from '../event-sync/test-scenarios.js';
import type { TestStoreKind } from '../../test/helpers/stores.js';
import { WorkerHarness } from '../../test/helpers/worker-harness.js';

/** Every property the sandbox's users carry; `country` is a Braze standard field, so the sync prefixes them all. */
export const PROPERTIES = ['plan', 'country', 'ltv', 'beta_tester', 'favorite_genres', 'level'];

/** The sandbox's User Profile API requests per minute, all of which the workers may use. */
export const PROFILE_LIMIT = 300;

export class TraitSyncHarness extends WorkerHarness {
  constructor(storeKind: TestStoreKind) {
    // Half the users are unknown to Braze: the sync creates them.
    // The Profile API's limit is lowered, with the workers' share of it, so that fetches span its minutes.
    super(
      storeKind,
      {
        seed: 41,
        users: 1_500,
        dataset: { brazeKnownFraction: 0.5, eventsPerHour: 400 },
        amplitude: { profileRequestsPerMinute: PROFILE_LIMIT },
      },
      { queuePrefix: 'trait-sync', workerEnv: { AMPLITUDE_PROFILE_RATE: `${PROFILE_LIMIT}/1m` } },
    );
  }

  /** Feeds the activity index the way production does: an event sync of the hour (ingest only). */
  ingest = async (hour: string) => {
    const handle = await startEventSync(
      this.env.client,
      { hour },
      { taskQueue: this.taskQueue, workflowId: `ingest-${hour}-${Math.random()}` },
    );
    return handle.result();
  };

  sync = async (input: TraitSyncInput): Promise<TraitSyncResult> => {
    const handle = await startTraitSync(this.env.client, input, {
      taskQueue: this.taskQueue,
      workflowId: `trait-sync-test-${Math.random()}`,
    });
    return handle.result();
  };

  /** Every user of the activity index active since `sinceMs` (identified or not). */
  indexedUsers = async (sinceMs = 0): Promise<UserActivity[]> => {
    const users: UserActivity[] = [];
    let afterKey: string | undefined;
    do {
      const page = await this.context.store.activeUsers({ afterKey, limit: 1_000, sinceMs });
      users.push(...page.items);
      afterKey = page.nextAfterKey;
    } while (afterKey !== undefined);
    return users;
  };

  /** Identified users of the activity index active since `sinceMs`: user id → latest properties. */
  identifiedUsers = async (sinceMs = 0): Promise<Map<string, JsonObject>> => {
    const identified = (await this.indexedUsers(sinceMs)).filter((user) => user.userKey.startsWith('user_id:'));
    return new Map(identified.map((user) => [user.userKey.slice('user_id:'.length), user.properties]));
  };

  /** A user's Braze custom attributes, as the sandbox holds them. */
  brazeAttributes = (externalId: string): Record<string, unknown> | undefined => {
    const profile = this.sandboxes.braze.control.user(externalId);
    return profile && Object.fromEntries(profile.customAttributes ?? []);
  };

  /**
   * A new event of the user in Amplitude carrying these user properties (the full set, as Amplitude's export
   * carries them), then the current hour ingested again: the user's latest properties become these.
   */
  changeProperties = async (userId: string, properties: JsonObject) => {
    const sent = await this.context.amplitude.ingestEvents(
      [{ event_type: 'Profile Updated', user_id: userId, user_properties: properties, insert_id: `change-${Math.random()}` }],
      { api: 'httpapi' },
    );
    assert.equal(sent.rejected.length, 0);
    await this.ingest(exportHourOf(Date.now()));
  };
}

/** What the sandbox's properties become as attributes under a prefix. */
export function prefixed(properties: JsonObject, prefix = 'amp_'): Record<string, unknown> {
  return Object.fromEntries(
    PROPERTIES.filter((name) => properties[name] !== undefined && properties[name] !== null).map((name) => [
      `${prefix}${name}`,
      properties[name],
    ]),
  );
}

/** What every store must get right: first run, unchanged rerun, one change, one vanished value, dry run, budgets. */
export function coreTraitScenarios(h: TraitSyncHarness): void {
  const input: TraitSyncInput = { name: 'core', properties: PROPERTIES, attributePrefix: 'amp_' };

  // The activity index every test of the file reads (each one runs alone too: `--test-name-pattern`).
  before(async () => {
    await h.ready;
    for (const hour of [hoursAgo(4), hoursAgo(5), exportHourOf(Date.now())]) await h.ingest(hour);
  });

  describe('trait sync: user properties into Braze custom attributes', () => {
    test('the first run writes every active user (creating those Braze lacks) with typed attributes', async () => {
      const users = await h.identifiedUsers();
      const unknownToBraze = [...users.keys()].filter((userId) => !h.sandboxes.braze.control.user(userId));
      assert.ok(unknownToBraze.length > 0, 'some users do not exist in Braze yet');
      const pointsBefore = h.brazeDataPoints();

      const result = await h.sync(input);
      assert.equal(result.users, users.size);
      assert.equal(result.created, users.size, 'no user was in the snapshot before');
      assert.equal(result.written, users.size);
      for (const [userId, properties] of users)
        assert.deepEqual(h.brazeAttributes(userId), prefixed(properties), `attributes of ${userId}`);
      const expectedPoints = [...users.values()].reduce((sum, properties) => sum + Object.keys(prefixed(properties)).length, 0);
      assert.equal(result.dataPoints, expectedPoints, 'one data point per attribute written');
      assert.equal(h.brazeDataPoints() - pointsBefore, result.dataPoints, 'our count equals Braze’s');
      assert.ok(
        Object.keys(result.skipReasons).some((reason) => /anonymous/.test(reason)),
        'anonymous users are skipped with a reason',
      );
    });

    test('an unchanged rerun sends nothing and spends nothing', async () => {
      await h.sync(input); // the run it reruns, so that the test stands on its own
      const [requestsBefore, pointsBefore] = [h.trackRequests(), h.brazeDataPoints()];
      const result = await h.sync(input);
      assert.deepEqual([result.written, result.brazeRequests, result.dataPoints, result.unchanged], [0, 0, 0, result.users]);
      assert.deepEqual([h.trackRequests(), h.brazeDataPoints()], [requestsBefore, pointsBefore]);
    });

    test('one changed value is exactly one attribute write; a vanished value is one null', async () => {
      await h.sync(input); // Braze holds every value first, so that only this test's changes are new
      const [userId, properties] = [...(await h.identifiedUsers())][0]!;
      await h.changeProperties(userId, { ...properties, plan: properties.plan === 'premium' ? 'free' : 'premium' });
      const dryRun = await h.sync({ ...input, dryRun: true });
      assert.deepEqual(
        [dryRun.set, dryRun.unset, dryRun.dataPoints, dryRun.brazeRequests],
        [1, 0, 0, 0],
        'the dry run predicts one write and sends nothing',
      );

      let pointsBefore = h.brazeDataPoints();
      let result = await h.sync(input);
      assert.deepEqual([result.updated, result.set, result.dataPoints, result.brazeRequests], [1, 1, 1, 1]);
      assert.equal(h.brazeDataPoints() - pointsBefore, 1);
      assert.equal(h.brazeAttributes(userId)?.amp_plan, properties.plan === 'premium' ? 'free' : 'premium');

      const { ltv: _gone, ...withoutLtv } = properties;
      await h.changeProperties(userId, { ...withoutLtv, plan: properties.plan === 'premium' ? 'free' : 'premium' });
      pointsBefore = h.brazeDataPoints();
      result = await h.sync(input);
      assert.deepEqual([result.unset, result.set, result.dataPoints], [1, 0, 1]);
      assert.equal(h.brazeDataPoints() - pointsBefore, 1);
      assert.ok(!('amp_ltv' in (h.brazeAttributes(userId) ?? {})), 'the vanished value is unset in Braze');
    });

    test('over its budget a run pauses, and finishes once the budget is raised', async () => {
      const budgeted: TraitSyncInput = {
        name: 'budget',
        properties: ['plan'],
        attributePrefix: 'budget_',
        pageSize: 10,
        maxDataPoints: 25,
      };
      const pointsBefore = h.brazeDataPoints();
      const handle = await startTraitSync(h.env.client, budgeted, { taskQueue: h.taskQueue, workflowId: `trait-budget-${Math.random()}` });
      const progress = await waitUntilPaused(h.env.client, handle.workflowId);
      assert.match(progress.pausedReason ?? '', /over the run budget/);
      assert.equal(progress.totals.dataPoints, 20, 'two pages of 10 users fit in 25, the third does not');
      await handle.executeUpdate(setBudgetUpdate, { args: [{ maxDataPoints: 100_000 }] });
      const result = await handle.result();
      const withPlan = [...(await h.identifiedUsers()).keys()].filter((userId) => 'budget_plan' in (h.brazeAttributes(userId) ?? {}));
      assert.equal(h.brazeDataPoints() - pointsBefore, withPlan.length, "one plan value per user, each written once, by Braze's count");
      assert.equal(result.dataPoints, withPlan.length);
    });
  });
}
