/**
 * The store's engine primitives: planned pages applied by number (in any order, several at once), one atomic
 * record per sent request, and the per-sync lease, on every store.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { DiffKind, StagedMember, InspectableStore } from '../src/store/index.js';
import { runStoreProcesses } from './helpers/store-processes.js';
import { forEachStore, openFreshStore, type StoreEnv } from './helpers/stores.js';

const key = (index: number) => `ext:user-${String(index).padStart(6, '0')}`;
const range = (count: number) => Array.from({ length: count }, (_, index) => index);
const member = (index: number): StagedMember => ({ memberKey: key(index), amplitudeId: String(1_000_000 + index) });

forEachStore((kind) => {
  let store: InspectableStore;
  let env: StoreEnv;
  before(async () => {
    ({ store, env } = await openFreshStore(kind));
  });
  after(async () => {
    await store.close();
  });

  /** Every key of a planned page still in the diff, read in sub-pages as the page activity does. */
  async function readPlannedPage(runId: string, syncId: string, kind: DiffKind, page: number): Promise<string[]> {
    const pageRange = await store.plannedPage(runId, kind, page);
    assert.ok(pageRange, `page ${kind} ${page} is planned`);
    const keys: string[] = [];
    let afterKey = pageRange.afterKey;
    for (;;) {
      const options = { afterKey, throughKey: pageRange.throughKey, limit: 700 };
      const { items, nextAfterKey } = await store.diffPage(runId, syncId, { ...options, kind });
      keys.push(...items);
      if (nextAfterKey === undefined) return keys;
      afterKey = nextAfterKey;
    }
  }

  describe('planned pages', () => {
    void test('cut the diff into numbered key ranges that cover it exactly, applied in any order', async () => {
      const all = range(12_345);
      const staged = all.filter((index) => index % 3 !== 0);
      const snapshot = all.filter((index) => index % 2 === 0);
      const expectedEnter = staged.filter((index) => index % 2 !== 0).map(key);
      const expectedLeave = snapshot.filter((index) => index % 3 === 0).map(key);
      await store.commitSnapshot('sync-plan', { added: snapshot.map(key) });
      await store.stageChunk('run-plan', staged.map(member), { rowsConsumed: staged.length, bytesConsumed: 0 });

      const plan = await store.planPages('run-plan', 'sync-plan', 1_000);
      assert.deepEqual(plan, {
        enter: { changes: expectedEnter.length, pages: Math.ceil(expectedEnter.length / 1_000) },
        leave: { changes: expectedLeave.length, pages: Math.ceil(expectedLeave.length / 1_000) },
      });
      // Planning again (a retried activity) gives the same plan, not a second one.
      assert.deepEqual(await store.planPages('run-plan', 'sync-plan', 1_000), plan);
      assert.equal(await store.plannedPage('run-plan', 'enter', plan.enter.pages), undefined);
      assert.equal((await store.plannedPage('run-plan', 'enter', 0))?.afterKey, undefined);

      // Apply pages out of order, committing each as the sync does.
      const entered: string[][] = [];
      for (const page of range(plan.enter.pages).reverse()) {
        const keys = await readPlannedPage('run-plan', 'sync-plan', 'enter', page);
        assert.ok(keys.length === 1_000 || page === plan.enter.pages - 1, `page ${page} holds ${keys.length} changes`);
        entered[page] = keys;
        await store.commitSnapshot('sync-plan', { added: keys });
      }
      assert.deepEqual(entered.flat(), expectedEnter);
      const left = await Promise.all(range(plan.leave.pages).map((page) => readPlannedPage('run-plan', 'sync-plan', 'leave', page)));
      assert.deepEqual(left.flat(), expectedLeave);

      // A page whose changes are committed reads empty when retried; the other kind's pages are untouched.
      assert.deepEqual(await readPlannedPage('run-plan', 'sync-plan', 'enter', 0), []);
      await store.clearStaging('run-plan');
      assert.equal(await store.plannedPage('run-plan', 'leave', 0), undefined);
    });

    void test('an empty diff plans no pages', async () => {
      assert.deepEqual(await store.planPages('run-empty', 'sync-empty', 10), {
        enter: { changes: 0, pages: 0 },
        leave: { changes: 0, pages: 0 },
      });
      assert.equal(await store.plannedPage('run-empty', 'enter', 0), undefined);
    });
  });

  describe('sent requests', () => {
    const pending = { syncId: 'sync-sent', runId: 'run-sent', requestKey: 'enter:0|ext:a@1#0', day: '2025-07-01', dataPoints: 3 };

    void test('count as sent with their data points from before they go, and record what they did once', async () => {
      await store.recordRequestsSending([pending, { ...pending, requestKey: 'enter:0|ext:x@1#0', dataPoints: 5 }]);
      await store.recordRequestsSending([pending]); // a repeated record changes nothing
      // Sent but not answered yet (or cut off by a crash): counted, in case Braze processed and billed it.
      assert.deepEqual(await store.requestOutcomeTotals('run-sent', 'enter:'), { requests: 2, accepted: 0, rejected: 0, dataPoints: 8 });
      assert.equal(await store.dataPointsOnDay('2025-07-01', 'sync-sent'), 8);

      const sent = {
        ...pending,
        snapshot: { added: ['ext:a', 'ext:b'] },
        rejected: [{ memberKey: 'ext:c', reason: 'Invalid external_id' }],
        dataPoints: 2,
      };
      const refused = { ...pending, requestKey: 'enter:0|ext:x@1#0', snapshot: {}, rejected: [], dataPoints: 0 }; // e.g. a 429
      assert.deepEqual(await store.recordSentRequests([sent, refused]), [true, true]);
      assert.deepEqual(await store.recordSentRequests([sent]), [false], 'a retried attempt adds nothing');
      const leaving = { ...pending, requestKey: 'leave:0|ext:a@1#0', snapshot: { removed: ['ext:a'] }, rejected: [], dataPoints: 1 };
      assert.deepEqual(await store.recordSentRequests([leaving]), [true], 'recorded without a record before it');

      assert.deepEqual((await store.snapshotMembers('sync-sent', { limit: 10 })).items, [{ memberKey: 'ext:b' }]);
      assert.deepEqual(await store.failureCountsByReason('run-sent'), [{ reason: 'Invalid external_id', count: 1 }]);
      assert.deepEqual(await store.requestOutcomeTotals('run-sent', 'enter:'), { requests: 2, accepted: 2, rejected: 1, dataPoints: 2 });
      assert.equal(await store.dataPointsOnDay('2025-07-01', 'sync-sent'), 3);
      await assert.rejects(store.recordSentRequests([{ ...sent, requestKey: 'x', dataPoints: -1 }]), /whole number/);
      await assert.rejects(store.recordRequestsSending([{ ...pending, day: '07/01/2025' }]), /YYYY-MM-DD/);
    });

    void test('the same request recorded by three worker processes at once counts once', async () => {
      const request = { syncId: 'sync-sent-race', runId: 'run-sent-race', requestKey: 'enter:0|ext:a#0', day: '2025-07-02', dataPoints: 1 };
      await store.recordRequestsSending([{ ...request, dataPoints: 2 }]);
      const sent = { ...request, snapshot: { added: ['ext:a'] }, rejected: [] };
      const recorded = (await runStoreProcesses(
        env,
        range(3).map(() => ({ task: 'sent' as const, request: sent })),
      )) as boolean[];
      assert.deepEqual([...recorded].sort(), [false, false, true]);
      assert.equal(
        await store.dataPointsOnDay('2025-07-02', 'sync-sent-race'),
        1,
        'the actual cost replaced the one counted before sending',
      );
      assert.deepEqual(await store.requestOutcomeTotals('run-sent-race', ''), { requests: 1, accepted: 1, rejected: 0, dataPoints: 1 });
    });
  });

  describe('sync leases', () => {
    const claim = { syncId: 'sync-lease', hold: 'run', ttlMs: 1_000 } as const;

    void test('one holder at a time: renewed by its holder, refused to others naming the holder, free once released', async () => {
      assert.deepEqual(await store.claimSyncLease({ ...claim, holder: 'run-a', workflowId: 'wf-a', nowMs: 10_000 }), { held: true });
      assert.deepEqual(await store.claimSyncLease({ ...claim, holder: 'run-b', workflowId: 'wf-b', nowMs: 10_500 }), {
        held: false,
        holder: 'run-a',
        workflowId: 'wf-a',
        hold: 'run',
        expiresAtMs: 11_000,
      });
      assert.deepEqual(
        await store.claimSyncLease({ ...claim, holder: 'run-a', workflowId: 'wf-a', nowMs: 10_900 }),
        { held: true },
        'renewed',
      );
      assert.equal(
        (await store.claimSyncLease({ ...claim, holder: 'run-b', workflowId: 'wf-b', nowMs: 11_500 })).held,
        false,
        'renewal extended it',
      );
      await store.releaseSyncLease('sync-lease', 'run-b'); // not the holder: no effect
      assert.equal((await store.claimSyncLease({ ...claim, holder: 'run-b', workflowId: 'wf-b', nowMs: 11_600 })).held, false);
      await store.releaseSyncLease('sync-lease', 'run-a');
      assert.deepEqual(await store.claimSyncLease({ ...claim, holder: 'run-b', workflowId: 'wf-b', nowMs: 11_700 }), { held: true });
      assert.equal(
        (await store.claimSyncLease({ ...claim, syncId: 'sync-other', holder: 'run-c', workflowId: 'wf-c', nowMs: 11_700 })).held,
        true,
      );
    });

    void test('an expired lease is taken over, and its old holder is fenced off', async () => {
      const syncId = 'sync-expiry';
      assert.equal((await store.claimSyncLease({ ...claim, syncId, holder: 'run-old', workflowId: 'wf-old', nowMs: 0 })).held, true);
      assert.equal((await store.claimSyncLease({ ...claim, syncId, holder: 'run-new', workflowId: 'wf-new', nowMs: 1_000 })).held, true);
      assert.deepEqual(await store.claimSyncLease({ ...claim, syncId, holder: 'run-old', workflowId: 'wf-old', nowMs: 1_001 }), {
        held: false,
        holder: 'run-new',
        workflowId: 'wf-new',
        hold: 'run',
        expiresAtMs: 2_000,
      });
    });

    void test('a lease held for one round says so to the runs it refuses, and a renewal for a run replaces it', async () => {
      const syncId = 'sync-round';
      assert.equal(
        (await store.claimSyncLease({ ...claim, syncId, hold: 'round', holder: 'stream', workflowId: 'wf-s', nowMs: 0 })).held,
        true,
      );
      const refused = await store.claimSyncLease({ ...claim, syncId, holder: 'run-x', workflowId: 'wf-x', nowMs: 10 });
      assert.equal(!refused.held && refused.hold, 'round');
      assert.equal((await store.claimSyncLease({ ...claim, syncId, holder: 'stream', workflowId: 'wf-s', nowMs: 20 })).held, true);
      const refusedAgain = await store.claimSyncLease({ ...claim, syncId, holder: 'run-x', workflowId: 'wf-x', nowMs: 30 });
      assert.equal(!refusedAgain.held && refusedAgain.hold, 'run');
    });

    void test('claimants racing for a free lease: exactly one wins', async () => {
      const results = await Promise.all(
        range(8).map((index) =>
          store.claimSyncLease({ ...claim, syncId: 'sync-race', holder: `run-${index}`, workflowId: `wf-${index}`, nowMs: 5 }),
        ),
      );
      assert.equal(results.filter((result) => result.held).length, 1);
    });

    void test('worker processes racing for a free lease: exactly one wins', async () => {
      const claimOf = (index: number) => ({
        ...claim,
        syncId: 'sync-process-race',
        holder: `run-${index}`,
        workflowId: `wf-${index}`,
        nowMs: 5,
      });
      const tasks = range(4).map((index) => ({ task: 'lease' as const, claim: claimOf(index) }));
      const held = (await runStoreProcesses(env, tasks)) as boolean[];
      assert.equal(held.filter(Boolean).length, 1);
    });
  });
});
