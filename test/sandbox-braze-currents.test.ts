/** Braze Currents: the generated events, and the sender against a real loopback receiver that records every post and answers as told. */
import assert from 'node:assert/strict';
import { createServer, type IncomingHttpHeaders } from 'node:http';
import { after, before, describe, test } from 'node:test';
import { closeServer, listen, readBody } from '../src/sandbox/http-util.js';
import {
  CURRENTS_EVENT_TYPES,
  generateCurrentsEvents,
  type CurrentsAudience,
  type CurrentsEvent,
  type CurrentsUser,
} from '../src/sandbox/braze/currents/events.js';
import { CurrentsSender, type CurrentsSenderOptions } from '../src/sandbox/braze/currents/sender.js';
import { startBrazeSandbox, type BrazeSandbox } from '../src/sandbox/braze/index.js';

/** A status to answer with, `hang` (never answer) or `drop` (close the connection). */
type Answer = number | 'hang' | 'drop';

interface ReceivedPost {
  at: number;
  headers: IncomingHttpHeaders;
  events: CurrentsEvent[];
  answer: Answer;
}

interface Receiver {
  url: string;
  posts: ReceivedPost[];
  /** Events of the posts answered 2xx, copies included. */
  acknowledged(): CurrentsEvent[];
  close(): Promise<void>;
}

async function startReceiver(answerFor: (postIndex: number) => Answer = () => 200): Promise<Receiver> {
  const posts: ReceivedPost[] = [];
  const server = createServer((req, res) => {
    void readBody(req, 16 * 1024 * 1024).then((raw) => {
      const answer = answerFor(posts.length);
      posts.push({
        at: Date.now(),
        headers: req.headers,
        events: (JSON.parse(raw.toString('utf8')) as { events: CurrentsEvent[] }).events,
        answer,
      });
      if (answer === 'hang') return;
      if (answer === 'drop') return req.socket.destroy();
      res.writeHead(answer, answer >= 300 && answer < 400 ? { location: '/elsewhere' } : {});
      res.end(answer < 300 ? '' : '{"message":"no"}');
    });
  });
  const url = `${await listen(server, 0, '127.0.0.1')}/currents`;
  return {
    url,
    posts,
    acknowledged: () => posts.filter((post) => typeof post.answer === 'number' && post.answer < 300).flatMap((post) => post.events),
    close: () => closeServer(server),
  };
}

async function withReceiver(
  answerFor: ((postIndex: number) => Answer) | undefined,
  run: (receiver: Receiver) => Promise<void>,
): Promise<void> {
  const receiver = await startReceiver(answerFor);
  try {
    await run(receiver);
  } finally {
    await receiver.close();
  }
}

function poolOf(users: CurrentsUser[]) {
  return { size: users.length, at: (position: number) => users[position]! };
}

const AUDIENCE: CurrentsAudience = {
  identified: poolOf(Array.from({ length: 300 }, (_, i) => ({ brazeId: i.toString(16).padStart(24, '0'), externalId: `user-${i}` }))),
  anonymous: poolOf(
    Array.from({ length: 30 }, (_, i) => ({ brazeId: (1000 + i).toString(16).padStart(24, '0'), deviceId: `device-${i}` })),
  ),
  brazeIdOnly: poolOf([]),
};
const NOW_SECONDS = 1_767_225_600;
const generate = (count: number, seed = 7) => generateCurrentsEvents(AUDIENCE, { count, seed, nowSeconds: NOW_SECONDS });
const FAST_RETRY = { initialDelayMs: 5, maxDelayMs: 20, giveUpAfterMs: 10_000 };
const send = (url: string, events: Iterable<CurrentsEvent>, options: Partial<CurrentsSenderOptions> = {}) =>
  new CurrentsSender({ url, retry: FAST_RETRY, ...options }).send(events);
const countBy = <T>(values: T[]) => values.reduce((counts, value) => counts.set(value, (counts.get(value) ?? 0) + 1), new Map<T, number>());

