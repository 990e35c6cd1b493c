/**
 * Erasure, on every store: a user held in every kind of table (cohort snapshot, activity index, attribute snapshot,
 * a staged and planned run, the sent-event ledger, the spool, dead letters, profiles, member failures) is erased with
 * the ids seen with them; the store's own files (SQLite's database and WAL) or a `pg_dump` (PostgreSQL, after the
 * erasure's vacuum) hold neither their ids nor their property values, while a user kept beside them is untouched;
 * their ids are suppressed (and can be lifted, recorded); an erasure is done once per key.
 */
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { eraseUsers } from '../src/privacy/erasure.js';
import { SuppressionKey, SuppressionList } from '../src/privacy/suppression.js';
import { findPostgresBinDir } from '../src/store/postgres-server.js';
import type { InspectableStore, JsonObject } from '../src/store/index.js';
import type { WorkerContext } from '../src/worker-context.js';
import { forEachStore, openFreshStore, type StoreEnv } from './helpers/stores.js';

const ERASED = { userId: 'erased-user-7', deviceId: 'device-of-erased-7', otherDeviceId: 'laptop-of-erased-7', amplitudeId: '700007' };
const SECRET = 'secret-plan-13579';
const KEPT = { userId: 'kept-user-8', value: 'kept-plan-24680' };
const NOW = Date.UTC(2026, 11, 7, 12);

/** Everything a user can leave in the store, for the erased user and for a user who stays. */
async function fillStore(store: InspectableStore): Promise<void> {
  const users = [
    { id: ERASED.userId, value: SECRET },
    { id: KEPT.userId, value: KEPT.value },
  ];
  const properties = (value: string): JsonObject => ({ plan: value });
  await store.commitSnapshot('cohort-1', { added: users.flatMap(({ id }) => [`ext:${id}`, `alias:amplitude_id:${id}`]) });
  await store.recordActivity(users.map(({ id, value }) => ({ userKey: `user_id:${id}`, lastEventMs: NOW, properties: properties(value) })));
  await store.recordAmplitudeIdentities([
    { amplitudeId: ERASED.amplitudeId, userKey: `user_id:${ERASED.userId}`, seenAtMs: NOW },
    { amplitudeId: ERASED.amplitudeId, userKey: `device_id:${ERASED.deviceId}`, seenAtMs: NOW },
    // Another Amplitude id of the same user (a second project id, say), seen with another device.
    { amplitudeId: '700008', userKey: `user_id:${ERASED.userId}`, seenAtMs: NOW },
    { amplitudeId: '700008', userKey: `device_id:${ERASED.otherDeviceId}`, seenAtMs: NOW },
    { amplitudeId: '800008', userKey: `user_id:${KEPT.userId}`, seenAtMs: NOW },
  ]);
  await store.upsertAttributeSnapshots(
    'braze-workspace:test',
    users.map(({ id, value }) => ({ memberKey: `user_id:${id}`, attribute: 'plan', value: JSON.stringify(value) })),
  );
  await store.startRun({ runId: 'run-cohort', syncId: 'cohort-2', kind: 'cohort', startedAt: new Date(NOW) });
  await store.stageChunk(
    'run-cohort',
    users.map(({ id, value }, n) => ({ memberKey: `ext:${id}`, amplitudeId: String(900 + n), userId: id, props: properties(value) })),
    { rowsConsumed: 2, bytesConsumed: 0 },
  );
  await store.planPages('run-cohort', 'cohort-2', 1);
  await store.stageEvents(
    'run-events',
    {
      events: users.map(({ id, value }) => ({
        eventKey: `insert:event-of-${users.findIndex((user) => user.id === id)}`,
        body: { external_id: id, name: 'Purchase', time: new Date(NOW).toISOString(), properties: properties(value) },
      })),
      activity: [],
    },
    { rowsConsumed: 2, bytesConsumed: 0 },
  );
  await store.claimEvents([{ runId: 'run-events', requestKey: 'r1', eventKeys: ['insert:event-of-0', 'insert:event-of-1'], nowMs: NOW }]);
  await store.recordFailures('run-cohort', [
    { memberKey: `ext:${ERASED.userId}`, reason: 'refused by Braze' },
    { memberKey: `ext:${KEPT.userId}`, reason: 'refused by Braze' },
  ]);
  const currents = (id: string, value: string) => ({ user: { external_user_id: id }, properties: properties(value) });
  await store.spoolIngress(
    'currents',
    users.map(({ id, value }) => ({ dedupeKey: `pending-${id}`, partitionKey: `user_id:${id}`, body: currents(id, value) })),
    NOW,
  );
  await store.spoolIngress(
    'cohort:1',
    users.map(({ id, value }) => ({ dedupeKey: `message-1|${id}`, partitionKey: id, body: { user_id: id, note: value } })),
    NOW,
  );
  const done = await store.pendingIngress('cohort:1', { nowMs: NOW, limit: 10 });
  await store.completeIngress(
    'cohort:1',
    done.map((item) => item.seq),
    NOW,
  );
  await store.deadLetterIngress(
    'currents',
    users.map(({ id, value }) => ({
      dedupeKey: `letter-${users.findIndex((user) => user.id === id)}`,
      reason: 'unreadable',
      body: currents(id, value),
    })),
    NOW,
  );
  await store.recordAliasesWritten([{ aliasName: ERASED.deviceId, aliasLabel: 'amplitude_device_id' }], NOW);
  await store.markAliasesToIdentify([{ aliasName: ERASED.deviceId, externalId: ERASED.userId }], NOW);
  await store.keepProfiles(users.map(({ id, value }) => ({ userKey: `user_id:${id}`, fetchedAtMs: NOW, userData: properties(value) })));
  await store.addToProfileAudience(
    'list:vip',
    users.map(({ id }) => `user_id:${id}`),
  );
}

