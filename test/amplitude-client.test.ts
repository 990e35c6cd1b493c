/** The Amplitude client against the Amplitude sandbox over real HTTP. */
import assert from 'node:assert/strict';
import { createServer, request as forward } from 'node:http';
import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { gzipSync } from 'node:zlib';
import { after, before, describe, test } from 'node:test';
import { Zip, ZipDeflate, ZipPassThrough, zipSync } from 'fflate';
import { AmplitudeClient } from '../src/amplitude/client.js';
import { parseCohortMembers } from '../src/amplitude/cohort-csv.js';
import { exportArchiveLines } from '../src/amplitude/export-archive.js';
import { gunzipIfCompressed } from '../src/amplitude/gzip.js';
import { NonRetryableVendorError, RateLimitedError, RetryableVendorError } from '../src/errors.js';
import { startAmplitudeSandbox, type AmplitudeSandbox } from '../src/sandbox/amplitude/index.js';
import type { AmplitudeSandboxOptions } from '../src/sandbox/amplitude/options.js';
import { Dataset } from '../src/sandbox/dataset.js';
import { closeServer, listen } from '../src/sandbox/http-util.js';
import { freePort } from '../src/temporal/dev-server.js';

const API_KEY = 'amp-api-key';
const SECRET = 'amp-secret';
const COHORT = '3k9x2pq';
const dataset = new Dataset({ seed: 3, users: 2_000, now: Date.UTC(2026, 10, 1) });
const sandboxes: Array<{ close(): Promise<void> }> = [];

async function sandboxAndClient(options: Partial<AmplitudeSandboxOptions> = {}, credentials = { apiKey: API_KEY, secretKey: SECRET }) {
  const sandbox: AmplitudeSandbox = await startAmplitudeSandbox({
    apiKey: API_KEY,
    secretKey: SECRET,
    dataset,
    exportJobDurationMs: 50,
    ...options,
  });
  sandboxes.push(sandbox);
  const client = new AmplitudeClient({ ...credentials, apiUrl: sandbox.url, profileApiUrl: sandbox.url, ingestUrl: sandbox.url });
  return { sandbox, client };
}

/**
 * A loopback hop in front of a sandbox that rewrites redirects to itself and holds the first pre-signed
 * download back by `delayMs`: a slow network between the 302 and the download.
 */