describe('generated events', () => {
  test('deterministic from the seed, unique ids, integer seconds in the window, every type in the mix', () => {
    const events = [...generate(20_000)];
    assert.deepEqual([...generate(50)], events.slice(0, 50));
    const otherSeed = new Set([...generate(20_000, 8)].map((event) => event.id));
    assert.ok(events.every((event) => !otherSeed.has(event.id)));
    assert.equal(new Set(events.map((event) => event.id)).size, events.length);
    assert.ok(events.every((event) => /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/.test(event.id)));
    assert.ok(events.every((event) => Number.isInteger(event.time) && event.time <= NOW_SECONDS && event.time > NOW_SECONDS - 3_600));
    assert.deepEqual(new Set(events.map((event) => event.event_type)), new Set(CURRENTS_EVENT_TYPES));
    assert.ok(events.every((event) => /^[0-9a-f]{24}$/.test(event.user.user_id) && event.user.timezone.includes('/')));
  });

  test('mostly identified users, a small share anonymous by device_id, a very small share with neither', () => {
    const events = [...generateCurrentsEvents(AUDIENCE, { count: 20_000, anonymousFraction: 0.1, brazeIdOnlyFraction: 0.01 })];
    const identified = events.filter((event) => event.user.external_user_id !== undefined);
    const anonymous = events.filter((event) => event.user.external_user_id === undefined && event.user.device_id !== undefined);
    const neither = events.filter((event) => event.user.external_user_id === undefined && event.user.device_id === undefined);
    assert.ok(Math.abs(anonymous.length / events.length - 0.1) < 0.01, `anonymous share ${anonymous.length / events.length}`);
    assert.ok(Math.abs(neither.length / events.length - 0.01) < 0.003, `neither share ${neither.length / events.length}`);
    assert.equal(identified.length + anonymous.length + neither.length, events.length);
    assert.ok(identified.every((event) => /^user-\d+$/.test(event.user.external_user_id!)));
    assert.ok(anonymous.every((event) => /^device-\d+$/.test(event.user.device_id!) && !event.event_type.includes('.email.')));
    // With no such profile in the audience, synthetic braze_ids stand in, outside the profiles' range.
    assert.ok(neither.every((event) => event.user.user_id.startsWith('ff')));
  });

  test('each type carries its documented properties', () => {
    const byType = new Map([...generate(5_000)].map((event) => [event.event_type, event.properties]));
    for (const type of [
      'users.messages.email.Send',
      'users.messages.email.Delivery',
      'users.messages.email.Open',
      'users.messages.email.Click',
    ]) {
      const properties = byType.get(type)!;
      for (const key of ['campaign_id', 'campaign_name', 'message_variation_id', 'send_id', 'dispatch_id'])
        assert.equal(typeof properties[key], 'string', `${type}.${key}`);
      assert.match(String(properties.email_address), /^[\w-]+@example\.com$/);
    }
    assert.match(String(byType.get('users.messages.email.Click')!.url), /^https:\/\//);
    for (const type of ['users.messages.pushnotification.Send', 'users.messages.pushnotification.Open']) {
      assert.ok(['ios', 'android'].includes(String(byType.get(type)!.platform)));
      assert.equal(typeof byType.get(type)!.campaign_id, 'string');
    }
    const custom = byType.get('users.behaviors.CustomEvent')!;
    assert.equal(typeof custom.name, 'string');
    assert.equal(typeof custom.app_id, 'string');
    assert.equal(typeof custom.properties, 'object');
    const purchase = byType.get('users.behaviors.Purchase')!;
    assert.deepEqual(
      [typeof purchase.product_id, typeof purchase.price, purchase.currency, typeof purchase.properties],
      ['string', 'number', 'USD', 'object'],
    );
    const session = byType.get('users.behaviors.app.SessionStart')!;
    assert.deepEqual([typeof session.session_id, typeof session.app_id], ['string', 'string']);
  });
});

describe('CurrentsSender', () => {
  test('batches of at most 100 of one event type, with the Currents headers, each event once when no duplicates are asked for', async () => {
    await withReceiver(undefined, async (receiver) => {
      const events = [...generate(2_500)];
      const report = await send(receiver.url, events, { headers: { Authorization: 'Bearer currents-token' } });
      assert.ok(receiver.posts.every((post) => post.events.length >= 1 && post.events.length <= 100));
      assert.ok(receiver.posts.every((post) => new Set(post.events.map((event) => event.event_type)).size === 1));
      assert.ok(receiver.posts.some((post) => post.events.length === 100));
      for (const { headers } of receiver.posts) {
        assert.equal(headers['braze-currents-version'], '1');
        assert.match(String(headers['content-type']), /^application\/json/);
        assert.equal(headers.authorization, 'Bearer currents-token');
      }
      assert.equal(receiver.acknowledged().length, events.length);
      assert.deepEqual(
        receiver.acknowledged().sort((a, b) => a.id.localeCompare(b.id)),
        (JSON.parse(JSON.stringify(events)) as CurrentsEvent[]).sort((a, b) => a.id.localeCompare(b.id)),
      );
      assert.deepEqual(
        { ...report, durationMs: 0 },
        {
          events: 2_500,
          batches: receiver.posts.length,
          posts: receiver.posts.length,
          retriedPosts: 0,
          statuses: { 200: receiver.posts.length },
          duplicateBatchesSent: 0,
          duplicateEventsSent: 0,
          gaveUp: 0,
          gaveUpEvents: 0,
          durationMs: 0,
        },
      );
    });
  });

  test('a smaller batchSize is respected, and acknowledged ids are reported when asked for', async () => {
    await withReceiver(undefined, async (receiver) => {
      const events = [...generate(300)];
      const report = await send(receiver.url, events, { batchSize: 25, collectAcknowledgedIds: true });
      assert.ok(receiver.posts.every((post) => post.events.length <= 25));
      assert.deepEqual(new Set(report.acknowledgedEventIds), new Set(events.map((event) => event.id)));
      assert.equal(report.acknowledgedEventIds?.length, events.length);
    });
  });

  test('every non-2xx answer, a dropped connection and a timeout are retried until a 2xx', async () => {
    const failures: Answer[] = [500, 429, 400, 401, 403, 404, 413, 302, 503, 'drop', 'hang'];
    await withReceiver(
      (index) => failures[index] ?? 202,
      async (receiver) => {
        const events = [...generate(100)].filter((event) => event.event_type === 'users.behaviors.CustomEvent');
        const report = await send(receiver.url, events, { concurrency: 1, requestTimeoutMs: 200 });
        assert.equal(report.batches, 1);
        assert.equal(receiver.posts.length, failures.length + 1);
        assert.ok(receiver.posts.every((post) => post.events.length === events.length));
        assert.deepEqual(report.statuses, {
          202: 1,
          500: 1,
          429: 1,
          400: 1,
          401: 1,
          403: 1,
          404: 1,
          413: 1,
          302: 1,
          503: 1,
          network_error: 1,
          timeout: 1,
        });
        assert.deepEqual([report.posts, report.retriedPosts, report.gaveUp], [failures.length + 1, failures.length, 0]);
      },
    );
  });

  test('the delay between attempts grows exponentially up to its cap', async () => {
    await withReceiver(
      (index) => (index < 5 ? 500 : 200),
      async (receiver) => {
        await send(receiver.url, generate(1), { retry: { initialDelayMs: 40, maxDelayMs: 160, giveUpAfterMs: 10_000 } });
        const gaps = receiver.posts.slice(1).map((post, i) => post.at - receiver.posts[i]!.at);
        // Each gap is at least its delay; a loaded machine only adds to it, so the upper margin is generous.
        const expected = [40, 80, 160, 160, 160];
        gaps.forEach((gap, i) =>
          assert.ok(gap >= expected[i]! - 5 && gap < expected[i]! + 2_000, `gap ${i}: ${gap} ms, expected ${expected[i]} ms`),
        );
        assert.equal(gaps.length, expected.length, 'one retry per failed attempt');
      },
    );
  });

  test('a batch never acknowledged is given up only after the deadline, and reported', async () => {
    await withReceiver(
      () => 503,
      async (receiver) => {
        const events = [...generate(150)];
        const started = Date.now();
        const report = await send(receiver.url, events, { retry: { initialDelayMs: 20, maxDelayMs: 100, giveUpAfterMs: 400 } });
        const batches = new Set(receiver.posts.map((post) => post.events[0]!.id)).size;
        assert.deepEqual([report.gaveUp, report.gaveUpEvents, report.batches], [batches, events.length, batches]);
        assert.deepEqual(report.statuses, { 503: report.posts });
        assert.ok(report.posts > batches * 3);
        assert.ok(Date.now() - started >= 400);
        // Each batch's deadline runs from its first post, so its last attempt arrives 400 ms after the send began at the earliest.
        for (const firstId of new Set(receiver.posts.map((post) => post.events[0]!.id))) {
          const last = receiver.posts.findLast((post) => post.events[0]!.id === firstId)!;
          assert.ok(last.at - started >= 400, `the last attempt of ${firstId} came ${last.at - started} ms after the start`);
        }
      },
    );
  });

  test('duplicates on purpose: whole batches again and single events inside later batches of their type', async () => {
    await withReceiver(undefined, async (receiver) => {
      const events = [...generate(3_000)];
      const report = await send(receiver.url, events, { duplicateBatchFraction: 0.3, duplicateEventFraction: 0.1, batchSize: 50 });
      const received = countBy(receiver.acknowledged().map((event) => event.id));
      assert.equal(received.size, events.length);
      assert.ok([...received.values()].some((count) => count > 1));
      assert.equal(receiver.acknowledged().length, events.length + report.duplicateEventsSent);
      assert.ok(report.duplicateBatchesSent > 0);
      assert.equal(receiver.posts.length, report.batches + report.duplicateBatchesSent);
      const bodies = countBy(receiver.posts.map((post) => post.events.map((event) => event.id).join()));
      assert.equal([...bodies.values()].filter((count) => count === 2).length, report.duplicateBatchesSent);
      // A batch repeating single events still holds one event type, within the size limit.
      assert.ok(
        receiver.posts.every((post) => post.events.length <= 50 && new Set(post.events.map((event) => event.event_type)).size === 1),
      );
      const repeatedWithin = receiver.posts.filter(
        (post) => bodies.get(post.events.map((event) => event.id).join()) === 1 && post.events.some((event) => received.get(event.id)! > 1),
      );
      assert.ok(repeatedWithin.length > 0);
    });
  });

  test('invalid options are refused', () => {
    assert.throws(() => new CurrentsSender({ url: 'http://127.0.0.1:1/', batchSize: 101 }));
    assert.throws(() => new CurrentsSender({ url: 'not a url' }));
    assert.throws(() => new CurrentsSender({ url: 'http://127.0.0.1:1/', duplicateBatchFraction: 1.5 }));
  });
});

describe('the Braze sandbox sends Currents', () => {
  let braze: BrazeSandbox;
  before(async () => {
    braze = await startBrazeSandbox({
      apiKeys: [{ key: 'rest-key' }],
      initialUsers: [
        ...Array.from({ length: 200 }, (_, i) => ({ external_id: `known-${i}` })),
        ...Array.from({ length: 20 }, (_, i) => ({ device_ids: [`anonymous-device-${i}`] })),
      ],
    });
  });
  after(() => braze.close());

  const postSend = async (body: unknown) => {
    const response = await fetch(`${braze.url}/_sandbox/currents/send`, { method: 'POST', body: JSON.stringify(body) });
    return { status: response.status, body: (await response.json()) as Record<string, unknown> };
  };

  test('POST /_sandbox/currents/send generates events for the sandbox profiles and answers the report when done', async () => {
    await withReceiver(
      (index) => (index === 0 ? 500 : 200),
      async (receiver) => {
        const response = await postSend({
          url: receiver.url,
          retry: FAST_RETRY,
          generate: { count: 1_000, seed: 3, anonymousFraction: 0.1 },
        });
        assert.equal(response.status, 200);
        const events = receiver.acknowledged();
        assert.deepEqual(
          { ...response.body, durationMs: 0 },
          {
            events: 1_000,
            batches: receiver.posts.length - 1,
            posts: receiver.posts.length,
            retriedPosts: 1,
            statuses: { 200: receiver.posts.length - 1, 500: 1 },
            duplicateBatchesSent: 0,
            duplicateEventsSent: 0,
            gaveUp: 0,
            gaveUpEvents: 0,
            durationMs: 0,
          },
        );
        assert.equal(new Set(events.map((event) => event.id)).size, 1_000);
        const identified = events.filter((event) => event.user.external_user_id !== undefined);
        assert.ok(identified.length > 800);
        assert.ok(identified.every((event) => braze.control.user(event.user.external_user_id!)?.brazeId === event.user.user_id));
        const anonymous = events.filter((event) => event.user.external_user_id === undefined && event.user.device_id !== undefined);
        assert.ok(anonymous.length > 50 && anonymous.every((event) => /^anonymous-device-\d+$/.test(event.user.device_id!)));
      },
    );
  });

  test('the control object sends given events as they are', async () => {
    await withReceiver(undefined, async (receiver) => {
      const events = [...generate(120)];
      const report = await braze.control.sendCurrents({ url: receiver.url, events, collectAcknowledgedIds: true });
      assert.equal(report.events, 120);
      assert.deepEqual(
        receiver.acknowledged().sort((a, b) => a.id.localeCompare(b.id)),
        (JSON.parse(JSON.stringify(events)) as CurrentsEvent[]).sort((a, b) => a.id.localeCompare(b.id)),
      );
    });
  });

  test('an invalid request is answered 400 and sends nothing', async () => {
    await withReceiver(undefined, async (receiver) => {
      for (const body of [
        { url: receiver.url, batchSize: 101, generate: { count: 10 } },
        { url: receiver.url },
        { url: receiver.url, events: [], generate: { count: 10 } },
        { generate: { count: 10 } },
        { url: receiver.url, events: [{ event_type: 'users.behaviors.CustomEvent' }] },
      ]) {
        const response = await postSend(body);
        assert.equal(response.status, 400, JSON.stringify(body));
        assert.equal(typeof response.body.message, 'string');
      }
      assert.equal(receiver.posts.length, 0);
    });
  });

  test('closing the sandbox aborts a send that is still retrying', async () => {
    const sandbox = await startBrazeSandbox({ apiKeys: [{ key: 'rest-key' }] });
    await withReceiver(
      () => 500,
      async (receiver) => {
        const sending = sandbox.control.sendCurrents({ url: receiver.url, retry: FAST_RETRY, generate: { count: 10 } });
        while (receiver.posts.length < 3) await new Promise((resolve) => setTimeout(resolve, 5));
        const started = Date.now();
        await sandbox.close();
        await assert.rejects(sending, /the Braze sandbox closed/);
        assert.ok(Date.now() - started < 1_000);
      },
    );
  });
});
