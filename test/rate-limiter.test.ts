import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { endOfWindowMarginMs, SharedRateLimiter } from '../src/rate-limiter.js';
import type { StateStore } from '../src/store/store.js';
import { grantsPerWindow, runStoreProcesses } from './helpers/store-processes.js';
import { forEachStore, openFreshStore, openStoreFrom, type StoreEnv } from './helpers/stores.js';

const range = (count: number) => Array.from({ length: count }, (_, index) => index);

forEachStore((kind) => {
  let env: StoreEnv;
  let storeA: StateStore;
  let storeB: StateStore;

  before(async () => {
    // Two connections to one store stand for two workers sharing it.
    ({ store: storeA, env } = await openFreshStore(kind));
    storeB = await openStoreFrom(env);
  });
  after(async () => {
    await storeA.close();
    await storeB.close();
  });

  test('slots are shared: two workers together never get more than the limit in one window', async () => {
    const request = { key: 'shared', requested: 4, limit: 5, windowMs: 60_000, nowMs: 120_000 };
    const a = await storeA.acquireRateSlots(request);
    const b = await storeB.acquireRateSlots(request);
    assert.deepEqual([a.granted, b.granted], [4, 1]);
    assert.equal(b.retryAtMs, 180_000, 'the next window');
    const nextWindow = await storeB.acquireRateSlots({ ...request, nowMs: 180_000 });
    assert.equal(nextWindow.granted, 4);
  });

  test('a caller with an older clock read counts against the newest window instead of resetting it', async () => {
    const request = { key: 'late', requested: 5, limit: 5, windowMs: 1_000, nowMs: 2_000 };
    assert.equal((await storeA.acquireRateSlots(request)).granted, 5);
    const late = await storeB.acquireRateSlots({ ...request, nowMs: 1_999 });
    assert.deepEqual(late, { granted: 0, retryAtMs: 3_000, usedThrough: 5 });
  });

  test('slots are numbered within their window, across workers, from 1 again in the next window', async () => {
    const request = { key: 'numbered', requested: 3, limit: 10, windowMs: 1_000, nowMs: 5_000 };
    assert.equal((await storeA.acquireRateSlots(request)).usedThrough, 3);
    assert.equal((await storeB.acquireRateSlots({ ...request, requested: 2 })).usedThrough, 5);
    assert.equal((await storeB.acquireRateSlots({ ...request, nowMs: 6_000 })).usedThrough, 3);
  });

  test('a vendor’s report lowers the limit of every later window, and caps only the window it is about', async () => {
    const request = { key: 'adopted', requested: 100, limit: 100, windowMs: 1_000, nowMs: 10_000 };
    assert.equal((await storeA.acquireRateSlots({ ...request, requested: 5 })).granted, 5);
    // The vendor says: 30 a window, and after slot 5 of this one only 10 remain (someone else writes too).
    await storeB.adoptVendorRateLimit({ key: 'adopted', vendorLimit: 30, windowStartMs: 10_000, windowCap: 15 });
    assert.deepEqual(await storeA.acquireRateSlots(request), { granted: 10, retryAtMs: 11_000, usedThrough: 15, vendorLimit: 30 });
    // A looser report never raises a cap; one about an earlier window changes nothing of this one.
    await storeB.adoptVendorRateLimit({ key: 'adopted', vendorLimit: 30, windowStartMs: 10_000, windowCap: 50 });
    await storeB.adoptVendorRateLimit({ key: 'adopted', vendorLimit: 30, windowStartMs: 9_000, windowCap: 1 });
    assert.equal((await storeA.acquireRateSlots(request)).granted, 0);
    const next = await storeB.acquireRateSlots({ ...request, nowMs: 11_000 });
    assert.deepEqual(next, { granted: 30, retryAtMs: 12_000, usedThrough: 30, vendorLimit: 30 }, 'the vendor’s limit, no cap');
    await storeA.adoptVendorRateLimit({ key: 'adopted', vendorLimit: 60, windowStartMs: 11_000 });
    assert.equal((await storeA.acquireRateSlots({ ...request, nowMs: 12_000 })).granted, 60, 'a raised limit is adopted too');
    assert.equal((await storeA.acquireRateSlots({ ...request, nowMs: 13_000, limit: 40 })).granted, 40, 'never over the configured one');
  });

  test('limiters in four processes hammering one key never exceed the limit in any window', async () => {
    const limit = { requests: 10, windowMs: 100 };
    const tasks = range(4).map(() => ({ task: 'limiter' as const, key: 'hammered', limit, amounts: [1, 2, 3, 1, 2, 3] }));
    const { perWindow, total } = grantsPerWindow(await runStoreProcesses(env, tasks));
    assert.ok(total >= 4 * 12, `the store granted ${total} slots for the 48 asked`);
    assert.ok(perWindow.size >= Math.ceil(total / limit.requests), 'the grants spread over enough windows');
    for (const [windowEnd, granted] of perWindow) assert.ok(granted <= limit.requests, `window ending ${windowEnd} granted ${granted}`);
  });

  test('a limiter waits for the next window once the current one is spent', async () => {
    const limiter = new SharedRateLimiter(storeA, 'waits', { requests: 3, windowMs: 300 });
    const other = new SharedRateLimiter(storeB, 'waits', { requests: 3, windowMs: 300 });
    // Six slots at three a window: the last acquisition completes in a later window than the first, whatever the clock.
    const slots = await Promise.all([limiter.acquire(2), other.acquire(2), limiter.acquire(2)]);
    const windows = [...new Set(slots.map((slot) => slot.windowEndMs))].sort((a, b) => a - b);
    assert.ok(windows.length >= 2, `the slots span ${windows.length} windows: the next one was awaited`);
    for (const slot of slots) assert.ok(slot.number <= 3, `slot ${slot.number} of its window is within the limit`);
  });

  test('slots the store grants too late in their window are not used: they could arrive in the next one', async () => {
    const windowMs = 1_000;
    const slowStore = new Proxy(storeA, {
      get: (target, name) =>
        name === 'acquireRateSlots'
          ? async (request: Parameters<StateStore['acquireRateSlots']>[0]) => {
              const grant = await target.acquireRateSlots(request);
              await new Promise((resolve) => setTimeout(resolve, 80)); // a database answering slowly
              return grant;
            }
          : (Reflect.get(target, name) as unknown),
    });
    const limiter = new SharedRateLimiter(slowStore, 'late-grant', { requests: 100, windowMs });
    // Ask 900 ms into a window: the answer comes back in its last 50 ms.
    await new Promise((resolve) => setTimeout(resolve, windowMs - (Date.now() % windowMs) + 900));
    const askedInWindow = Math.floor(Date.now() / windowMs);
    await limiter.acquire(1);
    const grantedAt = Date.now();
    assert.equal(Math.floor(grantedAt / windowMs), askedInWindow + 1, 'the slot is one of the next window');
    assert.ok(windowMs - (grantedAt % windowMs) >= endOfWindowMarginMs(windowMs), 'and not in its last moments either');
  });

  test('a limit that adopts Braze’s report: one request goes first, then every worker keeps to what Braze says is left', async () => {
    // Wide enough that the first window outlasts a slow store's round trips on a loaded machine.
    const windowMs = 2_000;
    const limit = { requests: 100, windowMs };
    const a = new SharedRateLimiter(storeA, 'adopting', limit, { adoptsVendorLimit: true });
    const b = new SharedRateLimiter(storeB, 'adopting', limit, { adoptsVendorLimit: true });
    await new Promise((resolve) => setTimeout(resolve, windowMs - (Date.now() % windowMs) + 20));
    const first = await a.acquire(1);
    let answered = 0;
    const others = Promise.all(range(5).map(() => a.acquire(1).then((slot) => (answered++, slot))));
    // Long enough for the others' store round trips; they may only go ahead on the answer (or after 2 s without one).
    await new Promise((resolve) => setTimeout(resolve, 150));
    assert.equal(answered, 0, 'the others wait for the first answer');
    // Braze: 4 a window, and after the first slot 1 left (another writer took 2 of this window).
    await a.observe({ limit: 4, remaining: 1, resetAtMs: first.windowEndMs }, first);
    const slots = [first, ...(await others), ...(await Promise.all(range(6).map(() => b.acquire(1))))];
    const perWindow = new Map<number, number[]>();
    for (const slot of slots) perWindow.set(slot.windowEndMs, [...(perWindow.get(slot.windowEndMs) ?? []), slot.number]);
    assert.deepEqual(perWindow.get(first.windowEndMs)?.sort(), [1, 2], 'the first window: its slot and the one Braze said was left');
    for (const [windowEndMs, numbers] of perWindow)
      assert.ok(Math.max(...numbers) <= 4, `window ending ${windowEndMs}: ${numbers.join(',')}`);
    assert.equal(slots.length, 12);
  });

  test('when Braze reports the workspace exhausted, every worker waits for its reset', async () => {
    const limiter = new SharedRateLimiter(storeA, 'blocked', { requests: 100, windowMs: 1_000 });
    const other = new SharedRateLimiter(storeB, 'blocked', { requests: 100, windowMs: 1_000 });
    const resetAtMs = Date.now() + 400;
    await limiter.observe({ remaining: 0, resetAtMs });
    await other.acquire(1);
    assert.ok(Date.now() >= resetAtMs, 'the other worker honoured the reset');
  });

  test('headers with requests remaining block nobody', async () => {
    const limiter = new SharedRateLimiter(storeA, 'not-blocked', { requests: 100, windowMs: 60_000 });
    await limiter.observe({ remaining: 1, resetAtMs: Date.now() + 60_000 });
    await limiter.observe(undefined);
    const grant = await storeB.acquireRateSlots({ key: 'not-blocked', requested: 1, limit: 100, windowMs: 60_000, nowMs: Date.now() });
    assert.equal(grant.granted, 1);
  });

  test('an abort stops the wait with the signal’s reason', async () => {
    const limiter = new SharedRateLimiter(storeA, 'abort', { requests: 1, windowMs: 60_000 });
    await limiter.acquire(1);
    const controller = new AbortController();
    const cancelled = new Error('cancelled');
    setTimeout(() => controller.abort(cancelled), 50);
    const started = Date.now();
    await assert.rejects(limiter.acquire(1, { signal: controller.signal }), (error) => error === cancelled);
    assert.ok(Date.now() - started < 5_000, 'did not wait for the next window');
  });

  test('a long wait (the vendor blocked the workspace) wakes up every few seconds to report it is alive', async () => {
    const limiter = new SharedRateLimiter(storeA, 'long-block', { requests: 100, windowMs: 1_000 });
    const resetAtMs = Date.now() + 6_000;
    await limiter.observe({ remaining: 0, resetAtMs });
    const wakeUps: number[] = [];
    await limiter.acquire(1, { whileWaiting: () => wakeUps.push(Date.now()) });
    assert.ok(Date.now() >= resetAtMs, 'waited for the reset');
    assert.ok(wakeUps.length >= 2, `woke up ${wakeUps.length} times in 6 s`);
    for (const [i, at] of wakeUps.entries()) if (i > 0) assert.ok(at - wakeUps[i - 1]! <= 5_500, 'at most about 5 s between wake-ups');
  });

  test('tryAcquire takes what the current window has left, without waiting', async () => {
    const limiter = new SharedRateLimiter(storeA, 'try', { requests: 5, windowMs: 3_600_000 });
    const other = new SharedRateLimiter(storeB, 'try', { requests: 5, windowMs: 3_600_000 });
    assert.equal(await limiter.tryAcquire(3), 3);
    assert.equal(await other.tryAcquire(3), 2, 'shared with the other worker');
    assert.equal(await limiter.tryAcquire(1), 0);
  });
});