async function startSlowFirstDownloadProxy(targetUrl: string, delayMs: number): Promise<string> {
  let delayed = false;
  let proxyUrl = '';
  const server = createServer((req, res) => {
    void (async () => {
      if (req.url?.startsWith('/s3/') && !delayed) {
        delayed = true;
        await sleep(delayMs);
      }
      const upstream = forward(`${targetUrl}${req.url}`, { method: req.method, headers: req.headers }, (answer) => {
        const location = answer.headers.location;
        res.writeHead(answer.statusCode ?? 502, {
          ...answer.headers,
          ...(location && { location: location.replace(targetUrl, proxyUrl) }),
        });
        answer.pipe(res);
      });
      req.pipe(upstream);
    })();
  });
  proxyUrl = await listen(server, 0, '127.0.0.1');
  sandboxes.push({ close: () => closeServer(server) });
  return proxyUrl;
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
    assert.deepEqual(
      got.map(({ amplitudeId, userId }) => ({ amplitudeId, userId })),
      expectedMembers(),
    );
    assert.ok(
      got.some((m) => m.userId === null),
      'the cohort has anonymous members',
    );
  });

  test('a gzipped file from a 302 pre-signed link, with tab-prefixed values and a duplicate header', async () => {
    const { client } = await sandboxAndClient({
      gzipFiles: true,
      inlineFileMaxBytes: 100,
      tabPrefixValues: true,
      duplicateAmplitudeIdHeader: true,
    });
    const got = await members(client, await exportCohort(client));
    assert.deepEqual(
      got.map(({ amplitudeId, userId }) => ({ amplitudeId, userId })),
      expectedMembers(),
    );
  });

  test('a 302 to a link that expired before the download is retryable, and the retry gets a fresh link', async () => {
    // The first download is held past the link's life; the retry has the link's whole life to fetch it.
    const { sandbox } = await sandboxAndClient({ inlineFileMaxBytes: 100, presignedUrlTtlMs: 1_500 });
    const proxyUrl = await startSlowFirstDownloadProxy(sandbox.url, 3_000);
    const client = new AmplitudeClient({
      apiKey: API_KEY,
      secretKey: SECRET,
      apiUrl: proxyUrl,
      profileApiUrl: proxyUrl,
      ingestUrl: proxyUrl,
    });
    const requestId = await exportCohort(client);
    await assert.rejects(
      members(client, requestId),
      (error: unknown) => error instanceof RetryableVendorError && error.status === 403 && /expired/.test(error.message),
    );
    const retried = await members(client, requestId);
    assert.deepEqual(
      retried.map(({ amplitudeId, userId }) => ({ amplitudeId, userId })),
      expectedMembers(),
    );
  });

  test('a cohort file redirect to anything but an https link to a public host is not followed', async () => {
    const { sandbox } = await sandboxAndClient({ inlineFileMaxBytes: 100 });
    // A hop that answers `/file` with a redirect to another loopback port (a metadata service, an admin port…).
    const elsewhere = createServer((_req, res) => res.end('secret'));
    const elsewhereUrl = await listen(elsewhere, 0, '127.0.0.1');
    sandboxes.push({ close: () => closeServer(elsewhere) });
    let hits = 0;
    elsewhere.on('request', () => hits++);
    const hop = createServer((req, res) => {
      if (req.url?.endsWith('/file')) return res.writeHead(302, { location: `${elsewhereUrl}/latest/meta-data/` }).end();
      const upstream = forward(`${sandbox.url}${req.url}`, { method: req.method, headers: req.headers }, (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      });
      req.pipe(upstream);
    });
    const hopUrl = await listen(hop, 0, '127.0.0.1');
    sandboxes.push({ close: () => closeServer(hop) });
    const client = new AmplitudeClient({ apiKey: API_KEY, secretKey: SECRET, apiUrl: hopUrl, profileApiUrl: hopUrl, ingestUrl: hopUrl });
    await assert.rejects(members(client, await exportCohort(client)), (error: unknown) => {
      assert.ok(error instanceof NonRetryableVendorError);
      assert.match(error.message, /a redirect to http:\/\/127\.0\.0\.1:\d+, not an https link \(not followed\)/);
      return true;
    });
    assert.equal(hits, 0, 'nothing was sent there');
  });

  test('a success body too large to hold is refused, not read into memory', async () => {
    const huge = createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      const chunk = Buffer.alloc(1024 * 1024, 0x20);
      let sent = 0;
      const more = () => {
        while (sent < 80 && res.write(chunk)) sent++;
        if (sent < 80) res.once('drain', more);
        else res.end('{}');
      };
      more();
    });
    const hugeUrl = await listen(huge, 0, '127.0.0.1');
    sandboxes.push({ close: () => closeServer(huge) });
    const client = new AmplitudeClient({ apiKey: API_KEY, secretKey: SECRET, apiUrl: hugeUrl, profileApiUrl: hugeUrl, ingestUrl: hugeUrl });
    await assert.rejects(client.listCohorts(), (error: unknown) => {
      assert.ok(error instanceof NonRetryableVendorError);
      assert.match(error.message, /a body over 67108864 bytes/);
      return true;
    });
  });

  test('the monthly download quota answers 429 as a rate limit; an unknown cohort is non-retryable', async () => {
    const { client } = await sandboxAndClient({ monthlyDownloadQuota: 1 });
    await client.requestCohortExport(COHORT);
    await assert.rejects(client.requestCohortExport(COHORT), RateLimitedError);
    await assert.rejects(
      plain.client.requestCohortExport('no-such-cohort'),
      (error: unknown) => error instanceof NonRetryableVendorError && error.status === 404,
    );
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

  test('5xx and a refused connection are retryable', async () => {
    const { client } = await sandboxAndClient({ faults: { serverErrorRate: 1 } });
    await assert.rejects(client.listCohorts(), (error: unknown) => error instanceof RetryableVendorError && error.status === 500);
    const closedUrl = `http://127.0.0.1:${await freePort()}`;
    const closed = new AmplitudeClient({
      apiKey: API_KEY,
      secretKey: SECRET,
      apiUrl: closedUrl,
      profileApiUrl: closedUrl,
      ingestUrl: closedUrl,
    });
    await assert.rejects(
      closed.listCohorts(),
      (error: unknown) => error instanceof RetryableVendorError && /ECONNREFUSED/.test(error.message),
    );
  });
});

