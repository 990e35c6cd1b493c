/**
 * The store's event-pipeline primitives, on every store: the activity index (latest event by event time wins),
 * staged events planned into pages of events not yet sent, the sent-event ledger (an event is claimed once, by
 * any run, and only an answered refusal releases it), and incremental pruning.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { StagedEvent, InspectableStore, UserActivity } from '../src/store/index.js';
import { forEachStore, openFreshStore } from './helpers/stores.js';

const HOUR = 3_600_000;
const eventKey = (index: number) => `insert:${String(index).padStart(6, '0')}`;
const event = (index: number): StagedEvent => ({
  eventKey: eventKey(index),
  body: { name: 'Song Played', time: new Date(index * 1000).toISOString(), n: index },
});
const range = (count: number) => Array.from({ length: count }, (_, index) => index);

forEachStore((kind) => {
  let store: InspectableStore;
  before(async () => {
    ({ store } = await openFreshStore(kind));
  });
  after(async () => {
    await store.close();
  });

  async function allActiveUsers(sinceMs = 0): Promise<UserActivity[]> {
    const users: UserActivity[] = [];
    let afterKey: string | undefined;
    do {
      const page = await store.activeUsers({ afterKey, limit: 2, sinceMs });
      users.push(...page.items);
      afterKey = page.nextAfterKey;
    } while (afterKey !== undefined);
    return users;
  }

  describe('activity index', () => {
    test('keeps each user’s latest event by event time, whatever order hours are processed in', async () => {
      const checkpoint = { rowsConsumed: 1, bytesConsumed: 0 };
      await store.stageEvents(
        'hour-2',
        { events: [], activity: [{ userKey: 'user_id:a', lastEventMs: 2 * HOUR, properties: { plan: 'premium' } }] },
        checkpoint,
      );
      // An earlier hour processed late (a backfill) must not overwrite the newer values.
      await store.stageEvents(
        'hour-1',
        { events: [], activity: [{ userKey: 'user_id:a', lastEventMs: 1 * HOUR, properties: { plan: 'free' } }] },
        checkpoint,
      );
      await store.stageEvents(
        'hour-3',
        {
          events: [],
          activity: [
            { userKey: 'device_id:d1', lastEventMs: 3 * HOUR, properties: {} },
            { userKey: 'user_id:a', lastEventMs: 3 * HOUR, properties: { plan: 'family' } },
          ],
        },
        checkpoint,
      );
      assert.deepEqual(await allActiveUsers(), [
        { userKey: 'device_id:d1', lastEventMs: 3 * HOUR, properties: {} },
        { userKey: 'user_id:a', lastEventMs: 3 * HOUR, properties: { plan: 'family' } },
      ]);
      assert.deepEqual(await store.stagingCheckpoint('hour-3'), checkpoint);
    });

    test('prunes users who left the window, a bounded batch at a time', async () => {
      await store.stageEvents(
        'old',
        { events: [], activity: range(5).map((i) => ({ userKey: `user_id:old-${i}`, lastEventMs: i, properties: {} })) },
        { rowsConsumed: 5, bytesConsumed: 0 },
      );
      assert.equal((await allActiveUsers()).length, 7);
      assert.equal(await store.pruneInactiveUsers(HOUR, 3), 3);
      assert.equal(await store.pruneInactiveUsers(HOUR, 3), 2);
      assert.equal(await store.pruneInactiveUsers(HOUR, 3), 0);
      assert.deepEqual(
        (await allActiveUsers()).map((user) => user.userKey),
        ['device_id:d1', 'user_id:a'],
      );
      assert.deepEqual(
        (await allActiveUsers(3 * HOUR + 1)).map((user) => user.userKey),
        [],
      );
    });
  });

  describe('staged events and the sent-event ledger', () => {
    test('plans pages of the events not sent yet, and a page reads only what is still unsent', async () => {
      await store.stageEvents('run-1', { events: range(10).map(event), activity: [] }, { rowsConsumed: 10, bytesConsumed: 0 });
      // Staged again (a retried attempt): the first body wins, nothing doubles.
      await store.stageEvents(
        'run-1',
        { events: [{ eventKey: eventKey(0), body: { name: 'other' } }], activity: [] },
        { rowsConsumed: 10, bytesConsumed: 0 },
      );
      assert.equal(await store.stagedEventCount('run-1'), 10);
      const [claimed] = await store.claimEvents([
        { runId: 'earlier', requestKey: 'event:0|x@1#0', eventKeys: [eventKey(1), eventKey(2)], nowMs: 1 },
      ]);
      assert.deepEqual(claimed, [eventKey(1), eventKey(2)]);

      assert.deepEqual(await store.planEventPages('run-1', 3), { events: 8, pages: 3 });
      const pages = [];
      for (let page = 0; page < 3; page++) {
        const pageRange = await store.plannedPage('run-1', 'event', page);
        assert.ok(pageRange);
        pages.push((await store.unsentEvents('run-1', { ...pageRange, limit: 100 })).items.map((item) => item.eventKey));
      }
      assert.deepEqual(
        pages,
        [
          [0, 3, 4],
          [5, 6, 7],
          [8, 9],
        ].map((page) => page.map(eventKey)),
      );
      assert.equal(await store.plannedPage('run-1', 'event', 3), undefined);
      const [first] = (await store.unsentEvents('run-1', { limit: 1 })).items;
      assert.deepEqual(first, event(0));
    });

    test('an event is claimed once across runs and requests; a released claim can be claimed again', async () => {
      const claims = await store.claimEvents([
        { runId: 'run-1', requestKey: 'event:0|a@1#0', eventKeys: [eventKey(0), eventKey(1), eventKey(3)], nowMs: 10 },
        { runId: 'run-1', requestKey: 'event:0|b@1#0', eventKeys: [eventKey(4), eventKey(3)], nowMs: 10 },
      ]);
      assert.deepEqual(claims, [[eventKey(0), eventKey(3)], [eventKey(4)]]);
      assert.equal(await store.unconfirmedEventCount('run-1'), 3);
      await store.recordSentRequests([
        { runId: 'run-1', syncId: 'events', requestKey: 'event:0|a@1#0', day: '2026-12-02', dataPoints: 2, snapshot: {}, rejected: [] },
      ]);
      assert.equal(await store.unconfirmedEventCount('run-1'), 1);
      await store.releaseEventClaims('run-1', 'event:0|b@1#0');
      assert.equal(await store.unconfirmedEventCount('run-1'), 0);
      assert.deepEqual(await store.claimEvents([{ runId: 'run-2', requestKey: 'event:0|c@1#0', eventKeys: [eventKey(4)], nowMs: 20 }]), [
        [eventKey(4)],
      ]);
    });

    test('the ledger is pruned by age, a bounded batch at a time; staging is cleared with the run', async () => {
      assert.equal(await store.pruneSentEvents(15, 2), 2);
      assert.equal(await store.pruneSentEvents(15, 2), 2);
      assert.equal(await store.pruneSentEvents(15, 2), 0);
      assert.deepEqual(await store.claimEvents([{ runId: 'run-3', requestKey: 'k', eventKeys: [eventKey(0), eventKey(4)], nowMs: 30 }]), [
        [eventKey(0)],
      ]);
      await store.clearStaging('run-1');
      assert.equal(await store.stagedEventCount('run-1'), 0);
      assert.equal(await store.plannedPage('run-1', 'event', 0), undefined);
    });
  });
});
