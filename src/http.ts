/**
 * The one HTTP layer both vendor clients use: undici requests with timeouts and our User-Agent, no automatic
 * redirects, and every failure turned into one of the typed errors in `errors.ts`.
 */
import { lookup } from 'node:dns/promises';
import { BlockList, isIP } from 'node:net';
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
/**
 * The longest a vendor's `Retry-After` or `X-RateLimit-Reset` is taken at its word: a reset sent in milliseconds
 * where seconds were meant, or a date years ahead, would otherwise stop every worker for as long.
 */
export const DEFAULT_MAX_VENDOR_WAIT_MS = 3_600_000;
/** A success body read whole (JSON) may be this large at most; files are streamed, never read whole. */
export const MAX_SUCCESS_BODY_BYTES = 64 * 1024 * 1024;

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
  /** The longest wait a 429 may ask for (DEFAULT_MAX_VENDOR_WAIT_MS unless set). */
  maxWaitMs?: number;
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
    const delayMs = rateLimitDelayMs(input.vendor, input.endpoint, input.headers, input.now);
    const maxWaitMs = input.maxWaitMs ?? DEFAULT_MAX_VENDOR_WAIT_MS;
    return new RateLimitedError(details, Math.min(delayMs, maxWaitMs), delayMs > maxWaitMs ? delayMs : undefined);
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
  // The User Privacy API takes about one deletion request per second.
  if (endpoint.endsWith(' /api/2/deletions/users')) return 1_000;
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
  /** The longest wait a vendor's answer may impose (DEFAULT_MAX_VENDOR_WAIT_MS unless set). */
  maxWaitMs?: number;
  /** Where a vendor answer that was not taken at its word is reported (a wait cut to `maxWaitMs`). */
  warn?: (message: string) => void;
  /** Told of every request's answer (its status; undefined when none came), e.g. to count 429s by endpoint. */
  onAnswer?: VendorAnswerHook;
}

export type VendorAnswerHook = (vendor: Vendor, endpoint: string, status: number | undefined) => void;

/** One vendor's requests. Clients call `send` for full control or `requestJson` for the common case. */
export class VendorHttp {
  readonly vendor: Vendor;
  readonly maxWaitMs: number;
  private readonly timeoutMs: number;
  private readonly secrets: readonly string[];
  private readonly warn: (message: string) => void;
  private readonly onAnswer: VendorAnswerHook | undefined;

  constructor(config: VendorHttpConfig) {
    this.vendor = config.vendor;
    this.timeoutMs = config.timeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
    this.secrets = config.secrets;
    this.maxWaitMs = config.maxWaitMs ?? DEFAULT_MAX_VENDOR_WAIT_MS;
    this.warn = config.warn ?? ((message) => console.warn(message));
    this.onAnswer = config.onAnswer;
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
      this.onAnswer?.(this.vendor, endpoint, response.statusCode);
      return { endpoint, status: response.statusCode, headers: response.headers, body: response.body };
    } catch (error) {
      this.onAnswer?.(this.vendor, endpoint, undefined);
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
    const error = classifyHttpError({
      vendor: this.vendor,
      endpoint: response.endpoint,
      status: response.status,
      headers: response.headers,
      bodyText,
      now: Date.now(),
      secrets: this.secrets,
      maxWaitMs: this.maxWaitMs,
    });
    if (error instanceof RateLimitedError && error.askedMs !== undefined) this.reportCappedWait(response.endpoint, error.askedMs);
    return error;
  }

  /** A vendor asked to be left alone for longer than anyone should wait: the wait was cut to `maxWaitMs`. */
  reportCappedWait(endpoint: string, askedMs: number): void {
    const [asked, cut] = [askedMs, this.maxWaitMs].map((ms) => `${Math.round(ms / 1000)} s`);
    this.warn(`${this.vendor} ${endpoint} asked to wait ${asked}; waiting ${cut} (VENDOR_MAX_WAIT) instead`);
  }

  /** The whole body as text, refused past MAX_SUCCESS_BODY_BYTES rather than held in memory. */
  async readText(response: VendorResponse): Promise<string> {
    // A declared length within the bound is read whole (undici fails a body longer than it declared), which
    // costs far less than iterating its chunks: every vendor answer is read this way.
    const declared = Number(response.headers['content-length']);
    if (declared <= MAX_SUCCESS_BODY_BYTES) {
      try {
        return await response.body.text();
      } catch (error) {
        throw this.networkError(response.endpoint, error);
      }
    }
    const chunks: Buffer[] = [];
    let length = 0;
    for await (const chunk of this.bodyChunks(response)) {
      length += chunk.length;
      if (length > MAX_SUCCESS_BODY_BYTES) {
        await response.body.dump().catch(() => undefined);
        throw this.invalidResponse(response, `a body over ${MAX_SUCCESS_BODY_BYTES} bytes`);
      }
      chunks.push(chunk);
    }
    return Buffer.concat(chunks).toString('utf8');
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

/** Addresses a vendor's redirect must never send a worker to: its own host, and networks behind it. */
const NON_PUBLIC = new BlockList();
for (const [network, prefix, type] of [
  ['0.0.0.0', 8, 'ipv4'],
  ['10.0.0.0', 8, 'ipv4'],
  ['100.64.0.0', 10, 'ipv4'],
  ['127.0.0.0', 8, 'ipv4'],
  ['169.254.0.0', 16, 'ipv4'],
  ['172.16.0.0', 12, 'ipv4'],
  ['192.168.0.0', 16, 'ipv4'],
  ['::', 128, 'ipv6'],
  ['::1', 128, 'ipv6'],
  ['fc00::', 7, 'ipv6'],
  ['fe80::', 10, 'ipv6'],
] as const)
  NON_PUBLIC.addSubnet(network, prefix, type);

function isPublicAddress(address: string): boolean {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address)?.[1];
  const [plain, family] = mapped ? [mapped, 'ipv4' as const] : [address, isIP(address) === 6 ? ('ipv6' as const) : ('ipv4' as const)];
  return !NON_PUBLIC.check(plain, family);
}

/**
 * Why a vendor's redirect must not be followed, or undefined when it may: to the origin the client was configured
 * with (the vendor itself, or its sandbox), or to an https link whose host is public, by name and by every address
 * it resolves to (a pre-signed S3 link is; loopback, private and link-local addresses never are).
 */
export async function redirectProblem(target: URL, configuredOrigin: string): Promise<string | undefined> {
  if (target.origin === new URL(configuredOrigin).origin) return undefined;
  if (target.protocol !== 'https:') return `a redirect to ${target.protocol}//${target.host}, not an https link`;
  const host = target.hostname.replace(/^\[|\]$/g, '');
  let addresses: string[];
  try {
    addresses = isIP(host) ? [host] : (await lookup(host, { all: true })).map((entry) => entry.address);
  } catch {
    return `a redirect to ${target.host}, a host that does not resolve`;
  }
  if (host === 'localhost' || !addresses.every(isPublicAddress)) return `a redirect to ${target.host}, which is not a public host`;
  return undefined;
}

/** A code or class name only: undici's messages can name hosts and ports, never needed to act on the error. */
function describeNetworkError(error: unknown): string {
  if (error instanceof Error) {
    const code = (error as Error & { code?: unknown }).code;
    return typeof code === 'string' ? code : error.name;
  }
  return 'unknown error';
}
