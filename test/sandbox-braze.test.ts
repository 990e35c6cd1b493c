/** Contract tests of the Braze sandbox: each documented behaviour, pinned over real HTTP. */
import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, test } from 'node:test';
import { startBrazeSandbox, type BrazeSandbox, type BrazeSandboxOptions } from '../src/sandbox/braze/index.js';

const KEY = 'rest-key';
const partner = { name: 'amplitude', partnerApiKey: 'partner-key', dataImportKeys: ['import-key'] };
const TIME = '2026-01-01T00:00:00.000Z';
let braze: BrazeSandbox;

before(async () => {
  braze = await startBrazeSandbox({
    apiKeys: [{ key: KEY }, { key: 'track-only', permissions: ['users.track'] }],
    initialUsers: (function* () {
      yield* [{ external_id: 'known-1' }, { external_id: 'known-2' }, { external_id: 'known-3', device_ids: ['device-of-known-3'] }];
      yield { device_ids: ['anonymous-device'] };
    })(),
    blockedExternalIds: ['spammer'],
    maxArrayLength: 5,
    partner,
  });
});
after(() => braze.close());
beforeEach(() => braze.control.reset());

async function postTo(url: string, path: string, body: unknown, key = KEY) {
  const response = await fetch(`${url}${path}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  return { status: response.status, headers: response.headers, body: (await response.json()) as Record<string, unknown> };
}

const post = (path: string, body: unknown, key?: string) => postTo(braze.url, path, body, key);
const track = (body: unknown, key?: string) => post('/users/track', body, key);
const attributesOf = (externalId: string) => Object.fromEntries(braze.control.user(externalId)?.customAttributes ?? []);
const getJson = async (path: string) => (await (await fetch(`${braze.url}${path}`)).json()) as Record<string, unknown>;

async function withSandbox(options: Partial<BrazeSandboxOptions>, run: (sandbox: BrazeSandbox) => Promise<void>): Promise<void> {
  const sandbox = await startBrazeSandbox({ apiKeys: [{ key: KEY }], ...options });
  try {
    await run(sandbox);
  } finally {
    await sandbox.close();
  }
}

describe('auth and routing', () => {
  test('unknown or quoted key → 401; missing permission → 403; unknown path → 404; malformed JSON → 400', async () => {
    assert.deepEqual(await track({ attributes: [] }, 'nope').then((r) => [r.status, r.body.message]), [401, 'Invalid API Key']);
    assert.equal((await track({ attributes: [] }, `"${KEY}"`)).status, 401);
    const denied = await post('/users/export/ids', { external_ids: ['known-1'] }, 'track-only');
    assert.deepEqual([denied.status, denied.body.message], [403, 'Access Denied']);
    assert.equal((await post('/users/nothing', {})).status, 404);
    assert.equal((await post('/partners/someone-else/cohorts', {})).status, 404);
    assert.equal((await track('{"attributes": [')).status, 400);
    assert.deepEqual(braze.control.dataPoints().total, 0);
  });
});

describe('/users/track', () => {
  test('76 objects → 400 Max Input Length Exceeded and nothing applied', async () => {
    const attributes = Array.from({ length: 76 }, () => ({ external_id: 'known-1', plan: 'gold' }));
    const response = await track({ attributes, events: [{ external_id: 'known-1', name: 'e', time: TIME }] });
    assert.deepEqual([response.status, response.body.message], [400, 'Max Input Length Exceeded']);
    assert.deepEqual(attributesOf('known-1'), {});
    assert.equal(braze.control.user('known-1')?.customEvents, undefined);
    assert.equal(braze.control.dataPoints().total, 0);
    assert.equal((await track({ attributes: attributes.slice(1) })).status, 201);
  });

  test('combined mode caps all arrays together at 50', async () => {
    await withSandbox({ objectLimit: { mode: 'combined', max: 50 } }, async (combined) => {
      const send = (attributeCount: number) =>
        postTo(combined.url, '/users/track', {
          attributes: Array.from({ length: attributeCount }, (_, i) => ({ external_id: `u${i}`, a: 1 })),
          events: Array.from({ length: 25 }, (_, i) => ({ external_id: `u${i}`, name: 'e', time: TIME })),
        });
      assert.deepEqual(await send(26).then((r) => [r.status, r.body.message]), [400, 'Max Input Length Exceeded']);
      assert.equal(combined.control.users()[Symbol.iterator]().next().done, true, 'nothing applied');
      assert.equal((await send(25)).status, 201);
    });
  });

  test('201 success with per-object errors at the right indexes; the valid objects still apply', async () => {
    const response = await track({
      attributes: [
        { external_id: 'known-1', plan: 'gold' },
        { plan: 'no-id' },
        { external_id: 'spammer', plan: 'x' },
        { external_id: 'known-2', plan: 'silver' },
        { external_id: 'known-3', bio: 'x'.repeat(256) },
        { external_id: 'known-3', $reserved: 1 },
      ],
      events: [
        { external_id: 'known-1', name: 'opened', time: TIME },
        { external_id: 'known-1', time: TIME },
        { external_id: 'known-1', name: 'no-time' },
        { external_id: 'known-1', name: 'bad-property', time: TIME, properties: { $price: 1 } },
      ],
      purchases: [{ external_id: 'known-1', product_id: 'p', currency: 'EUR', price: 1, quantity: 101 }],
    });
    assert.equal(response.status, 201);
    assert.equal(response.body.message, 'success');
    const errors = response.body.errors as Array<{ type: string; input_array: string; index: number }>;
    assert.deepEqual(
      errors.map((e) => `${e.input_array}[${e.index}]`),
      ['attributes[1]', 'attributes[2]', 'attributes[4]', 'attributes[5]', 'events[1]', 'events[2]', 'events[3]', 'purchases[0]'],
    );
    assert.equal(errors[0]!.type, "'external_id' or 'braze_id' or 'user_alias' is required");
    assert.equal(errors[1]!.type, 'provided external_id is blacklisted and disallowed');
    assert.deepEqual([response.body.attributes_processed, response.body.events_processed, response.body.purchases_processed], [2, 1, 0]);
    assert.equal(attributesOf('known-1').plan, 'gold');
    assert.equal(attributesOf('known-2').plan, 'silver');
    assert.deepEqual(attributesOf('known-3'), {});
    assert.deepEqual([...(braze.control.user('known-1')?.customEvents?.keys() ?? [])], ['opened']);
  });

  test('counts appear only for the arrays sent', async () => {
    const response = await track({ events: [{ external_id: 'known-1', name: 'e', time: TIME }] });
    assert.deepEqual(response.body, { message: 'success', events_processed: 1 });
  });

  test('_update_existing_only: external_id and email create unless true; an alias creates only when explicitly false', async () => {
    const id = (externalId: string, flag?: boolean) => ({
      external_id: externalId,
      a: 1,
      ...(flag === undefined ? {} : { _update_existing_only: flag }),
    });
    await track({ attributes: [id('ext-omitted'), id('ext-true', true), id('ext-false', false)] });
    assert.deepEqual(
      ['ext-omitted', 'ext-true', 'ext-false'].map((e) => braze.control.user(e) !== undefined),
      [true, false, true],
    );

    const alias = (name: string, flag?: boolean) => ({
      user_alias: { alias_name: name, alias_label: 'amplitude_id' },
      a: 1,
      ...(flag === undefined ? {} : { _update_existing_only: flag }),
    });
    await track({ attributes: [alias('omitted'), alias('true', true), alias('false', false)] });
    const aliased = [...braze.control.users()].flatMap((p) => p.aliases.map((a) => a.alias_name));
    assert.deepEqual(aliased, ['false']);
    await track({ attributes: [{ ...alias('false'), b: 2 }] });
    assert.equal(
      [...braze.control.users()].find((p) => p.aliases.length > 0)?.customAttributes?.get('b'),
      2,
      'an existing alias is updated',
    );

    await track({
      attributes: [
        { email: 'new@example.com', a: 1 },
        { email: 'other@example.com', a: 1, _update_existing_only: true },
      ],
    });
    const emails = [...braze.control.users()].map((p) => p.standardAttributes?.get('email')).filter(Boolean);
    assert.deepEqual(emails, ['new@example.com']);
  });

  test('an update-only write to an unknown user is accepted, changes nothing and costs nothing', async () => {
    const response = await track({
      attributes: [{ external_id: 'ghost', plan: 'gold', _update_existing_only: true }],
      events: [{ user_alias: { alias_name: 'ghost', alias_label: 'amplitude_id' }, name: 'e', time: TIME }],
    });
    assert.deepEqual([response.status, response.body.errors], [201, undefined]);
    assert.equal(braze.control.user('ghost'), undefined);
    assert.equal(braze.control.dataPoints().total, 0);
  });

  test('array add/remove: unique values, re-add moves to the end, front truncation at the maximum', async () => {
    await track({ attributes: [{ external_id: 'known-1', tags: ['a', 'b', 'c', 'a'] }] });
    assert.deepEqual(attributesOf('known-1').tags, ['a', 'b', 'c']);
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

  test('arrays of objects apply $add → $remove → $update; one invalid nested value drops every nested write in the request', async () => {
    await track({
      attributes: [
        {
          external_id: 'known-1',
          pets: [
            { id: 1, name: 'Rex' },
            { id: 2, name: 'Tom' },
          ],
        },
      ],
    });
    await track({
      attributes: [
        {
          external_id: 'known-1',
          _merge_objects: true,
          pets: {
            $add: [{ id: 3, name: 'Kit' }],
            $remove: [{ $identifier_key: 'id', $identifier_value: 2 }],
            $update: [{ $identifier_key: 'id', $identifier_value: 3, $new_object: { age: 1 } }],
          },
        },
      ],
    });
    assert.deepEqual(attributesOf('known-1').pets, [
      { id: 1, name: 'Rex' },
      { id: 3, name: 'Kit', age: 1 },
    ]);

    const response = await track({
      attributes: [
        { external_id: 'known-1', address: { city: 'Lyon' }, plan: 'gold' },
        { external_id: 'known-2', address: { 'bad key': 'x' } },
      ],
    });
    assert.deepEqual([response.status, response.body.errors], [201, undefined]);
    assert.equal(attributesOf('known-1').plan, 'gold', 'flat attributes still apply');
    assert.equal(attributesOf('known-1').address, undefined);
    assert.deepEqual(attributesOf('known-2'), {});
  });

  test('standard fields are stored apart from custom attributes', async () => {
    await track({ attributes: [{ external_id: 'known-1', first_name: 'Ada', email: 'ada@example.com', plan: 'gold' }] });
    const profile = braze.control.user('known-1');
    assert.deepEqual(Object.fromEntries(profile?.standardAttributes ?? []), { first_name: 'Ada', email: 'ada@example.com' });
    assert.deepEqual(attributesOf('known-1'), { plan: 'gold' });
    await track({ attributes: [{ email: 'ada@example.com', last_name: 'Lovelace' }] });
    assert.equal(profile?.standardAttributes?.get('last_name'), 'Lovelace', 'email addresses the same profile');
  });

  test('events are not deduplicated and a future time is clamped to now; purchases count their quantity', async () => {
    const event = { external_id: 'known-1', name: 'opened', time: '2999-01-01T00:00:00Z' };
    const before = Date.now();
    await track({
      events: [event, event],
      purchases: [{ external_id: 'known-1', product_id: 'book', currency: 'EUR', price: 5, quantity: 3, time: TIME }],
    });
    const opened = braze.control.user('known-1')?.customEvents?.get('opened');
    assert.equal(opened?.count, 2);
    assert.ok(Date.parse(opened.last) >= before && Date.parse(opened.last) <= Date.now());
    assert.deepEqual(braze.control.user('known-1')?.purchases?.get('book'), { first: TIME, last: TIME, count: 3 });
  });

  test('X-RateLimit headers on every response, 429 over the limit with nothing applied, then the next window', async () => {
    braze.control.setRateLimit({ requests: 2, windowMs: 1_000 });
    // Start at the beginning of a window so the three requests land in the same one.
    await new Promise((r) => setTimeout(r, 1_000 - (Date.now() % 1_000) + 20));
    const responses = [];
    for (let i = 0; i < 3; i++) responses.push(await track({ attributes: [{ external_id: 'known-1', n: i }] }));
    assert.deepEqual(
      responses.map((r) => r.status),
      [201, 201, 429],
    );
    assert.deepEqual(
      responses.map((r) => r.headers.get('x-ratelimit-limit')),
      ['2', '2', '2'],
    );
    assert.deepEqual(
      responses.map((r) => r.headers.get('x-ratelimit-remaining')),
      ['1', '0', '0'],
    );
    assert.equal(responses[2]!.headers.get('retry-after'), null);
    const resetMs = Number(responses[2]!.headers.get('x-ratelimit-reset')) * 1000;
    assert.ok(resetMs > Date.now() && resetMs <= Date.now() + 1_000);
    assert.equal(attributesOf('known-1').n, 1);
    const cohortCall = await post(`/partners/${partner.name}/cohorts`, {
      partner_api_key: partner.partnerApiKey,
      client_secret: 'import-key',
      cohort_id: 'c',
      name: 'n',
      created_at: TIME,
    });
    assert.equal(cohortCall.status, 201, 'partner endpoints are outside the /users/track limit');
    await new Promise((r) => setTimeout(r, resetMs - Date.now() + 20));
    assert.equal((await track({ attributes: [{ external_id: 'known-1', n: 9 }] })).status, 201);
    const state = (await (await fetch(`${braze.url}/_sandbox/state`)).json()) as {
      trackWindows: { windowMs: number; granted: number[]; rejected: number[] };
    };
    assert.deepEqual(state.trackWindows.granted, [2, 1], 'requests granted per window, the refused one not counted');
    assert.deepEqual(state.trackWindows.rejected, [1, 0], 'the refused one counted in its own window');
    assert.equal(state.trackWindows.windowMs, 1_000);
  });
});

describe('data points (legacy rules)', () => {
  test('each attribute set costs 1 even when unchanged; array add/remove 1 per value; an event 1 whatever its properties', async () => {
    await track({ attributes: [{ external_id: 'known-1', plan: 'gold' }] });
    await track({ attributes: [{ external_id: 'known-1', plan: 'gold' }] });
    await track({ attributes: [{ external_id: 'known-1', cohorts: { add: ['c1', 'c2'], remove: ['c3'] } }] });
    await track({ events: [{ external_id: 'known-1', name: 'opened', time: TIME, properties: { a: 1, b: 2 } }] });
    assert.deepEqual(braze.control.dataPoints(), { total: 6, byKind: { attribute: 2, array_add: 2, array_remove: 1, event: 1 } });
  });

  test('identifiers and flags are free; inc, a whole-array set and null cost 1; nested objects 1 per key; a purchase 1 whatever its properties', async () => {
    await track({
      attributes: [
        {
          external_id: 'known-1',
          _update_existing_only: true,
          _merge_objects: true,
          visits: { inc: 1 },
          tags: ['a', 'b'],
          plan: null,
          address: { city: 'Paris', geo: { lat: 1, lon: 2 } },
        },
      ],
      purchases: [{ external_id: 'known-1', product_id: 'p', currency: 'EUR', price: 1, properties: { color: 'red' } }],
    });
    assert.deepEqual(braze.control.dataPoints(), { total: 7, byKind: { increment: 1, attribute: 2, nested_key: 3, purchase: 1 } });
  });
});

describe('identity endpoints', () => {
  test('export/ids returns profiles (limited to fields_to_export) and invalid ids; more than 50 ids → 400', async () => {
    await track({
      attributes: [{ external_id: 'known-1', plan: 'gold' }],
      events: [{ external_id: 'known-1', name: 'opened', time: TIME }],
    });
    const response = await post('/users/export/ids', { external_ids: ['known-1', 'missing'] });
    assert.equal(response.status, 201);
    const [user] = response.body.users as Array<Record<string, unknown>>;
    assert.deepEqual(
      [user?.external_id, user?.custom_attributes, user?.custom_events],
      ['known-1', { plan: 'gold' }, [{ name: 'opened', first: TIME, last: TIME, count: 1 }]],
    );
    assert.match(String(user?.braze_id), /^[0-9a-f]{24}$/);
    assert.deepEqual(response.body.invalid_user_ids, ['missing']);
    const limited = await post('/users/export/ids', { external_ids: ['known-1'], fields_to_export: ['external_id', 'custom_attributes'] });
    assert.deepEqual(limited.body.users, [{ external_id: 'known-1', custom_attributes: { plan: 'gold' } }]);
    const byBrazeId = await post('/users/export/ids', { braze_id: user?.braze_id, fields_to_export: ['external_id'] });
    assert.deepEqual(byBrazeId.body.users, [{ external_id: 'known-1' }]);
    assert.equal((await post('/users/export/ids', { external_ids: Array.from({ length: 51 }, (_, i) => `u${i}`) })).status, 400);
  });

  test('alias/new adds to a known user, silently ignores an unknown one, or creates an alias-only user', async () => {
    const label = 'amplitude_id';
    const response = await post('/users/alias/new', {
      user_aliases: [
        { external_id: 'known-1', alias_name: 'amp-1', alias_label: label },
        { external_id: 'nobody', alias_name: 'amp-x', alias_label: label },
        { alias_name: 'amp-anon', alias_label: label },
      ],
    });
    assert.equal(response.status, 201);
    assert.deepEqual(braze.control.user('known-1')?.aliases, [{ alias_name: 'amp-1', alias_label: label }]);
    assert.equal(braze.control.user('nobody'), undefined);
    assert.deepEqual(
      [...braze.control.users()].filter((p) => !p.identified && p.aliases.length > 0).map((p) => p.aliases[0]?.alias_name),
      ['amp-anon'],
    );
  });

  test('identify with "merge" merges exclusive fields into the known user, or gives the alias the external_id; same label → no merge', async () => {
    const alias = (name: string) => ({ alias_name: name, alias_label: 'amplitude_id' });
    await track({
      attributes: [
        { user_alias: alias('a1'), _update_existing_only: false, plan: 'anon-plan', only_on_alias: true },
        { user_alias: alias('a2'), _update_existing_only: false, x: 1 },
        { user_alias: alias('a3'), _update_existing_only: false, y: 1 },
        { external_id: 'known-1', plan: 'known-plan' },
      ],
    });
    await post('/users/alias/new', { user_aliases: [{ external_id: 'known-2', ...alias('existing') }] });
    const response = await post('/users/identify', {
      aliases_to_identify: [
        { external_id: 'known-1', user_alias: alias('a1') },
        { external_id: 'brand-new', user_alias: alias('a2') },
        { external_id: 'known-2', user_alias: alias('a3') },
      ],
      merge_behavior: 'merge',
    });
    assert.equal(response.status, 201);
    assert.deepEqual(attributesOf('known-1'), { plan: 'known-plan', only_on_alias: true });
    assert.deepEqual(
      braze.control.user('known-1')?.aliases.map((a) => a.alias_name),
      ['a1'],
    );
    assert.equal(attributesOf('brand-new').x, 1);
    assert.equal(attributesOf('known-2').y, undefined, 'known-2 already has an amplitude_id alias');
  });

  test('identify with "merge" moves events and purchases too, and costs nothing; "none" (the default) orphans them', async () => {
    const alias = (name: string) => ({ alias_name: name, alias_label: 'amplitude_id' });
    await track({
      attributes: [
        { user_alias: alias('merged'), _update_existing_only: false, plan: 'anon-plan', first_name: 'Ada' },
        { user_alias: alias('orphaned'), _update_existing_only: false, plan: 'lost' },
      ],
      events: [
        { user_alias: alias('merged'), name: 'opened', time: TIME },
        { user_alias: alias('orphaned'), name: 'opened', time: TIME },
      ],
      purchases: [{ user_alias: alias('merged'), product_id: 'book', currency: 'EUR', price: 5, time: TIME }],
    });
    await track({ events: [{ external_id: 'known-1', name: 'opened', time: '2026-02-01T00:00:00.000Z' }] });
    const pointsBefore = braze.control.dataPoints();

    const merged = await post('/users/identify', {
      aliases_to_identify: [{ external_id: 'known-1', user_alias: alias('merged') }],
      merge_behavior: 'merge',
    });
    assert.deepEqual([merged.status, merged.body.aliases_processed], [201, 1]);
    const known1 = braze.control.user('known-1');
    assert.deepEqual(attributesOf('known-1'), { plan: 'anon-plan' });
    assert.equal(known1?.standardAttributes?.get('first_name'), 'Ada');
    assert.deepEqual(known1?.customEvents?.get('opened'), { first: TIME, last: '2026-02-01T00:00:00.000Z', count: 2 });
    assert.deepEqual(known1?.purchases?.get('book'), { first: TIME, last: TIME, count: 1 });
    assert.deepEqual(known1?.aliases, [alias('merged')]);

    const kept = await post('/users/identify', { aliases_to_identify: [{ external_id: 'known-2', user_alias: alias('orphaned') }] });
    assert.equal(kept.status, 201);
    assert.deepEqual(braze.control.user('known-2')?.aliases, [alias('orphaned')], 'the alias moves to the identified user');
    assert.deepEqual(attributesOf('known-2'), {});
    assert.equal(braze.control.user('known-2')?.customEvents, undefined);
    assert.equal(
      [...braze.control.users()].filter((profile) => !profile.identified && profile.aliases.length > 0).length,
      0,
      'both alias-only profiles are gone',
    );
    assert.deepEqual(braze.control.dataPoints(), pointsBefore);

    const wrong = await post('/users/identify', {
      aliases_to_identify: [{ external_id: 'known-3', user_alias: alias('x') }],
      merge_behavior: 'all',
    });
    assert.deepEqual([wrong.status, wrong.body.message], [400, "'merge_behavior' must be 'none' or 'merge'"]);
    assert.equal((await post('/users/identify', {})).status, 400, 'aliases_to_identify is required');
    const tooMany = Array.from({ length: 51 }, (_, i) => ({ external_id: `e${i}`, user_alias: alias(`n${i}`) }));
    assert.equal((await post('/users/identify', { aliases_to_identify: tooMany })).status, 400);
  });

  test('delete by external ids or aliases: at most 50, the profiles are gone, no data points', async () => {
    await post('/users/alias/new', { user_aliases: [{ external_id: 'known-2', alias_name: 'amp-2', alias_label: 'amplitude_id' }] });
    await track({ attributes: [{ external_id: 'known-1', plan: 'gold' }] });
    const pointsBefore = braze.control.dataPoints();
    const tooMany = await post('/users/delete', { external_ids: Array.from({ length: 51 }, (_, i) => `u${i}`) });
    assert.deepEqual([tooMany.status, tooMany.body.message], [400, 'A maximum of 50 external_ids may be provided per request']);
    assert.ok(braze.control.user('known-1'));
    const byAlias = await post('/users/delete', { user_aliases: [{ alias_name: 'amp-2', alias_label: 'amplitude_id' }] });
    assert.deepEqual([byAlias.status, byAlias.body.deleted], [201, 1]);
    assert.equal(braze.control.user('known-2'), undefined);
    const byExternalId = await post('/users/delete', { external_ids: ['known-1'] });
    assert.equal(byExternalId.body.deleted, 1);
    assert.deepEqual((await post('/users/export/ids', { external_ids: ['known-1'] })).body.invalid_user_ids, ['known-1']);
    assert.deepEqual(braze.control.dataPoints(), pointsBefore);
  });

  test('alias/new, identify, merge and delete share one limit, with X-RateLimit headers; /users/track has its own', async () => {
    const first = await post('/users/delete', { external_ids: ['missing'] });
    assert.equal(first.headers.get('x-ratelimit-limit'), '20000', 'Braze’s 20,000 requests per minute by default');
    // An hour-long window, so the requests below cannot straddle two.
    const set = await fetch(`${braze.url}/_sandbox/rate-limit/identity`, {
      method: 'POST',
      body: JSON.stringify({ requests: 3, windowMs: 3_600_000 }),
    });
    assert.equal(set.status, 200);
    const responses = [
      await post('/users/alias/new', { user_aliases: [{ alias_name: 'n', alias_label: 'l' }] }),
      await post('/users/identify', {
        aliases_to_identify: [{ external_id: 'known-1', user_alias: { alias_name: 'n', alias_label: 'l' } }],
      }),
      await post('/users/merge', { merge_updates: [] }),
      await post('/users/delete', { external_ids: ['known-1'] }),
    ];
    assert.deepEqual(
      responses.map((r) => r.status),
      [201, 201, 202, 429],
    );
    assert.deepEqual(
      responses.map((r) => [r.headers.get('x-ratelimit-limit'), r.headers.get('x-ratelimit-remaining')]),
      [
        ['3', '2'],
        ['3', '1'],
        ['3', '0'],
        ['3', '0'],
      ],
    );
    const resetMs = Number(responses[3]!.headers.get('x-ratelimit-reset')) * 1000;
    assert.ok(resetMs > Date.now() && resetMs <= Date.now() + 3_600_000);
    assert.ok(braze.control.user('known-1'), 'the refused delete deleted nothing');
    const { identityWindows } = (await getJson('/_sandbox/state')) as { identityWindows: { granted: number[]; rejected: number[] } };
    assert.deepEqual([identityWindows.granted, identityWindows.rejected], [[3], [1]], 'the window since the limit was set');
    const tracked = await track({ attributes: [{ external_id: 'known-1', plan: 'gold' }] });
    assert.deepEqual([tracked.status, tracked.headers.get('x-ratelimit-limit')], [201, '3000']);
    assert.equal((await post('/users/export/ids', { external_ids: ['known-1'] })).status, 201, 'export is outside that limit');
    assert.equal((await fetch(`${braze.url}/_sandbox/rate-limit/nothing`, { method: 'POST', body: '{}' })).status, 404);
    braze.control.reset();
    assert.equal((await post('/users/delete', { external_ids: ['missing'] })).headers.get('x-ratelimit-limit'), '20000');
  });

  test('merge (202) folds one user into another; delete removes users and is free', async () => {
    await track({
      attributes: [
        { external_id: 'known-1', a: 1 },
        { external_id: 'known-2', b: 2 },
      ],
    });
    const merged = await post('/users/merge', {
      merge_updates: [{ identifier_to_merge: { external_id: 'known-2' }, identifier_to_keep: { external_id: 'known-1' } }],
    });
    assert.equal(merged.status, 202);
    assert.deepEqual(attributesOf('known-1'), { a: 1, b: 2 });
    assert.equal(braze.control.user('known-2'), undefined);
    const pointsBefore = braze.control.dataPoints().total;
    const deleted = await post('/users/delete', { external_ids: ['known-1', 'missing'] });
    assert.deepEqual([deleted.status, deleted.body.deleted], [201, 1]);
    assert.equal(braze.control.user('known-1'), undefined);
    assert.equal(braze.control.dataPoints().total, pointsBefore);
    assert.equal((await post('/users/delete', { external_ids: ['known-3'], braze_ids: ['x'] })).status, 400, 'exactly one identifier list');
  });
});

describe('partner cohorts', () => {
  const base = { partner_api_key: partner.partnerApiKey, client_secret: 'import-key' };
  const cohortsPath = `/partners/${partner.name}/cohorts`;
  const createCohort = (cohortId: string, name = 'Power users') =>
    post(cohortsPath, { ...base, cohort_id: cohortId, name, created_at: TIME });
  const changeUsers = (cohortId: string, cohortChanges: unknown[]) =>
    post(`${cohortsPath}/users`, { ...base, cohort_id: cohortId, cohort_changes: cohortChanges });

  test('create, rename, add and remove existing users only; never creates users; billed per assignment', async () => {
    assert.equal((await createCohort('c1')).status, 201);
    assert.equal((await changeUsers('c1', [{ user_ids: ['known-1', 'known-2', 'stranger'] }])).status, 201);
    await changeUsers('c1', [{ user_ids: ['known-2'], should_remove: true }]);
    await createCohort('c1', 'Renamed');
    assert.deepEqual(braze.control.cohort('c1'), { cohortId: 'c1', name: 'Renamed', members: ['known-1'] });
    assert.equal(braze.control.user('stranger'), undefined);
    assert.equal(braze.control.dataPoints().byKind.cohort_assignment, 3);
    const state = await getJson('/_sandbox/state');
    assert.deepEqual(state.cohorts, [{ cohort_id: 'c1', name: 'Renamed', members: 1 }]);
    assert.deepEqual((await getJson('/_sandbox/cohorts/c1')).members, ['known-1']);
  });

  test('device_ids match anonymous users only; a device of an identified user is ignored', async () => {
    await createCohort('c1');
    await changeUsers('c1', [{ device_ids: ['anonymous-device', 'device-of-known-3', 'unknown-device'] }]);
    const members = braze.control.cohort('c1')?.members ?? [];
    assert.equal(members.length, 1);
    assert.match(members[0]!, /^[0-9a-f]{24}$/, 'the anonymous member is listed by braze_id');
    assert.equal(braze.control.dataPoints().byKind.cohort_assignment, 1);
  });

  test('more than 1,000 ids → 400; unknown cohort → 400; wrong keys → 401; missing fields → 400 with the documented messages', async () => {
    await createCohort('c1');
    const tooMany = await changeUsers('c1', [
      { user_ids: Array.from({ length: 600 }, (_, i) => `u${i}`) },
      { device_ids: Array.from({ length: 401 }, (_, i) => `d${i}`), should_remove: true },
    ]);
    assert.deepEqual([tooMany.status, tooMany.body.message], [400, 'Only 1,000 user_ids, device_ids, and aliases are allowed per request']);
    assert.equal((await changeUsers('nope', [{ user_ids: ['known-1'] }])).status, 400);
    assert.equal((await post(cohortsPath, { ...base, client_secret: 'wrong', cohort_id: 'c2', name: 'n', created_at: TIME })).status, 401);
    assert.equal(
      (await post(cohortsPath, { ...base, partner_api_key: 'wrong', cohort_id: 'c2', name: 'n', created_at: TIME })).status,
      401,
    );
    const missingName = await post(cohortsPath, { ...base, cohort_id: 'c3', name: '', created_at: TIME });
    assert.deepEqual([missingName.status, missingName.body.message], [400, 'name must be a non-empty string']);
    const badTime = await post(cohortsPath, { ...base, cohort_id: 'c3', name: 'n', created_at: 'yesterday' });
    assert.deepEqual([badTime.status, badTime.body.message], [400, 'created_at must be a valid time as an ISO-8601 string']);
    assert.equal(braze.control.cohort('c3'), undefined);
  });

  test('partnerLockedRate injects 423 Locked', async () => {
    await withSandbox({ partner, partnerLockedRate: 1 }, async (locked) => {
      const response = await postTo(locked.url, cohortsPath, { ...base, cohort_id: 'c1', name: 'n', created_at: TIME });
      assert.equal(response.status, 423);
      assert.equal(locked.control.cohort('c1'), undefined);
    });
  });
});

describe('fault injection, inspection and reset', () => {
  test('an injected 5xx applies nothing; the state endpoint reports users, requests and data points', async () => {
    braze.control.setFaults({ serverErrorRate: 1 });
    const failed = await track({ attributes: [{ external_id: 'known-1', plan: 'gold' }] });
    assert.equal(failed.status, 500);
    assert.ok(failed.headers.get('x-ratelimit-reset'), 'Braze sends the rate-limit headers on every /users/track response');
    assert.deepEqual(attributesOf('known-1'), {});
    braze.control.setFaults({});
    await track({ attributes: [{ external_id: 'known-1', plan: 'gold' }] });
    const state = (await getJson('/_sandbox/state')) as { users: number; dataPoints: { total: number }; requests: Record<string, number> };
    assert.equal(state.users, 4);
    assert.equal(state.dataPoints.total, 1);
    assert.equal(state.requests['POST /users/track'], 2);
    assert.deepEqual((await getJson('/_sandbox/users/known-1')).custom_attributes, { plan: 'gold' });
    assert.equal((await fetch(`${braze.url}/_sandbox/users/nobody`)).status, 404);
  });

  test('429 bursts over HTTP control apply nothing; the rate limit and reset are controllable over HTTP', async () => {
    await fetch(`${braze.url}/_sandbox/faults`, {
      method: 'POST',
      body: JSON.stringify({ rateLimitBurstEvery: 2, rateLimitBurstLength: 1 }),
    });
    const statuses = [];
    for (let i = 0; i < 4; i++) statuses.push((await track({ attributes: [{ external_id: 'known-1', n: i }] })).status);
    assert.deepEqual(statuses, [201, 429, 201, 429]);
    assert.equal(attributesOf('known-1').n, 2);

    await fetch(`${braze.url}/_sandbox/rate-limit`, { method: 'POST', body: JSON.stringify({ requests: 7, windowMs: 60_000 }) });
    await fetch(`${braze.url}/_sandbox/faults`, { method: 'POST', body: '{}' });
    assert.equal((await track({ attributes: [{ external_id: 'known-1', n: 9 }] })).headers.get('x-ratelimit-limit'), '7');

    assert.equal((await fetch(`${braze.url}/_sandbox/reset`, { method: 'POST' })).status, 200);
    const state = await getJson('/_sandbox/state');
    assert.deepEqual([state.users, state.dataPoints, state.requests], [4, { total: 0, byKind: {} }, {}]);
    assert.deepEqual(attributesOf('known-1'), {});
    assert.equal((await track({ attributes: [{ external_id: 'known-1', n: 1 }] })).headers.get('x-ratelimit-limit'), '3000');
  });

  test('a large generator seed is read once and restored on reset', async () => {
    function* seed() {
      for (let i = 0; i < 100_000; i++) yield { external_id: `seed-${i}` };
    }
    await withSandbox({ initialUsers: seed() }, async (large) => {
      await postTo(large.url, '/users/track', {
        attributes: [
          { external_id: 'seed-7', plan: 'gold' },
          { external_id: 'extra', plan: 'gold' },
        ],
      });
      assert.equal(((await (await fetch(`${large.url}/_sandbox/state`)).json()) as { users: number }).users, 100_001);
      large.control.reset();
      assert.equal([...large.control.users()].length, 100_000);
      assert.equal(large.control.user('seed-7')?.customAttributes, undefined);
      assert.equal(large.control.user('extra'), undefined);
    });
  });
});
