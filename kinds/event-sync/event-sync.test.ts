/**
 * The event sync end to end on the SQLite store: the core scenarios (shared with the PostgreSQL file) and the
 * rest — out-of-order hours, the active window, the loop guard, per-object failures, timeouts, one run per hour,
 * schedules and backfills, the Temporal CLI and `ampbraze events`.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ScheduleOverlapPolicy, WorkflowFailedError } from '@temporalio/client';
import { scheduleEventSync, startEventSync } from '../../src/client.js';
import { exportHourOf, exportHourStart } from './input.js';
import type { SandboxEvent } from '../../src/sandbox/dataset.js';
import { EXPORT_HOUR } from '../../src/temporal/search-attributes.js';
import type { eventSync, EventSyncResult } from './workflow.js';
import { ampbraze, temporal } from '../../test/helpers/cli.js';
import { added, coreEventScenarios, countsOf, EventSyncHarness, hoursAgo } from './test-scenarios.js';
import { SQLITE } from '../../test/helpers/stores.js';
import { testTemporalEnv } from '../../test/helpers/temporal.js';

const h = new EventSyncHarness(SQLITE);

coreEventScenarios(h);

const { sync, eventsOf, brazeEventCounts } = h;
const HOUR_MS = 3_600_000;
const DAY_HOURS = 24;
const userKeyOf = (event: SandboxEvent) => (event.user_id ? `user_id:${event.user_id}` : `device_id:${event.device_id}`);
const timeOf = (event: SandboxEvent) => Date.parse(`${event.event_time.replace(' ', 'T')}Z`);

describe('event sync: the activity index over many hours', () => {
  test('hours processed out of order: each user keeps the latest event by event time, and its properties', async () => {
    // Two hours ten apart with users active in both: the older hour, processed last, must not win for them.
    const usersOf = (hour: string) => new Set(eventsOf(hour).map(userKeyOf));
    let pair: { newer: string; older: string; inBoth: string[] } | undefined;
    for (let back = 30; !pair && back < 30 + 24 * 20; back++) {
      const [newer, older] = [hoursAgo(back), hoursAgo(back + 10)];
      const inBoth = [...usersOf(newer)].filter((userKey) => usersOf(older).has(userKey));
      if (inBoth.length > 0) pair = { newer, older, inBoth };
    }
    assert.ok(pair, 'the dataset has two hours ten apart with users active in both');
    const { newer, older, inBoth } = pair;
    await sync({ hour: newer });
    await sync({ hour: older }); // a backfill of an earlier hour, after the later one
    const latest = new Map<string, SandboxEvent>();
    for (const event of [...eventsOf(newer), ...eventsOf(older)]) {
      const seen = latest.get(userKeyOf(event));
      if (!seen || timeOf(event) > timeOf(seen)) latest.set(userKeyOf(event), event);
    }
    const users = await h.activeUsers();
    const checked: string[] = [];
    for (const [userKey, event] of latest) {
      const user = users.get(userKey);
      assert.ok(user, `${userKey} is active`);
      // The user may also be in hours other tests ingested; never older than their latest here.
      assert.ok(user.lastEventMs >= timeOf(event));
      if (user.lastEventMs !== timeOf(event)) continue;
      assert.deepEqual(user.properties, event.user_properties);
      checked.push(userKey);
    }
    const checkedInBoth = inBoth.filter((userKey) => checked.includes(userKey));
    assert.ok(checkedInBoth.length > 0, `of ${inBoth.length} users active in both hours, some were checked (others are in later hours)`);
    assert.ok(checked.length >= latest.size / 2, `${checked.length} of ${latest.size} users checked`);
  });

  test('a user last active 91 days ago leaves the window and the store; one who comes back re-enters', async () => {
    const longAgo = hoursAgo(91 * DAY_HOURS + 2);
    const result = await sync({ hour: longAgo });
    assert.ok(result.events > 0 && result.usersPruned > 0, 'the old hour had users, and they were pruned');
    const users = await h.activeUsers();
    const gone = eventsOf(longAgo)
      .map(userKeyOf)
      .filter((userKey) => !users.has(userKey));
    assert.ok(gone.length > 0, 'users active only 91 days ago are not in the index');
    for (const user of users.values())
      assert.ok(user.lastEventMs >= Date.now() - 90 * DAY_HOURS * HOUR_MS - HOUR_MS, 'nobody outside the window stays');
    // Find a recent hour in which one of them is active again.
    const returning = [...Array(80).keys()]
      .map((offset) => hoursAgo(50 + offset))
      .find((hour) => eventsOf(hour).some((event) => gone.includes(userKeyOf(event))));
    assert.ok(returning, 'some user who left comes back within the window');
    await sync({ hour: returning });
    const back = eventsOf(returning)
      .map(userKeyOf)
      .filter((userKey) => gone.includes(userKey));
    const now = await h.activeUsers();
    for (const userKey of back) assert.ok(now.has(userKey), `${userKey} re-entered the window`);
  });
});

describe('event sync: one run per hour', () => {
  test('two runs of one hour started together (a manual start and a schedule’s): each event reaches Braze once', async () => {
    const hour = hoursAgo(11);
    const identified = eventsOf(hour).filter((e) => e.user_id);
    const before = brazeEventCounts();
    const pointsBefore = h.brazeDataPoints();
    const [manual, scheduled] = await Promise.all([
      startEventSync(h.env.client, { hour, eventTypes: ['*'], pageSize: 5 }, { taskQueue: h.taskQueue }),
      startEventSync(
        h.env.client,
        { hour, eventTypes: ['*'], pageSize: 5 },
        { taskQueue: h.taskQueue, workflowId: `event-sync-${hour}-2026-12-01T00:00:00Z` },
      ),
    ]);
    const results = await Promise.all([manual.result(), scheduled.result()]);
    const skipped = results.filter((result) => result.runInProgress !== undefined);
    assert.ok(skipped.length <= 1, 'at most one of them stood aside');
    assert.equal(
      results.reduce((sum, result) => sum + result.forwarded, 0),
      identified.length,
      'the hour’s events were forwarded once, between them',
    );
    assert.equal(h.brazeDataPoints() - pointsBefore, identified.length, 'exactly the minimum data points');
    assert.deepEqual(added(brazeEventCounts(), before), countsOf(identified));
  });
});

describe('event sync: what never goes back to Braze, and what Braze would refuse', () => {
  test('Currents events forwarded into Amplitude are never streamed back; properties Braze refuses are left out and counted', async () => {
    const user = [...h.sandboxes.dataset.identities()].find((identity) => identity.userId && identity.existsInBraze)!;
    const userId = user.userId!;
    const hour = exportHourOf(Date.now());
    await h.context.amplitude.ingestEvents(
      [
        { event_type: '[Appboy] Email Opened', user_id: userId, insert_id: `loop-1-${Date.now()}`, library: 'Braze' },
        { event_type: 'Wishlist Shared', user_id: userId, insert_id: `loop-2-${Date.now()}`, library: 'Braze' },
        {
          event_type: 'Wishlist Shared',
          user_id: userId,
          insert_id: `ours-${Date.now()}`,
          event_properties: { $internal: 1, time: 'noon', note: 'x'.repeat(300), items: 3 },
        },
      ],
      { api: 'httpapi' },
    );
    const result = await sync({ hour, eventTypes: ['*'] });
    assert.equal(result.skipReasons['came from Braze (Currents): never streamed back'], 2);
    assert.equal(
      Object.values(result.droppedProperties).reduce((sum, n) => sum + n, 0),
      3,
    );
    const ours = h.sandboxes.braze.control
      .events({ externalId: userId })
      .filter((event) => event.name === 'Wishlist Shared' || event.name.startsWith('[Appboy]'));
    assert.deepEqual(
      ours.map((event) => [event.name, event.properties]),
      [['Wishlist Shared', { items: 3 }]],
    );
  });
});

describe('event sync: failures on both vendors', () => {
  test('Braze’s per-object rejections are mapped to the exact events and reported; the rest are delivered', async () => {
    const hour = hoursAgo(9);
    const identified = eventsOf(hour).filter((e) => e.user_id);
    const blocked = identified[0]!.user_id!;
    const blockedEvents = identified.filter((e) => e.user_id === blocked).length;
    h.sandboxes.braze.control.setBlockedExternalIds([blocked]);
    try {
      const result = await sync({ hour, eventTypes: ['*'] });
      assert.equal(result.failed, blockedEvents);
      assert.equal(result.forwarded, identified.length - blockedEvents);
      assert.deepEqual(Object.values(result.failureReasons), [blockedEvents]);
      assert.match(Object.keys(result.failureReasons)[0]!, /blacklisted|disallowed|blocked/i);
      // Rejected events were answered, not lost in flight: a rerun does not resend them either.
      const rerun = await sync({ hour, eventTypes: ['*'] });
      assert.equal(rerun.brazeRequests, 0);
    } finally {
      h.sandboxes.braze.control.setBlockedExternalIds([]);
    }
  });

  test('an Amplitude 5xx/429 storm on the export still ingests the whole hour once', async () => {
    const hour = hoursAgo(10);
    const identified = eventsOf(hour).filter((e) => e.user_id);
    const before = brazeEventCounts();
    h.sandboxes.amplitude.control.setFaults({ serverErrorRate: 0.5, rateLimitBurstEvery: 2, rateLimitBurstLength: 1 });
    try {
      const result = await sync({ hour, eventTypes: ['*'] });
      assert.equal(result.events, eventsOf(hour).length);
      assert.equal(result.forwarded, identified.length);
    } finally {
      h.sandboxes.amplitude.control.setFaults({});
    }
    assert.deepEqual(added(brazeEventCounts(), before), countsOf(identified));
  });
});

describe('event sync: Export API timeouts', () => {
  test('a few 504s are retried; an hour Amplitude keeps timing out on fails the run saying so', async () => {
    const hour = hoursAgo(12);
    h.sandboxes.amplitude.control.setFaults({ exportTimeouts: 2 });
    const retried = await sync({ hour });
    assert.equal(retried.events, eventsOf(hour).length);
    h.sandboxes.amplitude.control.setFaults({ exportTimeouts: 100 });
    try {
      await assert.rejects(sync({ hour: hoursAgo(13) }), (error: unknown) => {
        assert.ok(error instanceof WorkflowFailedError);
        assert.match(String(error.cause?.message), /timed out \(504\) on hour \d{8}T\d{2} 4 times/);
        return true;
      });
    } finally {
      h.sandboxes.amplitude.control.setFaults({});
    }
  });
});

describe('event sync: an hour over the Export API size limit', () => {
  test("the 400 fails the run at once, with Amplitude's message and the hour", async () => {
    const hour = hoursAgo(26);
    h.sandboxes.amplitude.control.setExportMaxBytes(1_000);
    try {
      await assert.rejects(sync({ hour }), (error: unknown) => {
        assert.ok(error instanceof WorkflowFailedError);
        assert.match(String(error.cause?.message), new RegExp(`refused hour ${hour} \\(400: Raw data export exceeds the size limit`));
        return true;
      });
    } finally {
      h.sandboxes.amplitude.control.setExportMaxBytes(4 * 1024 ** 3);
    }
  });
});

describe('event sync: the hourly schedule', () => {
  test('a scheduled run processes the hour lagHours before its time; a schedule backfill replays past hours in order, once', async () => {
    const schedule = await scheduleEventSync(
      h.env.client,
      { eventTypes: ['*'], lagHours: 3 },
      { scheduleId: `events-${Date.now()}`, taskQueue: h.taskQueue, paused: true },
    );
    try {
      // Two runs of the hourly schedule, 21 and 20 hours ago: they process the hours 3 hours before each.
      const nominal = exportHourStart(hoursAgo(21))!;
      const hours = [exportHourOf(nominal - 3 * HOUR_MS), exportHourOf(nominal - 2 * HOUR_MS)];
      const pointsBefore = h.brazeDataPoints();
      await schedule.backfill({
        start: new Date(nominal - 60_000),
        end: new Date(nominal + HOUR_MS + 60_000),
        overlap: ScheduleOverlapPolicy.BUFFER_ALL,
      });
      const results = await Promise.all(hours.map((hour) => resultOfScheduledRun(schedule.scheduleId, hour)));
      const expected = hours.map((hour) => eventsOf(hour).filter((e) => e.user_id).length);
      assert.deepEqual(
        results.map((r) => [r.hour, r.forwarded]),
        hours.map((hour, i) => [hour, expected[i]]),
      );
      assert.equal(h.brazeDataPoints() - pointsBefore, expected[0]! + expected[1]!);
    } finally {
      await schedule.delete();
    }
  });
});

/** Waits for the run a schedule started for `hour` (found by its search attributes) and returns its result. */
async function resultOfScheduledRun(scheduleId: string, hour: string): Promise<EventSyncResult> {
  for (let attempt = 0; attempt < 150; attempt++) {
    for await (const run of h.env.client.workflow.list({
      query: `WorkflowType = 'eventSync' AND ${EXPORT_HOUR.name} = '${hour}' AND TemporalScheduledById = '${scheduleId}'`,
    })) {
      return h.env.client.workflow.getHandle<typeof eventSync>(run.workflowId, run.runId).result();
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  throw new Error(`no scheduled run of hour ${hour}`);
}

describe('event sync from the Temporal CLI, as the README shows it', () => {
  test('`temporal workflow start`, then `temporal schedule create` and `temporal schedule backfill`', async () => {
    const hour = hoursAgo(20);
    const workflowId = `event-sync-${hour}`;
    await temporal(
      'workflow',
      'start',
      '--task-queue',
      h.taskQueue,
      '--type',
      'eventSync',
      '--workflow-id',
      workflowId,
      '--input',
      `{"hour":"${hour}","eventTypes":["Purchase Completed"]}`,
    );
    const result = await h.env.client.workflow.getHandle<typeof eventSync>(workflowId).result();
    assert.equal(result.forwarded, eventsOf(hour).filter((e) => e.user_id && e.event_type === 'Purchase Completed').length);

    const scheduleId = `event-sync-schedule-${Date.now()}`;
    await temporal(
      'schedule',
      'create',
      '--schedule-id',
      scheduleId,
      '--cron',
      '0 * * * *',
      '--overlap-policy',
      'BufferAll',
      '--catchup-window',
      '24h',
      '--task-queue',
      h.taskQueue,
      '--type',
      'eventSync',
      '--workflow-id',
      'event-sync',
      '--input',
      '{"eventTypes":["Purchase Completed"]}',
    );
    try {
      // The run at `nominal` processes the hour 3 hours before it, which the one-off start above already sent.
      const nominal = exportHourStart(hour)! + 3 * HOUR_MS;
      const iso = (ms: number) => new Date(ms).toISOString().replace('.000', '');
      await temporal(
        'schedule',
        'backfill',
        '--schedule-id',
        scheduleId,
        '--overlap-policy',
        'BufferAll',
        '--start-time',
        iso(nominal - 60_000),
        '--end-time',
        iso(nominal + 60_000),
      );
      const replayed = await resultOfScheduledRun(scheduleId, hour);
      assert.deepEqual([replayed.forwarded, replayed.alreadySent], [0, result.forwarded], 'a backfilled hour sends nothing twice');
    } finally {
      await temporal('schedule', 'delete', '--schedule-id', scheduleId);
    }
  });
});

describe('ampbraze events', () => {
  const cliEnv = () => ({ ...testTemporalEnv(), TEMPORAL_TASK_QUEUE: h.taskQueue });

  test('`events sync <hour> --wait` prints the result; `events status` reports the run', async () => {
    const hour = hoursAgo(15);
    const expected = eventsOf(hour).filter((e) => e.user_id && e.event_type === 'Page Viewed').length;
    const synced = await ampbraze(['events', 'sync', hour, '--event-types', 'Page Viewed', '--wait'], cliEnv());
    assert.equal(synced.code, 0, synced.stderr);
    assert.match(synced.stdout, new RegExp(`^Started event-sync-${hour}$`, 'm'));
    assert.match(
      synced.stdout,
      new RegExp(`^Done, hour ${hour}: ${eventsOf(hour).length} events from \\d+ users; ${expected} forwarded`, 'm'),
    );
    const status = await ampbraze(['events', 'status', hour], cliEnv());
    assert.equal(status.code, 0, status.stderr);
    assert.match(status.stdout, new RegExp(`^done … hour ${hour} · ${expected} forwarded · 0 failed · ${expected} data points$`, 'm'));
  });

  test('`events backfill` runs every hour of the range once; repeated, it sends nothing', async () => {
    const [from, to] = [hoursAgo(18), hoursAgo(16)];
    const hours = [hoursAgo(18), hoursAgo(17), hoursAgo(16)];
    const expected = hours.reduce(
      (sum, hour) => sum + eventsOf(hour).filter((e) => e.user_id && e.event_type === 'Playlist Created').length,
      0,
    );
    const pointsBefore = h.brazeDataPoints();
    const first = await ampbraze(['events', 'backfill', '--from', from, '--to', to, '--event-types', 'Playlist Created'], cliEnv());
    assert.equal(first.code, 0, first.stderr);
    assert.match(first.stdout, new RegExp(`^Backfilled 3 hours: ${expected} events forwarded$`, 'm'));
    const again = await ampbraze(['events', 'backfill', '--from', from, '--to', to, '--event-types', 'Playlist Created'], cliEnv());
    assert.match(again.stdout, /^Backfilled 3 hours: 0 events forwarded$/m);
    assert.equal(h.brazeDataPoints() - pointsBefore, expected);
  });

  test('`events schedule` creates the hourly schedule, buffering overlapping runs', async () => {
    const created = await ampbraze(['events', 'schedule', '--event-types', 'Purchase Completed', '--at', '15'], cliEnv());
    assert.equal(created.code, 0, created.stderr);
    const schedule = h.env.client.schedule.getHandle('event-sync-schedule');
    try {
      const described = await schedule.describe();
      assert.equal(described.policies.overlap, 'BUFFER_ALL');
      assert.equal(described.action.type === 'startWorkflow' && described.action.workflowType, 'eventSync');
      const [calendar] = described.spec.calendars ?? [];
      assert.deepEqual(calendar?.minute, [{ start: 15, end: 15, step: 1 }]);
    } finally {
      await schedule.delete();
    }
  });
});
