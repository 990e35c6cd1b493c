/**
 * The store's profile fetches, on every store: what a trait sync fetched from Amplitude's User Profile API per user and
 * when, the queue of identified users to fetch next (new activity first, in key order, then the stalest fetches), the
 * counts of a pass, and their pruning with the activity index.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { MAX_ROWS_PER_TRANSACTION, type ProfileFetch, type InspectableStore, type UserActivity } from '../src/store/index.js';
import { forEachStore, openFreshStore } from './helpers/stores.js';

const HOUR = 3_600_000;
const SYNC = 'traits';
const OTHER_SYNC = 'traits-eu';
const values = (score: number) => ({ computations: { 'comp-1': score }, recommendations: { 'rec-1': [`item-${score}`] } });
const fetched = (userKey: string, hours: number, score = hours): ProfileFetch => ({
  userKey,
  fetchedAtMs: hours * HOUR,
  values: values(score),
});
const user = (userKey: string, hours: number): UserActivity => ({ userKey, lastEventMs: hours * HOUR, properties: {} });

forEachStore((kind) => {
  let store: InspectableStore;
  before(async () => {
    ({ store } = await openFreshStore(kind));
  });
  after(async () => {
    await store.close();
  });

  async function activity(users: readonly UserActivity[]): Promise<void> {
    await store.stageEvents('events-1', { events: [], activity: users }, { rowsConsumed: users.length, bytesConsumed: 0 });
  }
  const queueKeys = async (syncId: string, sinceMs: number, limit: number) =>
    (await store.profileFetchQueue(syncId, { sinceMs, limit })).map((entry) => entry.userKey);

  describe('profile fetch queue', () => {
    before(async () => {
      await activity([
        ...['a', 'b', 'c', 'd', 'e', 'f'].map((id) => user(`user_id:${id}`, 5)),
        user('user_id:old', 1),
        user('device_id:x', 5),
        user('amplitude_id:9', 5),
      ]);
      await store.recordProfileFetches(SYNC, [
        fetched('user_id:a', 6),
        // Fetched before their latest event: due again.
        fetched('user_id:b', 4),
        fetched('user_id:d', 7),
        // Fetched at their latest event: not active since.
        fetched('user_id:e', 5),
        fetched('user_id:f', 6),
        fetched('user_id:old', 0.5),
      ]);
    });

    test('users never fetched or active since their fetch come first, in key order; then the stalest fetches', async () => {
      assert.deepEqual(await store.profileFetchQueue(SYNC, { sinceMs: 2 * HOUR, limit: 100 }), [
        { userKey: 'user_id:b', lastEventMs: 5 * HOUR, fetchedAtMs: 4 * HOUR },
        { userKey: 'user_id:c', lastEventMs: 5 * HOUR },
        { userKey: 'user_id:e', lastEventMs: 5 * HOUR, fetchedAtMs: 5 * HOUR },
        // Fetched at the same time: key order.
        { userKey: 'user_id:a', lastEventMs: 5 * HOUR, fetchedAtMs: 6 * HOUR },
        { userKey: 'user_id:f', lastEventMs: 5 * HOUR, fetchedAtMs: 6 * HOUR },
        { userKey: 'user_id:d', lastEventMs: 5 * HOUR, fetchedAtMs: 7 * HOUR },
      ]);
    });

    test('anonymous users and users active before sinceMs are left out', async () => {
      assert.deepEqual(await queueKeys(SYNC, 0, 100), [
        'user_id:b',
        'user_id:c',
        'user_id:old',
        'user_id:e',
        'user_id:a',
        'user_id:f',
        'user_id:d',
      ]);
      assert.deepEqual(await queueKeys(SYNC, 5 * HOUR + 1, 100), []);
    });

    test('the limit is honoured, within and across both parts, and capped', async () => {
      assert.deepEqual(await queueKeys(SYNC, 2 * HOUR, 1), ['user_id:b']);
      assert.deepEqual(await queueKeys(SYNC, 2 * HOUR, 2), ['user_id:b', 'user_id:c']);
      assert.deepEqual(await queueKeys(SYNC, 2 * HOUR, 4), ['user_id:b', 'user_id:c', 'user_id:e', 'user_id:a']);
      assert.equal((await queueKeys(SYNC, 2 * HOUR, MAX_ROWS_PER_TRANSACTION + 1)).length, 6);
      await assert.rejects(store.profileFetchQueue(SYNC, { sinceMs: 0, limit: 0 }), RangeError);
    });

    test('another sync’s queue has its own fetches', async () => {
      assert.deepEqual(await store.profileFetchQueue(OTHER_SYNC, { sinceMs: 2 * HOUR, limit: 2 }), [
        { userKey: 'user_id:a', lastEventMs: 5 * HOUR },
        { userKey: 'user_id:b', lastEventMs: 5 * HOUR },
      ]);
      await store.recordProfileFetches(OTHER_SYNC, [fetched('user_id:a', 6)]);
      assert.deepEqual(await queueKeys(OTHER_SYNC, 2 * HOUR, 100), [
        'user_id:b',
        'user_id:c',
        'user_id:d',
        'user_id:e',
        'user_id:f',
        'user_id:a',
      ]);
      assert.deepEqual(await queueKeys(SYNC, 2 * HOUR, 100), [
        'user_id:b',
        'user_id:c',
        'user_id:e',
        'user_id:a',
        'user_id:f',
        'user_id:d',
      ]);
    });
  });

  describe('profile fetches', () => {
    test('are read back by user; recording a user again replaces its fetch; absent users are omitted', async () => {
      assert.deepEqual(
        await store.profileFetches(SYNC, ['user_id:a', 'user_id:c', 'user_id:nobody']),
        new Map([['user_id:a', fetched('user_id:a', 6)]]),
      );
      // Of a user repeated in one call the last wins.
      await store.recordProfileFetches(SYNC, [fetched('user_id:a', 8, 1), fetched('user_id:c', 8), fetched('user_id:a', 9, 2)]);
      assert.deepEqual(
        await store.profileFetches(SYNC, ['user_id:a', 'user_id:c']),
        new Map([
          ['user_id:a', fetched('user_id:a', 9, 2)],
          ['user_id:c', fetched('user_id:c', 8)],
        ]),
      );
      assert.deepEqual(await queueKeys(SYNC, 2 * HOUR, 100), [
        'user_id:b',
        'user_id:e',
        'user_id:f',
        'user_id:d',
        'user_id:c',
        'user_id:a',
      ]);
    });

    test('are kept per sync', async () => {
      assert.deepEqual(
        await store.profileFetches(OTHER_SYNC, ['user_id:a', 'user_id:c']),
        new Map([['user_id:a', fetched('user_id:a', 6)]]),
      );
      assert.deepEqual(await store.profileFetches('traits-new', ['user_id:a']), new Map());
    });

    test('are written and read in bounded chunks', async () => {
      const many = Array.from({ length: MAX_ROWS_PER_TRANSACTION + 2 }, (_, index) => fetched(`user_id:bulk-${index}`, 3, index));
      await store.recordProfileFetches('traits-bulk', many);
      const read = await store.profileFetches(
        'traits-bulk',
        many.map((profile) => profile.userKey),
      );
      assert.equal(read.size, many.length);
      assert.deepEqual(read.get(many.at(-1)!.userKey), many.at(-1));
    });
  });

  describe('profile fetch counts', () => {
    test('count the identified audience active since sinceMs, those the sync ever fetched and those fetched lately', async () => {
      assert.deepEqual(await store.profileFetchCounts(SYNC, { sinceMs: 2 * HOUR, fetchedSinceMs: 6 * HOUR }), {
        audience: 6,
        fetched: 6,
        fetchedSince: 4,
      });
      assert.deepEqual(await store.profileFetchCounts(SYNC, { sinceMs: 0, fetchedSinceMs: 0 }), {
        audience: 7,
        fetched: 7,
        fetchedSince: 7,
      });
      assert.deepEqual(await store.profileFetchCounts(OTHER_SYNC, { sinceMs: 2 * HOUR, fetchedSinceMs: 7 * HOUR }), {
        audience: 6,
        fetched: 1,
        fetchedSince: 0,
      });
      assert.deepEqual(await store.profileFetchCounts(SYNC, { sinceMs: 6 * HOUR, fetchedSinceMs: 0 }), {
        audience: 0,
        fetched: 0,
        fetchedSince: 0,
      });
    });
  });

  describe('pruning inactive users', () => {
    test('removes their fetches of every sync and keeps active users’; a user who returns is fetched afresh', async () => {
      await store.recordProfileFetches(OTHER_SYNC, [fetched('user_id:old', 0.5)]);
      assert.equal(await store.pruneInactiveUsers(2 * HOUR, 10), 1);
      for (const syncId of [SYNC, OTHER_SYNC]) {
        assert.deepEqual([...(await store.profileFetches(syncId, ['user_id:old', 'user_id:a'])).keys()], ['user_id:a'], syncId);
      }
      await activity([user('user_id:old', 10)]);
      assert.deepEqual((await store.profileFetchQueue(SYNC, { sinceMs: 2 * HOUR, limit: 2 }))[1], {
        userKey: 'user_id:old',
        lastEventMs: 10 * HOUR,
      });
    });
  });
});
