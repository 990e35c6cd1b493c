/**
 * The one place vendor errors become Temporal failures, for every activity the worker runs (an interceptor, so none
 * can be missed): a rate limit retries after the delay the vendor implied (`nextRetryDelay`), a vendor outage retries
 * with the normal back-off, and a rejection fails at once with the vendor's own message. Deliberate waits — a rate
 * limit, another run's lease — are BENIGN: they are logged quietly and not counted in the failure metrics.
 */
import { ApplicationFailure, ApplicationFailureCategory } from '@temporalio/common';
import type { ActivityInterceptorsFactory } from '@temporalio/worker';
import { NonRetryableVendorError, RateLimitedError, RetryableVendorError } from '../src/errors.js';
import { FailureType } from '../src/failure-types.js';

export function toActivityFailure(error: unknown): unknown {
  if (error instanceof RateLimitedError) {
    return ApplicationFailure.create({
      type: FailureType.RateLimited,
      message: error.message,
      nextRetryDelay: error.retryAfterMs,
      category: ApplicationFailureCategory.BENIGN,
      cause: error,
    });
  }
  if (error instanceof RetryableVendorError) {
    return ApplicationFailure.create({ type: FailureType.VendorUnavailable, message: error.message, cause: error });
  }
  if (error instanceof NonRetryableVendorError) {
    return ApplicationFailure.create({ type: FailureType.VendorRejected, message: error.message, nonRetryable: true, cause: error });
  }
  return error;
}

/** Registered on every worker (`interceptors: { activity: activityInterceptors }`). */
export const activityInterceptors: ActivityInterceptorsFactory[] = [
  () => ({
    inbound: {
      async execute(input, next) {
        try {
          return await next(input);
        } catch (error) {
          throw toActivityFailure(error);
        }
      },
    },
  }),
];
