/**
 * The one HTTP layer both vendor clients use: undici requests with timeouts and our User-Agent, no automatic
 * redirects, and every failure turned into one of the typed errors in `errors.ts`.
 */
import { request } from 'undici';
import type { z } from 'zod';
import packageJson from '../package.json' with { type: 'json' };
import {
  NonRetryableVendorError,
  RateLimitedError,
  RetryableVendorError,
  type Vendor,
  type VendorError,
  type VendorErrorDetails,
} from './errors.js';

export const USER_AGENT = `amplitude-braze-sync/${packageJson.version}`;

export const DEFAULT_REQUEST_TIMEOUT_MS = 60_000;

export type ResponseHeaders = Record<string, string | string[] | undefined>;

const MAX_VENDOR_MESSAGE_CHARS = 300;
/** Error bodies are only read for their message; a runaway body must not be buffered whole. */
const MAX_ERROR_BODY_BYTES = 64 * 1024;

// ---------------------------------------------------------------------------------------------------------
// Classification (pure)

export interface HttpErrorInput {
  vendor: Vendor;
  /** `METHOD /path`, as in `VendorErrorDetails.endpoint`. */
  endpoint: string;
  status: number;
  headers: ResponseHeaders;
  bodyText: string;
  /** Epoch ms, so that `Retry-After` dates and `X-RateLimit-Reset` become delays. */
  now: number;
  /** Credentials the request carried; removed from the vendor's message should it echo one. */
  secrets?: readonly string[];
}

/** Maps a non-success HTTP response to the typed error the caller must throw. */
export function classifyHttpError(input: HttpErrorInput): VendorError {
  const details: VendorErrorDetails = {
    vendor: input.vendor,
    endpoint: input.endpoint,
    status: input.status,
    vendorMessage: extractVendorMessage(input.bodyText, input.secrets ?? []),
  };
  if (input.status === 429) {
    return new RateLimitedError(details, rateLimitDelayMs(input.vendor, input.endpoint, input.headers, input.now));
  }
  if (input.status >= 500 || input.status === 423 || input.status === 408) {
    return new RetryableVendorError(details, input.status === 423 ? 'resource locked (retryable)' : 'failed (retryable)');
  }
  return new NonRetryableVendorError(details, nonRetryableSummary(input.status));
}

function nonRetryableSummary(status: number): string {
  switch (status) {
    case 400:
      return 'rejected the request';
    case 401:
      return 'rejected the credentials';
    case 403:
      return 'denied access';
    case 404:
      return 'not found';
    case 413:
      return 'payload too large';
    default:
      return status < 400 ? 'answered with an unexpected status' : 'failed';
  }
}

const MIN_RATE_LIMIT_DELAY_MS = 1_000;

/** How long a 429 tells us to wait: `Retry-After`, then `X-RateLimit-Reset`, then the vendor's documented default. */
export function rateLimitDelayMs(vendor: Vendor, endpoint: string, headers: ResponseHeaders, now: number): number {
  const fromHeaders =
    retryAfterMs(headerValue(headers, 'retry-after'), now) ?? rateLimitResetMs(headerValue(headers, 'x-ratelimit-reset'), now);
  return fromHeaders === undefined ? defaultRateLimitDelayMs(vendor, endpoint) : Math.max(MIN_RATE_LIMIT_DELAY_MS, fromHeaders);
}

function retryAfterMs(value: string | undefined, now: number): number | undefined {
  if (value === undefined) return undefined;
  if (/^\d+$/.test(value)) return Number(value) * 1000;
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : date - now;
}

/** Braze sends the reset as UTC epoch seconds. */
function rateLimitResetMs(value: string | undefined, now: number): number | undefined {
  if (value === undefined || !/^\d+(\.\d+)?$/.test(value)) return undefined;
  return Number(value) * 1000 - now;
}

