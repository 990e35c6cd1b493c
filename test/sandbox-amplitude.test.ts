import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gunzipSync } from 'node:zlib';
import { parse } from 'csv-parse/sync';
import { strFromU8, unzipSync } from 'fflate';
import { request } from 'undici';
import { Dataset, type DatasetOptions } from '../src/sandbox/dataset.js';
import { startAmplitudeSandbox, type AmplitudeSandbox, type AmplitudeSandboxOptions } from '../src/sandbox/amplitude/index.js';
import { isHotId } from '../src/sandbox/amplitude/ingestion.js';

const API_KEY = 'test-api-key';
const SECRET_KEY = 'test-secret-key';
const BASIC_AUTH = `Basic ${Buffer.from(`${API_KEY}:${SECRET_KEY}`).toString('base64')}`;
const HOUR_MS = 60 * 60 * 1000;
const SMALL_COHORT = '26umsb5';
const MEDIUM_COHORT = '3k9x2pq';
const LARGE_COHORT = '5fh7t0w';

const started: AmplitudeSandbox[] = [];
after(async () => {
  await Promise.all(started.map((sandbox) => sandbox.close()));
});

async function startSandbox(
  options: Partial<AmplitudeSandboxOptions> = {},
  datasetOptions: Partial<DatasetOptions> = {},
): Promise<AmplitudeSandbox> {
  const dataset = new Dataset({ seed: 5, users: 2_000, ...datasetOptions });
  const sandbox = await startAmplitudeSandbox({ apiKey: API_KEY, secretKey: SECRET_KEY, dataset, exportJobDurationMs: 0, ...options });
  started.push(sandbox);
  return sandbox;
}

function api(sandbox: AmplitudeSandbox, path: string, init: RequestInit = {}): Promise<Response> {
  return fetch(`${sandbox.url}${path}`, { ...init, headers: { authorization: BASIC_AUTH, ...init.headers } });
}