describe('profile, export and ingestion', () => {
  let plain: Awaited<ReturnType<typeof sandboxAndClient>>;
  before(async () => {
    plain = await sandboxAndClient();
  });

  test('a user profile with properties and computations; an unknown user is null; a wrong key is 401', async () => {
    const user = [...dataset.users()].find((u) => u.userId)!;
    const profile = await plain.client.getUserProfile(
      { userId: user.userId! },
      { ampProps: true, computations: true, recommendations: true },
    );
    assert.equal(profile?.userId, user.userId);
    assert.equal(profile?.properties.plan, user.properties.plan);
    assert.equal(await plain.client.getUserProfile({ userId: 'never-seen-user' }, {}), null);
    const { client: wrong } = await sandboxAndClient({}, { apiKey: API_KEY, secretKey: 'nope' });
    await assert.rejects(
      wrong.getUserProfile({ userId: user.userId! }, {}),
      (error: unknown) => error instanceof NonRetryableVendorError && /Invalid Api-Key/.test(error.message),
    );
  });

  test("a user's device ids from the User Activity API; unknown users have none; over the hourly limit is a rate limit", async () => {
    const { client } = await sandboxAndClient({ userLookupsPerHour: 2 });
    const anonymous = dataset.identity(5);
    assert.deepEqual(await client.getUserDeviceIds(anonymous.amplitudeId), [dataset.deviceIdOf(5)]);
    assert.deepEqual(await client.getUserDeviceIds('42'), []);
    await assert.rejects(
      client.getUserDeviceIds(anonymous.amplitudeId),
      (error: unknown) => error instanceof RateLimitedError && /2 queries per hour/.test(error.message),
    );
  });

  test('the Export API zip of gzipped JSON lines is streamed into events', async () => {
    const hour = Date.UTC(2026, 9, 31, 12);
    const events = [];
    for await (const event of plain.client.exportEvents(new Date(hour), new Date(hour))) events.push(event);
    assert.deepEqual(
      events.map((e) => e.$insert_id),
      [...dataset.eventsInHour(hour)].map((e) => e.$insert_id),
    );
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
    assert.deepEqual(
      result.rejected.map((r) => [r.index, r.object.insert_id]),
      [
        [1, 'a-2'],
        [2, 'a-3'],
      ],
    );
    assert.deepEqual(
      result.accepted.map((e) => e.insert_id),
      ['a-1', 'a-4'],
    );
    await plain.client.ingestEvents([events[0]!], { api: 'httpapi' });
    const stored = plain.sandbox.control.ingestedEvents().filter((e) => e.event.insert_id === 'a-1');
    assert.equal(stored.length, 1, 'the repeat was deduplicated');
  });

  test('a request-level ingestion error is non-retryable with Amplitude’s message', async () => {
    const { client } = await sandboxAndClient({}, { apiKey: 'bad-api-key', secretKey: SECRET });
    await assert.rejects(
      client.ingestEvents([{ event_type: 'x', user_id: 'user-000001' }], { api: 'batch' }),
      (error: unknown) => error instanceof NonRetryableVendorError && /Invalid API key/i.test(error.message),
    );
  });

  test('ingestion: a throttled user’s events come back to send after 30 s while the rest go; too many events are split', async () => {
    const time = Date.UTC(2026, 10, 1);
    const burst = Array.from({ length: 31 }, (_, i) => ({ event_type: 'tick', user_id: 'user-000009', time, insert_id: `burst-${i}` }));
    const others = [{ event_type: 'tick', user_id: 'user-000010', time, insert_id: 'calm-1' }];
    const result = await plain.client.ingestEvents([...burst.slice(0, 15), ...others, ...burst.slice(15)], { api: 'httpapi' });
    assert.deepEqual(
      result.accepted.map((e) => e.insert_id),
      ['calm-1'],
      'the other user’s event goes through',
    );
    assert.equal(result.throttled.length, burst.length, 'every event of the throttled user, in order');
    assert.deepEqual(
      result.throttled.map((t) => t.object.insert_id),
      burst.map((e) => e.insert_id),
    );
    assert.equal(result.retryThrottledAfterMs, 30_000);

    const tooMany = Array.from({ length: 2_001 }, (_, i) => ({ event_type: 'tick', user_id: `user-${String(i).padStart(6, '0')}`, time }));
    const split = await plain.client.ingestEvents(tooMany, { api: 'batch' });
    assert.equal(split.accepted.length, tooMany.length, 'a 413 splits the events until they fit');
  });
});

