/** The Braze client against the Braze sandbox over real HTTP: every error class, and per-object failures. */
import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, test } from 'node:test';
import { chunkTrackPayload, splitPartnerCohortChanges } from '../src/braze/batching.js';
import { BrazeClient } from '../src/braze/client.js';
import { NonRetryableVendorError, RateLimitedError, RetryableVendorError } from '../src/errors.js';
import { startBrazeSandbox, type BrazeSandbox } from '../src/sandbox/braze/index.js';
import { freePort } from '../src/temporal/dev-server.js';

const KEY = 'braze-key';
const partner = { name: 'amplitude', partnerApiKey: 'partner-key', dataImportKey: 'import-key' };
let braze: BrazeSandbox;
let client: BrazeClient;

before(async () => {
  braze = await startBrazeSandbox({
    apiKeys: [{ key: KEY }, { key: 'no-export', permissions: ['users.track'] }],
    initialUsers: Array.from({ length: 10 }, (_, i) => ({ external_id: `user-${i}` })),
    partner: { name: partner.name, partnerApiKey: partner.partnerApiKey, dataImportKeys: [partner.dataImportKey] },
  });
  client = new BrazeClient({ restEndpoint: braze.url, apiKey: KEY, partner });
});
after(() => braze.close());
beforeEach(() => braze.control.reset());

test('a 201 with per-object errors maps each rejection to the exact object sent, and the rest are accepted', async () => {
  braze.control.setBlockedExternalIds(['user-2', 'user-5']);
  const attributes = Array.from({ length: 8 }, (_, i) => ({ external_id: `user-${i}`, plan: 'gold' }));
  attributes.splice(6, 0, { plan: 'nobody' } as never);
  const result = await client.track({ attributes });
  assert.deepEqual(
    result.attributes.rejected.map((r) => [r.index, r.object, r.reason]),
    [
      [2, attributes[2], 'provided external_id is blacklisted and disallowed'],
      [5, attributes[5], 'provided external_id is blacklisted and disallowed'],
      [6, { plan: 'nobody' }, "'external_id' or 'braze_id' or 'user_alias' is required"],
    ],
  );
  assert.equal(result.attributes.accepted.length, 6);
  assert.equal(braze.control.user('user-7')?.customAttributes?.get('plan'), 'gold');
  assert.equal(braze.control.user('user-2')?.customAttributes?.get('plan'), undefined);
  assert.ok(result.rateLimit && result.rateLimit.limit === 3_000, 'the rate-limit headers are reported');
});

test('trackAll splits into requests within the limit and maps rejections in every chunk to the caller’s indexes', async () => {
  const blocked = [3, 80, 160, 199];
  braze.control.setBlockedExternalIds(blocked.map((i) => `bulk-${i}`));
  const attributes = Array.from({ length: 200 }, (_, i) => ({ external_id: `bulk-${i}`, tier: 'a' }));
  const events = Array.from({ length: 100 }, (_, i) => ({ external_id: `bulk-${i + 50}`, name: 'synced', time: '2026-01-01T00:00:00Z' }));
  events[77] = { ...events[77]!, time: 'not a time' };
  const result = await client.trackAll({ attributes, events });
  assert.equal(braze.control.requestCounts()['POST /users/track'], 3);
  assert.deepEqual(
    result.attributes.rejected.map((r) => [r.index, r.object]),
    blocked.map((i) => [i, attributes[i]]),
  );
  assert.equal(result.attributes.accepted.length, 196);
  // bulk-80 is events[30] (blocked); events[77] has a bad time and lands in the second request.
  assert.deepEqual(
    result.events.rejected.map((r) => [r.index, r.object, r.reason]),
    [
      [30, events[30], 'provided external_id is blacklisted and disallowed'],
      [77, events[77], "'time' is required and must be an ISO-8601 time"],
    ],
  );
  assert.equal(braze.control.user('bulk-199'), undefined);
  assert.equal(braze.control.user('bulk-198')?.customAttributes?.get('tier'), 'a');
});