function defaultRateLimitDelayMs(vendor: Vendor, endpoint: string): number {
  // Braze counts requests in 3 s windows whose alignment it does not publish: a full window is always enough.
  if (vendor === 'braze') return 3_000;
  // Amplitude pauses a throttled id for 30 s on HTTP V2 and about 15 s on Batch and Identify.
  if (endpoint.endsWith(' /2/httpapi')) return 30_000;
  if (endpoint.endsWith(' /batch') || endpoint.endsWith(' /identify')) return 15_000;
  return 5_000;
}

function headerValue(headers: ResponseHeaders, name: string): string | undefined {
  const value = headers[name] ?? headers[name.toLowerCase()];
  const first = Array.isArray(value) ? value[0] : value;
  return first?.trim() || undefined;
}

/** The vendor's own words: `message`, `error`, `error.message`, or the raw text, truncated and without secrets. */
export function extractVendorMessage(bodyText: string, secrets: readonly string[] = []): string | undefined {
  const message = messageFromJson(bodyText) ?? bodyText.trim();
  if (!message) return undefined;
  const redacted = secrets.filter((secret) => secret.length > 0).reduce((text, secret) => text.split(secret).join('[redacted]'), message);
  return redacted.length > MAX_VENDOR_MESSAGE_CHARS ? `${redacted.slice(0, MAX_VENDOR_MESSAGE_CHARS)}…` : redacted;
}

function messageFromJson(bodyText: string): string | undefined {
  let body: unknown;
  try {
    body = JSON.parse(bodyText);
  } catch {
    return undefined;
  }
  if (typeof body !== 'object' || body === null) return undefined;
  const { message, error } = body as { message?: unknown; error?: unknown };
  if (typeof message === 'string' && message) return message;
  if (typeof error === 'string' && error) return error;
  if (typeof error === 'object' && error !== null) {
    const nested = (error as { message?: unknown }).message;
    if (typeof nested === 'string' && nested) return nested;
  }
  return undefined;
}

// ---------------------------------------------------------------------------------------------------------
// Requests

export interface VendorRequest {
  method: 'GET' | 'POST';
  url: URL;
  headers?: Record<string, string>;
  /** Sent as JSON. */
  body?: string;
  /** Overrides `METHOD /path` in errors, for URLs whose path means nothing to an operator (pre-signed links). */
  endpoint?: string;
  /** Overrides the client's timeout for a slow endpoint. */
  timeoutMs?: number;
}

/** `path` appended to `base`, keeping any path prefix the base URL carries (e.g. behind a proxy). */
export function vendorUrl(base: string, path: string, query?: URLSearchParams): URL {
  const url = new URL(base.replace(/\/+$/, '') + path);
  if (query) url.search = query.toString();
  return url;
}

export interface VendorResponse {
  endpoint: string;
  status: number;
  headers: ResponseHeaders;
  body: AsyncIterable<Buffer> & { text(): Promise<string>; dump(): Promise<void> };
}

export interface VendorHttpConfig {
  vendor: Vendor;
  timeoutMs?: number;
  /** Every credential this client sends, so that no error message can leak one. */
  secrets: readonly string[];
}

/** One vendor's requests. Clients call `send` for full control or `requestJson` for the common case. */
export class VendorHttp {
  readonly vendor: Vendor;
  private readonly timeoutMs: number;
  private readonly secrets: readonly string[];

  constructor(config: VendorHttpConfig) {
    this.vendor = config.vendor;
    this.timeoutMs = config.timeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
    this.secrets = config.secrets;
  }

  /** Sends the request; network failures and timeouts become `RetryableVendorError`. Redirects are returned, not followed. */
  async send(vendorRequest: VendorRequest): Promise<VendorResponse> {
    const endpoint = vendorRequest.endpoint ?? `${vendorRequest.method} ${vendorRequest.url.pathname}`;
    const timeoutMs = vendorRequest.timeoutMs ?? this.timeoutMs;
    try {
      const response = await request(vendorRequest.url, {
        method: vendorRequest.method,
        headers: {
          'user-agent': USER_AGENT,
          ...(vendorRequest.body === undefined ? {} : { 'content-type': 'application/json' }),
          ...vendorRequest.headers,
        },
        body: vendorRequest.body,
        headersTimeout: timeoutMs,
        bodyTimeout: timeoutMs,
      });
      return { endpoint, status: response.statusCode, headers: response.headers, body: response.body };
    } catch (error) {
      throw this.networkError(endpoint, error);
    }
  }

