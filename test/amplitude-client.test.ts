/** The Amplitude client against the Amplitude sandbox over real HTTP. */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { AmplitudeClient } from '../src/amplitude/client.js';
import { NonRetryableVendorError, RateLimitedError, RetryableVendorError } from '../src/errors.js';
import { startAmplitudeSandbox, type AmplitudeSandbox } from '../src/sandbox/amplitude/index.js';
import type { AmplitudeSandboxOptions } from '../src/sandbox/amplitude/options.js';
import { Dataset } from '../src/sandbox/dataset.js';

const API_KEY = 'amp-api-key';
const SECRET = 'amp-secret';
const COHORT = '3k9x2pq';
const dataset = new Dataset({ seed: 3, users: 2_000, now: Date.UTC(2026, 10, 1) });
const sandboxes: AmplitudeSandbox[] = [];

async function sandboxAndClient(options: Partial<AmplitudeSandboxOptions> = {}, credentials = { apiKey: API_KEY, secretKey: SECRET }) {
  const sandbox = await startAmplitudeSandbox({ apiKey: API_KEY, secretKey: SECRET, dataset, exportJobDurationMs: 50, ...options });
  sandboxes.push(sandbox);
  const client = new AmplitudeClient({ ...credentials, apiUrl: sandbox.url, profileApiUrl: sandbox.url, ingestUrl: sandbox.url });
  return { sandbox, client };
}

async function exportCohort(client: AmplitudeClient, cohortId = COHORT): Promise<string> {
  const { requestId } = await client.requestCohortExport(cohortId);
  while ((await client.getCohortExportStatus(requestId)) !== 'completed') await new Promise((r) => setTimeout(r, 20));
  return requestId;
}

async function members(client: AmplitudeClient, requestId: string) {
  const all = [];
  for await (const member of client.streamCohortMembers(requestId)) all.push(member);
  return all;
}

const expectedMembers = () => [...dataset.cohortMembers(COHORT)].map((m) => ({ amplitudeId: m.amplitudeId, userId: m.userId }));

after(async () => {
  await Promise.all(sandboxes.map((s) => s.close()));
});

describe('cohort export', () => {
  let plain: Awaited<ReturnType<typeof sandboxAndClient>>;
  before(async () => {
    plain = await sandboxAndClient();
  });

  test('lists cohorts and downloads an inline CSV: 202 → 200, anonymous members have a null userId', async () => {
    const cohorts = await plain.client.listCohorts();
    assert.ok(cohorts.some((c) => c.id === COHORT && typeof c.lastComputed === 'number'));
    const got = await members(plain.client, await exportCohort(plain.client));
    assert.deepEqual(got.map(({ amplitudeId, userId }) => ({ amplitudeId, userId })), expectedMembers());
    assert.ok(got.some((m) => m.userId === null), 'the cohort has anonymous members');
  });

  test('a gzipped file from a 302 pre-signed link, with tab-prefixed values and a duplicate header', async () => {
    const { client } = await sandboxAndClient({ gzipFiles: true, inlineFileMaxBytes: 100, tabPrefixValues: true, duplicateAmplitudeIdHeader: true });
    const got = await members(client, await exportCohort(client));
    assert.deepEqual(got.map(({ amplitudeId, userId }) => ({ amplitudeId, userId })), expectedMembers());
  });

  test('a 302 to an expired pre-signed link is retryable: a retry asks /file for a fresh link', async () => {
    const { client } = await sandboxAndClient({ inlineFileMaxBytes: 100, presignedUrlTtlMs: 1 });
    const requestId = await exportCohort(client);
    await assert.rejects(members(client, requestId), (error: unknown) => error instanceof RetryableVendorError && /expired/.test(error.message));
  });

  test('the monthly download quota answers 429 as a rate limit; an unknown cohort is non-retryable', async () => {
    const { client } = await sandboxAndClient({ monthlyDownloadQuota: 1 });
    await client.requestCohortExport(COHORT);
    await assert.rejects(client.requestCohortExport(COHORT), RateLimitedError);
    await assert.rejects(plain.client.requestCohortExport('no-such-cohort'), (error: unknown) => error instanceof NonRetryableVendorError && error.status === 404);
  });

  test('wrong credentials: 401, non-retryable, the secret never echoed', async () => {
    const { client } = await sandboxAndClient({}, { apiKey: API_KEY, secretKey: 'wrong-secret' });
    await assert.rejects(client.listCohorts(), (error: unknown) => {
      assert.ok(error instanceof NonRetryableVendorError);
      assert.equal(error.status, 401);
      assert.doesNotMatch(error.message, /wrong-secret/);
      return true;
    });
  });

  test('5xx is retryable', async () => {
    const { client } = await sandboxAndClient({ faults: { serverErrorRate: 1 } });
    await assert.rejects(client.listCohorts(), RetryableVendorError);
  });
});