/** The store's bytes as a file system or a dump holds them. */
async function storeBytes(kind: string, env: StoreEnv): Promise<string> {
  if (kind === 'SQLite') {
    const files = [env.STATE_DB!, `${env.STATE_DB}-wal`].filter((file) => existsSync(file));
    return files.map((file) => readFileSync(file).toString('latin1')).join('');
  }
  const binDir = findPostgresBinDir();
  assert.ok(binDir, 'pg_dump is installed with the PostgreSQL server');
  const { stdout } = await promisify(execFile)(join(binDir, 'pg_dump'), [env.STATE_STORE_URL!], { maxBuffer: 64 * 1024 * 1024 });
  return stdout;
}

forEachStore((kind) => {
  test('an erasure leaves no id or value of the user in the store, suppresses them, and is done once', async () => {
    const { store, env } = await openFreshStore(kind);
    try {
      await fillStore(store);
      const before = await storeBytes(kind.name, env);
      // The search finds what is there: both users' ids and values, before.
      for (const needle of [ERASED.userId, SECRET, ERASED.otherDeviceId, KEPT.userId, KEPT.value])
        assert.ok(before.includes(needle), needle);

      const suppression = new SuppressionList(store, new SuppressionKey('a test key of sixteen characters or more'));
      const context = { store, suppression } as unknown as WorkerContext;
      const options = { erasureKey: 'forget:1', source: 'test', deleteInBraze: false, deleteInAmplitude: false, requester: 'test' };
      const report = await eraseUsers(context, { userIds: [], deviceIds: [], amplitudeIds: [ERASED.amplitudeId] }, options);
      assert.equal(report.done, true);
      assert.deepEqual(report.ids, { userIds: 1, deviceIds: 2, amplitudeIds: 2 }, 'the user and both devices, through both Amplitude ids');
      assert.equal(report.suppressed, 5);
      assert.deepEqual(
        Object.fromEntries(Object.entries(report.removed).filter(([, n]) => n > 0)),
        {
          snapshot_members: 2,
          user_attribute_snapshots: 1,
          user_activity: 1,
          amplitude_profiles: 1,
          profile_audiences: 1,
          amplitude_identities: 4,
          braze_aliases: 1,
          staged_members: 1,
          staged_events: 1,
          sent_events: 1,
          member_failures: 1,
          ingress_spool: 2,
          ingress_dead_letters: 1,
          plan_pages: 1,
        },
        'every copy, found in every table',
      );
      await store.clearFreedSpace();

      const after = await storeBytes(kind.name, env);
      for (const needle of [ERASED.userId, SECRET, ERASED.deviceId, ERASED.otherDeviceId, ERASED.amplitudeId])
        assert.equal(after.split(needle).length - 1, 0, `${needle} is nowhere in the store's ${kind.name === 'SQLite' ? 'files' : 'dump'}`);
      for (const needle of [KEPT.userId, KEPT.value]) assert.ok(after.includes(needle), `${needle} stays`);

      // The ledgers still count: the failure by its reason, the sent event under a hash.
      assert.deepEqual(await store.failureCountsByReason('run-cohort'), [{ reason: 'refused by Braze', count: 2 }]);
      const claims = await store.claimEvents([{ runId: 'run-later', requestKey: 'r', eventKeys: ['insert:event-of-1'], nowMs: NOW }]);
      assert.deepEqual(claims, [[]], 'the kept user’s sent event is still known as sent');
      // The plan still reads: the page that ended at the erased key now ends before it.
      const first = await store.plannedPage('run-cohort', 'enter', 0);
      assert.ok(first && !first.throughKey.includes(ERASED.userId));
      assert.deepEqual(
        (await store.diffPage('run-cohort', 'cohort-2', { kind: 'enter', limit: 10 })).items,
        [`ext:${KEPT.userId}`],
        'the kept user is still to send',
      );

      const subjects = [{ userId: ERASED.userId }, { deviceId: ERASED.otherDeviceId }, { amplitudeId: 700007 }, { userId: KEPT.userId }];
      const suppressed = await suppression.check(subjects, (subject) => subject);
      assert.deepEqual(
        subjects.map((subject) => suppressed.get(subject)?.reason),
        [
          'suppressed: erased on ' + new Date().toISOString().slice(0, 10),
          'suppressed: erased on ' + new Date().toISOString().slice(0, 10),
          'suppressed: erased on ' + new Date().toISOString().slice(0, 10),
          undefined,
        ],
      );

      assert.deepEqual(await eraseUsers(context, { userIds: [ERASED.userId], deviceIds: [], amplitudeIds: [] }, options), {
        done: false,
        ids: { userIds: 1, deviceIds: 0, amplitudeIds: 0 },
        removed: {},
        suppressed: 0,
      });
      assert.deepEqual([...(await store.erasuresRecorded(['forget:1', 'forget:2']))], ['forget:1']);

      const key = suppression.key;
      assert.equal(
        await store.liftSuppressions([key.hashId('user_id', ERASED.userId)], { erasureKey: 'undo:1', source: 'test', atMs: NOW }),
        1,
      );
      assert.equal((await suppression.check([{ userId: ERASED.userId }], (subject) => subject)).size, 0, 'lifted');
      assert.equal((await suppression.check([{ deviceId: ERASED.deviceId }], (subject) => subject)).size, 1, 'the rest stay');
      assert.deepEqual([...(await store.erasuresRecorded(['undo:1']))], ['undo:1'], 'the lift is recorded');

      const otherKey = new SuppressionList(store, new SuppressionKey('another key of sixteen characters'));
      await assert.rejects(
        otherKey.check([{ userId: 'anyone' }], (subject) => subject),
        /hashed with another PRIVACY_HASH_KEY/,
      );
    } finally {
      await store.close();
    }
  });

  test('a saved erasure request is read back and deleted; no request without an id', async () => {
    const { store } = await openFreshStore(kind);
    try {
      await store.saveErasureRequest('req-1', { userIds: ['u'], deviceIds: ['d'], amplitudeIds: [] }, NOW);
      assert.deepEqual(await store.erasureRequest('req-1'), { userIds: ['u'], deviceIds: ['d'], amplitudeIds: [] });
      await store.deleteErasureRequest('req-1');
      assert.equal(await store.erasureRequest('req-1'), undefined);
    } finally {
      await store.close();
    }
  });
});