test('a request over the object limit is refused before it is sent', async () => {
  const attributes = Array.from({ length: 76 }, (_, i) => ({ external_id: `user-${i}`, plan: 'x' }));
  await assert.rejects(client.track({ attributes }), /must fit the per_array limit of 75/);
  assert.equal(braze.control.requestCounts()['POST /users/track'], undefined);
});

test('a 429 becomes RateLimitedError whose delay comes from X-RateLimit-Reset', async () => {
  braze.control.setRateLimit({ requests: 1, windowMs: 10_000 });
  await client.track({ attributes: [{ external_id: 'user-1', a: 1 }] });
  const error = await client.track({ attributes: [{ external_id: 'user-1', a: 2 }] }).catch((e: unknown) => e);
  assert.ok(error instanceof RateLimitedError);
  const windowEnd = Math.ceil((Math.floor(Date.now() / 10_000) + 1) * 10);
  const expectedMs = windowEnd * 1000 - Date.now();
  assert.ok(Math.abs(error.retryAfterMs - expectedMs) < 1_500, `retry in ${error.retryAfterMs} ms, window ends in ${expectedMs} ms`);
  assert.equal(error.status, 429);
});

test('5xx and network failures are retryable', async () => {
  braze.control.setFaults({ serverErrorRate: 1 });
  await assert.rejects(client.track({ attributes: [{ external_id: 'user-1', a: 1 }] }), RetryableVendorError);
  braze.control.setFaults({});
  const closed = new BrazeClient({ restEndpoint: `http://127.0.0.1:${await freePort()}`, apiKey: KEY });
  await assert.rejects(closed.ping(), (error: unknown) => error instanceof RetryableVendorError && /ECONNREFUSED/.test(error.message));
});

test('401 and 403 are non-retryable with the vendor’s own message, and never echo the key', async () => {
  const wrongKey = new BrazeClient({ restEndpoint: braze.url, apiKey: 'secret-but-wrong' });
  await assert.rejects(wrongKey.ping(), (error: unknown) => {
    assert.ok(error instanceof NonRetryableVendorError);
    assert.equal(error.status, 401);
    assert.match(error.message, /Invalid API Key/);
    assert.doesNotMatch(error.message, /secret-but-wrong/);
    return true;
  });
  const noExport = new BrazeClient({ restEndpoint: braze.url, apiKey: 'no-export' });
  await assert.rejects(
    noExport.ping(),
    (error: unknown) => error instanceof NonRetryableVendorError && error.status === 403 && /Access Denied/.test(error.message),
  );
});

test('export by ids batches by 50 and reports unknown ids', async () => {
  const ids = [...Array.from({ length: 10 }, (_, i) => `user-${i}`), ...Array.from({ length: 60 }, (_, i) => `ghost-${i}`)];
  const { users, invalidUserIds } = await client.exportUsersByIds({ externalIds: ids });
  assert.equal(users.length, 10);
  assert.equal(invalidUserIds.length, 60);
  assert.equal(braze.control.requestCounts()['POST /users/export/ids'], 2);
});