describe('profile, export and ingestion', () => {
  let plain: Awaited<ReturnType<typeof sandboxAndClient>>;
  before(async () => {
    plain = await sandboxAndClient();
  });

  test('a user profile with properties and computations; an unknown user is null; a wrong key is 401', async () => {
    const user = [...dataset.users()].find((u) => u.userId)!;
    const profile = await plain.client.getUserProfile({ userId: user.userId! }, { ampProps: true, computations: true, recommendations: true });
    assert.equal(profile?.userId, user.userId);
    assert.equal(profile?.properties.plan, user.properties.plan);
    assert.equal(await plain.client.getUserProfile({ userId: 'never-seen-user' }, {}), null);
    const { client: wrong } = await sandboxAndClient({}, { apiKey: API_KEY, secretKey: 'nope' });
    await assert.rejects(wrong.getUserProfile({ userId: user.userId! }, {}), (error: unknown) => error instanceof NonRetryableVendorError && /Invalid Api-Key/.test(error.message));
  });

  test('the Export API zip of gzipped JSON lines is streamed into events', async () => {
    const hour = Date.UTC(2026, 9, 31, 12);
    const events = [];
    for await (const event of plain.client.exportEvents(new Date(hour), new Date(hour))) events.push(event);
    assert.deepEqual(events.map((e) => e.$insert_id), [...dataset.eventsInHour(hour)].map((e) => e.$insert_id));
    assert.ok(events.length > 0);
  });

  test('ingestion maps a 400’s event indexes back to the exact events, sends the rest, and dedups by insert_id', async () => {
    const time = Date.UTC(2026, 10, 1);
    const events = [
      { event_type: 'opened', user_id: 'user-000001', time, insert_id: 'a-1' },
      { event_type: 'opened', user_id: 'null', time, insert_id: 'a-2' },
      { event_type: 'opened', user_id: 'user-000002', time: Math.floor(time / 1000), insert_id: 'a-3' },
      { event_type: 'opened', user_id: 'user-000003', time, insert_id: 'a-4' },
    ];
    const result = await plain.client.ingestEvents(events, { api: 'httpapi' });
    assert.deepEqual(result.rejected.map((r) => [r.index, r.object.insert_id]), [[1, 'a-2'], [2, 'a-3']]);
    assert.deepEqual(result.accepted.map((e) => e.insert_id), ['a-1', 'a-4']);
    await plain.client.ingestEvents([events[0]!], { api: 'httpapi' });
    const stored = plain.sandbox.control.ingestedEvents().filter((e) => e.event.insert_id === 'a-1');
    assert.equal(stored.length, 1, 'the repeat was deduplicated');
  });

  test('a request-level ingestion error is non-retryable with Amplitude’s message', async () => {
    const { client } = await sandboxAndClient({}, { apiKey: 'bad-api-key', secretKey: SECRET });
    await assert.rejects(client.ingestEvents([{ event_type: 'x', user_id: 'user-000001' }], { api: 'batch' }), (error: unknown) => error instanceof NonRetryableVendorError && /Invalid API key/i.test(error.message));
  });
});
