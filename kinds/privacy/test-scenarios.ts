/**
 * Erasure end to end — real Temporal, a real worker, the sandboxes over HTTP — on a store of a given kind:
 * privacy.test.ts (SQLite) and privacy-postgres.test.ts share these scenarios. A user synced everywhere is forgotten
 * (and deleted in Braze, and in Amplitude), and the next cohort, event and trait runs neither send nor create them;
 * `privacySync` forgets the users of Amplitude's deletion jobs once, however many runs on however many workers read them.
 * Every check reads the sandboxes' own state, the store, and the workflows' histories.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Client } from '@temporalio/client';
import { historyToJSON } from '@temporalio/common/lib/proto-utils.js';
import { RateLimitedError } from '../../src/errors.js';
import { startCohortSync, startEventSync, startForgetUsers, startPrivacySync, startTraitSync } from '../../src/client.js';
import { exportHourOf, type EventSyncInput } from '../event-sync/input.js';
import type { AmplitudeEvent } from '../../src/amplitude/schemas.js';
import type { TestStoreKind } from '../../test/helpers/stores.js';
import { WorkerHarness } from '../../test/helpers/worker-harness.js';
import { expectedMembers } from '../../test/helpers/braze-state.js';
import type { ErasureIdentities } from '../../src/store/store.js';

const COHORT = '3k9x2pq'; // ~10% of users
const PROBE_EVENT = 'Erasure Probe';
const BROWSE_EVENT = 'Anonymous Browse Probe';
const SIGN_IN_EVENT = 'Sign In Probe';
const today = () => new Date().toISOString().slice(0, 10);

export class PrivacyHarness extends WorkerHarness {
  constructor(storeKind: TestStoreKind) {
    super(
      storeKind,
      { seed: 11, users: 3_000, dataset: { brazeKnownFraction: 1, eventsPerHour: 200 }, amplitude: { exportJobDurationMs: 200 } },
      { queuePrefix: 'privacy' },
    );
  }

  forget = async (ids: Partial<ErasureIdentities>, flags: { deleteInBraze?: boolean; deleteInAmplitude?: boolean } = {}) => {
    const handle = await startForgetUsers(this.env.client, this.context.store, ids, flags, { taskQueue: this.taskQueue });
    return { workflowId: handle.workflowId, report: await handle.result() };
  };

  /** A new event of the user in Amplitude (with this plan as a user property), then the current hour synced. */
  probe = async (userId: string, plan: string) => {
    const sent = await this.context.amplitude.ingestEvents(
      [{ event_type: PROBE_EVENT, user_id: userId, user_properties: { plan }, insert_id: `probe-${Math.random()}` }],
      { api: 'httpapi' },
    );
    assert.equal(sent.rejected.length, 0);
    const hour = exportHourOf(Date.now());
    const handle = await startEventSync(
      this.env.client,
      { hour, eventTypes: [PROBE_EVENT] },
      { taskQueue: this.taskQueue, workflowId: `probe-${hour}-${Math.random()}` },
    );
    return handle.result();
  };

  /** Asks Amplitude to delete a user, as its own UI or another tool would (its API takes about one request a second). */
  requestAmplitudeDeletion = async (userId: string) => {
    for (;;) {
      try {
        return await this.context.amplitude.requestUserDeletions({ userIds: [userId], requester: 'privacy@example.com' });
      } catch (error) {
        if (!(error instanceof RateLimitedError)) throw error;
        await sleep(error.retryAfterMs ?? 1_000);
      }
    }
  };

  /** Tracks events into Amplitude over HTTP V2, as an app's backend would. */
  track = async (events: readonly AmplitudeEvent[]) => {
    const sent = await this.context.amplitude.ingestEvents(events, { api: 'httpapi' });
    assert.equal(sent.rejected.length, 0);
  };

  eventSync = async (input: EventSyncInput) =>
    (await startEventSync(this.env.client, input, { taskQueue: this.taskQueue, workflowId: `event-sync-${Math.random()}` })).result();

  /** The Braze profiles holding the device's alias or the external id. */
  profilesOf = (deviceId: string, externalId: string) =>
    [...this.sandboxes.braze.control.users()].filter(
      (profile) => profile.externalId === externalId || profile.aliases.some((alias) => alias.alias_name === deviceId),
    );

  brazeProfile = (externalId: string) => [...this.sandboxes.braze.control.users()].find((profile) => profile.externalId === externalId);

  /** Every payload of every workflow named (inputs, results, details), decoded: what Temporal keeps. */
  histories = async (client: Client, workflowIds: readonly string[]): Promise<string> => {
    const histories = await Promise.all(workflowIds.map((id) => client.workflow.getHandle(id).fetchHistory()));
    const payloads = histories.flatMap((history) => [...historyToJSON(history).matchAll(/"data":\s*"([A-Za-z0-9+/=]*)"/g)]);
    return payloads.map(([, data]) => Buffer.from(data!, 'base64').toString()).join('\n');
  };
}

