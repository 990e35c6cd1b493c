import assert from 'node:assert/strict';
import { test } from 'node:test';
import { coalesce } from '../src/request-ledger.js';

test('calls made in the same moment share one flush, and each gets its own result', async () => {
  const flushed: number[][] = [];
  const double = coalesce((items: number[]) => {
    flushed.push(items);
    return Promise.resolve(items.map((item) => item * 2));
  });
  assert.deepEqual(await Promise.all([double(1), double(2), double(3)]), [2, 4, 6]);
  assert.deepEqual(await double(4), 8);
  assert.deepEqual(flushed, [[1, 2, 3], [4]]);
});

test('a failed flush fails every call in it, and the next calls flush afresh', async () => {
  let fail = true;
  const record = coalesce((items: string[]) =>
    fail ? Promise.reject(new Error('store unavailable')) : Promise.resolve(items.map(() => true)),
  );
  const results = await Promise.allSettled([record('a'), record('b')]);
  assert.deepEqual(
    results.map((result) => result.status),
    ['rejected', 'rejected'],
  );
  fail = false;
  assert.equal(await record('c'), true);
});
