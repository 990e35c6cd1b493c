/** Amplitude's Profile API answer made again from a kept profile: what each query parameter selects, and what is null. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { parseProfileQuery, profileAnswer, UNKNOWN_USER_ANSWER, type ProfileQuery } from '../src/profiles/answer.js';
import type { JsonObject } from '../src/store/store.js';

const kept: JsonObject = {
  user_id: 'u1',
  device_id: 'd1',
  amp_props: { songs_played_30d: '12.0', lifetime_spend: '5000.0' },
  cohort_ids: ['c1', 'c2'],
  recommendations: [
    { rec_id: 'rec-a', child_rec_id: 'rec-a', items: ['x'], is_control: false, recommendation_source: 'model', last_updated: 1 },
    { rec_id: 'rec-b', child_rec_id: 'rec-b', items: ['y'], is_control: true, recommendation_source: 'model', last_updated: 2 },
  ],
  propensities: [],
};

function query(search: string): ProfileQuery {
  const parsed = parseProfileQuery(new URLSearchParams(search));
  assert.ok(!('refused' in parsed), 'the query is taken');
  return parsed;
}

const answer = (search: string, properties?: JsonObject) =>
  (JSON.parse(profileAnswer(kept, query(search), properties)) as { userData: JsonObject }).userData;

describe('profile answers', () => {
  test('a user id is the key, else a device id; no id is refused as Amplitude refuses it', () => {
    assert.equal(query('user_id=u1&device_id=d1').userKey, 'user_id:u1');
    assert.equal(query('device_id=d1').userKey, 'device_id:d1');
    assert.deepEqual(parseProfileQuery(new URLSearchParams('get_recs=true')), { refused: 'user_id or device_id is required' });
  });

  test('only what is asked for is there, in Amplitude’s key order; the rest is null', () => {
    const userData = answer('user_id=u1');
    assert.deepEqual(Object.keys(userData), ['user_id', 'device_id', 'amp_props', 'cohort_ids', 'recommendations', 'propensities']);
    assert.deepEqual(Object.values(userData).slice(2), [null, null, null, null]);
    assert.deepEqual(answer('user_id=u1&get_cohort_ids=true&get_propensity=1').cohort_ids, ['c1', 'c2']);
  });

  test('computations and recommendations are filtered by comp_id and rec_id', () => {
    assert.deepEqual(answer('user_id=u1&get_computations=true&comp_id=lifetime_spend').amp_props, { lifetime_spend: '5000.0' });
    assert.deepEqual(answer('user_id=u1&get_computations=true').amp_props, kept.amp_props);
    const recs = answer('user_id=u1&get_recs=true&rec_id=rec-b').recommendations as JsonObject[];
    assert.deepEqual(
      recs.map((rec) => rec.rec_id),
      ['rec-b'],
    );
    assert.equal((answer('user_id=u1&get_recs=true').recommendations as JsonObject[]).length, 2);
  });

  test('user properties come first in amp_props, computations after them', () => {
    const props = answer('user_id=u1&get_amp_props=true&get_computations=true&comp_id=songs_played_30d', { plan: 'pro' }).amp_props;
    assert.equal(JSON.stringify(props), '{"plan":"pro","songs_played_30d":"12.0"}');
    assert.deepEqual(answer('user_id=u1&get_amp_props=true', { plan: 'pro' }).amp_props, { plan: 'pro' });
  });

  test('a user Amplitude has not seen gets its own answer', () => {
    assert.equal(profileAnswer(null, query('user_id=nobody&get_recs=true')), UNKNOWN_USER_ANSWER);
    assert.equal(UNKNOWN_USER_ANSWER, '{"error":"User id and device id not seen before"}');
  });
});