function postJson(sandbox: AmplitudeSandbox, path: string, body: unknown): Promise<Response> {
  return fetch(`${sandbox.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
}

async function requestExport(sandbox: AmplitudeSandbox, cohortId: string, query = ''): Promise<string> {
  const response = await api(sandbox, `/api/5/cohorts/request/${cohortId}${query}`);
  assert.equal(response.status, 202, await response.clone().text());
  return ((await response.json()) as { request_id: string }).request_id;
}

async function downloadCsv(sandbox: AmplitudeSandbox, cohortId: string, query = ''): Promise<string[][]> {
  const requestId = await requestExport(sandbox, cohortId, query);
  const response = await api(sandbox, `/api/5/cohorts/request/${requestId}/file`);
  assert.equal(response.status, 200);
  return parse(await response.text());
}

function profile(sandbox: AmplitudeSandbox, query: string, apiKey: string | null = SECRET_KEY): Promise<Response> {
  return fetch(`${sandbox.url}/v1/userprofile?${query}`, { headers: apiKey === null ? {} : { authorization: `Api-Key ${apiKey}` } });
}

/** `YYYYMMDDTHH` for the Export API. */
function exportHour(ms: number): string {
  const iso = new Date(ms).toISOString();
  return `${iso.slice(0, 4)}${iso.slice(5, 7)}${iso.slice(8, 10)}T${iso.slice(11, 13)}`;
}

describe('Amplitude sandbox: auth and cohort list', () => {
  test('/api/* requires Basic api_key:secret_key', async () => {
    const sandbox = await startSandbox();
    assert.equal((await fetch(`${sandbox.url}/api/3/cohorts`)).status, 401);
    const wrong = `Basic ${Buffer.from(`${API_KEY}:nope`).toString('base64')}`;
    const response = await fetch(`${sandbox.url}/api/3/cohorts`, { headers: { authorization: wrong } });
    assert.equal(response.status, 401);
    assert.match(await response.text(), /Invalid API key/);
    assert.equal((await api(sandbox, '/api/3/cohorts')).status, 200);
  });

  test('lists cohorts with the documented fields in epoch seconds', async () => {
    const sandbox = await startSandbox();
    const response = await api(sandbox, '/api/3/cohorts?includeSyncInfo=true');
    const { cohorts } = (await response.json()) as { cohorts: Array<Record<string, unknown>> };
    assert.deepEqual(
      cohorts.map((cohort) => cohort.id),
      [SMALL_COHORT, MEDIUM_COHORT, LARGE_COHORT],
    );
    for (const cohort of cohorts) {
      for (const field of [
        'appId',
        'name',
        'description',
        'size',
        'lastComputed',
        'lastMod',
        'createdAt',
        'archived',
        'hidden',
        'published',
        'finished',
        'type',
        'owners',
        'viewers',
        'syncMetadata',
      ]) {
        assert.ok(field in cohort, `${String(cohort.id)} has ${field}`);
      }
      assert.ok((cohort.lastComputed as number) < 1e11 && (cohort.createdAt as number) < 1e11);
    }
  });

  test('unknown paths get an empty 404', async () => {
    const sandbox = await startSandbox();
    const response = await fetch(`${sandbox.url}/v1/nope`);
    assert.equal(response.status, 404);
    assert.equal(await response.text(), '');
  });
});

describe('Amplitude sandbox: cohort export', () => {
  test('request is 202, status is 202 JOB INPROGRESS then 200 JOB COMPLETED', async () => {
    // Long enough that the first status call comes before it ends, however slow the machine.
    const sandbox = await startSandbox({ exportJobDurationMs: 2_000 });
    const response = await api(sandbox, `/api/5/cohorts/request/${SMALL_COHORT}?props=0`);
    assert.equal(response.status, 202);
    const body = (await response.json()) as { request_id: string; cohort_id: string };
    assert.equal(body.cohort_id, SMALL_COHORT);
    const pending = await api(sandbox, `/api/5/cohorts/request-status/${body.request_id}`);
    assert.equal(pending.status, 202);
    assert.deepEqual(await pending.json(), { request_id: body.request_id, cohort_id: SMALL_COHORT, async_status: 'JOB INPROGRESS' });
    assert.equal((await api(sandbox, `/api/5/cohorts/request/${body.request_id}/file`)).status, 400);
    let done = pending;
    while (done.status === 202) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      done = await api(sandbox, `/api/5/cohorts/request-status/${body.request_id}`);
    }
    assert.equal(done.status, 200);
    assert.equal(((await done.json()) as { async_status: string }).async_status, 'JOB COMPLETED');
    assert.equal((await api(sandbox, '/api/5/cohorts/request-status/unknown-request')).status, 404);
  });

  test('setExportJobDurationMs can make jobs never complete', async () => {
    const sandbox = await startSandbox();
    sandbox.control.setExportJobDurationMs(Number.POSITIVE_INFINITY);
    const requestId = await requestExport(sandbox, SMALL_COHORT);
    assert.equal((await api(sandbox, `/api/5/cohorts/request-status/${requestId}`)).status, 202);
    sandbox.control.setExportJobDurationMs(0);
    assert.equal((await api(sandbox, `/api/5/cohorts/request-status/${requestId}`)).status, 200);
  });

  test('the inline CSV quotes every field and leaves user_id empty for anonymous members', async () => {
    const sandbox = await startSandbox();
    const requestId = await requestExport(sandbox, MEDIUM_COHORT);
    const response = await api(sandbox, `/api/5/cohorts/request/${requestId}/file`);
    assert.equal(response.status, 200);
    const text = await response.text();
    const lines = text.trimEnd().split('\n');
    assert.equal(lines[0], '"amplitude_id","user_id"');
    assert.ok(
      lines.slice(1).every((line) => /^"\d+","(user-\d{6})?"$/.test(line)),
      'every field is quoted',
    );
    const dataset = sandbox.control.dataset;
    const expected = [...dataset.cohortMembers(MEDIUM_COHORT)].map((member) => `"${member.amplitudeId}","${member.userId ?? ''}"`);
    assert.deepEqual(lines.slice(1), expected);
    assert.ok(
      lines.some((line) => line.endsWith(',""')),
      'has anonymous members',
    );
  });

  test('props=1 adds one column per property; propKeys selects them', async () => {
    const sandbox = await startSandbox();
    const [header, ...rows] = await downloadCsv(sandbox, SMALL_COHORT, '?props=1&propKeys=plan&propKeys=favorite_genres');
    assert.deepEqual(header, ['amplitude_id', 'user_id', 'plan', 'favorite_genres']);
    const dataset = sandbox.control.dataset;
    for (const [amplitudeId, , plan, genres] of rows) {
      const user = dataset.user(dataset.indexOfAmplitudeId(amplitudeId ?? '') ?? -1);
      assert.equal(plan, user.properties.plan);
      assert.deepEqual(JSON.parse(genres ?? ''), user.properties.favorite_genres);
    }
    const [allHeader] = await downloadCsv(sandbox, SMALL_COHORT, '?props=1');
    assert.deepEqual(allHeader, ['amplitude_id', 'user_id', 'plan', 'country', 'ltv', 'beta_tester', 'favorite_genres']);
  });

  test('the file reflects membership at request time', async () => {
    const sandbox = await startSandbox();
    const before = await requestExport(sandbox, SMALL_COHORT);
    const members = [sandbox.control.dataset.user(1).amplitudeId, sandbox.control.dataset.user(2).amplitudeId];
    const changed = await postJson(sandbox, `/_sandbox/cohorts/${SMALL_COHORT}/members`, { set: members });
    assert.equal(changed.status, 200);
    const oldFile = parse(await (await api(sandbox, `/api/5/cohorts/request/${before}/file`)).text());
    assert.equal(oldFile.length - 1, [...new Dataset({ seed: 5, users: 2_000 }).cohortMembers(SMALL_COHORT)].length);
    const newFile = await downloadCsv(sandbox, SMALL_COHORT);
    assert.deepEqual(
      newFile.slice(1).map((row) => row[0]),
      members,
    );
  });

  test('unknown cohorts are 404 and cohorts over the size limit 400, with a message', async () => {
    const sandbox = await startSandbox({ maxCohortSize: 100 });
    const unknown = await api(sandbox, '/api/5/cohorts/request/zzzzzzz');
    assert.equal(unknown.status, 404);
    assert.match(await unknown.text(), /zzzzzzz not found/);
    const tooLarge = await api(sandbox, `/api/5/cohorts/request/${LARGE_COHORT}`);
    assert.equal(tooLarge.status, 400);
    assert.match(await tooLarge.text(), /maximum download size of 100 users/);
  });

  test('gzipFiles sends Content-Encoding: gzip', async () => {
    const sandbox = await startSandbox({ gzipFiles: true });
    const requestId = await requestExport(sandbox, SMALL_COHORT);
    const response = await request(`${sandbox.url}/api/5/cohorts/request/${requestId}/file`, { headers: { authorization: BASIC_AUTH } });
    assert.equal(response.statusCode, 200);
    assert.equal(response.headers['content-encoding'], 'gzip');
    const csv = gunzipSync(Buffer.from(await response.body.arrayBuffer())).toString('utf8');
    assert.ok(csv.startsWith('"amplitude_id","user_id"\n'));
  });

  test('tab-prefixed values and a duplicate amplitude_id header', async () => {
    const sandbox = await startSandbox({ tabPrefixValues: true, duplicateAmplitudeIdHeader: true });
    const [header, firstRow] = await downloadCsv(sandbox, SMALL_COHORT);
    assert.deepEqual(header, ['amplitude_id', 'user_id', 'amplitude_id']);
    assert.ok(firstRow?.every((value) => value.startsWith('\t')));
    assert.equal(firstRow?.[0], firstRow?.[2]);
  });

  test('fileBytesPerSecond paces the download', async () => {
    const bytesPerSecond = 2_048;
    const sandbox = await startSandbox({ fileBytesPerSecond: bytesPerSecond });
    const requestId = await requestExport(sandbox, SMALL_COHORT);
    const started = Date.now();
    const response = await api(sandbox, `/api/5/cohorts/request/${requestId}/file`);
    const bytes = (await response.arrayBuffer()).byteLength;
    const elapsedMs = Date.now() - started;
    // Slices of a twentieth of a second each: the first leaves at once, the last one when all before it are paid.
    const minimumMs = ((bytes - bytesPerSecond / 20) / bytesPerSecond) * 1000;
    assert.ok(bytes > 400, `a file of ${bytes} bytes`);
    assert.ok(elapsedMs >= minimumMs, `took ${elapsedMs} ms for ${bytes} bytes, at least ${Math.round(minimumMs)} ms expected`);
  });

  test('big files redirect to a pre-signed link that expires; /file gives a fresh one', async () => {
    const sandbox = await startSandbox({ inlineFileMaxBytes: 100 });
    const requestId = await requestExport(sandbox, MEDIUM_COHORT);
    const fileUrl = `/api/5/cohorts/request/${requestId}/file`;
    const redirect = await api(sandbox, fileUrl, { redirect: 'manual' });
    assert.equal(redirect.status, 302);
    const location = redirect.headers.get('location') ?? '';
    assert.match(location, new RegExp(`^${sandbox.url}/s3/[0-9a-f]+$`));
    const download = await fetch(location);
    assert.equal(download.status, 200);
    assert.ok((await download.text()).startsWith('"amplitude_id","user_id"\n'));

    sandbox.control.expireExportLinksNow();
    const expired = await fetch(location);
    assert.equal(expired.status, 403);
    const xml = await expired.text();
    assert.match(xml, /<Code>AccessDenied<\/Code>/);
    assert.match(xml, /Request has expired/);

    const fresh = (await api(sandbox, fileUrl, { redirect: 'manual' })).headers.get('location') ?? '';
    assert.notEqual(fresh, location);
    assert.equal((await fetch(fresh)).status, 200);
    sandbox.control.expireExportLinksNow();
    assert.equal((await fetch(fresh)).status, 403);
  });
});

describe('Amplitude sandbox: quotas and limits', () => {
  test('the monthly download quota is 429 with a body naming it; every request call counts', async () => {
    const sandbox = await startSandbox({ monthlyDownloadQuota: 3 });
    await requestExport(sandbox, SMALL_COHORT);
    assert.equal((await api(sandbox, '/api/5/cohorts/request/zzzzzzz')).status, 404);
    await requestExport(sandbox, MEDIUM_COHORT);
    const refused = await api(sandbox, `/api/5/cohorts/request/${LARGE_COHORT}`);
    assert.equal(refused.status, 429);
    assert.match(await refused.text(), /Monthly cohort download limit reached: 3 requests per month/);
    assert.equal(sandbox.control.downloadRequestsThisMonth(), 3);
    const state = (await (await fetch(`${sandbox.url}/_sandbox/state`)).json()) as { downloadRequestsThisMonth: number };
    assert.equal(state.downloadRequestsThisMonth, 3);
  });

  test('per-cohort requests are limited per 10 minutes', async () => {
    const sandbox = await startSandbox({ perCohortRequestsPer10Min: 2 });
    await requestExport(sandbox, SMALL_COHORT);
    await requestExport(sandbox, SMALL_COHORT);
    const refused = await api(sandbox, `/api/5/cohorts/request/${SMALL_COHORT}`);
    assert.equal(refused.status, 429);
    assert.match(await refused.text(), /2 requests per 10 minutes/);
    await requestExport(sandbox, MEDIUM_COHORT);
  });

  test('concurrent /api/* requests over the limit are 429, counting files still streaming', async () => {
    const sandbox = await startSandbox({ maxConcurrentRequests: 2, inlineFileMaxBytes: 1e9 }, { users: 2_000_000 });
    const requestId = await requestExport(sandbox, LARGE_COHORT);
    const fileUrl = `${sandbox.url}/api/5/cohorts/request/${requestId}/file`;
    // Two downloads whose bodies are not read hold their slots (the server is blocked on backpressure).
    const downloads = await Promise.all([1, 2].map(() => request(fileUrl, { headers: { authorization: BASIC_AUTH } })));
    assert.deepEqual(
      downloads.map((download) => download.statusCode),
      [200, 200],
    );
    const refused = await api(sandbox, '/api/3/cohorts');
    assert.equal(refused.status, 429);
    assert.match(await refused.text(), /limit is 2 concurrent requests/);

    for (const download of downloads) download.body.destroy();
    let status = 429;
    for (let attempt = 0; attempt < 50 && status === 429; attempt++) {
      await new Promise((resolve) => setTimeout(resolve, 20));
      const response = await api(sandbox, '/api/3/cohorts');
      status = response.status;
      await response.body?.cancel();
    }
    assert.equal(status, 200);
  });
});

describe('Amplitude sandbox: User Profile API', () => {
  test('401 with the exact messages', async () => {
    const sandbox = await startSandbox();
    const missing = await profile(sandbox, 'user_id=user-000001', null);
    assert.equal(missing.status, 401);
    assert.match(await missing.text(), /Missing Api-Key in Authorization header/);
    const invalid = await profile(sandbox, 'user_id=user-000001', 'wrong');
    assert.equal(invalid.status, 401);
    assert.match(await invalid.text(), /Invalid Api-Key/);
  });

  test('returns userData with properties, computations as strings, cohorts and recommendations', async () => {
    const sandbox = await startSandbox();
    const dataset = sandbox.control.dataset;
    const user = [...dataset.users()].find((candidate) => candidate.userId !== null && dataset.cohortIdsOf(candidate.index).length > 0);
    assert.ok(user?.userId);
    const response = await profile(
      sandbox,
      `user_id=${user.userId}&get_amp_props=true&get_computations=true&get_recs=true&get_cohort_ids=true`,
    );
    assert.equal(response.status, 200);
    const { userData } = (await response.json()) as { userData: Record<string, unknown> };
    assert.equal(userData.user_id, user.userId);
    assert.equal(userData.device_id, user.deviceId);
    assert.deepEqual(userData.amp_props, { ...user.properties, ...user.computations });
    assert.ok(Object.values(user.computations).every((value) => typeof value === 'string'));
    assert.deepEqual(userData.cohort_ids, dataset.cohortIdsOf(user.index));
    assert.deepEqual(userData.recommendations, user.recommendations);
    assert.equal(userData.propensities, null);

    const filtered = await profile(
      sandbox,
      `device_id=${user.deviceId}&get_computations=true&comp_id=purchases_90d&get_recs=true&rec_id=rec-new-releases`,
    );
    const filteredData = ((await filtered.json()) as { userData: Record<string, unknown> }).userData;
    assert.deepEqual(filteredData.amp_props, { purchases_90d: user.computations.purchases_90d });
    assert.deepEqual(
      (filteredData.recommendations as Array<{ rec_id: string }>).map((recommendation) => recommendation.rec_id),
      ['rec-new-releases'],
    );
    assert.equal(filteredData.cohort_ids, null);
  });

  test('an unknown user gets the documented error body (status 200 by default, 404 optionally)', async () => {
    const sandbox = await startSandbox();
    const unknown = await profile(sandbox, 'user_id=nobody-here');
    assert.equal(unknown.status, 200);
    assert.deepEqual(await unknown.json(), { error: 'User id and device id not seen before' });
    const strict = await startSandbox({ unknownProfileStatus: 404 });
    assert.equal((await profile(strict, 'user_id=nobody-here')).status, 404);
  });

  test('requests per minute over the limit are 429 with the documented body', async () => {
    const sandbox = await startSandbox({ profileRequestsPerMinute: 3 });
    const statuses: number[] = [];
    let lastBody = '';
    for (let i = 0; i < 4; i++) {
      const response = await profile(sandbox, 'user_id=user-000001');
      statuses.push(response.status);
      lastBody = await response.text();
    }
    assert.deepEqual(statuses.slice(3), [429]);
    assert.deepEqual(JSON.parse(lastBody), {
      error: 'Number of requests per minute exceeds system limit. Contact Support if you need this limit raised',
    });
  });
});

describe('Amplitude sandbox: User Activity API', () => {
  test("a user's metadata lists the device ids; an unknown user is 404; Basic auth is required", async () => {
    const sandbox = await startSandbox();
    const anonymous = [...sandbox.control.dataset.identities()].find((user) => user.userId === null)!;
    const response = await api(sandbox, `/api/2/useractivity?user=${anonymous.amplitudeId}&limit=1`);
    assert.equal(response.status, 200);
    const body = (await response.json()) as { userData: { user_id: string | null; device_ids: string[] }; events: unknown[] };
    assert.deepEqual(body.userData.device_ids, [sandbox.control.dataset.deviceIdOf(anonymous.index)]);
    assert.equal(body.userData.user_id, null);
    assert.equal((await api(sandbox, '/api/2/useractivity?user=1')).status, 404);
    assert.equal((await fetch(`${sandbox.url}/api/2/useractivity?user=${anonymous.amplitudeId}`)).status, 401);
  });

  test('queries per hour over the limit are 429 with a body naming the limit', async () => {
    const sandbox = await startSandbox({ userLookupsPerHour: 2 });
    const user = sandbox.control.dataset.identity(0);
    for (let i = 0; i < 2; i++) assert.equal((await api(sandbox, `/api/2/useractivity?user=${user.amplitudeId}`)).status, 200);
    const refused = await api(sandbox, `/api/2/useractivity?user=${user.amplitudeId}`);
    assert.equal(refused.status, 429);
    assert.match(await refused.text(), /rate limit exceeded: 2 queries per hour/);
    assert.equal(sandbox.control.userLookupsThisHour(), 3);
  });
});

describe('Amplitude sandbox: Export API', () => {
  test('a zip of hourly gzipped JSON-lines files with the dataset events', async () => {
    const sandbox = await startSandbox();
    const dataset = sandbox.control.dataset;
    const firstHour = Math.floor(dataset.now / HOUR_MS) * HOUR_MS - 4 * HOUR_MS;
    const response = await api(sandbox, `/api/2/export?start=${exportHour(firstHour)}&end=${exportHour(firstHour + 2 * HOUR_MS)}`);
    assert.equal(response.status, 200);
    assert.equal(response.headers.get('content-type'), 'application/zip');
    const files = unzipSync(new Uint8Array(await response.arrayBuffer()));
    // In hour order, as the archive holds them (the unpadded hour in the names does not sort).
    const names = Object.keys(files);
    assert.equal(names.length, 3);
    for (const [offset, name] of names.entries()) {
      const hourStart = firstHour + offset * HOUR_MS;
      const hourOfDay = new Date(hourStart).getUTCHours();
      assert.match(name, new RegExp(`^\\d+/\\d+_${new Date(hourStart).toISOString().slice(0, 10)}_${hourOfDay}#0\\.json\\.gz$`));
      const lines = strFromU8(gunzipSync(files[name] ?? new Uint8Array()))
        .trimEnd()
        .split('\n');
      const events = lines.map((line) => JSON.parse(line) as Record<string, unknown>);
      assert.deepEqual(events, [...dataset.eventsInHour(hourStart)]);
      for (const field of [
        '$insert_id',
        'amplitude_id',
        'user_id',
        'device_id',
        'event_type',
        'event_time',
        'server_upload_time',
        'event_properties',
        'uuid',
      ]) {
        assert.ok(field in (events[0] ?? {}), field);
      }
    }
  });

  test('404 when the range has no data, 400 on a bad range or over the size limit', async () => {
    const sandbox = await startSandbox();
    assert.equal((await api(sandbox, '/api/2/export?start=20000101T00&end=20000101T05')).status, 404);
    assert.equal((await api(sandbox, '/api/2/export?start=2024-01-01&end=20240101T05')).status, 400);
    assert.equal((await api(sandbox, '/api/2/export?start=20240102T00&end=20240101T05')).status, 400);
    assert.equal((await api(sandbox, '/api/2/export?start=20230101T00&end=20240301T00')).status, 400);
    const limited = await startSandbox({ exportMaxBytes: 1_000 });
    const tooLarge = await api(limited, '/api/2/export?start=20240101T00&end=20240101T05');
    assert.equal(tooLarge.status, 400);
    assert.match(await tooLarge.text(), /size limit/);
  });
});

