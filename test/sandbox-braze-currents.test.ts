/** Generated Braze Currents events: deterministic from the seed, shaped as the Custom HTTP connector posts them. */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  CURRENTS_EVENT_TYPES,
  generateCurrentsEvents,
  type CurrentsAudience,
  type CurrentsUser,
} from "../src/sandbox/braze/currents/events.js";

function poolOf(users: CurrentsUser[]) {
  return { size: users.length, at: (position: number) => users[position]! };
}

const AUDIENCE: CurrentsAudience = {
  identified: poolOf(
    Array.from({ length: 300 }, (_, i) => ({
      brazeId: i.toString(16).padStart(24, "0"),
      externalId: `user-${i}`,
    })),
  ),
  anonymous: poolOf(
    Array.from({ length: 30 }, (_, i) => ({
      brazeId: (1000 + i).toString(16).padStart(24, "0"),
      deviceId: `device-${i}`,
    })),
  ),
  brazeIdOnly: poolOf([]),
};
const NOW_SECONDS = 1_767_225_600;
const generate = (count: number, seed = 7) =>
  generateCurrentsEvents(AUDIENCE, { count, seed, nowSeconds: NOW_SECONDS });

describe("generated events", () => {
  test("deterministic from the seed, unique ids, integer seconds in the window, every type in the mix", () => {
    const events = [...generate(20_000)];
    assert.deepEqual([...generate(50)], events.slice(0, 50));
    const otherSeed = new Set(
      [...generate(20_000, 8)].map((event) => event.id),
    );
    assert.ok(events.every((event) => !otherSeed.has(event.id)));
    assert.equal(new Set(events.map((event) => event.id)).size, events.length);
    assert.ok(
      events.every((event) =>
        /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/.test(
          event.id,
        ),
      ),
    );
    assert.ok(
      events.every(
        (event) =>
          Number.isInteger(event.time) &&
          event.time <= NOW_SECONDS &&
          event.time > NOW_SECONDS - 3_600,
      ),
    );
    assert.deepEqual(
      new Set(events.map((event) => event.event_type)),
      new Set(CURRENTS_EVENT_TYPES),
    );
    assert.ok(
      events.every(
        (event) =>
          /^[0-9a-f]{24}$/.test(event.user.user_id) &&
          event.user.timezone.includes("/"),
      ),
    );
  });

  test("mostly identified users, a small share anonymous by device_id, a very small share with neither", () => {
    const events = [
      ...generateCurrentsEvents(AUDIENCE, {
        count: 20_000,
        anonymousFraction: 0.1,
        brazeIdOnlyFraction: 0.01,
      }),
    ];
    const identified = events.filter(
      (event) => event.user.external_user_id !== undefined,
    );
    const anonymous = events.filter(
      (event) =>
        event.user.external_user_id === undefined &&
        event.user.device_id !== undefined,
    );
    const neither = events.filter(
      (event) =>
        event.user.external_user_id === undefined &&
        event.user.device_id === undefined,
    );
    assert.ok(
      Math.abs(anonymous.length / events.length - 0.1) < 0.01,
      `anonymous share ${anonymous.length / events.length}`,
    );
    assert.ok(
      Math.abs(neither.length / events.length - 0.01) < 0.003,
      `neither share ${neither.length / events.length}`,
    );
    assert.equal(
      identified.length + anonymous.length + neither.length,
      events.length,
    );
    assert.ok(
      identified.every((event) =>
        /^user-\d+$/.test(event.user.external_user_id!),
      ),
    );
    assert.ok(
      anonymous.every(
        (event) =>
          /^device-\d+$/.test(event.user.device_id!) &&
          !event.event_type.includes(".email."),
      ),
    );
    // With no such profile in the audience, synthetic braze_ids stand in, outside the profiles' range.
    assert.ok(neither.every((event) => event.user.user_id.startsWith("ff")));
  });

  test("each type carries its documented properties", () => {
    const byType = new Map(
      [...generate(5_000)].map((event) => [event.event_type, event.properties]),
    );
    for (const type of [
      "users.messages.email.Send",
      "users.messages.email.Delivery",
      "users.messages.email.Open",
      "users.messages.email.Click",
    ]) {
      const properties = byType.get(type)!;
      for (const key of [
        "campaign_id",
        "campaign_name",
        "message_variation_id",
        "send_id",
        "dispatch_id",
      ])
        assert.equal(typeof properties[key], "string", `${type}.${key}`);
      assert.match(String(properties.email_address), /^[\w-]+@example\.com$/);
    }
    assert.match(
      String(byType.get("users.messages.email.Click")!.url),
      /^https:\/\//,
    );
    for (const type of [
      "users.messages.pushnotification.Send",
      "users.messages.pushnotification.Open",
    ]) {
      assert.ok(
        ["ios", "android"].includes(String(byType.get(type)!.platform)),
      );
      assert.equal(typeof byType.get(type)!.campaign_id, "string");
    }
    const custom = byType.get("users.behaviors.CustomEvent")!;
    assert.equal(typeof custom.name, "string");
    assert.equal(typeof custom.app_id, "string");
    assert.equal(typeof custom.properties, "object");
    const purchase = byType.get("users.behaviors.Purchase")!;
    assert.deepEqual(
      [
        typeof purchase.product_id,
        typeof purchase.price,
        purchase.currency,
        typeof purchase.properties,
      ],
      ["string", "number", "USD", "object"],
    );
    const session = byType.get("users.behaviors.app.SessionStart")!;
    assert.deepEqual(
      [typeof session.session_id, typeof session.app_id],
      ["string", "string"],
    );
  });
});
