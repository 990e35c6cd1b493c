/** Currents scenarios run on each store: what a faulty or hostile sender posts, and what must come of it. */
import assert from 'node:assert/strict';
import { CURRENTS_STREAM } from '../../src/currents/amplitude-events.js';
import type { CurrentsEvent } from '../../src/sandbox/braze/index.js';
import type { WorkerHarness } from './worker-harness.js';

/** A valid Currents event of one user. */
export function currentsEvent(id: string, externalId: string | undefined, overrides: Partial<CurrentsEvent> = {}): CurrentsEvent {
  return {
    event_type: 'users.messages.email.Open',
    id,
    time: Math.floor(Date.now() / 1000),
    user: { user_id: `braze-${id}`, ...(externalId && { external_user_id: externalId }), device_id: `device-${id}`, timezone: 'UTC' },
    properties: { campaign_id: 'campaign-1', send_id: 'send-1' },
    ...overrides,
  };
}

/** How many times each insert_id reached the Amplitude sandbox. */
export function amplitudeCounts(h: WorkerHarness): Map<string, number> {
  const counts = new Map<string, number>();
  for (const { event } of h.sandboxes.amplitude.control.ingestedEvents()) {
    const id = String(event.insert_id);
    counts.set(id, (counts.get(id) ?? 0) + 1);
  }
  return counts;
}

export async function waitUntil(condition: () => boolean | Promise<boolean>, what: string, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/**
 * Batches in which one event each is poisoned — a NUL or 8 KB of id or external user id, an event nested 5,000
 * levels deep, lone surrogates as ids — amid good events, each sent twice (as Braze resends): every post answers
 * 200, every good event reaches Amplitude exactly once, and every poisoned one is a dead letter with its reason.
 */
export async function poisonedBatchesFlow(h: WorkerHarness, receiverUrl: string, token: string): Promise<void> {
  let deep: unknown = { leaf: true };
  for (let i = 0; i < 5_000; i++) deep = { inner: deep };
  const poisons: Array<{ name: string; event: unknown; reason: RegExp }> = [
    { name: 'NUL id', event: currentsEvent('poison\u0000nul', 'user-p1'), reason: /^events\[1\]: id: must not contain a NUL character/ },
    {
      name: '8 KB id',
      event: currentsEvent(`poison-${'x'.repeat(8 * 1024)}`, 'user-p2'),
      reason: /^events\[1\]: id: must be at most 1024 bytes/,
    },
    {
      name: 'NUL user',
      event: currentsEvent('poison-user-nul', 'user\u0000p3'),
      reason: /^events\[1\]: user\.external_user_id: must not contain a NUL character/,
    },
    {
      name: '8 KB user',
      event: currentsEvent('poison-user-8k', 'u'.repeat(8 * 1024)),
      reason: /^events\[1\]: user\.external_user_id: must be at most 1024 bytes/,
    },
    {
      name: 'deep',
      event: { ...currentsEvent('poison-deep', 'user-p5'), properties: deep },
      reason: /^events\[1\]: nested deeper than 40 levels/,
    },
    {
      name: 'lone surrogate 1',
      event: currentsEvent('\ud800', 'user-p6'),
      reason: /^events\[1\]: id: must not contain a lone UTF-16 surrogate/,
    },
    {
      name: 'lone surrogate 2',
      event: currentsEvent('\ud801', 'user-p7'),
      reason: /^events\[1\]: id: must not contain a lone UTF-16 surrogate/,
    },
  ];
  const lettersBefore = (await h.context.store.ingressBacklog(CURRENTS_STREAM, Date.now())).deadLetters;
  const good: string[] = [];
  for (const [index, poison] of poisons.entries()) {
    const events = [
      currentsEvent(`good-${index}-a`, `user-good-${index}`),
      poison.event,
      currentsEvent(`good-${index}-b`, `user-good-${index}`),
    ];
    good.push(`good-${index}-a`, `good-${index}-b`);
    // The body is written by hand: JSON.stringify would overflow on the deep event, as it did in the receiver.
    const body = `{"events":[${events.map((event) => (event === poison.event && poison.name === 'deep' ? deepJson(5_000) : JSON.stringify(event))).join(',')}]}`;
    for (const attempt of ['first', 'resent']) {
      const response = await fetch(`${receiverUrl}/currents`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
        body,
      });
      assert.equal(response.status, 200, `${poison.name} (${attempt}): ${await response.clone().text()}`);
      const ack = (await response.json()) as { spooled: number; duplicates: number; deadLettered: number };
      assert.deepEqual(
        ack,
        attempt === 'first' ? { spooled: 2, duplicates: 0, deadLettered: 1 } : { spooled: 0, duplicates: 2, deadLettered: 1 },
      );
    }
  }
  await waitUntil(() => good.every((id) => amplitudeCounts(h).has(id)), 'every good event reached Amplitude');
  const counts = amplitudeCounts(h);
  assert.deepEqual(
    good.map((id) => counts.get(id)),
    good.map(() => 1),
    'each good event exactly once',
  );
  const letters = [];
  for (let after; ;) {
    const page = await h.context.store.deadLetters({ stream: CURRENTS_STREAM, after, limit: 100 });
    letters.push(...page);
    if (page.length < 100) break;
    after = page.at(-1);
  }
  for (const poison of poisons) {
    assert.equal(
      letters.filter((letter) => poison.reason.test(letter.reason)).length,
      poison.name.startsWith('lone surrogate') ? 2 : 1,
      `${poison.name}: one dead letter (both lone surrogates are apart), however often it was sent`,
    );
  }
  assert.equal((await h.context.store.ingressBacklog(CURRENTS_STREAM, Date.now())).deadLetters, lettersBefore + poisons.length);
}

/** `{"id":"poison-deep",…,"properties":{"inner":{"inner":…}}}`, nested `levels` deep, as text. */
function deepJson(levels: number): string {
  const event = currentsEvent('poison-deep', 'user-p5');
  const head = JSON.stringify({ ...event, properties: null }).replace(/"properties":null/, '"properties":');
  return `${head.slice(0, -1)}${'{"inner":'.repeat(levels)}{"leaf":true}${'}'.repeat(levels)}}`;
}
