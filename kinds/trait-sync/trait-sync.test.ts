/**
 * The trait sync end to end on the SQLite store: the core scenarios (shared with the PostgreSQL file) and the
 * rest — refused inputs, a stale activity index, the window, values Braze would reject and Braze's per-object
 * errors, the Temporal CLI and `ampbraze traits`.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { WorkflowFailedError } from '@temporalio/client';
import { InvalidInputError, startTraitSync } from '../../src/client.js';
import type { JsonObject } from '../../src/store/store.js';
import type { TraitSyncInput } from './input.js';
import type { traitSync } from './workflow.js';
import { ampbraze, readmeTemporalCommand, temporal } from '../../test/helpers/cli.js';
import { hoursAgo } from '../event-sync/test-scenarios.js';
import { SQLITE } from '../../test/helpers/stores.js';
import { testTemporalEnv } from '../../test/helpers/temporal.js';
import { coreTraitScenarios, prefixed, PROPERTIES, TraitSyncHarness } from './test-scenarios.js';

const h = new TraitSyncHarness(SQLITE);

coreTraitScenarios(h);

const DAY_HOURS = 24;

describe('trait sync: refused before anything is read', () => {
  test('a standard profile field fails the run at once, naming it and the ways out (also typed into the Temporal UI)', async () => {
    await assert.rejects(startTraitSync(h.env.client, { properties: ['email'] }, { taskQueue: h.taskQueue }), InvalidInputError);
    const handle = await h.env.client.workflow.start<typeof traitSync>('traitSync', {
      taskQueue: h.taskQueue,
      workflowId: `trait-bad-${Date.now()}`,
      args: [{ properties: ['plan', 'email'] }],
    });
    await assert.rejects(handle.result(), (error: unknown) => {
      assert.ok(error instanceof WorkflowFailedError);
      assert.match(
        String(error.cause?.message),
        /Invalid traitSync input:\n {2}properties: "email" is a Braze standard profile field: prefix the attributes/,
      );
      return true;
    });
  });

  test('an activity index no event sync has fed fails the run, saying how to start ingestion', async () => {
    await h.withOwnWorker({}, async (ownQueue) => {
      const handle = await startTraitSync(
        h.env.client,
        { properties: ['plan'] },
        { taskQueue: ownQueue, workflowId: `trait-stale-${Date.now()}` },
      );
      await assert.rejects(handle.result(), (error: unknown) => {
        assert.ok(error instanceof WorkflowFailedError);
        assert.match(
          String(error.cause?.message),
          /The activity index is stale \(no event sync has fed it yet.*"ampbraze events schedule"/s,
        );
        return true;
      });
    });
  });
});

describe('trait sync: a cohort as the audience, for projects that do not ingest events', () => {
  const COHORT = '3k9x2pq';
  /** What Braze should hold under `aud_` for a user with these Amplitude properties (Braze takes strings ≤ 255). */
  const expectedAttributes = (properties: JsonObject) =>
    Object.fromEntries(
      Object.entries(prefixed(properties, 'aud_')).filter(([, value]) => !(typeof value === 'string' && value.length > 255)),
    );
  const audAttributes = (userId: string) =>
    Object.fromEntries(Object.entries(h.brazeAttributes(userId) ?? {}).filter(([name]) => name.startsWith('aud_')));

  test('one download gives the members and their properties; an unrecomputed cohort is not downloaded again; after a recompute only what changed is sent', async () => {
    // A worker with a store of its own: no event sync has ever fed its activity index.
    await h.withOwnWorker({}, async (ownQueue) => {
      const input: TraitSyncInput = { name: 'cohort-audience', audienceCohortId: COHORT, properties: PROPERTIES, attributePrefix: 'aud_' };
      const sync = async () =>
        (await startTraitSync(h.env.client, input, { taskQueue: ownQueue, workflowId: `trait-cohort-${Math.random()}` })).result();
      const downloads = () => h.sandboxes.amplitude.control.downloadRequestsThisMonth();
      const members = () => [...h.sandboxes.dataset.cohortMembers(COHORT)].filter((member) => member.userId);
      const propertiesOf = (userId: string) => h.sandboxes.amplitude.control.userProperties({ userId }) as JsonObject;
      const identified = members();
      const anonymous = [...h.sandboxes.dataset.cohortMembers(COHORT)].length - identified.length;

      let [downloadsBefore, pointsBefore] = [downloads(), h.brazeDataPoints()];
      const first = await sync();
      assert.deepEqual(
        [first.users, first.created, first.written, first.failed],
        [identified.length, identified.length, identified.length, 0],
      );
      assert.equal(
        first.skipReasons['anonymous: no user id to address in Braze (a trait sync writes by user id only)'],
        anonymous || undefined,
      );
      assert.deepEqual([first.amplitudeDownloads, downloads() - downloadsBefore], [1, 1], 'one download for members and properties');
      let expectedPoints = 0;
      for (const { userId } of identified) {
        const expected = expectedAttributes(propertiesOf(userId!));
        assert.deepEqual(audAttributes(userId!), expected, `attributes of ${userId}, typed from the file's text`);
        expectedPoints += Object.keys(expected).length;
      }
      assert.equal(first.dataPoints, expectedPoints);
      assert.equal(h.brazeDataPoints() - pointsBefore, first.dataPoints, 'our count equals Braze’s');

      [downloadsBefore, pointsBefore] = [downloads(), h.brazeDataPoints()];
      const rerun = await sync();
      assert.deepEqual([rerun.audienceUnchanged, rerun.amplitudeDownloads, rerun.brazeRequests], [true, 0, 0]);
      assert.equal(downloads(), downloadsBefore, 'lastComputed has not moved: no download spent');

      // One member's plan changes, and the cohort recomputes with one more member.
      const changed = identified[0]!.userId!;
      const properties = propertiesOf(changed);
      const plan = properties.plan === 'premium' ? 'free' : 'premium';
      await h.changeProperties(changed, { ...properties, plan });
      const joining = [...h.sandboxes.dataset.identities()].find(
        (user) => user.userId && !identified.some((member) => member.amplitudeId === user.amplitudeId),
      )!;
      h.sandboxes.dataset.addCohortMembers(COHORT, [joining.amplitudeId]);
      const joinerPoints = Object.keys(expectedAttributes(propertiesOf(joining.userId!))).length;
      pointsBefore = h.brazeDataPoints();
      const third = await sync();
      assert.deepEqual([third.amplitudeDownloads, third.users, third.created, third.updated], [1, identified.length + 1, 1, 1]);
      assert.deepEqual([third.set, third.dataPoints], [1 + joinerPoints, 1 + joinerPoints], 'the new plan and the new member only');
      assert.equal(h.brazeDataPoints() - pointsBefore, third.dataPoints);
      assert.equal(audAttributes(changed).aud_plan, plan);
      assert.deepEqual(audAttributes(joining.userId!), expectedAttributes(propertiesOf(joining.userId!)));
    });
  });
});

