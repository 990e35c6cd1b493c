/** Braze Currents events as Amplitude events, and what the receiver makes of a batch: pure logic, no I/O. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  amplitudeEventOf,
  amplitudeEventType,
  currentsEventSchema,
  isForwarded,
  partitionKeyOf,
} from '../src/currents/amplitude-events.js';
import { admitCurrentsEvents } from '../src/ingress/doors.js';

const emailOpen = {
  event_type: 'users.messages.email.Open',
  id: 'a1b2c3d4-0001',
  time: 1_764_000_000,
  user: { user_id: 'braze-123', external_user_id: 'user-42', device_id: 'device-9', timezone: 'Europe/Paris' },
  properties: { campaign_id: 'camp-1', campaign_name: 'Welcome', send_id: 'send-1', email_address: 'a@example.com' },
};

describe('Currents events in Amplitude, as Braze’s own connector maps them', () => {
  test('user and device ids, [Appboy] names, seconds as milliseconds, the id as insert_id, Braze fields as event properties', () => {
    assert.deepEqual(amplitudeEventOf(currentsEventSchema.parse(emailOpen)), {
      user_id: 'user-42',
      device_id: 'device-9',
      event_type: '[Appboy] Email Opened',
      time: 1_764_000_000_000,
      insert_id: 'a1b2c3d4-0001',
      library: 'Braze',
      event_properties: {
        campaign_id: 'camp-1',
        campaign_name: 'Welcome',
        send_id: 'send-1',
        email_address: 'a@example.com',
        braze_event_type: 'users.messages.email.Open',
        braze_id: 'braze-123',
      },
    });
  });

  test('names of message, custom, purchase and session events', () => {
    const named = (event_type: string, properties?: Record<string, unknown>) => amplitudeEventType({ event_type, properties });
    assert.equal(named('users.messages.pushnotification.Send'), '[Appboy] Push Notification Sent');
    assert.equal(named('users.messages.email.MarkAsSpam'), '[Appboy] Email Marked As Spam');
    assert.equal(named('users.messages.inappmessage.Impression'), '[Appboy] In-App Message Viewed');
    assert.equal(named('users.behaviors.CustomEvent', { name: 'Played Song' }), '[Appboy] [Custom Event] Played Song');
    assert.equal(named('users.behaviors.Purchase', { product_id: 'p1' }), '[Appboy] Purchase');
    assert.equal(named('users.behaviors.app.SessionStart'), '[Appboy] Session Start');
    assert.equal(named('users.canvas.Entry'), '[Appboy] Canvas Entry');
  });

  test('custom event and purchase properties are prefixed as Braze prefixes them', () => {
    const custom = currentsEventSchema.parse({
      ...emailOpen,
      event_type: 'users.behaviors.CustomEvent',
      properties: { name: 'Played Song', app_id: 'app-1', properties: { genre: 'jazz' } },
    });
    assert.deepEqual(amplitudeEventOf(custom)?.event_properties, {
      name: 'Played Song',
      app_id: 'app-1',
      braze_event_type: 'users.behaviors.CustomEvent',
      braze_id: 'braze-123',
      '[Custom event property] genre': 'jazz',
    });
    const purchase = currentsEventSchema.parse({
      ...emailOpen,
      event_type: 'users.behaviors.Purchase',
      properties: { product_id: 'p1', price: 9.99, currency: 'EUR', properties: { size: 'L' } },
    });
    assert.equal(amplitudeEventOf(purchase)?.event_properties?.['[Purchase property] size'], 'L');
  });

  test('anonymous users go by device id; without either id there is no Amplitude user (skipped with a reason)', () => {
    const anonymous = currentsEventSchema.parse({ ...emailOpen, user: { user_id: 'braze-1', device_id: 'device-1' } });
    assert.deepEqual([amplitudeEventOf(anonymous)?.user_id, amplitudeEventOf(anonymous)?.device_id], [undefined, 'device-1']);
    assert.equal(partitionKeyOf(anonymous), 'device_id:device-1');
    assert.equal(partitionKeyOf(currentsEventSchema.parse(emailOpen)), 'user_id:user-42');
    const nobody = currentsEventSchema.parse({ ...emailOpen, user: { user_id: 'braze-1' } });
    assert.equal(amplitudeEventOf(nobody), undefined);
  });

  test('event type filters: an allow list of types or prefixes, then a deny list', () => {
    const filter = { include: ['users.messages.email', 'users.behaviors.Purchase'], exclude: ['users.messages.email.Send'] };
    assert.equal(isForwarded('users.messages.email.Open', filter), true);
    assert.equal(isForwarded('users.messages.email.Send', filter), false);
    assert.equal(isForwarded('users.messages.emailx.Open', filter), false, 'a prefix matches whole segments');
    assert.equal(isForwarded('users.behaviors.Purchase', filter), true);
    assert.equal(isForwarded('users.behaviors.CustomEvent', filter), false);
    assert.equal(isForwarded('users.behaviors.CustomEvent', { include: [], exclude: [] }), true);
  });
});

describe('a Currents batch at the receiver’s door', () => {
  test('good events are spooled by id; a malformed one is a dead letter with its reason, keyed by its content', () => {
    const { items, letters } = admitCurrentsEvents([
      emailOpen,
      { ...emailOpen, id: 'bad-time', time: 1_764_000_000.5 },
      { event_type: 'users.messages.email.Open', time: 1 },
      'not an event',
    ]);
    assert.deepEqual(
      items.map((item) => [item.dedupeKey, item.partitionKey]),
      [['a1b2c3d4-0001', 'user_id:user-42']],
    );
    assert.deepEqual(
      letters.map((letter) => [letter.dedupeKey.replace(/[0-9a-f]{64}$/, '<sha256>'), letter.reason]),
      [
        ['content:<sha256>', 'events[1]: time: must be whole Unix seconds'],
        ['content:<sha256>', 'events[2]: id: Invalid input: expected string, received undefined'],
        ['content:<sha256>', 'events[3]: Invalid input: expected object, received string'],
      ],
    );
    assert.equal(new Set(letters.map((letter) => letter.dedupeKey)).size, 3, 'different content, different keys');
    assert.equal(admitCurrentsEvents(['not an event']).letters[0]!.dedupeKey, letters[2]!.dedupeKey, 'the same content, the same key');
  });

  test('ids no store can index or compare faithfully, deep nesting and oversize events are refused with the reason', () => {
    let deep: unknown = {};
    for (let i = 0; i < 5_000; i++) deep = { a: deep };
    const { items, letters } = admitCurrentsEvents([
      { ...emailOpen, id: 'nul\u0000id' },
      { ...emailOpen, id: 'x'.repeat(8 * 1024) },
      { ...emailOpen, user: { ...emailOpen.user, external_user_id: 'user\u0000' } },
      { ...emailOpen, user: { ...emailOpen.user, external_user_id: 'é'.repeat(600) } },
      { ...emailOpen, id: '\ud800' },
      { ...emailOpen, id: '\ud801' },
      { ...emailOpen, id: 'deep', properties: deep },
      { ...emailOpen, id: 'huge', properties: { blob: 'x'.repeat(4_200_000) } },
      { ...emailOpen, id: 'fine-emoji-😀', user: { ...emailOpen.user, external_user_id: '' } },
    ]);
    assert.deepEqual(
      letters.map((letter) => letter.reason),
      [
        'events[0]: id: must not contain a NUL character',
        'events[1]: id: must be at most 1024 bytes of UTF-8 (is 8192)',
        'events[2]: user.external_user_id: must not contain a NUL character',
        'events[3]: user.external_user_id: must be at most 1024 bytes of UTF-8 (is 1200)',
        'events[4]: id: must not contain a lone UTF-16 surrogate',
        'events[5]: id: must not contain a lone UTF-16 surrogate',
        'events[6]: nested deeper than 40 levels',
        'events[7]: larger than 4194304 bytes',
      ],
    );
    assert.deepEqual(
      items.map((item) => [item.dedupeKey, item.partitionKey]),
      [['fine-emoji-😀', 'device_id:device-9']],
      'a pair of surrogates is a character; an empty external id is none',
    );
  });
});