export function privacyScenarios(h: PrivacyHarness): void {
  describe('erasure', () => {
    test('a forgotten user is gone from the store, Braze and Amplitude, and no later cohort, event or trait run brings them back', async () => {
      const member = [...h.sandboxes.dataset.cohortMembers(COHORT)].find((m) => m.userId);
      assert.ok(member?.userId);
      const userId = member.userId;
      const plan = `plan-of-${userId}`;

      const cohort = await startCohortSync(h.env.client, { cohortId: COHORT }, { taskQueue: h.taskQueue });
      await cohort.result();
      await h.probe(userId, plan);
      assert.ok(h.brazeProfile(userId), 'synced to Braze first');
      assert.ok((await h.context.store.userActivities([`user_id:${userId}`])).has(`user_id:${userId}`), 'in the activity index');

      const { workflowId, report } = await h.forget({ userIds: [userId] }, { deleteInBraze: true, deleteInAmplitude: true });
      assert.equal(report.done, true);
      assert.ok(report.ids.amplitudeIds >= 1, 'the Amplitude id seen with the user is erased too');
      assert.ok((report.removed.snapshot_members ?? 0) >= 1 && report.removed.user_activity === 1, JSON.stringify(report.removed));
      assert.deepEqual(report.braze, { requests: 1, deleted: 1 });
      assert.equal(h.brazeProfile(userId), undefined, 'deleted in Braze');
      const amplitudeJobs = h.sandboxes.amplitude.control.deletionJobs();
      assert.ok(
        amplitudeJobs.some((job) => job.amplitude_ids.some((entry) => String(entry.amplitude_id) === member.amplitudeId)),
        'deletion requested from Amplitude',
      );
      assert.equal((await h.context.store.userActivities([`user_id:${userId}`])).size, 0);

      // Amplitude keeps taking the user's events: the next runs must not send or create them.
      const pointsBefore = h.brazeDataPoints();
      const events = await h.probe(userId, `${plan}-again`);
      // The hour holds the probe synced before the erasure too: every event of theirs in it is left out now.
      assert.ok((events.skipReasons[`suppressed: erased on ${today()}`] ?? 0) >= 2, JSON.stringify(events.skipReasons));
      const resynced = await (await startCohortSync(h.env.client, { cohortId: COHORT, force: true }, { taskQueue: h.taskQueue })).result();
      assert.ok(expectedMembers(h.sandboxes, COHORT).has(userId), 'still a member in Amplitude');
      assert.equal(resynced.skipReasons[`suppressed: erased on ${today()}`], 1, JSON.stringify(resynced.skipReasons));
      const traits = await (
        await startTraitSync(h.env.client, { name: 'privacy', properties: ['plan'] }, { taskQueue: h.taskQueue })
      ).result();
      assert.ok(traits.written > 0, 'the trait sync wrote others');
      assert.equal(h.brazeProfile(userId), undefined, 'not created again by any run');
      assert.equal((await h.context.store.userActivities([`user_id:${userId}`])).size, 0, 'not in the activity index again');
      assert.ok(h.brazeDataPoints() > pointsBefore, 'the runs did send other users');

      const history = await h.histories(h.env.client, [workflowId]);
      assert.match(history, /"requestId":"[0-9a-f-]{36}"/, 'the history is readable here');
      assert.match(history, /"snapshot_members":/);
      assert.ok(!history.includes(userId) && !history.includes(`"${member.amplitudeId}"`), 'the erasure’s history names no one');
    });
  });

  describe('anonymous users who sign in', () => {
    test('an anonymous device’s events, then its user’s once signed in: one Braze profile holding both, each event once; a rerun identifies nothing', async () => {
      const [deviceId, userId] = [`anonymous-device-${randomUUID()}`, `signed-in-${randomUUID()}`];
      const input = { eventTypes: [BROWSE_EVENT, SIGN_IN_EVENT], identifiers: ['user_id' as const, 'device_id' as const] };
      const hour = exportHourOf(Date.now());
      await h.track([{ event_type: BROWSE_EVENT, device_id: deviceId, insert_id: randomUUID() }]);
      const anonymous = await h.eventSync({ hour, ...input });
      assert.equal(anonymous.identified ?? 0, 0);
      const aliasOnly = h.profilesOf(deviceId, userId);
      assert.equal(aliasOnly.length, 1);
      assert.deepEqual(
        [aliasOnly[0]!.externalId, aliasOnly[0]!.customEvents?.get(BROWSE_EVENT)?.count],
        [undefined, 1],
        'an alias-only profile',
      );

      const pointsBefore = h.brazeDataPoints();
      await h.track([{ event_type: SIGN_IN_EVENT, user_id: userId, device_id: deviceId, insert_id: randomUUID() }]);
      const signedIn = await h.eventSync({ hour, ...input });
      assert.equal(signedIn.identified, 1, 'the alias identified once');
      const [profile, ...others] = h.profilesOf(deviceId, userId);
      assert.equal(others.length, 0, 'one Braze profile, not two');
      assert.equal(profile!.externalId, userId);
      assert.ok(profile!.aliases.some((alias) => alias.alias_name === deviceId && alias.alias_label === 'amplitude_device_id'));
      assert.deepEqual(
        [profile!.customEvents?.get(BROWSE_EVENT)?.count, profile!.customEvents?.get(SIGN_IN_EVENT)?.count],
        [1, 1],
        'the anonymous event and the new one on the same profile',
      );
      assert.equal(h.brazeDataPoints() - pointsBefore, 1, 'only the new event was sent: no data point twice');

      const rerun = await h.eventSync({ hour, ...input });
      assert.equal(rerun.identified ?? 0, 0, 'a rerun identifies nothing again');
      assert.equal(h.brazeDataPoints() - pointsBefore, 1);
      assert.equal(h.sandboxes.braze.control.requestCounts()['POST /users/identify'], 1, 'one identify request in all');
    });
  });

  describe('privacySync', () => {
    test("forgets each user of Amplitude's deletion jobs once, whichever of two concurrent runs and a rerun reads them", async () => {
      const userId = 'privacy-sync-user-1';
      await h.probe(userId, 'plan-to-delete');
      const linked = await h.context.store.userActivities([`user_id:${userId}`]);
      assert.equal(linked.size, 1);
      await h.requestAmplitudeDeletion(userId);
      const jobIds = h.sandboxes.amplitude.control
        .deletionJobs()
        .flatMap((job) => job.amplitude_ids.map((entry) => String(entry.amplitude_id)));
      assert.ok(jobIds.length >= 1);

      // Two runs at once, on two workers sharing the store.
      const start = (taskQueue: string) => startPrivacySync(h.env.client, {}, { taskQueue, workflowId: `privacy-sync-${randomUUID()}` });
      const handles = await h.withSecondWorker(async (secondQueue) => {
        const started = await Promise.all([start(h.taskQueue), start(secondQueue)]);
        await Promise.all(started.map((handle) => handle.result()));
        return started;
      });
      const runs = await Promise.all(handles.map((handle) => handle.result()));
      const forgotten = runs.reduce((sum, run) => sum + run.forgotten, 0);
      assert.equal(forgotten, new Set(jobIds).size, 'each Amplitude id of the jobs forgotten once between the two workers');
      assert.equal((await h.context.store.userActivities([`user_id:${userId}`])).size, 0, 'mapped to the user through the activity index');
      const rerun = await (await start(h.taskQueue)).result();
      assert.equal(rerun.forgotten, 0);
      assert.equal(rerun.alreadyForgotten, rerun.amplitudeIds);

      // Not deleted in Braze (deleteInBraze: false): their profile keeps what it had, and gets nothing new.
      const probesInBraze = () => h.brazeProfile(userId)?.customEvents?.get(PROBE_EVENT)?.count;
      assert.equal(probesInBraze(), 1);
      const history = await h.histories(
        h.env.client,
        handles.map((handle) => handle.workflowId),
      );
      assert.match(history, /"alreadyForgotten":/, 'the histories are readable here');
      assert.ok(!history.includes(userId) && !jobIds.some((id) => history.includes(`"${id}"`)), 'no user or Amplitude id in the histories');

      const events = await h.probe(userId, 'plan-after');
      assert.ok((events.skipReasons[`suppressed: erased on ${today()}`] ?? 0) >= 2, 'their events are suppressed by user id');
      assert.equal(probesInBraze(), 1, 'no new event reached their profile');
    });
  });
}