describe('trait sync: the window, and what Braze would not take', () => {
  test('a user last active before the window is not synced; once they come back, they are', async () => {
    await h.ingest(hoursAgo(10 * DAY_HOURS));
    const weekAgo = Date.now() - 7 * DAY_HOURS * 3_600_000;
    const outside = (await h.indexedUsers()).filter((user) => user.lastEventMs < weekAgo);
    const away = [...(await h.identifiedUsers()).entries()].filter(([userId]) =>
      outside.some((user) => user.userKey === `user_id:${userId}`),
    );
    assert.ok(away.length > 0, 'some users were last active 10 days ago');
    const input = { name: 'window', properties: ['plan'], attributePrefix: 'window_', windowDays: 7 };
    const first = await h.sync(input);
    assert.equal(first.skipReasons['last active before the window'], outside.length);
    const [userId, properties] = away[0]!;
    assert.equal(h.brazeAttributes(userId)?.window_plan, undefined, 'not synced while away');

    await h.changeProperties(userId, properties); // they come back: a new event today
    const second = await h.sync(input);
    assert.deepEqual([second.created, second.dataPoints], [1, 1]);
    assert.equal(h.brazeAttributes(userId)?.window_plan, properties.plan);
  });

  test('an over-long string and a type mismatch are reported per user; Braze’s own rejections map to the user', async () => {
    const users = [...(await h.identifiedUsers(Date.now() - 7 * DAY_HOURS * 3_600_000)).entries()];
    const [longUser, longProperties] = users[0]!;
    const [blockedUser] = users[1]!;
    await h.changeProperties(longUser, { ...longProperties, plan: 'x'.repeat(300) });
    h.sandboxes.braze.control.setBlockedExternalIds([blockedUser]);
    try {
      const result = await h.sync({
        name: 'rejects',
        properties: ['plan', 'level'],
        attributePrefix: 'rejects_',
        types: { rejects_level: 'boolean' },
      });
      assert.equal(result.skipReasons['"rejects_plan" is a string over 255 characters'], 1);
      assert.equal(
        result.skipReasons['"rejects_level" is a number where the sync\'s type is boolean'],
        result.users,
        'every level is a number',
      );
      assert.deepEqual(result.failureReasons, { 'provided external_id is blacklisted and disallowed': 1 });
      assert.equal(h.brazeAttributes(longUser)?.rejects_plan, undefined, 'the over-long value is not cut and sent');
      assert.equal(h.brazeAttributes(blockedUser)?.rejects_plan, undefined);
    } finally {
      h.sandboxes.braze.control.setBlockedExternalIds([]);
    }
    const retried = await h.sync({
      name: 'rejects',
      properties: ['plan', 'level'],
      attributePrefix: 'rejects_',
      types: { rejects_level: 'boolean' },
    });
    assert.deepEqual([retried.written, retried.failed], [1, 0], 'the user Braze refused is sent again next run, and only they');
  });
});