describe('User Privacy API', () => {
  const identified = () => [...dataset.identities()].filter((user) => user.userId !== null);

  test('a deletion request answers its job, which the list follows from staging to done', async () => {
    const { sandbox, client } = await sandboxAndClient({ deletionRequestsPerSecond: 100 });
    const [byAmplitudeId, byUserId] = identified();
    const job = await client.requestUserDeletions({
      amplitudeIds: [byAmplitudeId!.amplitudeId],
      userIds: [byUserId!.userId!],
      requester: 'dpo@example.com',
    });
    assert.equal(job.status, 'staging');
    const requestedOnDay = job.amplitudeIds[0]?.requestedOnDay;
    assert.ok(requestedOnDay);
    assert.deepEqual(
      job.amplitudeIds,
      [byAmplitudeId!, byUserId!].map((user) => ({ amplitudeId: user.amplitudeId, requestedOnDay, requester: 'dpo@example.com' })),
      'the user_id is listed as its Amplitude id, as a string',
    );
    const range = { startDay: requestedOnDay, endDay: job.day };
    assert.deepEqual(await client.listDeletionJobs(range), [job]);
    sandbox.control.advanceDeletionClock(11);
    assert.deepEqual(await client.listDeletionJobs(range), [{ ...job, status: 'done' }]);
    const unknownSkipped = await client.requestUserDeletions({ userIds: ['nobody-at-all'], requester: 'dpo@example.com' });
    assert.deepEqual(unknownSkipped.amplitudeIds, [], 'ignore_invalid_id is sent');
  });

  test('Amplitude ids go out as JSON numbers; a job listing bare ids is read', async () => {
    const bodies: unknown[] = [];
    const recorder = createServer((req, res) => {
      let raw = '';
      req.on('data', (chunk: Buffer) => (raw += chunk.toString()));
      req.on('end', () => {
        bodies.push(JSON.parse(raw));
        res
          .writeHead(200, { 'content-type': 'application/json' })
          .end('{"day":"2026-03-03","status":"staging","amplitude_ids":[356896327775]}');
      });
    });
    const recorderUrl = await listen(recorder, 0, '127.0.0.1');
    sandboxes.push({ close: () => closeServer(recorder) });
    const client = new AmplitudeClient({
      apiKey: API_KEY,
      secretKey: SECRET,
      apiUrl: recorderUrl,
      profileApiUrl: recorderUrl,
      ingestUrl: recorderUrl,
    });
    const job = await client.requestUserDeletions({ amplitudeIds: ['356896327775', '12'], requester: 'dpo@example.com' });
    assert.deepEqual(job, { day: '2026-03-03', status: 'staging', amplitudeIds: [{ amplitudeId: '356896327775' }] });
    await client.requestUserDeletions({ amplitudeIds: ['12', '123456789012345678901'], userIds: ['u1'], requester: 'dpo@example.com' });
    assert.deepEqual(bodies, [
      { amplitude_ids: [356896327775, 12], requester: 'dpo@example.com', ignore_invalid_id: true },
      { amplitude_ids: ['12', '123456789012345678901'], user_ids: ['u1'], requester: 'dpo@example.com', ignore_invalid_id: true },
    ]);
  });

  test('over 100 ids, no ids, and a bad, reversed or over-six-month range are refused before anything is sent', async () => {
    const closedUrl = `http://127.0.0.1:${await freePort()}`;
    const client = new AmplitudeClient({
      apiKey: API_KEY,
      secretKey: SECRET,
      apiUrl: closedUrl,
      profileApiUrl: closedUrl,
      ingestUrl: closedUrl,
    });
    const ids = (n: number) => Array.from({ length: n }, (_, i) => String(i));
    await assert.rejects(
      client.requestUserDeletions({ amplitudeIds: ids(60), userIds: ids(41), requester: 'r' }),
      /1 to 100 users in all, not 101/,
    );
    await assert.rejects(client.requestUserDeletions({ requester: 'r' }), /not 0/);
    await assert.rejects(client.listDeletionJobs({ startDay: '2026-02-30', endDay: '2026-03-01' }), /as YYYY-MM-DD/);
    await assert.rejects(client.listDeletionJobs({ startDay: '2026-03-02', endDay: '2026-03-01' }), /before the start day/);
    await assert.rejects(client.listDeletionJobs({ startDay: '2025-08-31', endDay: '2026-03-01' }), /6 months at most/);
    // Within the bounds, the request is sent: to a closed port here, so a network error.
    await assert.rejects(client.listDeletionJobs({ startDay: '2025-08-31', endDay: '2026-02-28' }), RetryableVendorError);
  });

  test('a second request within the second is rate limited for 1 s; wrong credentials are non-retryable', async () => {
    const { client } = await sandboxAndClient();
    const request = { userIds: [identified()[0]!.userId!], requester: 'dpo@example.com' };
    await client.requestUserDeletions(request);
    const error = await client.requestUserDeletions(request).catch((e: unknown) => e);
    assert.ok(error instanceof RateLimitedError, String(error));
    assert.deepEqual([error.retryAfterMs, error.vendorMessage], [1_000, 'Too many deletion requests: at most 1 per second']);
    const { client: wrong } = await sandboxAndClient({}, { apiKey: API_KEY, secretKey: 'wrong-secret' });
    await assert.rejects(wrong.listDeletionJobs({ startDay: '2026-01-01', endDay: '2026-01-31' }), (e: unknown) => {
      assert.ok(e instanceof NonRetryableVendorError && e.status === 401);
      assert.doesNotMatch(e.message, /wrong-secret/);
      return true;
    });
  });
});

