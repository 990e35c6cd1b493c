/**
 * The event sync end to end — real Temporal, a real worker, the sandboxes over HTTP — on a store of a given kind:
 * event-sync.test.ts (SQLite) and event-sync-postgres.test.ts share this harness and the core scenarios.
 * Every test asserts on the Braze sandbox's own events and data-point count, and on the activity index.
 */
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import { WorkflowFailedError } from '@temporalio/client';
import { startEventSync } from '../../src/client.js';
import { exportHourOf, exportHourStart, type EventSyncInput } from './input.js';
import type { SandboxEvent } from '../../src/sandbox/dataset.js';
import type { UserActivity } from '../../src/store/store.js';
import type { TestStoreKind } from '../../test/helpers/stores.js';
import { WorkerHarness } from '../../test/helpers/worker-harness.js';

const HOUR_MS = 3_600_000;
/** The start of the hour the test run began in: every test names its hours from it, so no two tests share one. */
const BASE_MS = Math.floor(Date.now() / HOUR_MS) * HOUR_MS;
export const hoursAgo = (hours: number) => exportHourOf(BASE_MS - hours * HOUR_MS);

export class EventSyncHarness extends WorkerHarness {
  constructor(storeKind: TestStoreKind) {
    super(storeKind, { seed: 23, users: 3_000, dataset: { brazeKnownFraction: 1 } }, { queuePrefix: 'event-sync' });
  }

  /** Runs the hour under a workflow id of its own (as a rerun or a backfill would) and waits for its result. */
  sync = async (input: EventSyncInput) => {
    const handle = await startEventSync(this.env.client, input, {
      taskQueue: this.taskQueue,
      workflowId: `event-sync-${input.hour}-${Math.random()}`,
    });
    return handle.result();
  };

  eventsOf = (hour: string): SandboxEvent[] => [...this.sandboxes.dataset.eventsInHour(exportHourStart(hour)!)];

  /** How many of each custom event each Braze user holds: `<external_id or alias name> <name>` → count. */
  brazeEventCounts = (): Map<string, number> => {
    const counts = new Map<string, number>();
    for (const profile of this.sandboxes.braze.control.users()) {
      for (const [name, summary] of profile.customEvents ?? [])
        counts.set(`${profile.externalId ?? profile.aliases[0]?.alias_name} ${name}`, summary.count);
    }
    return counts;
  };

  activeUsers = async (): Promise<Map<string, UserActivity>> => {
    const users = new Map<string, UserActivity>();
    let afterKey: string | undefined;
    do {
      const page = await this.context.store.activeUsers({ afterKey, limit: 1_000, sinceMs: 0 });
      for (const user of page.items) users.set(user.userKey, user);
      afterKey = page.nextAfterKey;
    } while (afterKey !== undefined);
    return users;
  };
}

export function countsOf(
  events: readonly SandboxEvent[],
  keyOf: (event: SandboxEvent) => string | undefined = (e) => e.user_id ?? undefined,
): Map<string, number> {
  const counts = new Map<string, number>();
  for (const event of events) {
    const who = keyOf(event);
    if (who !== undefined) counts.set(`${who} ${event.event_type}`, (counts.get(`${who} ${event.event_type}`) ?? 0) + 1);
  }
  return counts;
}

export function added(after: Map<string, number>, before: Map<string, number>): Map<string, number> {
  const delta = new Map<string, number>();
  for (const [key, count] of after) if (count !== (before.get(key) ?? 0)) delta.set(key, count - (before.get(key) ?? 0));
  return delta;
}

