/**
 * The store's ingress spool, on every store: what the receiver acknowledged, recognised again when redelivered,
 * handed out in arrival order with each throttled partition held back (and everything behind it in that partition),
 * dead letters kept with their reason, the backlog, and pruning after the horizon; membership marks.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { IngressItem, JsonValue, InspectableStore } from '../src/store/index.js';
import { forEachStore, openFreshStore } from './helpers/stores.js';

const item = (id: string, user: string): IngressItem => ({ dedupeKey: id, partitionKey: `user:${user}`, body: { id, user } });
const ids = (items: ReadonlyArray<{ dedupeKey: string }>) => items.map((spooled) => spooled.dedupeKey);

forEachStore((kind) => {
  let store: InspectableStore;
  before(async () => {
    ({ store } = await openFreshStore(kind));
  });
  after(async () => {
    await store.close();
  });

  describe('ingress spool', () => {
    test('a batch is spooled whole; a redelivered key is a duplicate, also after it was processed; streams are apart', async () => {
      assert.deepEqual(await store.spoolIngress('currents', [item('e1', 'a'), item('e2', 'b'), item('e3', 'a')], 1_000), {
        spooled: 3,
        duplicates: 0,
      });
      assert.deepEqual(await store.spoolIngress('currents', [item('e2', 'b'), item('e4', 'c')], 2_000), { spooled: 1, duplicates: 1 });
      assert.deepEqual(await store.spoolIngress('other', [item('e1', 'a')], 2_000), { spooled: 1, duplicates: 0 });
      const pending = await store.pendingIngress('currents', { nowMs: 3_000, limit: 10 });
      assert.deepEqual(ids(pending), ['e1', 'e2', 'e3', 'e4'], 'in arrival order');
      assert.deepEqual(pending[0], {
        seq: pending[0]!.seq,
        dedupeKey: 'e1',
        partitionKey: 'user:a',
        receivedAtMs: 1_000,
        body: item('e1', 'a').body,
      });
      assert.deepEqual(await store.ingressBacklog('currents', 3_000), {
        pending: 4,
        deferred: 0,
        oldestReceivedAtMs: 1_000,
        deadLetters: 0,
      });

      await store.completeIngress('currents', [pending[0].seq], 3_000);
      assert.deepEqual(await store.spoolIngress('currents', [item('e1', 'a')], 4_000), { spooled: 0, duplicates: 1 });
      assert.deepEqual(ids(await store.pendingIngress('currents', { nowMs: 4_000, limit: 10 })), ['e2', 'e3', 'e4']);
      assert.deepEqual(ids(await store.pendingIngress('currents', { nowMs: 4_000, limit: 2 })), ['e2', 'e3'], 'at most the limit');
    });

    test('the batches of concurrent requests are admitted in one transaction, each with its own count', async () => {
      // A store of its own: the tests below count every stream's dead letters and spooled items.
      const { store } = await openFreshStore(kind);
      const letter = { dedupeKey: 'content:bad', reason: 'a NUL in its id', body: { id: 'bad\u0000' } };
      const results = await store.admitIngress(
        [
          { stream: 'admitted-a', items: [item('x1', 'a'), item('x2', 'b')], letters: [] },
          { stream: 'admitted-b', items: [item('x1', 'a')], letters: [letter] },
          { stream: 'admitted-a', items: [item('x2', 'b'), item('x3', 'c')], letters: [] },
        ],
        1_000,
      );
      assert.deepEqual(results, [
        { spooled: 2, duplicates: 0 },
        { spooled: 1, duplicates: 0 },
        { spooled: 1, duplicates: 1 },
      ]);
      assert.deepEqual(ids(await store.pendingIngress('admitted-a', { nowMs: 2_000, limit: 10 })), ['x1', 'x2', 'x3']);
      assert.deepEqual(await store.ingressBacklog('admitted-b', 2_000), {
        pending: 1,
        deferred: 0,
        oldestReceivedAtMs: 1_000,
        deadLetters: 1,
      });
      assert.deepEqual(await store.streamSettings('admitted-a'), undefined);
      await store.saveStreamSettings('admitted-a', { eventTypes: ['x'] }, 1_000);
      await store.saveStreamSettings('admitted-b', { eventTypes: ['y'] }, 1_000);
      assert.deepEqual(await store.streamSettings('admitted-a'), { eventTypes: ['x'] });
      assert.deepEqual(
        (await store.streamSettingsNamed('admitted-')).map(({ stream }) => stream),
        ['admitted-a', 'admitted-b'],
      );
      await store.deleteStreamSettings('admitted-a');
      assert.deepEqual(await store.streamSettings('admitted-a'), undefined);
      await store.close();
    });

    test('a deferred partition waits, with everything behind it in that partition; others flow', async () => {
      await store.spoolIngress('currents', [item('e5', 'a'), item('e6', 'c')], 5_000);
      await store.deferIngress('currents', ['user:a'], 10_000);
      assert.deepEqual(ids(await store.pendingIngress('currents', { nowMs: 6_000, limit: 10 })), ['e2', 'e4', 'e6']);
      // A late arrival of the throttled user stays behind its earlier deferred items too.
      await store.spoolIngress('currents', [item('e7', 'a')], 7_000);
      assert.deepEqual(ids(await store.pendingIngress('currents', { nowMs: 7_000, limit: 10 })), ['e2', 'e4', 'e6']);
      assert.deepEqual(await store.ingressBacklog('currents', 7_000), {
        pending: 6,
        deferred: 2,
        oldestReceivedAtMs: 1_000,
        deadLetters: 0,
      });
      assert.deepEqual(ids(await store.pendingIngress('currents', { nowMs: 10_000, limit: 10 })), ['e2', 'e3', 'e4', 'e5', 'e6', 'e7']);
    });

    test('dead letters keep the reason and what arrived; a spooled one is processed; a repeated key keeps the first', async () => {
      const [e2] = await store.pendingIngress('currents', { nowMs: 10_000, limit: 1 });
      await store.deadLetterIngress(
        'currents',
        [
          { seq: e2!.seq, partitionKey: e2!.partitionKey, dedupeKey: 'e2', reason: 'Amplitude: invalid device_id', body: e2!.body },
          { dedupeKey: 'malformed:1', reason: 'events[3].time: expected a number', body: ['not', 'an', 'event'] },
        ],
        11_000,
      );
      await store.deadLetterIngress('currents', [{ dedupeKey: 'malformed:1', reason: 'again', body: null }], 12_000);
      assert.deepEqual(await store.ingressBacklog('currents', 12_000), {
        pending: 5,
        deferred: 0,
        oldestReceivedAtMs: 1_000,
        deadLetters: 2,
      });
      assert.deepEqual(await store.deadLetters({ stream: 'currents', limit: 10 }), [
        {
          stream: 'currents',
          dedupeKey: 'e2',
          reason: 'Amplitude: invalid device_id',
          body: item('e2', 'b').body,
          atMs: 11_000,
          partitionKey: 'user:b',
        },
        {
          stream: 'currents',
          dedupeKey: 'malformed:1',
          reason: 'events[3].time: expected a number',
          body: ['not', 'an', 'event'],
          atMs: 11_000,
        },
      ]);
      assert.ok(!ids(await store.pendingIngress('currents', { nowMs: 12_000, limit: 10 })).includes('e2'));
      assert.deepEqual(await store.deadLetters({ stream: 'other', limit: 10 }), []);
    });

    test('what the door refused is kept whatever it holds: NUL, lone surrogates, thousands of levels of nesting', async () => {
      let deep: unknown = 'bottom';
      for (let i = 0; i < 5_000; i++) deep = { inner: deep };
      const odd = { id: 'a\u0000b', user: '\ud800', nested: deep };
      await store.deadLetterIngress('odd', [{ dedupeKey: 'content:odd', reason: 'refused at the door', body: odd as JsonValue }], 13_000);
      const [kept] = await store.deadLetters({ stream: 'odd', limit: 1 });
      assert.equal((kept!.body as { id: string }).id, 'a\u0000b');
      assert.equal((kept!.body as { user: string }).user, '\ud800', 'the lone surrogate comes back as it arrived');
      let depth = 0;
      for (let node = (kept!.body as { nested: unknown }).nested; typeof node === 'object'; node = (node as { inner: unknown }).inner)
        depth++;
      assert.equal(depth, 5_000);
    });

    test('dead letters are listed across streams oldest first, page by page, and counted per stream', async () => {
      await store.deadLetterIngress('b-stream', [{ dedupeKey: 'k1', reason: 'r', body: 1 }], 12_500);
      const all = await store.deadLetters({ limit: 100 });
      assert.deepEqual(
        all.map((letter) => [letter.stream, letter.dedupeKey]),
        [
          ['currents', 'e2'],
          ['currents', 'malformed:1'],
          ['b-stream', 'k1'],
          ['odd', 'content:odd'],
        ],
      );
      const firstTwo = await store.deadLetters({ limit: 2 });
      const rest = await store.deadLetters({ after: firstTwo[1], limit: 100 });
      const keysOf = (letters: ReadonlyArray<{ stream: string; dedupeKey: string }>) => letters.map((l) => `${l.stream}/${l.dedupeKey}`);
      assert.deepEqual(keysOf([...firstTwo, ...rest]), keysOf(all));
      assert.deepEqual(await store.deadLetterCounts(), [
        { stream: 'b-stream', count: 1, oldestAtMs: 12_500 },
        { stream: 'currents', count: 2, oldestAtMs: 11_000 },
        { stream: 'odd', count: 1, oldestAtMs: 13_000 },
      ]);
    });

    test('a replayed dead letter leaves the dead letters and is pending again, also when its key was processed', async () => {
      const replays = [
        { dedupeKey: 'e2', item: item('e2', 'b') },
        { dedupeKey: 'malformed:1', item: item('fixed-1', 'd') },
      ];
      assert.equal(await store.replayDeadLetters('currents', replays, 14_000), 2);
      assert.deepEqual(ids(await store.deadLetters({ stream: 'currents', limit: 10 })), []);
      const pending = await store.pendingIngress('currents', { nowMs: 14_000, limit: 10 });
      assert.ok(ids(pending).includes('e2') && ids(pending).includes('fixed-1'));
      assert.equal(await store.replayDeadLetters('currents', replays, 14_500), 0, 'replayed once');
      assert.deepEqual(await store.spoolIngress('currents', [item('e2', 'b')], 15_000), { spooled: 0, duplicates: 1 });
      await store.completeIngress(
        'currents',
        pending.filter((spooled) => ['e2', 'fixed-1'].includes(spooled.dedupeKey)).map((spooled) => spooled.seq),
        15_000,
      );
    });

    test('pruning deletes processed items older than the horizon, never pending ones', async () => {
      const pending = await store.pendingIngress('currents', { nowMs: 12_000, limit: 10 });
      await store.completeIngress(
        'currents',
        pending.map((spooled) => spooled.seq),
        20_000,
      );
      assert.equal(await store.pruneIngress(15_000, 100), 1, 'e1 (done at 3 s); e2 was dead-lettered, then replayed and done at 15 s');
      assert.equal(await store.pruneIngress(15_000, 100), 0);
      assert.equal(await store.pruneIngress(30_000, 100), pending.length + 2, 'with e2 and fixed-1');
      assert.deepEqual(ids(await store.pendingIngress('other', { nowMs: 30_000, limit: 10 })), ['e1'], 'the other stream is pending still');
      assert.deepEqual(await store.ingressBacklog('currents', 30_000), {
        pending: 0,
        deferred: 0,
        oldestReceivedAtMs: undefined,
        deadLetters: 0,
      });
      assert.deepEqual(await store.pendingIngressStreams(), ['other'], 'only streams with unprocessed items');
    });
  });

  describe('membership marks', () => {
    test('a member’s state is its snapshot membership and newest mark; an older mark never replaces a newer one', async () => {
      await store.commitSnapshot('sync-m', { added: ['ext:a', 'ext:b'] });
      await store.commitSnapshot('sync-other', { added: ['ext:c'] });
      await store.recordMembershipMarks('sync-m', [
        { memberKey: 'ext:b', computedTime: 200 },
        { memberKey: 'ext:c', computedTime: 100 },
        { memberKey: 'ext:c', computedTime: 300 },
      ]);
      await store.recordMembershipMarks('sync-m', [
        { memberKey: 'ext:b', computedTime: 150 },
        { memberKey: 'ext:c', computedTime: 250 },
      ]);
      const states = await store.membershipStates('sync-m', ['ext:a', 'ext:b', 'ext:c', 'ext:d']);
      assert.deepEqual(
        [...states].sort(([a], [b]) => a.localeCompare(b)),
        [
          ['ext:a', { inSnapshot: true }],
          ['ext:b', { inSnapshot: true, markedAt: 200 }],
          ['ext:c', { inSnapshot: false, markedAt: 300 }],
        ],
        'ext:d has neither; ext:c is in another sync’s snapshot only',
      );
    });
  });
});
