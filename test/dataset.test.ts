import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Dataset, DEFAULT_COHORTS } from '../src/sandbox/dataset.js';

const DAY_MS = 24 * 60 * 60 * 1000;
const HOUR_MS = 60 * 60 * 1000;
const NOW = Date.UTC(2025, 5, 15, 12, 30);

function fractionOf<T>(items: T[], predicate: (item: T) => boolean): number {
  return items.filter(predicate).length / items.length;
}

describe('Dataset users', () => {
  const dataset = new Dataset({ seed: 7, users: 20_000, now: NOW });
  const users = [...dataset.users()];

  test('are a pure function of seed and index', () => {
    const again = new Dataset({ seed: 7, users: 20_000, now: NOW });
    for (const index of [0, 1, 999, 19_999]) assert.deepEqual(again.user(index), dataset.user(index));
    assert.deepEqual(users[1234], dataset.user(1234));
    const otherSeed = new Dataset({ seed: 8, users: 20_000, now: NOW });
    assert.notDeepEqual(otherSeed.user(1234), dataset.user(1234));
  });

  test('identity(i) agrees with user(i)', () => {
    for (const index of [0, 5, 17_000]) {
      const { amplitudeId, userId, existsInBraze } = dataset.user(index);
      assert.deepEqual(dataset.identity(index), { index, amplitudeId, userId, existsInBraze });
    }
  });

  test('cost no memory up front, even at 2,000,000 users', () => {
    const started = performance.now();
    const big = new Dataset({ seed: 1, users: 2_000_000, now: NOW });
    const last = big.user(1_999_999);
    assert.match(last.amplitudeId, /^\d+$/);
    assert.equal(big.indexOfAmplitudeId(last.amplitudeId), 1_999_999);
    assert.ok(performance.now() - started < 3_000);
  });

  test('have the documented shapes', () => {
    const user = users.find((candidate) => candidate.userId !== null);
    assert.ok(user);
    assert.match(user.userId ?? '', /^user-\d{6}$/);
    assert.match(user.deviceId, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    for (const name of ['plan', 'country', 'ltv', 'beta_tester', 'favorite_genres']) assert.ok(name in user.properties, name);
    assert.ok(Array.isArray(user.properties.favorite_genres));
    for (const value of Object.values(user.computations)) assert.match(value, /^\d+\.\d$/);
    assert.ok(user.recommendations.length > 0);
    for (const recommendation of user.recommendations) {
      assert.equal(typeof recommendation.is_control, 'boolean');
      assert.ok(recommendation.items.length > 0);
    }
  });

  test('fractions come out roughly as configured', () => {
    const identified = fractionOf(users, (user) => user.userId !== null);
    assert.ok(Math.abs(identified - 0.8) < 0.02, `identified ${identified}`);
    const brazeKnown = fractionOf(users, (user) => user.existsInBraze);
    assert.ok(Math.abs(brazeKnown - 0.9) < 0.02, `braze known ${brazeKnown}`);
    const anonymousKnown = fractionOf(
      users.filter((user) => user.userId === null),
      (user) => user.existsInBraze,
    );
    assert.ok(Math.abs(anonymousKnown - 0.9) < 0.05, `anonymous users known to Braze (by device) ${anonymousKnown}`);
    assert.ok(users.every((user) => NOW - user.lastSeenAt.getTime() <= 180 * DAY_MS && user.lastSeenAt.getTime() <= NOW));
    const activeIn90Days = fractionOf(users, (user) => NOW - user.lastSeenAt.getTime() <= 90 * DAY_MS);
    assert.ok(Math.abs(activeIn90Days - 0.5) < 0.03, `active in 90 days ${activeIn90Days}`);
  });

  test('honour other fractions', () => {
    const allAnonymousUnknown = new Dataset({ seed: 7, users: 500, identifiedFraction: 0, brazeKnownFraction: 0, now: NOW });
    assert.ok([...allAnonymousUnknown.users()].every((user) => user.userId === null && !user.existsInBraze));
    const allKnown = new Dataset({ seed: 7, users: 500, identifiedFraction: 1, brazeKnownFraction: 1, now: NOW });
    assert.ok([...allKnown.users()].every((user) => user.userId !== null && user.existsInBraze));
  });

  test('can be found by any of their ids', () => {
    const user = users.find((candidate) => candidate.userId !== null && candidate.index > 100);
    assert.ok(user?.userId);
    assert.equal(dataset.indexOfAmplitudeId(user.amplitudeId), user.index);
    assert.equal(dataset.indexOfUserId(user.userId), user.index);
    assert.equal(dataset.indexOfDeviceId(user.deviceId), user.index);
    const anonymous = users.find((candidate) => candidate.userId === null);
    assert.ok(anonymous);
    assert.equal(dataset.indexOfUserId(`user-${String(anonymous.index).padStart(6, '0')}`), undefined);
    assert.equal(dataset.indexOfAmplitudeId('1'), undefined);
    assert.equal(dataset.indexOfUserId('user-999999'), undefined);
    assert.equal(dataset.indexOfDeviceId(`${user.deviceId.slice(0, -1)}x`), undefined);
  });
});

describe('Dataset cohorts', () => {
  test('default cohorts have stable ids, the list fields and sizes near their fractions', () => {
    const dataset = new Dataset({ seed: 3, users: 20_000, now: NOW });
    const cohorts = dataset.cohorts();
    assert.deepEqual(
      cohorts.map((cohort) => cohort.id),
      DEFAULT_COHORTS.map((definition) => definition.id),
    );
    for (const cohort of cohorts) {
      for (const field of ['id', 'appId', 'name', 'description', 'size', 'lastComputed', 'lastMod', 'createdAt', 'archived', 'hidden', 'published', 'finished', 'type', 'owners', 'viewers']) {
        assert.ok(field in cohort, `${cohort.id} has ${field}`);
      }
      assert.ok(cohort.createdAt < 1e11 && cohort.lastComputed < 1e11, 'times are epoch seconds');
      const definition = DEFAULT_COHORTS.find((candidate) => candidate.id === cohort.id);
      const fraction = cohort.size / 20_000;
      assert.ok(Math.abs(fraction - (definition?.memberFraction ?? -1)) < 0.02, `${cohort.id} fraction ${fraction}`);
      const members = [...dataset.cohortMembers(cohort.id)];
      assert.equal(members.length, cohort.size);
      assert.ok(members.some((member) => member.userId === null), 'anonymous members are included');
    }
  });

  test('lastComputed strictly increases on every change, even within one second', () => {
    const dataset = new Dataset({ seed: 3, users: 1_000, now: NOW });
    const [first, second] = [dataset.user(1).amplitudeId, dataset.user(2).amplitudeId];
    const times = [dataset.cohort('26umsb5')?.lastComputed ?? 0];
    times.push(dataset.setCohortMembers('26umsb5', [first]).lastComputed);
    times.push(dataset.addCohortMembers('26umsb5', [second]).lastComputed);
    times.push(dataset.removeCohortMembers('26umsb5', [first]).lastComputed);
    times.push(dataset.removeCohortMembers('26umsb5', [second]).lastComputed);
    for (let i = 1; i < times.length; i++) assert.ok((times[i] ?? 0) > (times[i - 1] ?? 0), `change ${i}: ${times.join(', ')}`);
  });

  test('set, add and remove change membership; a held membership is a snapshot', () => {
    const dataset = new Dataset({ seed: 3, users: 1_000, now: NOW });
    const ids = [5, 9, 700].map((index) => dataset.user(index).amplitudeId);
    const ruleBased = dataset.cohortMembership('5fh7t0w');
    const ruleSize = dataset.cohort('5fh7t0w')?.size;

    dataset.setCohortMembers('5fh7t0w', ids);
    assert.deepEqual([...dataset.cohortMembers('5fh7t0w')].map((member) => member.index), [5, 9, 700]);
    dataset.addCohortMembers('5fh7t0w', [dataset.user(3).amplitudeId]);
    dataset.removeCohortMembers('5fh7t0w', [ids[1] ?? '']);
    assert.deepEqual([...dataset.cohortMembers('5fh7t0w')].map((member) => member.index), [3, 5, 700]);
    assert.equal(dataset.cohort('5fh7t0w')?.size, 3);
    assert.equal(ruleBased?.size, ruleSize, 'the earlier membership is unchanged');

    const outsider = [...Array(1_000).keys()].find((index) => !dataset.cohortMembership('26umsb5')?.includes(index)) ?? -1;
    dataset.addCohortMembers('26umsb5', [dataset.user(outsider).amplitudeId]);
    assert.ok(dataset.cohortIdsOf(outsider).includes('26umsb5'), 'add on a rule-based cohort keeps the rule and adds the user');
    assert.throws(() => dataset.setCohortMembers('26umsb5', ['42']), /unknown amplitude id/);
    assert.throws(() => dataset.addCohortMembers('nope', []), /unknown cohort/);
  });

  test('defineCohort adds a rule-based cohort', () => {
    const dataset = new Dataset({ seed: 3, users: 10_000, now: NOW });
    const cohort = dataset.defineCohort({ id: '9zz9zz9', name: 'Half', memberFraction: 0.5 });
    assert.ok(Math.abs(cohort.size / 10_000 - 0.5) < 0.03);
    assert.ok(dataset.cohorts().some((listed) => listed.id === '9zz9zz9'));
    assert.throws(() => dataset.defineCohort({ id: '9zz9zz9', name: 'Again', memberFraction: 0.1 }), /already exists/);
  });
});

describe('Dataset events', () => {
  const dataset = new Dataset({ seed: 11, users: 10_000, now: NOW });
  const hourStart = Math.floor(NOW / HOUR_MS) * HOUR_MS - 3 * HOUR_MS;

  test('are deterministic, inside their hour and bounded', () => {
    const events = [...dataset.eventsInHour(hourStart)];
    assert.deepEqual([...dataset.eventsInHour(hourStart)], events);
    assert.ok(events.length > 0 && events.length <= dataset.maxEventsPerHour, `${events.length} events`);
    const uploadTimes = events.map((event) => Date.parse(`${event.server_upload_time.replace(' ', 'T').slice(0, 23)}Z`));
    assert.ok(uploadTimes.every((time) => time >= hourStart && time < hourStart + HOUR_MS));
    assert.deepEqual(uploadTimes, [...uploadTimes].sort((a, b) => a - b));
    assert.equal(new Set(events.map((event) => event.$insert_id)).size, events.length);
    const [event] = events;
    assert.ok(event);
    assert.equal(typeof event.amplitude_id, 'number');
    assert.match(event.event_time, /^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{6}$/);
    assert.equal(dataset.indexOfAmplitudeId(String(event.amplitude_id)) === undefined, false);
  });

  test('exist only in the 180 days before now', () => {
    assert.equal([...dataset.eventsInHour(NOW + HOUR_MS)].length, 0);
    assert.equal([...dataset.eventsInHour(NOW - 181 * DAY_MS)].length, 0);
    const currentHour = [...dataset.eventsInHour(Math.floor(NOW / HOUR_MS) * HOUR_MS)];
    assert.ok(currentHour.every((event) => Date.parse(`${event.server_upload_time.replace(' ', 'T').slice(0, 23)}Z`) < NOW));
  });
});