describe('cohort CSV, gzip and export archive decoding (no HTTP)', () => {
  /** The text as a stream of 7-byte chunks, so quotes, tabs and line ends straddle chunk boundaries. */
  const chunked = (bytes: Buffer) =>
    Readable.from(Array.from({ length: Math.ceil(bytes.length / 7) }, (_, i) => bytes.subarray(i * 7, i * 7 + 7)));

  test('tab prefixes are stripped, a repeated header keeps its first column, an empty user_id is null', async () => {
    const csv =
      '"\tamplitude_id","\tuser_id","\tamplitude_id","\tplan"\n"\t356896327775","\t","\t356896327775","\tfree"\n"\t356896327776","\tuser-1","\t356896327776","\t"\n';
    const got = [];
    for await (const member of parseCohortMembers(chunked(Buffer.from(csv)))) got.push(member);
    assert.deepEqual(got, [
      { amplitudeId: '356896327775', userId: null, properties: { plan: 'free' } },
      { amplitudeId: '356896327776', userId: 'user-1', properties: { plan: '' } },
    ]);
  });

  test('a CSV without an amplitude_id column is an error, not an empty cohort', async () => {
    await assert.rejects(async () => {
      for await (const member of parseCohortMembers(Readable.from([Buffer.from('"user_id"\n"u1"\n')])))
        assert.fail(`unexpected ${member.amplitudeId}`);
    }, /no amplitude_id column/);
  });

  test('gzip is recognised by its magic bytes, even when they arrive one byte at a time', async () => {
    const text = '"amplitude_id","user_id"\n"1","u"\n';
    const oneByteChunks = (bytes: Buffer) => Readable.from([...bytes].map((byte) => Buffer.from([byte])));
    const read = async (bytes: Buffer) => Buffer.concat(await (await gunzipIfCompressed(oneByteChunks(bytes))).toArray()).toString();
    assert.equal(await read(gzipSync(text)), text);
    assert.equal(await read(Buffer.from(text)), text);
    assert.equal(await read(Buffer.from('x')), 'x');
    assert.equal(await read(Buffer.alloc(0)), '');
  });

  test('an export archive with deflated entries yields every line of every gzipped file, in order', async () => {
    const zip = zipSync({
      'app/app_2026-10-31_11#0.json.gz': gzipSync('{"n":1}\n{"n":2}\n'),
      'app/app_2026-10-31_12#0.json.gz': gzipSync('{"n":3}\n{"n":4}'),
    });
    const lines = [];
    for await (const line of exportArchiveLines(chunked(Buffer.from(zip)))) lines.push(line);
    assert.deepEqual(lines, ['{"n":1}', '{"n":2}', '{"n":3}', '{"n":4}']);
  });

  test('streamed entries (sizes after the data) whose bytes hold zip signatures are read whole, stored or deflated', async () => {
    // A local-header signature inside an entry's data: a reader that scans for signatures would cut the file there.
    const lines = ['first line', 'PK\u0003\u0004 in the middle', 'last line'];
    const chunks: Uint8Array[] = [];
    const zip = new Zip((error, chunk) => {
      if (error) throw error;
      chunks.push(chunk);
    });
    for (const entry of [new ZipPassThrough('stored.json'), new ZipDeflate('deflated.json')]) {
      zip.add(entry);
      entry.push(Buffer.from(`${lines.join('\n')}\n`), true);
    }
    zip.end();
    const read = [];
    for await (const line of exportArchiveLines(chunked(Buffer.concat(chunks)))) read.push(line);
    assert.deepEqual(read, [...lines, ...lines]);
  });
});
