import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { NonRetryableVendorError, RateLimitedError, RetryableVendorError } from '../src/errors.js';
import { classifyHttpError, extractVendorMessage, redirectProblem, type HttpErrorInput } from '../src/http.js';

const NOW = Date.UTC(2026, 0, 15, 12, 0, 0);

function classify(overrides: Partial<HttpErrorInput>) {
  return classifyHttpError({
    vendor: 'braze',
    endpoint: 'POST /users/track',
    status: 500,
    headers: {},
    bodyText: '',
    now: NOW,
    ...overrides,
  });
}

describe('classifyHttpError', () => {
  test('5xx and 423 are retryable', () => {
    for (const status of [500, 502, 503, 504, 423]) {
      const error = classify({ status, bodyText: '{"message":"Resource locked"}' });
      assert.ok(error instanceof RetryableVendorError, `status ${status}`);
      assert.equal(error.status, status);
    }
  });

  test('4xx are non-retryable and carry the vendor message from message, error or error.message', () => {
    const cases: Array<[number, string, string]> = [
      [401, '{"message":"Invalid API Key"}', 'Invalid API Key'],
      [403, '{"message":"Access Denied"}', 'Access Denied'],
      [400, '{"code":400,"error":"Invalid API key"}', 'Invalid API key'],
      [404, '{"error":{"http_code":404,"type":"not_found","message":"Cohort x not found"}}', 'Cohort x not found'],
      [413, 'Payload too large', 'Payload too large'],
    ];
    for (const [status, bodyText, vendorMessage] of cases) {
      const error = classify({ vendor: 'amplitude', endpoint: 'GET /api/3/cohorts', status, bodyText });
      assert.ok(error instanceof NonRetryableVendorError, `status ${status}`);
      assert.equal(error.vendorMessage, vendorMessage);
      assert.ok(error.message.includes(vendorMessage) && error.message.includes(String(status)));
    }
    assert.match(classify({ status: 413, bodyText: '{"code":413,"error":"Payload too large"}' }).message, /payload too large/);
  });

  test('a long raw body is truncated', () => {
    const error = classify({ status: 400, bodyText: 'x'.repeat(5_000) });
    assert.ok(error.vendorMessage !== undefined && error.vendorMessage.length < 400);
  });

  test('429 waits for Retry-After, as seconds or as an HTTP date', () => {
    const seconds = classify({ status: 429, headers: { 'retry-after': '7' } });
    assert.ok(seconds instanceof RateLimitedError);
    assert.equal(seconds.retryAfterMs, 7_000);
    const date = classify({ status: 429, headers: { 'retry-after': new Date(NOW + 12_000).toUTCString() } });
    assert.ok(date instanceof RateLimitedError);
    assert.equal(date.retryAfterMs, 12_000);
  });

  test('429 waits until X-RateLimit-Reset (epoch seconds), at least 1 s', () => {
    const reset = classify({ status: 429, headers: { 'x-ratelimit-reset': String(NOW / 1000 + 2) } });
    assert.ok(reset instanceof RateLimitedError);
    assert.equal(reset.retryAfterMs, 2_000);
    const past = classify({ status: 429, headers: { 'x-ratelimit-reset': String(NOW / 1000 - 10) } });
    assert.ok(past instanceof RateLimitedError);
    assert.equal(past.retryAfterMs, 1_000);
  });

  test('429 without headers falls back to the documented vendor default', () => {
    const delay = (vendor: 'braze' | 'amplitude', endpoint: string) => {
      const error = classify({ vendor, endpoint, status: 429 });
      assert.ok(error instanceof RateLimitedError);
      return error.retryAfterMs;
    };
    assert.equal(delay('braze', 'POST /users/track'), 3_000);
    assert.equal(delay('amplitude', 'POST /2/httpapi'), 30_000);
    assert.equal(delay('amplitude', 'POST /batch'), 15_000);
    const cohortDelay = delay('amplitude', 'GET /api/5/cohorts/request-status/:id');
    assert.ok(cohortDelay >= 1_000 && cohortDelay <= 10_000);
  });

  test('a wait far ahead (milliseconds sent as seconds, a date years away) is cut to the most anyone waits, and says so', () => {
    const seconds = classify({ status: 429, headers: { 'retry-after': String(NOW) } });
    assert.ok(seconds instanceof RateLimitedError);
    assert.equal(seconds.retryAfterMs, 3_600_000, 'an hour by default');
    assert.equal(seconds.askedMs, NOW * 1000);
    const reset = classify({ status: 429, headers: { 'x-ratelimit-reset': String(NOW) }, maxWaitMs: 60_000 });
    assert.ok(reset instanceof RateLimitedError);
    assert.equal(reset.retryAfterMs, 60_000, 'as configured');
    const fair = classify({ status: 429, headers: { 'retry-after': '30' } });
    assert.ok(fair instanceof RateLimitedError);
    assert.equal(fair.askedMs, undefined, 'a fair wait is taken as it is');
  });

  test('an echoed secret never reaches the error message', () => {
    const secret = 'sk-live-1234567890';
    const error = classify({ status: 401, bodyText: `{"message":"Partner not enabled for client ${secret}"}`, secrets: [secret] });
    assert.ok(!error.message.includes(secret));
    assert.match(error.message, /Partner not enabled for client \[redacted\]/);
  });
});

describe('redirectProblem', () => {
  test('followed: the configured origin, and https links to public hosts; refused: anything else', async () => {
    const configured = 'http://127.0.0.1:4000';
    assert.equal(
      await redirectProblem(new URL('http://127.0.0.1:4000/s3/token'), configured),
      undefined,
      'the vendor (or its sandbox) itself',
    );
    assert.equal(await redirectProblem(new URL('https://93.184.215.14/cohort.csv'), configured), undefined);
    const refused = [
      'http://93.184.215.14/cohort.csv',
      'https://127.0.0.1:4001/x',
      'https://localhost/x',
      'https://10.1.2.3/x',
      'https://172.20.0.1/x',
      'https://192.168.1.1/x',
      'https://169.254.169.254/latest/meta-data/',
      'https://[::1]/x',
      'https://[fd00::1]/x',
      'https://[::ffff:127.0.0.1]/x',
      'ftp://93.184.215.14/x',
    ];
    for (const url of refused) assert.ok(await redirectProblem(new URL(url), configured), url);
  });
});

describe('extractVendorMessage', () => {
  test('empty bodies give no message; JSON without a message gives the raw text', () => {
    assert.equal(extractVendorMessage(''), undefined);
    assert.equal(extractVendorMessage('{"code":500}'), '{"code":500}');
  });
});