describe('trait sync: computations and recommendations through the User Profile API', () => {
  test('computations become numbers, recommendations string arrays (a default for the control group); runs span the audience within the limit', async () => {
    // The audience is who the hours ingested before were active: its size follows the time of day the tests run.
    const audience = (await h.identifiedUsers(Date.now() - 90 * DAY_HOURS * 3_600_000)).size;
    assert.ok(audience >= 100, `an audience of ${audience}`);
    // Fetches a run may make: the audience takes two runs, the second with some to spare.
    const perRun = Math.ceil(audience / 2) + 1;
    const input = {
      name: 'profiles',
      computations: ['lifetime_spend', 'songs_played_30d'],
      recommendations: [{ id: 'rec-top-picks', attribute: 'top_picks', controlDefault: ['editors-choice'] }],
      maxProfileFetches: perRun,
    };
    const before = h.sandboxes.amplitude.control.profileRequestTotals();

    const first = await h.sync(input);
    assert.equal(first.profileApiRequests, perRun);
    assert.deepEqual(first.profiles, { audience, fetched: perRun, fetchedWithin24h: perRun });
    assert.equal(first.created + first.updated, perRun, 'only fetched users get profile attributes');
    // The next run fetches the users never fetched first, then refreshes the stalest: nobody twice in a run.
    const second = await h.sync(input);
    assert.equal(second.profileApiRequests, perRun);
    assert.deepEqual(second.profiles, { audience, fetched: audience, fetchedWithin24h: audience });
    const after = h.sandboxes.amplitude.control.profileRequestTotals();
    assert.deepEqual(
      [after.answered - before.answered, after.refused - before.refused],
      [2 * perRun, 0],
      'every request answered, none over the limit',
    );

    // The audience (active within the 90 days) is exactly who got the attributes, each with Amplitude's own values.
    const inAudience = await h.identifiedUsers(Date.now() - 90 * DAY_HOURS * 3_600_000);
    let checked = 0;
    for (const userId of (await h.identifiedUsers()).keys()) {
      const user = h.sandboxes.dataset.user(h.sandboxes.dataset.indexOfUserId(userId)!);
      const attributes = h.brazeAttributes(userId) ?? {};
      assert.equal('lifetime_spend' in attributes, inAudience.has(userId), `${userId} has the attributes only if in the audience`);
      if (!inAudience.has(userId)) continue;
      checked += 1;
      assert.equal(attributes.lifetime_spend, Number(user.computations.lifetime_spend));
      assert.equal(attributes.songs_played_30d, Number(user.computations.songs_played_30d));
      const picks = user.recommendations.find((rec) => rec.rec_id === 'rec-top-picks')!;
      assert.deepEqual(attributes.top_picks, picks.is_control ? ['editors-choice'] : [...new Set(picks.items)]);
    }
    assert.equal(checked, audience, 'every user of the audience was checked');
    const rerun = await h.sync({ ...input, maxProfileFetches: 1 });
    assert.deepEqual([rerun.profileApiRequests, rerun.dataPoints], [1, 0], 'an unchanged profile writes nothing');
  });
});

