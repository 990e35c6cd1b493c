/**
 * Alias identification in the store, on every store: aliases written are marked when their id appears with a user id
 * (once: an identified alias is never marked again), claimed by one worker at a time (a lapsed claim is taken again),
 * and an identify done moves each sync's snapshot key from the alias to the external id, or drops it where the sync
 * holds the external id already.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { forEachStore, openFreshStore } from './helpers/stores.js';

forEachStore((kind) => {
  test('written → marked → claimed once → identified, with the snapshot keys moved', async () => {
    const { store } = await openFreshStore(kind);
    try {
      const device = { aliasName: 'device-1', aliasLabel: 'amplitude_device_id' };
      const amplitude = { aliasName: '4242', aliasLabel: 'amplitude_id' };
      await store.recordAliasesWritten([device, amplitude, device], 1_000);
      assert.equal(await store.markAliasesToIdentify([{ aliasName: 'never-written', externalId: 'u-0' }], 2_000), 0);
      assert.equal(
        await store.markAliasesToIdentify(
          [
            { aliasName: 'device-1', externalId: 'u-1' },
            { aliasName: '4242', externalId: 'u-1' },
          ],
          2_000,
        ),
        2,
      );
      assert.equal(await store.markAliasesToIdentify([{ aliasName: 'device-1', externalId: 'u-other' }], 2_500), 0, 'marked once');

      const [first, second] = await Promise.all([
        store.claimAliasesToIdentify(1, 3_000, 10_000),
        store.claimAliasesToIdentify(5, 3_000, 10_000),
      ]);
      assert.deepEqual(
        [...first, ...second].map((alias) => `${alias.aliasLabel}:${alias.aliasName}→${alias.externalId}`).sort(),
        ['amplitude_device_id:device-1→u-1', 'amplitude_id:4242→u-1'],
        'each alias claimed by one claimant',
      );
      assert.deepEqual(await store.claimAliasesToIdentify(5, 4_000, 10_000), [], 'held while claimed');
      const lapsed = await store.claimAliasesToIdentify(5, 13_001, 10_000);
      assert.equal(lapsed.length, 2, 'a lapsed claim is taken again');

      await store.commitSnapshot('cohort-a', { added: ['alias:amplitude_id:4242'] });
      await store.commitSnapshot('cohort-b', { added: ['alias:amplitude_id:4242', 'ext:u-1'] });
      await store.recordIdentifications(
        [
          { ...amplitude, externalId: 'u-1', identified: true },
          { ...device, externalId: 'u-1', identified: false, reason: 'alias not identified: refused' },
        ],
        14_000,
      );
      const members = async (syncId: string) => (await store.snapshotMembers(syncId, { limit: 10 })).items.map((m) => m.memberKey);
      assert.deepEqual(await members('cohort-a'), ['ext:u-1'], 'the alias key became the external id’s');
      assert.deepEqual(await members('cohort-b'), ['ext:u-1'], 'held already: the alias key went');
      assert.deepEqual(await store.claimAliasesToIdentify(5, 99_000, 10_000), [], 'nothing left to identify');
      assert.equal(await store.markAliasesToIdentify([{ aliasName: '4242', externalId: 'u-1' }], 100_000), 0, 'never again');
    } finally {
      await store.close();
    }
  });
});