  /** Sends the request, expects one of `statuses`, and validates the JSON body. */
  async requestJson<S extends z.ZodType>(
    vendorRequest: VendorRequest,
    statuses: readonly number[],
    schema: S,
  ): Promise<{ response: VendorResponse; body: z.output<S> }> {
    const response = await this.send(vendorRequest);
    if (!statuses.includes(response.status)) throw await this.failure(response);
    return { response, body: await this.readJson(response, schema) };
  }

  /** Reads (a bounded prefix of) the body and classifies the response as the error to throw. */
  async failure(response: VendorResponse): Promise<VendorError> {
    return this.classify(response, await this.readErrorBody(response));
  }

  /** As `failure`, for a body the caller already read. */
  classify(response: VendorResponse, bodyText: string): VendorError {
    return classifyHttpError({
      vendor: this.vendor,
      endpoint: response.endpoint,
      status: response.status,
      headers: response.headers,
      bodyText,
      now: Date.now(),
      secrets: this.secrets,
    });
  }

  async readText(response: VendorResponse): Promise<string> {
    try {
      return await response.body.text();
    } catch (error) {
      throw this.networkError(response.endpoint, error);
    }
  }

  async readJson<S extends z.ZodType>(response: VendorResponse, schema: S): Promise<z.output<S>> {
    const text = await this.readText(response);
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      throw this.invalidResponse(response, 'a body that is not JSON');
    }
    return this.parse(response, schema, json);
  }

  /** Validates an already-decoded value from `response`; a mismatch means the vendor changed its format. */
  parse<S extends z.ZodType>(response: VendorResponse, schema: S, value: unknown): z.output<S> {
    const result = schema.safeParse(value);
    if (result.success) return result.data;
    const issue = result.error.issues[0];
    const where = issue && issue.path.length > 0 ? ` at ${issue.path.join('.')}` : '';
    throw this.invalidResponse(response, `an unexpected body (${issue?.message ?? 'invalid'}${where})`);
  }

  invalidResponse(response: Pick<VendorResponse, 'endpoint' | 'status'>, what: string): NonRetryableVendorError {
    return new NonRetryableVendorError({ vendor: this.vendor, endpoint: response.endpoint, status: response.status }, `returned ${what}`);
  }

  /** The body's chunks, with a connection dropped mid-body surfacing as `RetryableVendorError`. */
  async *bodyChunks(response: VendorResponse): AsyncGenerator<Buffer> {
    try {
      for await (const chunk of response.body) yield chunk;
    } catch (error) {
      throw this.networkError(response.endpoint, error);
    }
  }

  networkError(endpoint: string, error: unknown): RetryableVendorError {
    if (error instanceof RetryableVendorError) return error;
    return new RetryableVendorError({ vendor: this.vendor, endpoint }, `request failed (${describeNetworkError(error)}, retryable)`);
  }

  private async readErrorBody(response: VendorResponse): Promise<string> {
    const chunks: Buffer[] = [];
    let length = 0;
    try {
      for await (const chunk of response.body) {
        chunks.push(chunk);
        length += chunk.length;
        if (length >= MAX_ERROR_BODY_BYTES) break;
      }
    } catch {
      // The status alone still classifies the failure; a lost error body only costs the vendor's message.
    }
    return Buffer.concat(chunks).subarray(0, MAX_ERROR_BODY_BYTES).toString('utf8');
  }
}

/** A code or class name only: undici's messages can name hosts and ports, never needed to act on the error. */
function describeNetworkError(error: unknown): string {
  if (error instanceof Error) {
    const code = (error as Error & { code?: unknown }).code;
    return typeof code === 'string' ? code : error.name;
  }
  return 'unknown error';
}