describe('trait sync from the Temporal CLI and ampbraze, as the README shows it', () => {
  const cliEnv = () => ({ ...testTemporalEnv(), TEMPORAL_TASK_QUEUE: h.taskQueue });

  test('`temporal workflow start` with the input as JSON', async () => {
    const workflowId = `trait-sync-cli-${Date.now()}`;
    // Read before the start: the run may create users before `temporal` has returned.
    const externalIdsBefore = new Set([...h.sandboxes.braze.control.users()].map((profile) => profile.externalId));
    await temporal(
      'workflow',
      'start',
      '--task-queue',
      h.taskQueue,
      '--type',
      'traitSync',
      '--workflow-id',
      workflowId,
      '--input',
      '{"name":"cli","properties":["plan","ltv"],"attributePrefix":"cli_"}',
    );
    const result = await h.env.client.workflow.getHandle<typeof traitSync>(workflowId).result();
    assert.ok(result.written > 0 && result.failed === 0);
    // Braze's own view: every user written has the new attributes, and the users it lacked were created.
    const written = [...h.sandboxes.braze.control.users()].filter((profile) =>
      [...(profile.customAttributes?.keys() ?? [])].some((name) => name.startsWith('cli_')),
    );
    assert.equal(written.length, result.written, 'a new attribute for every user with a value Braze takes');
    // The users Braze lacked were created, with them. (`created` counts users the snapshot had never seen, some of
    // whom Braze had from elsewhere.)
    const createdInBraze = [...h.sandboxes.braze.control.users()].filter((profile) => !externalIdsBefore.has(profile.externalId));
    assert.ok(
      createdInBraze.every((profile) => written.includes(profile)),
      'every profile Braze created has the new attributes',
    );
    assert.ok(createdInBraze.length <= result.created, `${createdInBraze.length} created in Braze, ${result.created} new to the snapshot`);
  });

  test('`temporal schedule create` as written (daily at 04:30, skipping overlaps); a trigger runs it now', async () => {
    const scheduleId = 'trait-sync-billing-schedule';
    const input = { name: 'billing', properties: ['plan', 'ltv'], attributePrefix: 'amp_' };
    await temporal(...(await readmeTemporalCommand(`temporal schedule create --schedule-id ${scheduleId}`, h.taskQueue)));
    const schedule = h.env.client.schedule.getHandle(scheduleId);
    try {
      const described = await schedule.describe();
      assert.equal(described.policies.overlap, 'SKIP');
      assert.deepEqual(described.action.type === 'startWorkflow' && described.action.args, [input]);
      await temporal('schedule', 'trigger', '--schedule-id', scheduleId);
      let recent = (await schedule.describe()).info.recentActions;
      for (let i = 0; i < 150 && recent.length === 0; i++) {
        await new Promise((resolve) => setTimeout(resolve, 200));
        recent = (await schedule.describe()).info.recentActions;
      }
      const run = recent[0]!.action.workflow;
      const result = await h.env.client.workflow.getHandle<typeof traitSync>(run.workflowId, run.firstExecutionRunId).result();
      const users = await h.identifiedUsers();
      assert.deepEqual([result.syncId, result.users, result.failed], ['trait-sync-billing', users.size, 0]);
      for (const [userId, properties] of users) {
        if (typeof properties.plan === 'string' && properties.plan.length > 255) continue; // reported, never sent
        const attributes = h.brazeAttributes(userId);
        assert.deepEqual([attributes?.amp_plan, attributes?.amp_ltv], [properties.plan ?? undefined, properties.ltv ?? undefined], userId);
      }
    } finally {
      await schedule.delete();
    }
  });

  test('`traits sync --wait` prints the result; `traits status` reports the run', async () => {
    const users = await h.identifiedUsers();
    const flags = ['--properties', PROPERTIES.join(','), '--prefix', 'cli2_', '--name', 'cli2'];
    const synced = await ampbraze(['traits', 'sync', ...flags, '--wait'], cliEnv());
    assert.equal(synced.code, 0, synced.stderr);
    assert.match(synced.stdout, /^Started trait-sync-cli2$/m);
    const counts = new RegExp(
      `^Done, trait-sync-cli2: ${users.size} users in the window \\((\\d+) new, (\\d+) updated, 0 unchanged\\)`,
      'm',
    ).exec(synced.stdout);
    assert.ok(counts, synced.stdout);
    assert.equal(Number(counts[1]) + Number(counts[2]), users.size, 'every user gets the new attributes');
    const status = await ampbraze(['traits', 'status', ...flags], cliEnv());
    assert.equal(status.code, 0, status.stderr);
    assert.match(status.stdout, new RegExp(`^done … ${users.size} users written · 0 failed · \\d+ data points$`, 'm'));
    const [userId, properties] = [...users].find(([, values]) => typeof values.plan === 'string' && values.plan.length <= 255)!;
    assert.deepEqual(h.brazeAttributes(userId), { ...h.brazeAttributes(userId), ...prefixed(properties, 'cli2_') });
  });

  test('`traits schedule` creates a daily schedule pinned to a time, skipping overlapping runs', async () => {
    const created = await ampbraze(
      ['traits', 'schedule', '--properties', 'plan', '--name', 'nightly', '--cadence', 'daily', '--at', '04:30'],
      cliEnv(),
    );
    assert.equal(created.code, 0, created.stderr);
    const schedule = h.env.client.schedule.getHandle('trait-sync-nightly-schedule');
    try {
      const described = await schedule.describe();
      assert.equal(described.policies.overlap, 'SKIP');
      assert.equal(described.action.type === 'startWorkflow' && described.action.workflowType, 'traitSync');
      const [calendar] = described.spec.calendars ?? [];
      assert.deepEqual([calendar?.hour, calendar?.minute], [[{ start: 4, end: 4, step: 1 }], [{ start: 30, end: 30, step: 1 }]]);
    } finally {
      await schedule.delete();
    }
  });
});
