/**
 * The small set of typed errors every vendor call ends in. Clients throw these; activities turn them into
 * Temporal failures exactly once (see `activities/interceptors.ts`). Per-object failures inside a 2xx are not
 * errors: clients return them alongside the accepted objects.
 */

export type Vendor = 'amplitude' | 'braze';

export type VendorErrorKind = 'retryable' | 'rate_limited' | 'non_retryable';

export interface VendorErrorDetails {
  vendor: Vendor;
  /** The endpoint as `METHOD /path` (no host, no query string, never a credential). */
  endpoint: string;
  /** HTTP status, or undefined for network-level failures. */
  status?: number;
  /** The vendor's own message, verbatim where it gave one. */
  vendorMessage?: string;
}

export abstract class VendorError extends Error {
  abstract readonly kind: VendorErrorKind;
  readonly vendor: Vendor;
  readonly endpoint: string;
  readonly status?: number;
  readonly vendorMessage?: string;

  constructor(details: VendorErrorDetails, summary: string) {
    const status = details.status === undefined ? '' : ` ${details.status}`;
    const vendorMessage = details.vendorMessage ? `: ${details.vendorMessage}` : '';
    super(`${details.vendor} ${details.endpoint}${status} ${summary}${vendorMessage}`);
    this.vendor = details.vendor;
    this.endpoint = details.endpoint;
    this.status = details.status;
    this.vendorMessage = details.vendorMessage;
  }
}

/** 5xx, 423, timeouts and network failures: try again with normal back-off. */
export class RetryableVendorError extends VendorError {
  readonly kind = 'retryable';
  override readonly name = 'RetryableVendorError';
  constructor(details: VendorErrorDetails, summary = 'failed (retryable)') {
    super(details, summary);
  }
}

/** 429 (and Amplitude's named quota limits): try again after `retryAfterMs`, which the vendor implied. */
export class RateLimitedError extends VendorError {
  readonly kind = 'rate_limited';
  override readonly name = 'RateLimitedError';
  constructor(
    details: VendorErrorDetails,
    readonly retryAfterMs: number,
    /** What the vendor asked for, when that was more than anyone should wait and `retryAfterMs` was cut short. */
    readonly askedMs?: number,
  ) {
    super(details, `rate limited (retry in ${Math.ceil(retryAfterMs / 1000)}s)`);
  }
}

/** 400/401/403/404 and anything else retrying cannot fix: fail with the vendor's own message. */
export class NonRetryableVendorError extends VendorError {
  readonly kind = 'non_retryable';
  override readonly name = 'NonRetryableVendorError';
  constructor(details: VendorErrorDetails, summary = 'failed') {
    super(details, summary);
  }
}

/** One object the vendor rejected inside an otherwise successful (2xx) response. */
export interface RejectedObject<T> {
  /** The object exactly as the caller passed it. */
  object: T;
  /** Its index in the caller's input array (not the index within the request that carried it). */
  index: number;
  /** The vendor's reason, verbatim. */
  reason: string;
}

export interface PartialResult<T> {
  accepted: T[];
  rejected: RejectedObject<T>[];
}