describe('Amplitude sandbox: HTTP V2 and Batch', () => {
  const now = Date.now();
  const event = (fields: Record<string, unknown>) => ({ event_type: 'Song Played', time: now, ...fields });

  test('rejects a wrong api_key and oversized requests', async () => {
    const sandbox = await startSandbox();
    const wrongKey = await postJson(sandbox, '/2/httpapi', { api_key: 'nope', events: [event({ user_id: 'user-x1' })] });
    assert.equal(wrongKey.status, 400);
    assert.equal(((await wrongKey.json()) as { error: string }).error, 'Invalid API key');
    const tooMany = await postJson(sandbox, '/2/httpapi', {
      api_key: API_KEY,
      events: Array.from({ length: 2_001 }, () => event({ user_id: 'user-x1' })),
    });
    assert.equal(tooMany.status, 413);
    const tooBig = await postJson(sandbox, '/2/httpapi', {
      api_key: API_KEY,
      events: [event({ user_id: 'user-x1', padding: 'x'.repeat(1_100_000) })],
    });
    assert.equal(tooBig.status, 413);
    const batchAcceptsIt = await postJson(sandbox, '/batch', {
      api_key: API_KEY,
      events: [event({ user_id: 'user-x1', padding: 'x'.repeat(1_100_000) })],
    });
    assert.equal(batchAcceptsIt.status, 200);
  });

  test('400 lists every offending event by field and ingests nothing', async () => {
    const sandbox = await startSandbox();
    const response = await postJson(sandbox, '/2/httpapi', {
      api_key: API_KEY,
      events: [
        event({ user_id: 'valid-user' }),
        event({ user_id: 'abc' }),
        event({ device_id: 'null' }),
        event({ user_id: 'valid-user', time: 1_700_000_000 }),
        { user_id: 'valid-user' },
        event({}),
        event({ user_id: 'abcd' }),
        event({ device_id: '00000000-0000-0000-0000-000000000000' }),
      ],
    });
    assert.equal(response.status, 400);
    const body = (await response.json()) as Record<string, unknown>;
    assert.deepEqual(body.events_with_invalid_fields, { user_id: [1, 6], device_id: [2, 7], time: [3] });
    assert.deepEqual(body.events_with_missing_fields, { event_type: [4], device_id: [5] });
    assert.equal(sandbox.control.ingestedEvents().length, 0);

    const lowered = await postJson(sandbox, '/2/httpapi', {
      api_key: API_KEY,
      events: [event({ user_id: 'abc' })],
      options: { min_id_length: 3 },
    });
    assert.equal(lowered.status, 200);
  });

  test('200 with the documented body; device_id defaults to a hash of user_id', async () => {
    const sandbox = await startSandbox();
    const response = await postJson(sandbox, '/2/httpapi', { api_key: API_KEY, events: [event({ user_id: 'user-hash-me' })] });
    assert.equal(response.status, 200);
    const body = (await response.json()) as Record<string, number>;
    assert.equal(body.code, 200);
    assert.equal(body.events_ingested, 1);
    assert.ok((body.payload_size_bytes ?? 0) > 0);
    assert.ok(Math.abs((body.server_upload_time ?? 0) - Date.now()) < 5_000);
    await postJson(sandbox, '/2/httpapi', { api_key: API_KEY, events: [event({ user_id: 'user-hash-me' })] });
    const [first, second] = sandbox.control.ingestedEvents();
    assert.match(String(first?.event.device_id), /^[0-9a-f]{32}$/);
    assert.equal(first?.event.device_id, second?.event.device_id);
  });

  test('deduplicates insert_id per device_id', async () => {
    const sandbox = await startSandbox();
    const send = (events: unknown[]) => postJson(sandbox, '/2/httpapi', { api_key: API_KEY, events });
    assert.equal((await send([event({ device_id: 'device-one', insert_id: 'insert-1' })])).status, 200);
    assert.equal(
      (await send([event({ device_id: 'device-one', insert_id: 'insert-1' }), event({ device_id: 'device-one', insert_id: 'insert-1' })]))
        .status,
      200,
    );
    assert.equal((await send([event({ device_id: 'device-two', insert_id: 'insert-1' })])).status, 200);
    const ingested = sandbox.control
      .ingestedEvents()
      .map((ingestedEvent) => `${String(ingestedEvent.event.device_id)}/${String(ingestedEvent.event.insert_id)}`);
    assert.deepEqual(ingested, ['device-one/insert-1', 'device-two/insert-1']);
    const events = (await (await fetch(`${sandbox.url}/_sandbox/events`)).json()) as { events: unknown[] };
    assert.equal(events.events.length, 2);
  });

  test('per-id rate limit: 429 with throttled maps, nothing ingested', async () => {
    const sandbox = await startSandbox({ eventsPerSecondPerId: 5 });
    const events = [
      ...Array.from({ length: 6 }, () => event({ user_id: 'user-busy', device_id: 'device-busy' })),
      event({ user_id: 'user-calm' }),
    ];
    const response = await postJson(sandbox, '/2/httpapi', { api_key: API_KEY, events });
    assert.equal(response.status, 429);
    const body = (await response.json()) as Record<string, unknown>;
    assert.equal(body.eps_threshold, 5);
    assert.deepEqual(body.throttled_users, { 'user-busy': 6 });
    assert.deepEqual(body.throttled_devices, { 'device-busy': 6 });
    assert.deepEqual(body.throttled_events, [5]);
    assert.equal(sandbox.control.ingestedEvents().length, 0);
  });

  test('hot ids (other sources over the per-id limit) are throttled by name while they last; the others are not', async () => {
    const sandbox = await startSandbox();
    const users = Array.from({ length: 40 }, (_, i) => `user-hot-${i}`);
    const hot = users.filter((id) => isHotId(id, 0.25));
    assert.ok(hot.length > 0 && hot.length < users.length);
    assert.equal((await postJson(sandbox, '/_sandbox/hot-ids', { fraction: 0.25, forMs: 60_000 })).status, 200);
    const events = users.map((user_id, i) => event({ user_id, insert_id: `hot-${i}` }));
    const throttled = await postJson(sandbox, '/2/httpapi', { api_key: API_KEY, events });
    assert.equal(throttled.status, 429);
    const body = (await throttled.json()) as { throttled_users: Record<string, number> };
    assert.deepEqual(Object.keys(body.throttled_users).sort(), [...hot].sort());
    const calm = events.filter((_, i) => !hot.includes(users[i]!));
    assert.equal((await postJson(sandbox, '/2/httpapi', { api_key: API_KEY, events: calm })).status, 200);
    await postJson(sandbox, '/_sandbox/hot-ids', { fraction: 0.25, forMs: 0 });
    assert.equal((await postJson(sandbox, '/2/httpapi', { api_key: API_KEY, events })).status, 200, 'no longer hot');
  });
});

