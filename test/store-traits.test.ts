/**
 * The store's trait-pipeline primitives, on every store: staged attribute changes (a user staged again replaces its
 * changes) with a keyset checkpoint, planned into pages of users; the attribute snapshot per Braze workspace, changed
 * only by the first record of a sent request and pruned with the activity index; and the latest succeeded run of a kind.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { SentRequest, StagedTraitChange, InspectableStore } from '../src/store/index.js';
import { forEachStore, openFreshStore } from './helpers/stores.js';

const HOUR = 3_600_000;
const WORKSPACE = 'braze-workspace:ab12cd';
const OTHER_WORKSPACE = 'braze-workspace:ef34gh';
const userKey = (index: number) => `user_id:u${String(index).padStart(4, '0')}`;
const change = (index: number): StagedTraitChange => ({
  userKey: userKey(index),
  changes: { plan: 'premium', seats: index, churned: null },
});
const range = (count: number) => Array.from({ length: count }, (_, index) => index);
const snapshotsOf = (snapshots: Map<string, Map<string, string>>) =>
  Object.fromEntries([...snapshots].map(([key, values]) => [key, Object.fromEntries(values)]));

forEachStore((kind) => {
  let store: InspectableStore;
  before(async () => {
    ({ store } = await openFreshStore(kind));
  });
  after(async () => {
    await store.close();
  });

  describe('staged trait changes', () => {
    test('are staged with a keyset checkpoint; a user staged again replaces its changes; counts cover users and attributes', async () => {
      assert.deepEqual(await store.stagedTraitCounts('traits-1'), { users: 0, attributes: 0 });
      await store.stageTraitChanges('traits-1', range(5).map(change), { rowsConsumed: 5, bytesConsumed: 0, afterKey: userKey(4) });
      assert.deepEqual(await store.stagingCheckpoint('traits-1'), { rowsConsumed: 5, bytesConsumed: 0, afterKey: userKey(4) });
      // A retried attempt re-reads the last page: its users replace what they staged before.
      await store.stageTraitChanges('traits-1', [{ userKey: userKey(3), changes: { plan: 'free' } }, change(5), change(6)], {
        rowsConsumed: 7,
        bytesConsumed: 0,
        afterKey: userKey(6),
      });
      assert.deepEqual(await store.stagingCheckpoint('traits-1'), { rowsConsumed: 7, bytesConsumed: 0, afterKey: userKey(6) });
      assert.deepEqual(await store.stagedTraitCounts('traits-1'), { users: 7, attributes: 6 * 3 + 1 });
      // A checkpoint without a key (a source not read in key order) has none.
      await store.stageTraitChanges('traits-1', [], { rowsConsumed: 7, bytesConsumed: 10 });
      assert.deepEqual(await store.stagingCheckpoint('traits-1'), { rowsConsumed: 7, bytesConsumed: 10 });
    });

    test('are planned into pages of users in key order, and a page reads its range', async () => {
      assert.deepEqual(await store.planTraitPages('traits-1', 3), { users: 7, pages: 3 });
      const pages: string[][] = [];
      for (let page = 0; page < 3; page++) {
        const pageRange = await store.plannedPage('traits-1', 'trait', page);
        assert.ok(pageRange);
        pages.push((await store.stagedTraitChanges('traits-1', { ...pageRange, limit: 100 })).items.map((item) => item.userKey));
      }
      assert.deepEqual(
        pages,
        [[0, 1, 2], [3, 4, 5], [6]].map((page) => page.map(userKey)),
      );
      assert.equal(await store.plannedPage('traits-1', 'trait', 3), undefined);
      assert.deepEqual(await store.plannedPage('traits-1', 'trait', 1), { afterKey: userKey(2), throughKey: userKey(5) });

      // Keyset paging within a range: afterKey exclusive, throughKey inclusive.
      const first = await store.stagedTraitChanges('traits-1', { afterKey: userKey(2), throughKey: userKey(5), limit: 2 });
      assert.deepEqual(first, { items: [{ userKey: userKey(3), changes: { plan: 'free' } }, change(4)], nextAfterKey: userKey(4) });
      const rest = await store.stagedTraitChanges('traits-1', { afterKey: first.nextAfterKey, throughKey: userKey(5), limit: 2 });
      assert.deepEqual(rest, { items: [change(5)], nextAfterKey: undefined });

      // Planning again replaces the plan.
      assert.deepEqual(await store.planTraitPages('traits-1', 5), { users: 7, pages: 2 });
      assert.deepEqual(await store.plannedPage('traits-1', 'trait', 1), { afterKey: userKey(4), throughKey: userKey(6) });
      assert.equal(await store.plannedPage('traits-1', 'trait', 2), undefined);
    });

    test('are cleared with the run', async () => {
      await store.clearStaging('traits-1');
      assert.deepEqual(await store.stagedTraitCounts('traits-1'), { users: 0, attributes: 0 });
      assert.deepEqual((await store.stagedTraitChanges('traits-1', { limit: 10 })).items, []);
      assert.equal(await store.stagingCheckpoint('traits-1'), undefined);
      assert.equal(await store.plannedPage('traits-1', 'trait', 0), undefined);
    });
  });

  describe('attribute snapshots per Braze workspace', () => {
    const request = (requestKey: string, attributes: SentRequest['snapshot']['attributes']): SentRequest => ({
      syncId: 'traits',
      runId: 'traits-2',
      requestKey,
      day: '2026-12-02',
      dataPoints: 4,
      snapshot: { attributes },
      rejected: [],
      accepted: 2,
    });

    test('a sent request sets and unsets its scope’s values once; other scopes are untouched', async () => {
      await store.upsertAttributeSnapshots(WORKSPACE, [
        { memberKey: 'user_id:a', attribute: 'plan', value: '"free"' },
        { memberKey: 'user_id:a', attribute: 'churned', value: 'true' },
        { memberKey: 'user_id:b', attribute: 'plan', value: '"free"' },
      ]);
      await store.upsertAttributeSnapshots(OTHER_WORKSPACE, [{ memberKey: 'user_id:a', attribute: 'churned', value: 'false' }]);

      const sent = request('trait:0|a@1#0', {
        scope: WORKSPACE,
        set: [
          { memberKey: 'user_id:a', attribute: 'plan', value: '"premium"' },
          { memberKey: 'user_id:b', attribute: 'seats', value: '4' },
        ],
        unset: [{ memberKey: 'user_id:a', attribute: 'churned' }],
      });
      assert.deepEqual(await store.recordSentRequests([sent]), [true]);
      const expected = {
        'user_id:a': { plan: '"premium"' },
        'user_id:b': { plan: '"free"', seats: '4' },
      };
      assert.deepEqual(snapshotsOf(await store.attributeSnapshots(WORKSPACE, ['user_id:a', 'user_id:b', 'user_id:c'])), expected);
      assert.deepEqual(snapshotsOf(await store.attributeSnapshots(OTHER_WORKSPACE, ['user_id:a', 'user_id:b'])), {
        'user_id:a': { churned: 'false' },
      });
      assert.deepEqual(await store.requestOutcomeTotals('traits-2', 'trait:'), { requests: 1, accepted: 2, rejected: 0, dataPoints: 4 });

      // Recorded again (a retried attempt) with other values: nothing changes.
      const retried = request('trait:0|a@1#0', {
        scope: WORKSPACE,
        set: [{ memberKey: 'user_id:a', attribute: 'plan', value: '"family"' }],
        unset: [{ memberKey: 'user_id:b', attribute: 'plan' }],
      });
      assert.deepEqual(await store.recordSentRequests([retried]), [false]);
      assert.deepEqual(snapshotsOf(await store.attributeSnapshots(WORKSPACE, ['user_id:a', 'user_id:b'])), expected);
      assert.deepEqual(await store.requestOutcomeTotals('traits-2', 'trait:'), { requests: 1, accepted: 2, rejected: 0, dataPoints: 4 });
    });

    test('requests of one batch apply in order: a pair changed twice keeps the last change', async () => {
      const results = await store.recordSentRequests([
        request('trait:1|a@1#0', { scope: WORKSPACE, set: [{ memberKey: 'user_id:c', attribute: 'plan', value: '"free"' }], unset: [] }),
        request('trait:1|b@1#0', {
          scope: WORKSPACE,
          set: [{ memberKey: 'user_id:c', attribute: 'plan', value: '"premium"' }],
          unset: [{ memberKey: 'user_id:b', attribute: 'seats' }],
        }),
        request('trait:1|c@1#0', {
          scope: WORKSPACE,
          set: [{ memberKey: 'user_id:b', attribute: 'seats', value: '5' }],
          unset: [{ memberKey: 'user_id:a', attribute: 'plan' }],
        }),
      ]);
      assert.deepEqual(results, [true, true, true]);
      assert.deepEqual(snapshotsOf(await store.attributeSnapshots(WORKSPACE, ['user_id:a', 'user_id:b', 'user_id:c'])), {
        'user_id:b': { plan: '"free"', seats: '5' },
        'user_id:c': { plan: '"premium"' },
      });
    });

    test('pruning inactive users removes their values in every scope and keeps active users’', async () => {
      await store.stageEvents(
        'events-1',
        {
          events: [],
          activity: [
            { userKey: 'user_id:a', lastEventMs: 1, properties: {} },
            { userKey: 'user_id:b', lastEventMs: 2, properties: {} },
            { userKey: 'user_id:c', lastEventMs: 3 * HOUR, properties: {} },
          ],
        },
        { rowsConsumed: 3, bytesConsumed: 0 },
      );
      await store.upsertAttributeSnapshots(WORKSPACE, [{ memberKey: 'user_id:a', attribute: 'plan', value: '"free"' }]);
      await store.upsertAttributeSnapshots(OTHER_WORKSPACE, [
        { memberKey: 'user_id:b', attribute: 'plan', value: '"free"' },
        { memberKey: 'user_id:c', attribute: 'plan', value: '"free"' },
      ]);

      assert.equal(await store.pruneInactiveUsers(HOUR, 1), 1);
      assert.equal(await store.pruneInactiveUsers(HOUR, 5), 1);
      assert.equal(await store.pruneInactiveUsers(HOUR, 5), 0);
      const keys = ['user_id:a', 'user_id:b', 'user_id:c'];
      assert.deepEqual(snapshotsOf(await store.attributeSnapshots(WORKSPACE, keys)), { 'user_id:c': { plan: '"premium"' } });
      assert.deepEqual(snapshotsOf(await store.attributeSnapshots(OTHER_WORKSPACE, keys)), { 'user_id:c': { plan: '"free"' } });
      assert.deepEqual(
        (await store.activeUsers({ limit: 10, sinceMs: 0 })).items.map((user) => user.userKey),
        ['user_id:c'],
      );
    });
  });

  describe('runs by kind', () => {
    test('the latest succeeded run of a kind, whatever its sync; other kinds and statuses do not count', async () => {
      assert.equal(await store.lastSucceededRunOfKind('event'), undefined);
      const at = (minutes: number) => new Date(Date.UTC(2026, 11, 2, 10, minutes));
      const run = async (runId: string, syncId: string, runKind: string, status: 'succeeded' | 'failed', finishedMinute: number) => {
        await store.startRun({ runId, syncId, kind: runKind, startedAt: at(0) });
        await store.finishRun({ runId, status, finishedAt: at(finishedMinute), stats: {} });
      };
      await run('events-a', 'events-eu', 'event', 'succeeded', 10);
      await run('events-b', 'events-us', 'event', 'succeeded', 20);
      await run('events-c', 'events-eu', 'event', 'failed', 30);
      await run('traits-a', 'traits', 'trait', 'succeeded', 40);
      const latest = await store.lastSucceededRunOfKind('event');
      assert.deepEqual(latest && { runId: latest.runId, syncId: latest.syncId, kind: latest.kind, finishedAt: latest.finishedAt }, {
        runId: 'events-b',
        syncId: 'events-us',
        kind: 'event',
        finishedAt: at(20),
      });
      assert.equal((await store.lastSucceededRunOfKind('trait'))?.runId, 'traits-a');
      assert.equal(await store.lastSucceededRunOfKind('cohort'), undefined);
    });
  });
});