/** What every store must get right: one hour end to end, reruns, ingest only, filters, empty hours, storms, aliases. */
export function coreEventScenarios(h: EventSyncHarness): void {
  const { sync, eventsOf, brazeEventCounts } = h;

  describe('event sync: one hour into the activity index and Braze', () => {
    // The first of these hours (no other test names them) whose events are of identified and anonymous users both.
    let hour: string;
    before(() => {
      const mixed = (candidate: string) => new Set(eventsOf(candidate).map((e) => e.user_id !== null)).size === 2;
      hour = [4, 19, 22, 23, 25, 27].map(hoursAgo).find(mixed)!;
    });

    test('all event types: identified users’ events land once each; anonymous ones are skipped with a reason', async () => {
      const events = eventsOf(hour);
      const identified = events.filter((e) => e.user_id);
      assert.ok(identified.length > 0 && identified.length < events.length, 'the hour has identified and anonymous events');
      const before = brazeEventCounts();
      const pointsBefore = h.brazeDataPoints();
      const result = await sync({ hour, eventTypes: ['*'], pageSize: 20 });
      assert.equal(result.events, events.length);
      assert.equal(result.forwarded, identified.length);
      assert.equal(result.skipped, events.length - identified.length);
      assert.match(Object.keys(result.skipReasons).join(), /anonymous/);
      assert.deepEqual(added(brazeEventCounts(), before), countsOf(identified));
      assert.equal(result.dataPoints, identified.length, 'one data point per event');
      assert.equal(h.brazeDataPoints() - pointsBefore, result.dataPoints, 'our count equals Braze’s');
      assert.equal(result.usersActive, new Set(events.map((e) => e.user_id ?? e.device_id)).size);
    });

    test('a rerun of the hour sends nothing and spends nothing', async () => {
      // Synced first here too (after the test above, a rerun itself), so that this test stands on its own.
      await sync({ hour, eventTypes: ['*'] });
      const requestsBefore = h.trackRequests();
      const pointsBefore = h.brazeDataPoints();
      const result = await sync({ hour, eventTypes: ['*'] });
      assert.deepEqual([result.forwarded, result.brazeRequests, result.dataPoints], [0, 0, 0]);
      assert.equal(result.alreadySent, eventsOf(hour).filter((e) => e.user_id).length);
      assert.equal(h.trackRequests(), requestsBefore);
      assert.equal(h.brazeDataPoints(), pointsBefore);
    });

    test('the activity index holds each user’s latest event time and its user properties', async () => {
      await sync({ hour, eventTypes: ['*'] });
      const users = await h.activeUsers();
      for (const event of eventsOf(hour)) {
        const key = event.user_id ? `user_id:${event.user_id}` : `device_id:${event.device_id}`;
        const user = users.get(key);
        assert.ok(user, `${key} is in the index`);
        assert.ok(user.lastEventMs >= Date.parse(event.event_time.replace(' ', 'T') + 'Z'));
      }
    });

    test('ingest only (no event types) records activity and sends nothing', async () => {
      const other = hoursAgo(5);
      const requestsBefore = h.trackRequests();
      const result = await sync({ hour: other });
      assert.equal(result.events, eventsOf(other).length);
      assert.deepEqual([result.forwarded, result.skipped, result.brazeRequests], [0, 0, 0]);
      assert.equal(h.trackRequests(), requestsBefore);
    });

    test('selected types with a property filter: only those events, with their properties', async () => {
      const other = hoursAgo(6);
      const songs = eventsOf(other).filter((e) => e.event_type === 'Song Played');
      const genre = String(songs.find((e) => e.user_id)?.event_properties.genre);
      const wanted = songs.filter((e) => e.user_id && e.event_properties.genre === genre);
      assert.ok(songs.length > wanted.length && wanted.length > 0, 'the hour has matching and other events');
      const before = brazeEventCounts();
      const result = await sync({ hour: other, eventTypes: ['Song Played'], propertyFilters: { 'Song Played': { genre: [genre] } } });
      assert.equal(result.forwarded, wanted.length);
      assert.deepEqual(added(brazeEventCounts(), before), countsOf(wanted));
    });

    test('a dry run ingests the hour and sends nothing; the real run then sends exactly what it planned', async () => {
      const other = hoursAgo(14);
      const requestsBefore = h.trackRequests();
      const dry = await sync({ hour: other, eventTypes: ['*'], dryRun: true });
      assert.equal(h.trackRequests(), requestsBefore);
      assert.deepEqual([dry.forwarded, dry.dataPoints], [0, 0]);
      const before = brazeEventCounts();
      const real = await sync({ hour: other, eventTypes: ['*'] });
      assert.equal(real.forwarded, dry.plan?.toSend);
      const identified = eventsOf(other).filter((e) => e.user_id);
      assert.deepEqual(added(brazeEventCounts(), before), countsOf(identified), 'Braze received exactly the planned events');
    });

    test('an hour with no data (404) is a normal, empty run', async () => {
      const result = await sync({ hour: hoursAgo(24 * 200), eventTypes: ['*'] });
      assert.deepEqual([result.events, result.forwarded, result.brazeRequests], [0, 0, 0]);
    });

    test('a Braze 5xx/429 storm still delivers every event exactly once', async () => {
      const other = hoursAgo(7);
      const identified = eventsOf(other).filter((e) => e.user_id);
      const before = brazeEventCounts();
      const pointsBefore = h.brazeDataPoints();
      h.sandboxes.braze.control.setFaults({ serverErrorRate: 0.3, rateLimitBurstEvery: 4, rateLimitBurstLength: 1 });
      try {
        const result = await sync({ hour: other, eventTypes: ['*'], pageSize: 10 });
        assert.equal(result.forwarded, identified.length);
        assert.equal(result.unconfirmed, 0);
        assert.equal(h.brazeDataPoints() - pointsBefore, result.dataPoints);
      } finally {
        h.sandboxes.braze.control.setFaults({});
      }
      assert.deepEqual(added(brazeEventCounts(), before), countsOf(identified));
    });

    test('anonymous users are addressed by a device_id alias when asked', async () => {
      const other = hoursAgo(8);
      const events = eventsOf(other);
      const before = brazeEventCounts();
      const result = await sync({ hour: other, eventTypes: ['*'], identifiers: ['user_id', 'device_id'] });
      assert.equal(result.skipped, 0);
      assert.equal(result.forwarded, events.length);
      assert.deepEqual(
        added(brazeEventCounts(), before),
        countsOf(events, (e) => e.user_id ?? e.device_id),
      );
    });

    test('bad input fails at once, naming each field', async () => {
      await assert.rejects(
        sync({ hour: '2026-12-01 10', eventTypes: [''], lagHours: -1 }),
        (error: unknown) => error instanceof Error && /hour/.test(error.message) && /lagHours/.test(error.message),
      );
      await assert.rejects(
        (async () => {
          // As typed into the Temporal UI or `temporal workflow start`: nothing checks it before the workflow does.
          const handle = await h.env.client.workflow.start('eventSync', {
            taskQueue: h.taskQueue,
            workflowId: `bad-${Date.now()}`,
            args: [{ hour: 'yesterday', eventTypes: [''] }],
          });
          await handle.result();
        })(),
        (error: unknown) =>
          error instanceof WorkflowFailedError &&
          /hour/.test(String(error.cause?.message)) &&
          /eventTypes/.test(String(error.cause?.message)),
      );
    });
  });
}
