/**
 * The one place vendor errors become Temporal failures: a rate limit retries after the delay the vendor
 * implied (`nextRetryDelay`), a vendor outage retries with the normal back-off, and a rejection fails at once
 * with the vendor's own message.
 */
import { ApplicationFailure } from '@temporalio/common';
import { NonRetryableVendorError, RateLimitedError, RetryableVendorError } from '../src/errors.js';

export function toActivityFailure(error: unknown): unknown {
  if (error instanceof RateLimitedError) {
    return ApplicationFailure.create({ type: 'RateLimited', message: error.message, nextRetryDelay: error.retryAfterMs, cause: error });
  }
  if (error instanceof RetryableVendorError) {
    return ApplicationFailure.create({ type: 'VendorUnavailable', message: error.message, cause: error });
  }
  if (error instanceof NonRetryableVendorError) {
    return ApplicationFailure.create({ type: 'VendorRejected', message: error.message, nonRetryable: true, cause: error });
  }
  return error;
}

/** Wraps an activity so the vendor errors it throws reach Temporal already classified. */
export function withVendorFailures<A extends unknown[], R>(activity: (...args: A) => Promise<R>): (...args: A) => Promise<R> {
  return async (...args: A) => {
    try {
      return await activity(...args);
    } catch (error) {
      throw toActivityFailure(error);
    }
  };
}