test('identifyAliases merges alias profiles into known users; deleteUsers deletes by external id or alias, at most 50, for free', async () => {
  const alias = (name: string) => ({ aliasName: name, aliasLabel: 'amplitude_id' });
  const sent = (name: string) => ({ alias_name: name, alias_label: 'amplitude_id' });
  await client.track({
    attributes: [{ user_alias: sent('amp-1'), _update_existing_only: false, plan: 'anon' }],
    events: [{ user_alias: sent('amp-1'), name: 'opened', time: '2026-01-01T00:00:00Z' }],
  });
  const identified = await client.identifyAliases([
    { externalId: 'user-1', alias: alias('amp-1') },
    { externalId: 'user-2', alias: alias('amp-unknown') },
  ]);
  assert.equal(identified.aliasesProcessed, 2);
  assert.equal(identified.rateLimit?.limit, 20_000, 'the identity endpoints’ shared limit is reported');
  const user1 = braze.control.user('user-1');
  assert.equal(user1?.customAttributes?.get('plan'), 'anon', 'merged, not orphaned');
  assert.equal(user1?.customEvents?.get('opened')?.count, 1);
  assert.deepEqual(user1?.aliases, [sent('amp-1')]);

  await assert.rejects(
    client.identifyAliases(Array.from({ length: 51 }, (_, i) => ({ externalId: `user-${i}`, alias: alias(`a${i}`) }))),
    /at most 50 users, not 51/,
  );
  const pointsBefore = braze.control.dataPoints().total;
  assert.deepEqual((await client.deleteUsers({ userAliases: [alias('amp-1')] })).deleted, 1);
  assert.equal(braze.control.user('user-1'), undefined);
  assert.deepEqual((await client.deleteUsers({ externalIds: ['user-3', 'ghost'] })).deleted, 1);
  assert.equal(braze.control.user('user-3'), undefined);
  assert.equal(braze.control.dataPoints().total, pointsBefore);
  const requests = braze.control.requestCounts()['POST /users/delete'];
  await assert.rejects(client.deleteUsers({ externalIds: Array.from({ length: 51 }, (_, i) => `u${i}`) }), /at most 50 users, not 51/);
  assert.equal(braze.control.requestCounts()['POST /users/delete'], requests, 'refused before it was sent');
});

test('the identity endpoints’ 429 is a RateLimitedError waiting for X-RateLimit-Reset; a missing permission is non-retryable', async () => {
  braze.control.setRateLimit({ requests: 1, windowMs: 3_600_000 }, 'identity');
  await client.deleteUsers({ externalIds: ['user-1'] });
  const error = await client
    .identifyAliases([{ externalId: 'user-2', alias: { aliasName: 'a', aliasLabel: 'l' } }])
    .catch((e: unknown) => e);
  assert.ok(error instanceof RateLimitedError);
  const expectedMs = (Math.floor(Date.now() / 3_600_000) + 1) * 3_600_000 - Date.now();
  assert.ok(Math.abs(error.retryAfterMs - expectedMs) < 1_500, `retry in ${error.retryAfterMs} ms, window ends in ${expectedMs} ms`);
  assert.equal(error.endpoint, 'POST /users/identify');
  const trackOnly = new BrazeClient({ restEndpoint: braze.url, apiKey: 'no-export' });
  await assert.rejects(
    trackOnly.deleteUsers({ externalIds: ['user-2'] }),
    (e: unknown) => e instanceof NonRetryableVendorError && e.status === 403 && /Access Denied/.test(e.message),
  );
  assert.ok(braze.control.user('user-2'));
});

test('partner cohorts: create, change members, split at 1,000 ids, 401 without echoing keys, 423 retryable', async () => {
  await client.createOrRenamePartnerCohort({ cohortId: 'c1', name: 'Power users', createdAt: '2026-01-01T00:00:00Z' });
  await client.updatePartnerCohortUsers({ cohortId: 'c1', changes: [{ userIds: ['user-1', 'user-2'], shouldRemove: false }] });
  assert.deepEqual(braze.control.cohort('c1')?.members, ['user-1', 'user-2']);
  const split = await client.updatePartnerCohortUsers({
    cohortId: 'c1',
    changes: [{ userIds: Array.from({ length: 1_001 }, (_, i) => `u${i}`), shouldRemove: false }],
  });
  assert.equal(split.requests, 2, 'no request carries more than 1,000 ids (the sandbox would answer 400)');
  const wrongSecret = new BrazeClient({ restEndpoint: braze.url, apiKey: KEY, partner: { ...partner, dataImportKey: 'wrong' } });
  await assert.rejects(
    wrongSecret.createOrRenamePartnerCohort({ cohortId: 'c2', name: 'n', createdAt: '2026-01-01T00:00:00Z' }),
    (error: unknown) => {
      assert.ok(error instanceof NonRetryableVendorError && error.status === 401);
      assert.doesNotMatch(error.message, /wrong|partner-key/);
      return true;
    },
  );
  const locked = await startBrazeSandbox({
    apiKeys: [{ key: KEY }],
    partner: { name: 'amplitude', partnerApiKey: 'partner-key', dataImportKeys: ['import-key'] },
    partnerLockedRate: 1,
  });
  try {
    const lockedClient = new BrazeClient({ restEndpoint: locked.url, apiKey: KEY, partner });
    await assert.rejects(
      lockedClient.createOrRenamePartnerCohort({ cohortId: 'c', name: 'n', createdAt: '2026-01-01T00:00:00Z' }),
      RetryableVendorError,
    );
  } finally {
    await locked.close();
  }
});

