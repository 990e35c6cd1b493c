/** Vendor errors as Temporal failures, mapped once for every activity by the worker's interceptor. Pure. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ApplicationFailure, ApplicationFailureCategory } from '@temporalio/common';
import { activityInterceptors, toActivityFailure } from '../activities/interceptors.js';
import { NonRetryableVendorError, RateLimitedError, RetryableVendorError } from '../src/errors.js';

const details = { vendor: 'braze' as const, endpoint: 'POST /users/track', status: 429 };

test('a rate limit retries after exactly the delay the vendor implied, as a wait rather than a failure', () => {
  const failure = toActivityFailure(new RateLimitedError(details, 2_500));
  assert.ok(failure instanceof ApplicationFailure);
  assert.equal(failure.type, 'RateLimited');
  assert.equal(failure.nextRetryDelay, 2_500);
  assert.equal(failure.nonRetryable, false);
  assert.equal(failure.category, ApplicationFailureCategory.BENIGN);
});

test('an outage is retryable; a rejection is not, and keeps the vendor message; both count as failures', () => {
  const outage = toActivityFailure(new RetryableVendorError({ ...details, status: 503 }));
  assert.ok(outage instanceof ApplicationFailure);
  assert.deepEqual([outage.type, outage.nonRetryable, outage.category], ['VendorUnavailable', false, undefined]);
  const rejected = toActivityFailure(new NonRetryableVendorError({ ...details, status: 401, vendorMessage: 'Invalid API Key' }));
  assert.ok(rejected instanceof ApplicationFailure);
  assert.deepEqual([rejected.type, rejected.nonRetryable, rejected.category], ['VendorRejected', true, undefined]);
  assert.match(rejected.message, /401.*Invalid API Key/);
});

test('other errors pass through unchanged, and the interceptor applies the mapping to whatever an activity throws', async () => {
  const plain = new Error('bug');
  assert.equal(toActivityFailure(plain), plain);
  const mapped = toActivityFailure(new RetryableVendorError(details));
  assert.equal(toActivityFailure(mapped), mapped, 'an ApplicationFailure is never mapped twice');
  const { inbound } = activityInterceptors[0]!({} as never);
  const execute = (cause: Error) => inbound!.execute!({ args: [], headers: {} }, () => Promise.reject(cause));
  await assert.rejects(
    execute(new RateLimitedError(details, 1_000)),
    (error: unknown) => error instanceof ApplicationFailure && error.type === 'RateLimited',
  );
  await assert.rejects(execute(plain), (error: unknown) => error === plain);
});
