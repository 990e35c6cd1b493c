import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ApplicationFailure } from '@temporalio/common';
import { toActivityFailure, withVendorFailures } from '../activities/failures.js';
import { NonRetryableVendorError, RateLimitedError, RetryableVendorError } from '../src/errors.js';

const details = { vendor: 'braze' as const, endpoint: 'POST /users/track', status: 429 };

test('a rate limit retries after exactly the delay the vendor implied', () => {
  const failure = toActivityFailure(new RateLimitedError(details, 2_500));
  assert.ok(failure instanceof ApplicationFailure);
  assert.equal(failure.type, 'RateLimited');
  assert.equal(failure.nextRetryDelay, 2_500);
  assert.equal(failure.nonRetryable, false);
});

test('an outage is retryable; a rejection is not, and keeps the vendor message', () => {
  const outage = toActivityFailure(new RetryableVendorError({ ...details, status: 503 }));
  assert.ok(outage instanceof ApplicationFailure);
  assert.deepEqual([outage.type, outage.nonRetryable], ['VendorUnavailable', false]);
  const rejected = toActivityFailure(new NonRetryableVendorError({ ...details, status: 401, vendorMessage: 'Invalid API Key' }));
  assert.ok(rejected instanceof ApplicationFailure);
  assert.deepEqual([rejected.type, rejected.nonRetryable], ['VendorRejected', true]);
  assert.match(rejected.message, /401.*Invalid API Key/);
});

test('other errors pass through unchanged, and the wrapper applies the mapping', async () => {
  const plain = new Error('bug');
  assert.equal(toActivityFailure(plain), plain);
  const mapped = toActivityFailure(new RetryableVendorError(details));
  assert.equal(toActivityFailure(mapped), mapped, 'an ApplicationFailure is never mapped twice');
  const wrapped = withVendorFailures(() => Promise.reject(new RateLimitedError(details, 1_000)));
  await assert.rejects(wrapped(), (error: unknown) => error instanceof ApplicationFailure && error.type === 'RateLimited');
});
