/** The trait sync's pure logic: input validation, value mapping, the diff against the snapshot, pricing. No I/O. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { describeInputProblems } from '../../src/input-problems.js';
import { acceptedSnapshot, externalIdOf, traitPageRequests } from './braze-attributes.js';
import { selectionFingerprint, traitSyncId, traitSyncInputSchema, type TraitSyncInput } from './input.js';
import {
  attributeChanges,
  brazeValue,
  cohortFileProperties,
  cohortFileValue,
  desiredAttributes,
  snapshotValue,
  stillToSend,
} from './values.js';

const problems = (input: TraitSyncInput) => {
  const parsed = traitSyncInputSchema.safeParse(input);
  assert.ok(!parsed.success, 'the input is refused');
  return describeInputProblems(parsed.error);
};
const selection = (input: TraitSyncInput) => traitSyncInputSchema.parse(input);

describe('trait sync input', () => {
  test('a standard profile field is refused with a message naming it and the ways out', () => {
    const message = problems({ properties: ['plan', 'country'] });
    assert.match(message, /"country" is a Braze standard profile field/);
    assert.match(message, /"attributePrefix": "amp_"/);
    assert.match(message, /"rename": \{"country": "amp_country"\}/);
    assert.equal(selection({ properties: ['country'], standardFields: true }).standardFields, true);
    assert.doesNotThrow(() => selection({ properties: ['country'], attributePrefix: 'amp_' }));
    assert.doesNotThrow(() => selection({ properties: ['country'], rename: { country: 'home_market' } }));
  });

  test('identifiers are never attributes, and two properties may not write one attribute', () => {
    assert.match(problems({ properties: ['external_id'], standardFields: true }), /"external_id" is a Braze identifier/);
    assert.match(
      problems({ properties: ['plan', 'tier'], rename: { tier: 'plan' } }),
      /"plan" and "tier" would both write the attribute "plan"/,
    );
  });

  test('every field problem is named: no properties, unknown rename and type keys, unknown fields', () => {
    const message = problems({
      properties: [],
      rename: { nope: 'x' },
      types: { missing: 'number' },
      windowDays: 0,
      extra: true,
    } as unknown as TraitSyncInput);
    for (const field of ['properties', 'rename.nope', 'types.missing', 'windowDays', '(input)'])
      assert.match(message, new RegExp(`^  ${field.replace(/[.()]/g, '\\$&')}:`, 'm'));
  });

  test('the sync id is stable for the same selection in any order, and follows a name', () => {
    const a = traitSyncId(selection({ properties: ['plan', 'seats'] }));
    assert.match(a, /^trait-sync-[0-9a-f]{8}$/);
    assert.equal(traitSyncId(selection({ properties: ['seats', 'plan'], dryRun: true })), a);
    assert.notEqual(traitSyncId(selection({ properties: ['plan', 'seats'], attributePrefix: 'amp_' })), a);
    assert.equal(traitSyncId(selection({ properties: ['plan'], name: 'billing' })), 'trait-sync-billing');
  });
});

describe('Amplitude values as Braze values', () => {
  test('faithful by default: strings, numbers, booleans, string arrays', () => {
    assert.deepEqual(brazeValue('pro', undefined), { value: 'pro' });
    assert.deepEqual(brazeValue(42.5, undefined), { value: 42.5 });
    assert.deepEqual(brazeValue(false, undefined), { value: false });
    assert.deepEqual(brazeValue(['a', 2, true, 'a'], undefined), { value: ['a', '2', 'true'] }, 'unique, as Braze keeps them');
    assert.deepEqual(brazeValue('12', undefined), { value: '12' }, 'a numeric string stays a string unless typed');
  });

  test('values Braze would reject are named, not cut', () => {
    assert.deepEqual(brazeValue('x'.repeat(256), undefined), { problem: 'a string over 255 characters' });
    assert.deepEqual(brazeValue({ nested: 1 }, undefined), { problem: 'an object (nested attributes are not synced)' });
    assert.deepEqual(brazeValue([{ a: 1 }], undefined), { problem: 'an array of objects or arrays (not a Braze string array)' });
  });

  test('typed: numbers from numeric strings, booleans from their text, ISO-8601 times; mismatches named', () => {
    assert.deepEqual(brazeValue('12.50', 'number'), { value: 12.5 });
    assert.deepEqual(brazeValue('twelve', 'number'), { problem: "a string where the sync's type is number" });
    assert.deepEqual(brazeValue(7, 'string'), { value: '7' });
    assert.deepEqual(brazeValue('true', 'boolean'), { value: true });
    assert.deepEqual(brazeValue('2026-11-30 08:15:00', 'time'), { value: '2026-11-30T08:15:00.000Z' });
    assert.deepEqual(brazeValue('2026-11-30T08:15:00+02:00', 'time'), { value: '2026-11-30T06:15:00.000Z' });
    assert.deepEqual(brazeValue(Date.UTC(2026, 0, 2), 'time'), { value: '2026-01-02T00:00:00.000Z' });
    assert.deepEqual(brazeValue('soon', 'time'), { problem: "a string where the sync's type is time" });
  });
});

describe('changes against the snapshot', () => {
  const sync = selection({ properties: ['plan', 'seats', 'bio'], types: { seats: 'number' } });
  const sent = (values: Record<string, unknown>) =>
    new Map(Object.entries(values).map(([attribute, value]) => [attribute, snapshotValue(value as never)]));

  test('a first write sends every value; an unchanged user sends nothing', () => {
    const desired = desiredAttributes({ plan: 'pro', seats: '3', other: 'ignored' }, sync);
    assert.deepEqual(attributeChanges(desired, undefined, sync), { plan: 'pro', seats: 3 });
    assert.deepEqual(attributeChanges(desired, sent({ plan: 'pro', seats: 3 }), sync), {});
  });

  test('one changed value is one write; a vanished value is one null (unless the sync keeps values)', () => {
    const desired = desiredAttributes({ plan: 'team' }, sync);
    assert.deepEqual(attributeChanges(desired, sent({ plan: 'pro', seats: 3 }), sync), { plan: 'team', seats: null });
    const keeping = selection({ properties: ['plan', 'seats'], onMissing: 'keep' });
    assert.deepEqual(attributeChanges(desiredAttributes({ plan: 'team' }, keeping), sent({ plan: 'pro', seats: 3 }), keeping), {
      plan: 'team',
    });
  });

  test('a value Braze would reject is reported and leaves the attribute as it is (never unset)', () => {
    const desired = desiredAttributes({ plan: 'pro', bio: 'x'.repeat(300) }, sync);
    assert.deepEqual([...desired.problems], [['bio', 'a string over 255 characters']]);
    assert.deepEqual(attributeChanges(desired, sent({ plan: 'pro', bio: 'short' }), sync), {});
  });

  test('just before sending, values written since (by another sync) are dropped', () => {
    assert.deepEqual(stillToSend({ plan: 'team', seats: null, bio: 'hi' }, sent({ plan: 'team', bio: 'old' })), { bio: 'hi' });
  });
});

describe('computations and recommendations', () => {
  const sync = selection({
    computations: ['ltv_90d', 'segment'],
    recommendations: [
      { id: 'rec-1', attribute: 'picks' },
      { id: 'rec-2', attribute: 'more_picks', controlDefault: ['house'] },
    ],
    attributePrefix: 'amp_',
  });

  test('computations become numbers when numeric; recommendation items a string array, a control-group default or unset', () => {
    const desired = desiredAttributes({}, sync, {
      computations: { ltv_90d: '5000000.0', segment: 'whales' },
      recommendations: { 'rec-1': { items: ['a', 'b'], isControl: false }, 'rec-2': { items: ['x'], isControl: true } },
    });
    assert.deepEqual(Object.fromEntries(desired.values), {
      amp_ltv_90d: 5_000_000,
      amp_segment: 'whales',
      picks: ['a', 'b'],
      more_picks: ['house'],
    });
    const control = desiredAttributes({}, sync, {
      computations: {},
      recommendations: { 'rec-1': { items: ['a'], isControl: true }, 'rec-2': null },
    });
    assert.deepEqual(
      attributeChanges(control, new Map([['picks', '["a"]']]), sync),
      { picks: null },
      'a control-group user without a default is unset',
    );
  });

  test('before a user’s profile is fetched, their profile attributes are left alone (never unset)', () => {
    const desired = desiredAttributes({}, sync, undefined);
    assert.deepEqual([...desired.unknown].sort(), ['amp_ltv_90d', 'amp_segment', 'more_picks', 'picks']);
    assert.deepEqual(attributeChanges(desired, new Map([['amp_segment', '"whales"']]), sync), {});
  });

  test('a sync needs at least one source, and its id covers every source', () => {
    assert.match(problems({}), /name at least one Amplitude user property \(or computation, or recommendation\)/);
    assert.notEqual(traitSyncId(selection({ computations: ['a'] })), traitSyncId(selection({ properties: ['a'] })));
  });
});

describe('a cohort as the audience', () => {
  test('the file’s text reads as the value it stands for; an empty cell is no value', () => {
    assert.deepEqual(
      cohortFileProperties({
        plan: 'premium',
        ltv: '12.5',
        beta_tester: 'true',
        genres: '["rock","jazz"]',
        zip: '02139',
        price: '12.50',
        gone: '',
      }),
      { plan: 'premium', ltv: 12.5, beta_tester: true, genres: ['rock', 'jazz'], zip: '02139', price: '12.50' },
    );
    assert.equal(cohortFileValue('[not json'), '[not json');
    assert.equal(cohortFileValue('false'), false);
    assert.equal(cohortFileValue('-3'), -3);
  });

  test('properties only; the audience is part of the sync’s identity and the selection of its source version', () => {
    assert.match(
      problems({ audienceCohortId: 'abc', properties: ['plan'], computations: ['c1'] }),
      /audienceCohortId: a cohort audience carries user properties only/,
    );
    const byIndex = selection({ properties: ['plan'] });
    const byCohort = selection({ properties: ['plan'], audienceCohortId: 'abc' });
    assert.notEqual(traitSyncId(byIndex), traitSyncId(byCohort));
    assert.notEqual(traitSyncId(byCohort), traitSyncId(selection({ properties: ['plan'], audienceCohortId: 'xyz' })));
    assert.equal(selectionFingerprint(byCohort), selectionFingerprint(selection({ properties: ['plan'], audienceCohortId: 'xyz' })));
    assert.notEqual(
      selectionFingerprint(byCohort),
      selectionFingerprint(selection({ properties: ['plan', 'ltv'], audienceCohortId: 'abc' })),
    );
  });
});

describe('attribute requests', () => {
  const changes = Array.from({ length: 80 }, (_, i) => ({
    userKey: `user_id:u${i}`,
    changes: { plan: 'pro', seats: i % 2 === 0 ? null : i },
  }));

  test('objects by external_id that create users, at most the object limit per request, priced one point per write', () => {
    const requests = traitPageRequests(changes, 75);
    assert.deepEqual(
      requests.map((r) => [r.firstKey, r.dataPoints]),
      [
        ['user_id:u0', 150],
        ['user_id:u75', 10],
      ],
    );
    assert.equal(externalIdOf('user_id:u7'), 'u7');
    assert.equal(externalIdOf('device_id:d1'), undefined);
  });

  test('the snapshot change of the accepted users: values set, nulls unset', () => {
    const changesOf = new Map(changes.slice(0, 2).map((user) => [user.userKey, user.changes]));
    assert.deepEqual(acceptedSnapshot('ws', ['user_id:u0', 'user_id:u1'], changesOf), {
      scope: 'ws',
      set: [
        { memberKey: 'user_id:u0', attribute: 'plan', value: '"pro"' },
        { memberKey: 'user_id:u1', attribute: 'plan', value: '"pro"' },
        { memberKey: 'user_id:u1', attribute: 'seats', value: '1' },
      ],
      unset: [{ memberKey: 'user_id:u0', attribute: 'seats' }],
    });
  });
});