describe('Amplitude sandbox: Identify API', () => {
  test('applies $set, $unset and plain properties; profile and cohort CSV see them', async () => {
    const sandbox = await startSandbox();
    const dataset = sandbox.control.dataset;
    const member = [...dataset.cohortMembers(SMALL_COHORT)].find((candidate) => candidate.userId !== null);
    assert.ok(member?.userId);
    const identify = (apiKey: string, identification: unknown) =>
      fetch(`${sandbox.url}/identify`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ api_key: apiKey, identification: JSON.stringify(identification) }).toString(),
      });
    const response = await identify(API_KEY, [
      { user_id: member.userId, user_properties: { $set: { plan: 'enterprise' }, $unset: { beta_tester: '-' }, $add: { ltv: 10 } } },
      { user_id: 'brand-new-user', user_properties: { favorite_color: 'teal' } },
    ]);
    assert.equal(response.status, 200);
    assert.equal(await response.text(), 'success');

    const properties = sandbox.control.userProperties({ userId: member.userId });
    assert.equal(properties?.plan, 'enterprise');
    assert.ok(properties && !('beta_tester' in properties));
    assert.equal(properties.ltv, (dataset.user(member.index).properties.ltv as number) + 10);
    const newcomer = await profile(sandbox, 'user_id=brand-new-user&get_amp_props=true');
    assert.deepEqual(((await newcomer.json()) as { userData: { amp_props: unknown } }).userData.amp_props, { favorite_color: 'teal' });

    const rows = await downloadCsv(sandbox, SMALL_COHORT, '?props=1&propKeys=plan');
    assert.deepEqual(
      rows.find((row) => row[0] === member.amplitudeId),
      [member.amplitudeId, member.userId, 'enterprise'],
    );

    assert.equal(await (await identify('nope', { user_id: member.userId, user_properties: {} })).text(), 'invalid_api_key');
    const mixed = await identify(API_KEY, { user_id: member.userId, user_properties: { $set: { a: 1 }, b: 2 } });
    assert.equal(mixed.status, 400);
    assert.equal(sandbox.control.userProperties({ userId: member.userId })?.b, undefined);
  });
});

