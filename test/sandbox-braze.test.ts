/** Contract tests of the Braze sandbox: each documented behaviour, pinned over real HTTP. */
import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, test } from 'node:test';
import { startBrazeSandbox, type BrazeSandbox } from '../src/sandbox/braze/index.js';

const KEY = 'rest-key';
const partner = { name: 'amplitude', partnerApiKey: 'partner-key', dataImportKeys: ['import-key'] };
let braze: BrazeSandbox;

before(async () => {
  braze = await startBrazeSandbox({
    apiKeys: [{ key: KEY }, { key: 'track-only', permissions: ['users.track'] }],
    initialUsers: [{ external_id: 'known-1' }, { external_id: 'known-2' }, { external_id: 'known-3' }],
    blockedExternalIds: ['spammer'],
    maxArrayLength: 5,
    partner,
  });
});
after(() => braze.close());
beforeEach(() => braze.control.reset());

async function post(path: string, body: unknown, key = KEY) {
  const response = await fetch(`${braze.url}${path}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  return { status: response.status, headers: response.headers, body: (await response.json()) as Record<string, unknown> };
}

const track = (body: unknown, key?: string) => post('/users/track', body, key);
const attributesOf = (externalId: string) => Object.fromEntries(braze.control.user(externalId)?.customAttributes ?? []);

describe('auth', () => {
  test('unknown or quoted key → 401; missing permission → 403; unknown path → 404', async () => {
    assert.equal((await track({ attributes: [] }, 'nope')).status, 401);
    assert.equal((await track({ attributes: [] }, `"${KEY}"`)).status, 401);
    const denied = await post('/users/export/ids', { external_ids: ['known-1'] }, 'track-only');
    assert.deepEqual([denied.status, denied.body.message], [403, 'Access Denied']);
    assert.equal((await post('/users/nothing', {})).status, 404);
  });
});

describe('/users/track', () => {
  test('76 objects → 400 Max Input Length Exceeded and nothing applied', async () => {
    const attributes = Array.from({ length: 76 }, () => ({ external_id: 'known-1', plan: 'gold' }));
    const response = await track({ attributes });
    assert.deepEqual([response.status, response.body.message], [400, 'Max Input Length Exceeded']);
    assert.deepEqual(attributesOf('known-1'), {});
    assert.equal(braze.control.dataPoints().total, 0);
  });

  test('combined mode caps all arrays together', async () => {
    const combined = await startBrazeSandbox({ apiKeys: [{ key: KEY }], objectLimit: { mode: 'combined', max: 50 } });
    try {
      const send = (n: number) =>
        fetch(`${combined.url}/users/track`, {
          method: 'POST',
          headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' },
          body: JSON.stringify({
            attributes: Array.from({ length: n }, (_, i) => ({ external_id: `u${i}`, a: 1 })),
            events: Array.from({ length: 25 }, (_, i) => ({ external_id: `u${i}`, name: 'e', time: '2026-01-01T00:00:00Z' })),
          }),
        });
      assert.equal((await send(26)).status, 400);
      assert.equal((await send(25)).status, 201);
    } finally {
      await combined.close();
    }
  });

  test('201 success with per-object errors at the right indexes; the valid objects still apply', async () => {
    const response = await track({
      attributes: [{ external_id: 'known-1', plan: 'gold' }, { plan: 'no-id' }, { external_id: 'spammer', plan: 'x' }, { external_id: 'known-2', plan: 'silver' }],
      events: [{ external_id: 'known-1', name: 'opened', time: '2026-01-01T00:00:00Z' }, { external_id: 'known-1', time: '2026-01-01T00:00:00Z' }],
    });
    assert.equal(response.status, 201);
    assert.equal(response.body.message, 'success');
    assert.deepEqual(response.body.errors, [
      { type: "'external_id' or 'braze_id' or 'user_alias' is required", input_array: 'attributes', index: 1 },
      { type: 'provided external_id is blacklisted and disallowed', input_array: 'attributes', index: 2 },
      { type: "'name' is required", input_array: 'events', index: 1 },
    ]);
    assert.equal(response.body.attributes_processed, 2);
    assert.equal(attributesOf('known-1').plan, 'gold');
    assert.equal(attributesOf('known-2').plan, 'silver');
  });

  test('_update_existing_only: external_id creates unless true; an alias creates only when explicitly false', async () => {
    await track({ attributes: [{ external_id: 'new-default', a: 1 }, { external_id: 'new-update-only', a: 1, _update_existing_only: true }] });
    assert.ok(braze.control.user('new-default'));
    assert.equal(braze.control.user('new-update-only'), undefined);
    const alias = (name: string) => ({ alias_name: name, alias_label: 'amplitude_id' });
    await track({ attributes: [{ user_alias: alias('a1'), a: 1 }, { user_alias: alias('a2'), a: 1, _update_existing_only: false }] });
    const aliased = [...braze.control.users()].filter((p) => p.aliases.length > 0).map((p) => p.aliases[0]!.alias_name);
    assert.deepEqual(aliased, ['a2']);
  });

  test('array add/remove: unique values, re-add moves to the end, front truncation at the maximum', async () => {
    await track({ attributes: [{ external_id: 'known-1', tags: ['a', 'b', 'c'] }] });
    await track({ attributes: [{ external_id: 'known-1', tags: { add: ['a', 'd'], remove: ['b'] } }] });
    assert.deepEqual(attributesOf('known-1').tags, ['c', 'a', 'd']);
    await track({ attributes: [{ external_id: 'known-1', tags: { add: ['e', 'f', 'g'] } }] });
    assert.deepEqual(attributesOf('known-1').tags, ['a', 'd', 'e', 'f', 'g']);
  });

  test('null unsets; inc increments; nested objects overwrite unless _merge_objects', async () => {
    await track({ attributes: [{ external_id: 'known-1', plan: 'gold', visits: 2, address: { city: 'Paris', zip: '75001' } }] });
    await track({ attributes: [{ external_id: 'known-1', plan: null, visits: { inc: 3 }, address: { city: 'Lyon' } }] });
    assert.deepEqual(attributesOf('known-1'), { visits: 5, address: { city: 'Lyon' } });
    await track({ attributes: [{ external_id: 'known-1', address: { zip: '69001' }, _merge_objects: true }] });
    assert.deepEqual(attributesOf('known-1').address, { city: 'Lyon', zip: '69001' });
  });

  test('X-RateLimit headers on every response, 429 over the limit with nothing applied, then the next window', async () => {
    braze.control.setRateLimit({ requests: 2, windowMs: 1_000 });
    // Start at the beginning of a window so the three requests land in the same one.
    await new Promise((r) => setTimeout(r, 1_000 - (Date.now() % 1_000) + 20));
    const responses = [];
    for (let i = 0; i < 3; i++) responses.push(await track({ attributes: [{ external_id: 'known-1', n: i }] }));
    assert.deepEqual(responses.map((r) => r.status), [201, 201, 429]);
    assert.deepEqual(responses.map((r) => r.headers.get('x-ratelimit-remaining')), ['1', '0', '0']);
    assert.equal(responses[2]!.headers.get('retry-after'), null);
    const resetMs = Number(responses[2]!.headers.get('x-ratelimit-reset')) * 1000;
    assert.ok(resetMs > Date.now() && resetMs <= Date.now() + 1_000);
    assert.equal(attributesOf('known-1').n, 1);
    await new Promise((r) => setTimeout(r, resetMs - Date.now() + 20));
    assert.equal((await track({ attributes: [{ external_id: 'known-1', n: 9 }] })).status, 201);
  });
});

describe('data points (legacy rules)', () => {
  test('each attribute set costs 1 even when unchanged; array add/remove 1 per value; events 1 + properties; update-only misses are free', async () => {
    await track({ attributes: [{ external_id: 'known-1', plan: 'gold' }] });
    await track({ attributes: [{ external_id: 'known-1', plan: 'gold' }] });
    await track({ attributes: [{ external_id: 'known-1', cohorts: { add: ['c1', 'c2'], remove: ['c3'] } }] });
    await track({ events: [{ external_id: 'known-1', name: 'opened', time: '2026-01-01T00:00:00Z', properties: { a: 1, b: 2 } }] });
    await track({ attributes: [{ external_id: 'ghost', plan: 'gold', _update_existing_only: true }] });
    assert.deepEqual(braze.control.dataPoints(), { total: 8, byKind: { attribute: 2, array_add: 2, array_remove: 1, event: 1, event_property: 2 } });
  });
});

describe('/users/export/ids', () => {
  test('returns profiles and invalid ids; more than 50 ids → 400', async () => {
    await track({ attributes: [{ external_id: 'known-1', plan: 'gold' }] });
    const response = await post('/users/export/ids', { external_ids: ['known-1', 'missing'] });
    assert.equal(response.status, 201);
    const users = response.body.users as Array<{ external_id: string; custom_attributes: Record<string, unknown> }>;
    assert.deepEqual(users.map((u) => [u.external_id, u.custom_attributes]), [['known-1', { plan: 'gold' }]]);
    assert.deepEqual(response.body.invalid_user_ids, ['missing']);
    assert.equal((await post('/users/export/ids', { external_ids: Array.from({ length: 51 }, (_, i) => `u${i}`) })).status, 400);
  });
});

describe('partner cohorts', () => {
  const base = { partner_api_key: partner.partnerApiKey, client_secret: 'import-key' };
  const cohortsPath = `/partners/${partner.name}/cohorts`;

  test('create, add and remove existing users only; never creates users; billed per assignment', async () => {
    assert.equal((await post(cohortsPath, { ...base, cohort_id: 'c1', name: 'Power users', created_at: '2026-01-01T00:00:00Z' })).status, 201);
    const add = await post(`${cohortsPath}/users`, { ...base, cohort_id: 'c1', cohort_changes: [{ user_ids: ['known-1', 'known-2', 'stranger'] }] });
    assert.equal(add.status, 201);
    await post(`${cohortsPath}/users`, { ...base, cohort_id: 'c1', cohort_changes: [{ user_ids: ['known-2'], should_remove: true }] });
    assert.deepEqual(braze.control.cohort('c1')?.members, ['known-1']);
    assert.equal(braze.control.user('stranger'), undefined);
    assert.equal(braze.control.dataPoints().byKind.cohort_assignment, 3);
  });

  test('more than 1,000 ids → 400; wrong keys → 401; missing fields → 400 with the documented message', async () => {
    await post(cohortsPath, { ...base, cohort_id: 'c1', name: 'n', created_at: '2026-01-01T00:00:00Z' });
    const tooMany = await post(`${cohortsPath}/users`, {
      ...base,
      cohort_id: 'c1',
      cohort_changes: [{ user_ids: Array.from({ length: 600 }, (_, i) => `u${i}`) }, { user_ids: Array.from({ length: 401 }, (_, i) => `v${i}`), should_remove: true }],
    });
    assert.deepEqual([tooMany.status, tooMany.body.message], [400, 'Only 1,000 user_ids, device_ids, and aliases are allowed per request']);
    assert.equal((await post(cohortsPath, { ...base, client_secret: 'wrong', cohort_id: 'c2', name: 'n', created_at: '2026-01-01T00:00:00Z' })).status, 401);
    const missingName = await post(cohortsPath, { ...base, cohort_id: 'c3', name: '', created_at: '2026-01-01T00:00:00Z' });
    assert.deepEqual([missingName.status, missingName.body.message], [400, 'name must be a non-empty string']);
  });
});

describe('fault injection and inspection', () => {
  test('an injected 5xx applies nothing; the state endpoint reports users, requests and data points', async () => {
    braze.control.setFaults({ serverErrorRate: 1 });
    assert.equal((await track({ attributes: [{ external_id: 'known-1', plan: 'gold' }] })).status, 500);
    assert.deepEqual(attributesOf('known-1'), {});
    braze.control.setFaults({});
    await track({ attributes: [{ external_id: 'known-1', plan: 'gold' }] });
    const state = (await (await fetch(`${braze.url}/_sandbox/state`)).json()) as { users: number; dataPoints: { total: number }; requests: Record<string, number> };
    assert.equal(state.users, 3);
    assert.equal(state.dataPoints.total, 1);
    assert.equal(state.requests['POST /users/track'], 2);
    const user = (await (await fetch(`${braze.url}/_sandbox/users/known-1`)).json()) as { custom_attributes: unknown };
    assert.deepEqual(user.custom_attributes, { plan: 'gold' });
  });
});
