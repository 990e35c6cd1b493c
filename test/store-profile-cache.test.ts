/**
 * The store's kept Amplitude profiles and warm-up audiences, on every store: the latest fetch wins, an audience is read
 * newest activity first through a numeric cursor (members tied on activity too), only profiles that are not fresh are
 * due, and the counts and the delete cover one audience only.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { AudienceCursor, InspectableStore } from '../src/store/index.js';
import { forEachStore, openFreshStore } from './helpers/stores.js';

const HOUR = 3_600_000;

forEachStore((kind) => {
  let store: InspectableStore;
  before(async () => {
    ({ store } = await openFreshStore(kind));
  });
  after(async () => {
    await store.close();
  });

  describe('kept profiles', () => {
    test('a fetch replaces an older one, never a newer one; an unknown user is kept as null', async () => {
      await store.keepProfiles([{ userKey: 'user_id:a', fetchedAtMs: 2 * HOUR, userData: { user_id: 'a', recommendations: [] } }]);
      await store.keepProfiles([{ userKey: 'user_id:a', fetchedAtMs: 1 * HOUR, userData: { user_id: 'stale' } }]);
      assert.deepEqual(await store.cachedProfile('user_id:a'), {
        userKey: 'user_id:a',
        fetchedAtMs: 2 * HOUR,
        userData: { user_id: 'a', recommendations: [] },
      });
      await store.keepProfiles([
        { userKey: 'user_id:a', fetchedAtMs: 3 * HOUR, userData: null },
        { userKey: 'device_id:d', fetchedAtMs: 3 * HOUR, userData: { device_id: 'd' } },
      ]);
      assert.equal((await store.cachedProfile('user_id:a'))?.userData, null);
      assert.deepEqual((await store.cachedProfile('device_id:d'))?.userData, { device_id: 'd' });
      assert.equal(await store.cachedProfile('user_id:nobody'), undefined);
    });
  });

  describe('warm-up audiences', () => {
    before(async () => {
      await store.stageEvents(
        'events-1',
        {
          events: [],
          activity: [
            { userKey: 'user_id:new', lastEventMs: 9 * HOUR, properties: {} },
            { userKey: 'user_id:mid', lastEventMs: 5 * HOUR, properties: {} },
            { userKey: 'user_id:old', lastEventMs: 1 * HOUR, properties: {} },
          ],
        },
        { rowsConsumed: 3, bytesConsumed: 0 },
      );
      // Two members in no activity index (tied at -1), one added twice.
      await store.addToProfileAudience('warmup:1', ['user_id:old', 'user_id:x', 'user_id:new']);
      await store.addToProfileAudience('warmup:1', ['user_id:y', 'user_id:mid', 'user_id:new']);
      await store.addToProfileAudience('warmup:2', ['user_id:new']);
      await store.keepProfiles([
        { userKey: 'user_id:mid', fetchedAtMs: 10 * HOUR, userData: {} },
        { userKey: 'user_id:x', fetchedAtMs: 2 * HOUR, userData: null },
      ]);
    });

    test('pages go newest activity first, through ties, and give only the members not fresh', async () => {
      const seen: string[][] = [];
      const cursors: AudienceCursor[] = [];
      let after: AudienceCursor | undefined;
      do {
        const page = await store.profileAudiencePage('warmup:1', { after, limit: 2, freshSinceMs: 8 * HOUR });
        seen.push(page.due);
        after = page.next;
        if (after) cursors.push(after);
      } while (after !== undefined);
      // new, mid (fresh: not due) | old, then the two tied at -1 (later added first) | nothing left.
      assert.deepEqual(seen, [['user_id:new'], ['user_id:old', 'user_id:y'], ['user_id:x']]);
      assert.equal(cursors.length, 2);
      assert.doesNotMatch(JSON.stringify(cursors), /user_id/, 'a cursor names no user');
    });

    test('counts and the delete cover one audience', async () => {
      assert.deepEqual(await store.profileAudienceCounts('warmup:1', 1 * HOUR), { members: 5, fresh: 2, unknown: 1 });
      assert.deepEqual(await store.profileAudienceCounts('warmup:1', 8 * HOUR), { members: 5, fresh: 1, unknown: 0 });
      await store.deleteProfileAudience('warmup:1');
      assert.deepEqual(await store.profileAudienceCounts('warmup:1', 0), { members: 0, fresh: 0, unknown: 0 });
      assert.equal((await store.profileAudienceCounts('warmup:2', 0)).members, 1);
    });
  });
});