describe('Amplitude sandbox: User Privacy API', () => {
  const DAY_MS = 86_400_000;
  const requestDeletion = (sandbox: AmplitudeSandbox, body: unknown) =>
    api(sandbox, '/api/2/deletions/users', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const listJobs = async (sandbox: AmplitudeSandbox, startDay: string, endDay: string) => {
    const response = await api(sandbox, `/api/2/deletions/users?start_day=${startDay}&end_day=${endDay}`);
    assert.equal(response.status, 200);
    return (await response.json()) as Array<{ day: string; status: string; amplitude_ids: unknown[] }>;
  };
  const advance = (sandbox: AmplitudeSandbox, days: number) => postJson(sandbox, '/_sandbox/deletions/advance', { days });
  const errorOf = async (response: Response) => ((await response.json()) as { error: { message: string } }).error.message;
  const profileOf = async (sandbox: AmplitudeSandbox, userId: string) =>
    (await (await profile(sandbox, `user_id=${userId}&get_amp_props=true`)).json()) as {
      userData?: { amp_props: unknown };
      error?: string;
    };
  const dayAfter = (day: string, days: number) => new Date(Date.parse(day) + days * DAY_MS).toISOString().slice(0, 10);

  test('a request joins the job of its day, 10 days out, listed by Amplitude id; staging → submitted → done', async () => {
    const sandbox = await startSandbox({ deletionRequestsPerSecond: 100 });
    const [byAmplitudeId, byUserId] = [...sandbox.control.dataset.identities()].filter((user) => user.userId !== null);
    assert.ok(byAmplitudeId && byUserId?.userId);
    const response = await requestDeletion(sandbox, {
      amplitude_ids: [Number(byAmplitudeId.amplitudeId)],
      user_ids: [byUserId.userId],
      requester: 'dpo@example.com',
      ignore_invalid_id: true,
    });
    assert.equal(response.status, 200);
    const job = (await response.json()) as { day: string; amplitude_ids: Array<{ requested_on_day: string }> };
    const requestedOn = job.amplitude_ids[0]!.requested_on_day;
    const entry = (user: { amplitudeId: string }) => ({
      amplitude_id: Number(user.amplitudeId),
      requested_on_day: requestedOn,
      requester: 'dpo@example.com',
    });
    assert.deepEqual(job, {
      amplitude_ids: [entry(byAmplitudeId), entry(byUserId)],
      day: dayAfter(requestedOn, 10),
      status: 'staging',
      user_ids: [byUserId.userId],
    });
    const again = await requestDeletion(sandbox, { user_ids: [byUserId.userId], requester: 'someone-else@example.com' });
    assert.equal(((await again.json()) as { day: string }).day, job.day, 'a request of the same day joins the same job');

    const listed = { amplitude_ids: [entry(byAmplitudeId), entry(byUserId)], day: job.day };
    assert.deepEqual(await listJobs(sandbox, requestedOn, job.day), [{ ...listed, status: 'staging' }]);
    assert.deepEqual(await listJobs(sandbox, dayAfter(job.day, 1), dayAfter(job.day, 30)), [], 'jobs of other days are not listed');
    assert.equal((await advance(sandbox, 7)).status, 200);
    assert.deepEqual(await listJobs(sandbox, requestedOn, job.day), [{ ...listed, status: 'submitted' }], 'three days before its day');
    assert.ok((await profileOf(sandbox, byUserId.userId)).userData, 'the user is still there');
    const state = (await (await advance(sandbox, 4)).json()) as { today: string; jobs: Array<{ status: string }> };
    assert.equal(state.today, dayAfter(requestedOn, 11));
    assert.deepEqual(await listJobs(sandbox, requestedOn, job.day), [{ ...listed, status: 'done' }], 'once its day is over');
    assert.equal((await profileOf(sandbox, byUserId.userId)).error, 'User id and device id not seen before');
    const sandboxState = (await (await fetch(`${sandbox.url}/_sandbox/state`)).json()) as { deletions: { jobs: unknown[] } };
    assert.deepEqual(sandboxState.deletions.jobs, [{ ...listed, status: 'done' }]);
  });

  test('400 without ids, over 100 ids, for unknown ids unless ignored, and for a bad, reversed or over-six-month range', async () => {
    const sandbox = await startSandbox({ deletionRequestsPerSecond: 100 });
    const noIds = await requestDeletion(sandbox, { requester: 'dpo@example.com' });
    assert.deepEqual([noIds.status, await errorOf(noIds)], [400, 'Request must include amplitude_ids or user_ids']);
    const userIds = Array.from({ length: 60 }, (_, i) => `user-${String(i).padStart(6, '0')}`);
    const amplitudeIds = Array.from({ length: 41 }, (_, i) => Number(sandbox.control.dataset.identity(i).amplitudeId));
    const tooMany = await requestDeletion(sandbox, { user_ids: userIds, amplitude_ids: amplitudeIds });
    assert.equal(tooMany.status, 400);
    assert.match(await errorOf(tooMany), /101 given, at most 100 amplitude_ids and user_ids in all/);
    const justEnough = await requestDeletion(sandbox, { user_ids: userIds, amplitude_ids: amplitudeIds.slice(1), ignore_invalid_id: true });
    assert.equal(justEnough.status, 200);

    const unknown = await requestDeletion(sandbox, { user_ids: ['nobody-here'], amplitude_ids: [42] });
    assert.deepEqual([unknown.status, await errorOf(unknown)], [400, 'Invalid ids (users not in this project): 42, nobody-here']);
    const ignored = await requestDeletion(sandbox, { user_ids: ['nobody-here'], amplitude_ids: [42], ignore_invalid_id: 'True' });
    assert.deepEqual(((await ignored.json()) as { amplitude_ids: unknown[] }).amplitude_ids, []);
    assert.equal((await requestDeletion(sandbox, { amplitude_ids: ['not-a-number'] })).status, 400);

    const range = (start: string, end: string) => api(sandbox, `/api/2/deletions/users?start_day=${start}&end_day=${end}`);
    for (const [start, end, message] of [
      ['2026-1-01', '2026-02-01', 'start_day and end_day are required, as YYYY-MM-DD'],
      ['2026-02-30', '2026-03-01', 'start_day and end_day are required, as YYYY-MM-DD'],
      ['2026-03-02', '2026-03-01', 'end_day must not be before start_day'],
      ['2025-08-31', '2026-03-01', 'The time range cannot exceed six months'],
    ] as const) {
      const response = await range(start, end);
      assert.deepEqual([response.status, await errorOf(response)], [400, message], `${start} to ${end}`);
    }
    assert.equal((await range('2025-08-31', '2026-02-28')).status, 200, 'six months from 31 August end on the last day of February');
    assert.equal((await api(sandbox, '/api/2/deletions/users?start_day=2026-01-01')).status, 400);
  });

  test('more than one deletion request a second is 429; listing is not limited', async () => {
    const sandbox = await startSandbox();
    const userId = [...sandbox.control.dataset.identities()].find((user) => user.userId !== null)!.userId;
    assert.equal((await requestDeletion(sandbox, { user_ids: [userId] })).status, 200);
    const refused = await requestDeletion(sandbox, { user_ids: [userId] });
    assert.deepEqual([refused.status, await errorOf(refused)], [429, 'Too many deletion requests: at most 1 per second']);
    const today = new Date().toISOString().slice(0, 10);
    for (let i = 0; i < 3; i++) assert.ok(await listJobs(sandbox, today, dayAfter(today, 30)));
  });

  test("a deleted user's new events are still accepted: a new user, with a new Amplitude id", async () => {
    const sandbox = await startSandbox({ deletionRequestsPerSecond: 100 });
    const user = [...sandbox.control.dataset.identities()].find((candidate) => candidate.userId !== null)!;
    const send = (insertId: string) =>
      postJson(sandbox, '/2/httpapi', {
        api_key: API_KEY,
        events: [{ event_type: 'Song Played', user_id: user.userId, insert_id: insertId }],
      });
    const amplitudeIdOf = (insertId: string) => {
      const ingested = sandbox.control.ingestedEvents().find((e) => e.event.insert_id === insertId)!;
      const hour = Math.floor(ingested.receivedAt / HOUR_MS) * HOUR_MS;
      return [...sandbox.control.exportedEvents(hour)].find((line) => line.$insert_id === insertId)?.amplitude_id;
    };
    assert.equal((await send('before-deletion')).status, 200);
    assert.equal(amplitudeIdOf('before-deletion'), Number(user.amplitudeId));
    assert.equal((await requestDeletion(sandbox, { user_ids: [user.userId] })).status, 200);
    sandbox.control.advanceDeletionClock(11);
    assert.equal(sandbox.control.deletionJobs()[0]?.status, 'done');

    assert.equal((await send('after-deletion')).status, 200);
    const newId = amplitudeIdOf('after-deletion');
    assert.ok(newId !== undefined && newId >= sandbox.control.dataset.firstUnusedAmplitudeId, `a new Amplitude id, not ${newId}`);
    assert.deepEqual((await profileOf(sandbox, user.userId!)).userData?.amp_props, {}, 'none of the deleted user’s properties');
    assert.equal((await requestDeletion(sandbox, { amplitude_ids: [Number(user.amplitudeId)] })).status, 400, 'the old id names nobody');
  });
});

describe('Amplitude sandbox: fault injection and control', () => {
  test('server errors and 429 bursts are injected, reproducibly for a seed', async () => {
    const statusesOf = async (sandbox: AmplitudeSandbox) => {
      const statuses: number[] = [];
      for (let i = 0; i < 12; i++) {
        const response = await api(sandbox, '/api/3/cohorts');
        statuses.push(response.status);
        await response.body?.cancel();
      }
      return statuses;
    };
    const faults = { serverErrorRate: 0.4 };
    const first = await statusesOf(await startSandbox({ faults, faultSeed: 42 }));
    const second = await statusesOf(await startSandbox({ faults, faultSeed: 42 }));
    assert.deepEqual(first, second);
    assert.ok(first.includes(500) && first.includes(200), first.join(','));

    const sandbox = await startSandbox();
    const set = await postJson(sandbox, '/_sandbox/faults', { rateLimitBurstEvery: 3, rateLimitBurstLength: 1 });
    assert.equal(set.status, 200);
    assert.deepEqual(await statusesOf(sandbox), [200, 200, 429, 200, 200, 429, 200, 200, 429, 200, 200, 429]);
    sandbox.control.setFaults({});
    assert.deepEqual(
      await statusesOf(sandbox),
      Array.from({ length: 12 }, () => 200),
    );
    assert.equal((await postJson(sandbox, '/_sandbox/faults', { serverErrorRate: 2 })).status, 400);
  });

  test('latency is added before answering, and a slow request holds its concurrency slot', async () => {
    const sandbox = await startSandbox({ faults: { latencyMs: 150 }, maxConcurrentRequests: 1 });
    const started = performance.now();
    const [slow, refused] = await Promise.all([
      api(sandbox, '/api/3/cohorts'),
      new Promise((resolve) => setTimeout(resolve, 50)).then(() => api(sandbox, '/api/3/cohorts')),
    ]);
    assert.equal(slow.status, 200);
    assert.ok(performance.now() - started >= 140);
    assert.equal(refused.status, 429);
  });

  test('/_sandbox/state and membership changes', async () => {
    const sandbox = await startSandbox();
    const before = (await (await fetch(`${sandbox.url}/_sandbox/state`)).json()) as {
      cohorts: Array<{ id: string; lastComputed: number }>;
      ingestedEvents: number;
    };
    assert.equal(before.ingestedEvents, 0);
    const ids = [3, 4, 5].map((index) => sandbox.control.dataset.user(index).amplitudeId);
    const response = await postJson(sandbox, `/_sandbox/cohorts/${MEDIUM_COHORT}/members`, { set: ids, remove: [ids[0]] });
    const { cohort } = (await response.json()) as { cohort: { size: number; lastComputed: number } };
    assert.equal(cohort.size, 2);
    assert.ok(cohort.lastComputed > (before.cohorts.find((listed) => listed.id === MEDIUM_COHORT)?.lastComputed ?? Infinity));
    assert.equal((await postJson(sandbox, '/_sandbox/cohorts/zzzzzzz/members', { add: ids })).status, 404);
    assert.equal((await postJson(sandbox, `/_sandbox/cohorts/${MEDIUM_COHORT}/members`, { add: ['1'] })).status, 400);
  });
});

describe('Amplitude sandbox: Cohort Webhooks', () => {
  /** A receiver that records each post and answers the first `slowPosts` after 2.5 s, past the sender's time-out. */
  async function recordingReceiver(slowPosts: number) {
    const posts: Array<{ headers: IncomingHttpHeaders; body: Record<string, unknown> }> = [];
    const server = createServer((req, res) => {
      let raw = '';
      req.on('data', (chunk: Buffer) => (raw += chunk.toString()));
      req.on('end', () => {
        posts.push({ headers: req.headers, body: JSON.parse(raw) as Record<string, unknown> });
        setTimeout(() => res.writeHead(200).end('{}'), posts.length <= slowPosts ? 2_500 : 0);
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    after(() => new Promise<void>((resolve) => server.close(() => resolve())));
    return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`, posts };
  }

  test('a recompute posts who entered and left in the default format, with the custom headers; a time-out is retried as a duplicate', async () => {
    const sandbox = await startSandbox();
    const receiver = await recordingReceiver(1);
    const response = await postJson(sandbox, '/_sandbox/cohort-webhooks', {
      url: receiver.url,
      headers: { Authorization: 'Bearer secret-1', 'X-Extra': 'two' },
      usersPerBatch: 2,
      retry: { initialDelayMs: 50 },
    });
    assert.equal(response.status, 200);
    const members = [...sandbox.control.dataset.cohortMembers(SMALL_COHORT)].filter((m) => m.userId).slice(0, 1);
    const outsiders = [...sandbox.control.dataset.identities()]
      .filter((u) => u.userId && !sandbox.control.dataset.cohortIdsOf(u.index).includes(SMALL_COHORT))
      .slice(0, 3);
    const change = await postJson(sandbox, `/_sandbox/cohorts/${SMALL_COHORT}/members`, {
      add: outsiders.map((u) => u.amplitudeId),
      remove: members.map((m) => m.amplitudeId),
    });
    const { cohort, webhook } = (await change.json()) as { cohort: { lastComputed: number }; webhook: Record<string, unknown> };
    assert.deepEqual([webhook.batches, webhook.posts, webhook.retriedPosts, webhook.statuses], [3, 4, 1, { timeout: 1, 200: 3 }]);
    const [timedOut, ...rest] = receiver.posts;
    assert.deepEqual(rest[0]?.body, timedOut?.body, 'the retry repeats the message_id');
    assert.deepEqual(
      rest.map(({ body }) => [body.in_cohort, (body.users as Array<{ user_id: string }>).map((u) => u.user_id)]),
      [
        [true, outsiders.slice(0, 2).map((u) => u.userId)],
        [true, outsiders.slice(2).map((u) => u.userId)],
        [false, members.map((m) => m.userId)],
      ],
    );
    for (const { headers, body } of rest) {
      assert.equal(headers.authorization, 'Bearer secret-1');
      assert.equal(headers['x-extra'], 'two');
      assert.equal(headers['user-agent'], 'Amplitude/Webhook/1.0');
      assert.equal(body.computed_time, String(cohort.lastComputed), 'epoch seconds as a string');
      assert.equal(body.cohort_id, SMALL_COHORT);
      assert.match(String(body.message_id), /^[0-9a-f-]{36}::(enter|leave)::\d+$/);
    }
    assert.equal(new Set(rest.map(({ body }) => body.message_id)).size, 3);
  });

  test('more than five custom headers are refused; dropped batches are counted, not posted', async () => {
    const sandbox = await startSandbox();
    const receiver = await recordingReceiver(0);
    const headers = Object.fromEntries(Array.from({ length: 6 }, (_, i) => [`x-h${i}`, 'v']));
    assert.equal((await postJson(sandbox, '/_sandbox/cohort-webhooks', { url: receiver.url, headers })).status, 400);
    sandbox.control.configureCohortWebhooks({ url: receiver.url });
    const [outsider] = [...sandbox.control.dataset.identities()].filter(
      (u) => u.userId && !sandbox.control.dataset.cohortIdsOf(u.index).includes(SMALL_COHORT),
    );
    const { webhook } = await sandbox.control.recomputeCohort(SMALL_COHORT, { add: [outsider!.amplitudeId], webhook: { drop: true } });
    assert.deepEqual([webhook.batches, webhook.dropped, webhook.posts], [1, 1, 0]);
    assert.equal(receiver.posts.length, 0);
  });
});
