import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Dataset, DEFAULT_COHORTS, type SandboxEvent } from '../src/sandbox/dataset.js';
import { HourlyEvents } from '../src/sandbox/dataset-events.js';

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
      for (const field of [
        'id',
        'appId',
        'name',
        'description',
        'size',
        'lastComputed',
        'lastMod',
        'createdAt',
        'archived',
        'hidden',
        'published',
        'finished',
        'type',
        'owners',
        'viewers',
      ]) {
        assert.ok(field in cohort, `${cohort.id} has ${field}`);
      }
      assert.ok(cohort.createdAt < 1e11 && cohort.lastComputed < 1e11, 'times are epoch seconds');
      const definition = DEFAULT_COHORTS.find((candidate) => candidate.id === cohort.id);
      const fraction = cohort.size / 20_000;
      assert.ok(Math.abs(fraction - (definition?.memberFraction ?? -1)) < 0.02, `${cohort.id} fraction ${fraction}`);
      const members = [...dataset.cohortMembers(cohort.id)];
      assert.equal(members.length, cohort.size);
      assert.ok(
        members.some((member) => member.userId === null),
        'anonymous members are included',
      );
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
    assert.deepEqual(
      [...dataset.cohortMembers('5fh7t0w')].map((member) => member.index),
      [5, 9, 700],
    );
    dataset.addCohortMembers('5fh7t0w', [dataset.user(3).amplitudeId]);
    dataset.removeCohortMembers('5fh7t0w', [ids[1] ?? '']);
    assert.deepEqual(
      [...dataset.cohortMembers('5fh7t0w')].map((member) => member.index),
      [3, 5, 700],
    );
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
  const uploadTimeOf = (event: SandboxEvent) => amplitudeTimeMs(event.server_upload_time);

  test('are deterministic, inside their hour and bounded', () => {
    const events = [...dataset.eventsInHour(hourStart)];
    assert.deepEqual([...dataset.eventsInHour(hourStart)], events);
    assert.ok(events.length > 0 && events.length <= dataset.maxEventsPerHour, `${events.length} events`);
    const uploadTimes = events.map(uploadTimeOf);
    assert.ok(uploadTimes.every((time) => time >= hourStart && time < hourStart + HOUR_MS));
    assert.deepEqual(
      uploadTimes,
      [...uploadTimes].sort((a, b) => a - b),
    );
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
    assert.ok(currentHour.every((event) => uploadTimeOf(event) < NOW));
  });

  test('countEventsInHour agrees with the events, for full, partial and empty hours', () => {
    const currentHour = Math.floor(NOW / HOUR_MS) * HOUR_MS;
    for (const hour of [hourStart, hourStart - 50 * HOUR_MS, currentHour, currentHour + HOUR_MS, NOW - 181 * DAY_MS]) {
      assert.equal(dataset.countEventsInHour(hour), [...dataset.eventsInHour(hour)].length, new Date(hour).toISOString());
    }
    assert.equal(new Dataset({ seed: 11, users: 0, now: NOW }).countEventsInHour(hourStart), 0);
  });

  test('the default volume stays small; eventsPerHour sets it, roughly, under maxEventsPerHour', () => {
    assert.equal(dataset.eventsPerHour, 125);
    assert.ok(new Dataset({ seed: 11, users: 2_000_000, now: NOW }).maxEventsPerHour <= 400);
    const busy = new Dataset({ seed: 11, users: 5_000, now: NOW, eventsPerHour: 6_000 });
    const counts = [0, 1, 2, 3].map((back) => busy.countEventsInHour(hourStart - back * HOUR_MS));
    for (const count of counts)
      assert.ok(
        Math.abs(count - 6_000) < 300 && count <= busy.maxEventsPerHour,
        `${counts.join(', ')} of 6,000 (max ${busy.maxEventsPerHour})`,
      );
    const sparse = new Dataset({ seed: 11, users: 5_000, now: NOW, eventsPerHour: 10 });
    const sparseTotal = Array.from({ length: 48 }, (_, back) => sparse.countEventsInHour(hourStart - back * HOUR_MS)).reduce(
      (a, b) => a + b,
    );
    assert.ok(Math.abs(sparseTotal / 48 - 10) < 2, `${sparseTotal / 48} events an hour on average`);
  });

  test('are streamed: the first events of a million-event hour come without generating the hour', () => {
    const huge = new Dataset({ seed: 1, users: 100_000, now: NOW, eventsPerHour: 1_000_000 });
    // The minutes the generator drew, observed on the class itself: streaming means two of the hour's sixty.
    const hourlyEvents = HourlyEvents.prototype as unknown as { drawMinute: (this: unknown, minuteStart: number) => unknown[] };
    const drawMinute = hourlyEvents.drawMinute;
    const minutesDrawn: number[] = [];
    hourlyEvents.drawMinute = function (this: unknown, minuteStart: number) {
      minutesDrawn.push(minuteStart);
      return drawMinute.call(this, minuteStart);
    };
    const first: SandboxEvent[] = [];
    try {
      for (const event of huge.eventsInHour(hourStart)) if (first.push(event) === 20_000) break;
    } finally {
      hourlyEvents.drawMinute = drawMinute;
    }
    // About 16,700 events a minute: the first 20,000 need the first two minutes and nothing after them.
    assert.deepEqual(minutesDrawn, [hourStart, hourStart + 60_000]);
    const uploadTimes = first.map(uploadTimeOf);
    assert.deepEqual(
      uploadTimes,
      [...uploadTimes].sort((a, b) => a - b),
      'in upload-time order across minutes',
    );
    assert.ok((uploadTimes.at(-1) ?? 0) >= hourStart + 60_000, 'past the first minute');
    assert.equal(new Set(first.map((event) => event.$insert_id)).size, first.length);
  });

  test('carry the fields of an Amplitude export line', () => {
    const events = [...dataset.eventsInHour(hourStart)];
    for (const event of events) {
      assert.match(event.library, /^amplitude-(ts|swift|android-kotlin)\/\d+\.\d+\.\d+$/);
      assert.ok(['Web', 'iOS', 'Android'].includes(event.platform));
      assert.ok(Number.isInteger(event.session_id) && event.session_id <= amplitudeTimeMs(event.event_time));
      assert.ok(Number.isInteger(event.event_id) && event.event_id >= 0);
      assert.equal(event.client_event_time, event.event_time);
      assert.equal(event.server_received_time, event.server_upload_time);
      assert.ok(amplitudeTimeMs(event.processed_time) >= uploadTimeOf(event));
      assert.match(event.uuid, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
      const index = dataset.indexOfAmplitudeId(String(event.amplitude_id)) ?? -1;
      assert.equal(event.user_id, dataset.identity(index).userId, 'null for anonymous users');
      assert.equal(event.device_id, dataset.deviceIdOf(index));
    }
    assert.ok(events.some((event) => event.user_id === null) && events.some((event) => event.user_id !== null));
  });

  test("a user's events within a session share its session_id", () => {
    const busy = new Dataset({ seed: 11, users: 50, now: NOW, eventsPerHour: 2_000, lateEventFraction: 0 });
    const byUserAndSession = new Map<string, Set<number>>();
    for (const event of busy.eventsInHour(hourStart)) {
      const key = `${event.amplitude_id} ${event.session_id}`;
      const times = byUserAndSession.get(key) ?? new Set();
      byUserAndSession.set(key, times.add(amplitudeTimeMs(event.event_time)));
    }
    const sessions = [...byUserAndSession.values()];
    assert.ok(
      sessions.some((times) => times.size > 1),
      'several events per session',
    );
    for (const times of sessions) assert.ok(Math.max(...times) - Math.min(...times) < 30 * 60_000);
  });

  test('a fraction of events arrive late, up to lateEventMaxHours after they happened; the rest within seconds', () => {
    const busy = new Dataset({ seed: 11, users: 10_000, now: NOW, eventsPerHour: 40_000 });
    const delays = [...busy.eventsInHour(hourStart)].map((event) => uploadTimeOf(event) - amplitudeTimeMs(event.event_time));
    const late = delays.filter((delay) => delay > 5_000);
    assert.ok(delays.every((delay) => delay >= 0 && delay <= 48 * HOUR_MS));
    assert.ok(Math.abs(late.length / delays.length - 0.02) < 0.005, `${late.length} late of ${delays.length}`);
    assert.ok(
      late.some((delay) => delay > 24 * HOUR_MS),
      'some by more than a day',
    );
    const custom = new Dataset({ seed: 11, users: 10_000, now: NOW, eventsPerHour: 4_000, lateEventFraction: 0.5, lateEventMaxHours: 3 });
    const customDelays = [...custom.eventsInHour(hourStart)].map((event) => uploadTimeOf(event) - amplitudeTimeMs(event.event_time));
    assert.ok(customDelays.every((delay) => delay <= 3 * HOUR_MS));
    assert.ok(Math.abs(customDelays.filter((delay) => delay > 5_000).length / customDelays.length - 0.5) < 0.05);
  });

  test("user_properties are the user's at the event time; level grows by one a day since the first activity", () => {
    for (const event of dataset.eventsInHour(hourStart)) {
      const index = dataset.indexOfAmplitudeId(String(event.amplitude_id)) ?? -1;
      assert.deepEqual(event.user_properties, dataset.userPropertiesAt(index, amplitudeTimeMs(event.event_time)));
    }
    const user = dataset.user(42);
    assert.deepEqual(dataset.userPropertiesAt(42, NOW), user.properties);
    assert.ok(user.firstSeenAt.getTime() < dataset.eventWindowStart - 48 * HOUR_MS, 'before every event of the user');
    const levelAt = (time: number) => dataset.userPropertiesAt(42, time).level as number;
    const firstSeen = user.firstSeenAt.getTime();
    assert.deepEqual(
      [levelAt(firstSeen), levelAt(firstSeen + DAY_MS - 1), levelAt(firstSeen + DAY_MS), levelAt(firstSeen + 10.5 * DAY_MS)],
      [0, 0, 1, 10],
    );
    const { level: _levelThen, ...seededThen } = dataset.userPropertiesAt(42, NOW - 100 * DAY_MS);
    const { level: _levelNow, ...seededNow } = user.properties;
    assert.deepEqual(seededThen, seededNow, 'only level changes over time');
  });

  test('late events make "the latest by event time" differ from "the last uploaded"', () => {
    const busy = new Dataset({ seed: 11, users: 200, now: NOW, eventsPerHour: 2_000, lateEventFraction: 0.3 });
    const lastUploaded = new Map<number, SandboxEvent>();
    const latest = new Map<number, SandboxEvent>();
    for (const event of busy.eventsInHour(hourStart)) {
      lastUploaded.set(event.amplitude_id, event);
      if (event.event_time > (latest.get(event.amplitude_id)?.event_time ?? '')) latest.set(event.amplitude_id, event);
    }
    const differing = [...latest].filter(([id, event]) => event.user_properties.level !== lastUploaded.get(id)?.user_properties.level);
    assert.ok(differing.length > 0);
    for (const [id, event] of differing) {
      const index = busy.indexOfAmplitudeId(String(id)) ?? -1;
      assert.ok((event.user_properties.level as number) > (lastUploaded.get(id)?.user_properties.level as number));
      assert.deepEqual(event.user_properties, busy.userPropertiesAt(index, amplitudeTimeMs(event.event_time)));
    }
  });

  test('refuse options out of range', () => {
    assert.throws(() => new Dataset({ seed: 1, users: 10, eventsPerHour: -1 }), /eventsPerHour/);
    assert.throws(() => new Dataset({ seed: 1, users: 10, lateEventFraction: 1.5 }), /lateEventFraction/);
    assert.throws(() => new Dataset({ seed: 1, users: 10, lateEventMaxHours: Number.NaN }), /lateEventMaxHours/);
  });
});

/** Epoch ms of Amplitude's `YYYY-MM-DD HH:MM:SS.ffffff` (UTC). */
function amplitudeTimeMs(time: string): number {
  return Date.parse(`${time.replace(' ', 'T').slice(0, 23)}Z`);
}