describe('request splitting (pure)', () => {
  const objects = (prefix: string, n: number) => Array.from({ length: n }, (_, i) => ({ id: `${prefix}${i}` }));

  test('per_array: each array is cut at the limit independently, with caller indexes kept', () => {
    const chunks = chunkTrackPayload({ attributes: objects('a', 160), events: objects('e', 10) }, { mode: 'per_array', max: 75 });
    assert.deepEqual(
      chunks.map((c) => [c.payload.attributes?.length, c.payload.events?.length]),
      [
        [75, 10],
        [75, undefined],
        [10, undefined],
      ],
    );
    assert.deepEqual(
      chunks[2]!.callerIndexes.attributes,
      Array.from({ length: 10 }, (_, i) => 150 + i),
    );
  });

  test('combined: all arrays together stay within the limit, in attributes → events → purchases order', () => {
    const chunks = chunkTrackPayload(
      { attributes: objects('a', 30), events: objects('e', 30), purchases: objects('p', 5) },
      { mode: 'combined', max: 50 },
    );
    assert.deepEqual(
      chunks.map((c) => [c.payload.attributes?.length, c.payload.events?.length, c.payload.purchases?.length]),
      [
        [30, 20, undefined],
        [undefined, 10, 5],
      ],
    );
    assert.deepEqual(
      chunks[1]!.callerIndexes.events,
      Array.from({ length: 10 }, (_, i) => 20 + i),
    );
  });

  test('partner cohort changes are packed into requests of at most 1,000 ids across all entries, order kept', () => {
    const ids = (prefix: string, n: number) => Array.from({ length: n }, (_, i) => `${prefix}${i}`);
    const aliases = Array.from({ length: 300 }, (_, i) => ({ aliasName: `n${i}`, aliasLabel: 'amp' }));
    const requests = splitPartnerCohortChanges([
      { userIds: ids('u', 900), deviceIds: ids('d', 200), shouldRemove: false },
      { userIds: ids('r', 700), aliases, shouldRemove: true },
    ]);
    const count = (c: { userIds?: string[]; deviceIds?: string[]; aliases?: unknown[] }) =>
      (c.userIds?.length ?? 0) + (c.deviceIds?.length ?? 0) + (c.aliases?.length ?? 0);
    assert.deepEqual(
      requests.map((r) => r.reduce((n, c) => n + count(c), 0)),
      [1_000, 1_000, 100],
    );
    assert.deepEqual(
      requests[0]!.map((c) => [c.userIds?.length, c.deviceIds?.length, c.shouldRemove]),
      [[900, 100, false]],
    );
    assert.deepEqual(
      requests[1]!.map((c) => [c.userIds?.length, c.deviceIds?.length, c.aliases?.length, c.shouldRemove]),
      [
        [undefined, 100, undefined, false],
        [700, undefined, 200, true],
      ],
    );
    assert.deepEqual(
      requests.flat().flatMap((c) => c.userIds ?? []),
      [...ids('u', 900), ...ids('r', 700)],
    );
    assert.deepEqual(requests[2]![0]!.aliases, aliases.slice(200));
  });
});
