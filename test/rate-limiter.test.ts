import assert from 'node:assert/strict';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { SharedRateLimiter } from '../src/rate-limiter.js';
import { openStateStore } from '../src/store/index.js';
import type { StateStore } from '../src/store/store.js';

let storeA: StateStore;
let storeB: StateStore;

before(async () => {
  // Two connections to one file stand for two workers sharing the store.
  const path = join(await mkdtemp(join(tmpdir(), 'limiter-')), 'state.db');
  storeA = await openStateStore({ kind: 'sqlite', path });
  storeB = await openStateStore({ kind: 'sqlite', path });
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

test('a limiter waits for the next window once the current one is spent', async () => {
  const limiter = new SharedRateLimiter(storeA, 'waits', { requests: 3, windowMs: 300 });
  const other = new SharedRateLimiter(storeB, 'waits', { requests: 3, windowMs: 300 });
  // Start just after a window boundary, so all six acquisitions span exactly two windows.
  await new Promise((r) => setTimeout(r, 300 - (Date.now() % 300) + 5));
  const started = Date.now();
  await Promise.all([limiter.acquire(2), other.acquire(2), limiter.acquire(2)]);
  assert.ok(Date.now() - started >= 250, 'the second window was awaited');
});

test('when Braze reports the workspace exhausted, every worker waits for its reset', async () => {
  const limiter = new SharedRateLimiter(storeA, 'blocked', { requests: 100, windowMs: 1_000 });
  const other = new SharedRateLimiter(storeB, 'blocked', { requests: 100, windowMs: 1_000 });
  const resetAtMs = Date.now() + 400;
  await limiter.observe({ remaining: 0, resetAtMs });
  await other.acquire(1);
  assert.ok(Date.now() >= resetAtMs, 'the other worker honoured the reset');
});

test('an abort stops the wait', async () => {
  const limiter = new SharedRateLimiter(storeA, 'abort', { requests: 1, windowMs: 60_000 });
  await limiter.acquire(1);
  const controller = new AbortController();
  setTimeout(() => controller.abort(new Error('cancelled')), 50);
  await assert.rejects(limiter.acquire(1, controller.signal), { name: 'AbortError' });
});
