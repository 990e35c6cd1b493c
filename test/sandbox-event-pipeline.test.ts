/**
 * The sandboxes as an event pipeline sees them, over real HTTP: the Export API's streamed multi-part zip, its 504
 * fault and empty hours, events ingested into Amplitude appearing in the export, and Braze's event log with its
 * data points and event validation.
 */
import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, test } from 'node:test';
import { gunzipSync } from 'node:zlib';
import { strFromU8, unzipSync } from 'fflate';
import { AmplitudeClient } from '../src/amplitude/client.js';
import { RetryableVendorError } from '../src/errors.js';
import { startAmplitudeSandbox, type AmplitudeSandbox, type AmplitudeSandboxOptions } from '../src/sandbox/amplitude/index.js';
import { startBrazeSandbox, type BrazeSandbox, type LoggedEvent } from '../src/sandbox/braze/index.js';
import { Dataset, type DatasetOptions, type ExportLine, type SandboxEvent } from '../src/sandbox/dataset.js';

const API_KEY = 'amp-api-key';
const SECRET = 'amp-secret';
const HOUR_MS = 60 * 60 * 1000;
const NOW = Date.UTC(2026, 2, 10, 12, 30);
const HOUR = Date.UTC(2026, 2, 10, 9);

const amplitudes: AmplitudeSandbox[] = [];
after(() => Promise.all(amplitudes.map((sandbox) => sandbox.close())));

async function startAmplitude(
  datasetOptions: Partial<DatasetOptions> = {},
  options: Partial<AmplitudeSandboxOptions> = {},
  dataset?: Dataset,
) {
  const sandbox = await startAmplitudeSandbox({
    apiKey: API_KEY,
    secretKey: SECRET,
    dataset: dataset ?? new Dataset({ seed: 9, users: 500, now: NOW, ...datasetOptions }),
    ...options,
  });
  amplitudes.push(sandbox);
  return {
    sandbox,
    client: new AmplitudeClient({
      apiKey: API_KEY,
      secretKey: SECRET,
      apiUrl: sandbox.url,
      profileApiUrl: sandbox.url,
      ingestUrl: sandbox.url,
    }),
  };
}

/** `YYYYMMDDTHH` for the Export API. */
function exportHour(ms: number): string {
  const iso = new Date(ms).toISOString();
  return `${iso.slice(0, 4)}${iso.slice(5, 7)}${iso.slice(8, 10)}T${iso.slice(11, 13)}`;
}

function getExport(sandbox: AmplitudeSandbox, query: string): Promise<Response> {
  return fetch(`${sandbox.url}/api/2/export?${query}`, {
    headers: { authorization: `Basic ${Buffer.from(`${API_KEY}:${SECRET}`).toString('base64')}` },
  });
}

function fetchExport(sandbox: AmplitudeSandbox, start: number, end = start): Promise<Response> {
  return getExport(sandbox, `start=${exportHour(start)}&end=${exportHour(end)}`);
}

async function exportedLines(client: AmplitudeClient, hour: number): Promise<Array<Record<string, unknown>>> {
  const lines = [];
  for await (const line of client.exportEvents(new Date(hour), new Date(hour))) lines.push(line);
  return lines;
}

function postJson(url: string, body: unknown): Promise<Response> {
  return fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
}

describe('Amplitude Export API, for an event pipeline', () => {
  test('a big hour is several files #0…#n, each of exportEventsPerFile events but the last; the client streams them back in order', async () => {
    const { sandbox, client } = await startAmplitude({ eventsPerHour: 3_000 }, { exportEventsPerFile: 1_000 });
    const dataset = sandbox.control.dataset;
    const expected = [...dataset.eventsInHour(HOUR)];
    const files = unzipSync(new Uint8Array(await (await fetchExport(sandbox, HOUR)).arrayBuffer()));
    const names = Object.keys(files);
    const parts = Math.ceil(expected.length / 1_000);
    assert.ok(parts > 2, `${expected.length} events`);
    assert.deepEqual(
      names,
      Array.from({ length: parts }, (_, part) => `${dataset.appId}/${dataset.appId}_2026-03-10_9#${part}.json.gz`),
    );
    const linesPerFile = names.map(
      (name) =>
        strFromU8(gunzipSync(files[name] ?? new Uint8Array()))
          .trimEnd()
          .split('\n').length,
    );
    assert.deepEqual(linesPerFile, [...Array.from({ length: parts - 1 }, () => 1_000), expected.length - (parts - 1) * 1_000]);
    const lines = await exportedLines(client, HOUR);
    assert.deepEqual(lines, JSON.parse(JSON.stringify(expected)));
    for (const field of [
      'library',
      'platform',
      'session_id',
      'event_id',
      'client_event_time',
      'server_received_time',
      'processed_time',
      'user_properties',
    ]) {
      assert.ok(
        lines.every((line) => field in line),
        field,
      );
    }
  });

  test('several hours stream one after the other, hours without events leave no file', async () => {
    const { sandbox, client } = await startAmplitude({ now: HOUR + HOUR_MS + 30 * 60_000 });
    const files = Object.keys(
      unzipSync(new Uint8Array(await (await fetchExport(sandbox, HOUR - HOUR_MS, HOUR + 5 * HOUR_MS)).arrayBuffer())),
    );
    assert.deepEqual(
      files.map((name) => name.replace(/^\d+\/\d+_/, '')),
      ['2026-03-10_8#0.json.gz', '2026-03-10_9#0.json.gz', '2026-03-10_10#0.json.gz'],
    );
    const dataset = sandbox.control.dataset;
    const lines = [];
    for await (const line of client.exportEvents(new Date(HOUR - HOUR_MS), new Date(HOUR + 5 * HOUR_MS))) lines.push(line.$insert_id);
    assert.deepEqual(
      lines,
      [HOUR - HOUR_MS, HOUR, HOUR + HOUR_MS].flatMap((hour) => [...dataset.eventsInHour(hour)].map((event) => event.$insert_id)),
    );
  });

  test('the zip is generated as the client reads it, not ahead of it', async () => {
    let generated = 0;
    class CountingDataset extends Dataset {
      override *eventsInHour(hourStartMs: number): Generator<SandboxEvent> {
        for (const event of super.eventsInHour(hourStartMs)) {
          generated++;
          yield event;
        }
      }
    }
    const dataset = new CountingDataset({ seed: 9, users: 10_000, now: NOW, eventsPerHour: 300_000 });
    const { sandbox } = await startAmplitude({}, {}, dataset);
    const response = await fetchExport(sandbox, HOUR);
    const reader = (response.body as ReadableStream<Uint8Array>).getReader();
    await reader.read();
    // Once the socket's buffers are full, generation waits for the client.
    let generatedBefore;
    do {
      generatedBefore = generated;
      await new Promise((resolve) => setTimeout(resolve, 300));
    } while (generated !== generatedBefore);
    const total = dataset.countEventsInHour(HOUR);
    assert.ok(generated < total / 4, `${generated} of ${total} events generated while the client paused`);
    await reader.cancel();
  });

  test('exportTimeouts answers the next n exports 504 with a body, over /_sandbox/faults or the control API; then data again', async () => {
    const { sandbox, client } = await startAmplitude();
    const set = await postJson(`${sandbox.url}/_sandbox/faults`, { exportTimeouts: 2 });
    assert.deepEqual(await set.json(), { faults: { exportTimeouts: 2 } });
    const timedOut = await fetchExport(sandbox, HOUR);
    assert.equal(timedOut.status, 504);
    assert.match(await timedOut.text(), /timeout/);
    await assert.rejects(exportedLines(client, HOUR), (error: unknown) => error instanceof RetryableVendorError);
    assert.equal((await fetchExport(sandbox, HOUR)).status, 200);
    assert.equal((await getExport(sandbox, 'start=2026-03-10&end=20260310T09')).status, 400, 'a bad range is a 400, not a timeout');

    sandbox.control.setFaults({ exportTimeouts: 1, latencyMs: 0 });
    const state = (await (await fetch(`${sandbox.url}/_sandbox/state`)).json()) as { faults: Record<string, number> };
    assert.deepEqual(state.faults, { exportTimeouts: 1, latencyMs: 0 });
    assert.equal((await fetchExport(sandbox, HOUR)).status, 504);
    assert.equal((await exportedLines(client, HOUR)).length, sandbox.control.exportedEventCount(HOUR));
    assert.equal((await postJson(`${sandbox.url}/_sandbox/faults`, { exportTimeouts: -1 })).status, 400);
  });

  test('404 for hours without events: before the 180-day window, from now on, or with no volume', async () => {
    const { sandbox } = await startAmplitude();
    assert.equal((await fetchExport(sandbox, NOW - 181 * 24 * HOUR_MS)).status, 404);
    assert.equal((await fetchExport(sandbox, NOW + HOUR_MS, NOW + 3 * HOUR_MS)).status, 404);
    const { sandbox: quiet } = await startAmplitude({ eventsPerHour: 0 });
    const empty = await fetchExport(quiet, HOUR);
    assert.equal(empty.status, 404);
    assert.match(await empty.text(), /No data/);
  });

  test('events ingested through HTTP V2 and Batch are in the export of the hour they were received in, merged by upload time', async () => {
    const { sandbox, client } = await startAmplitude({ now: Date.now() + HOUR_MS, eventsPerHour: 600 });
    const dataset = sandbox.control.dataset;
    const known = [...dataset.identities()].find((identity) => identity.userId !== null);
    assert.ok(known?.userId);
    const currents = {
      event_type: '[Appboy] Email Opened',
      user_id: known.userId,
      insert_id: 'currents-open-1',
      time: Date.now() - 60_000,
      library: 'Braze',
      event_properties: { campaign_id: 'c-1' },
    };
    const newcomer = {
      event_type: '[Appboy] Email Opened',
      user_id: 'braze-only-user',
      insert_id: 'currents-open-2',
      library: 'Braze',
      user_properties: { plan: 'trial' },
    };
    const viaHttpApi = await postJson(`${sandbox.url}/2/httpapi`, { api_key: API_KEY, events: [currents, newcomer] });
    const { server_upload_time: receivedAt } = (await viaHttpApi.json()) as { server_upload_time: number };
    assert.equal(
      (await postJson(`${sandbox.url}/batch`, { api_key: API_KEY, events: [{ event_type: 'Song Played', device_id: 'device-batch-1' }] }))
        .status,
      200,
    );
    const hour = Math.floor(receivedAt / HOUR_MS) * HOUR_MS;

    const lines = sandbox.control.exportedEvents(hour);
    const ingested = [...lines].filter((line) => !line.library.startsWith('amplitude-'));
    assert.deepEqual(
      ingested.map((line) => [line.event_type, line.library, line.$insert_id, line.user_id, line.user_properties]),
      [
        ['[Appboy] Email Opened', 'Braze', 'currents-open-1', known.userId, {}],
        ['[Appboy] Email Opened', 'Braze', 'currents-open-2', 'braze-only-user', { plan: 'trial' }],
        ['Song Played', 'batch/1.0', null, null, {}],
      ],
    );
    const [opened, fromNewcomer] = ingested as [ExportLine, ExportLine];
    assert.equal(opened.amplitude_id, Number(known.amplitudeId));
    assert.deepEqual(opened.event_properties, { campaign_id: 'c-1' });
    assert.equal(Date.parse(`${opened.event_time.replace(' ', 'T').slice(0, 23)}Z`), currents.time);
    assert.ok(fromNewcomer.amplitude_id >= dataset.firstUnusedAmplitudeId);

    const summary = (await (await fetch(`${sandbox.url}/_sandbox/export/${exportHour(hour)}?events=1`)).json()) as Record<string, unknown>;
    assert.deepEqual(
      [summary.count, summary.fromDataset, summary.ingested],
      [dataset.countEventsInHour(hour) + 3, dataset.countEventsInHour(hour), 3],
    );
    assert.deepEqual(summary.events, JSON.parse(JSON.stringify([...sandbox.control.exportedEvents(hour)])));
    assert.ok(!('events' in ((await (await fetch(`${sandbox.url}/_sandbox/export/${exportHour(hour)}`)).json()) as object)));
    assert.equal((await fetch(`${sandbox.url}/_sandbox/export/2026-03-10`)).status, 400);

    const exported = await exportedLines(client, hour);
    assert.deepEqual(exported, summary.events);
    const uploadTimes = exported.map((line) => String(line.server_upload_time));
    assert.deepEqual(uploadTimes, [...uploadTimes].sort());
  });
});

describe('Braze event log and data points', () => {
  const KEY = 'rest-key';
  const TIME = '2026-01-01T00:00:00.000Z';
  let braze: BrazeSandbox;
  before(async () => {
    braze = await startBrazeSandbox({ apiKeys: [{ key: KEY }], initialUsers: [{ external_id: 'known-1' }, { external_id: 'known-2' }] });
  });
  after(() => braze.close());
  beforeEach(() => braze.control.reset());

  const track = async (body: unknown) => {
    const response = await fetch(`${braze.url}/users/track`, {
      method: 'POST',
      headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    return { status: response.status, body: (await response.json()) as { errors?: Array<{ type: string; index: number }> } };
  };
  const loggedEvents = async (query = '') =>
    ((await (await fetch(`${braze.url}/_sandbox/events${query}`)).json()) as { events: LoggedEvent[] }).events;

  test('every recorded custom event is logged as sent, with its stored time; filters by name and external_id', async () => {
    const alias = { alias_name: 'amp-42', alias_label: 'amplitude_id' };
    const before = Date.now();
    await track({
      events: [
        { external_id: 'known-1', name: 'Song Played', time: TIME, properties: { genre: 'jazz', nested: { a: [1, 2] } }, app_id: 'app-1' },
        { external_id: 'known-2', name: 'Song Played', time: '2999-01-01T00:00:00Z' },
        { user_alias: alias, _update_existing_only: false, name: 'Page Viewed', time: TIME },
        { external_id: 'nobody', _update_existing_only: true, name: 'Page Viewed', time: TIME },
        { external_id: 'known-1', name: 'Page Viewed', time: TIME, properties: { $bad: 1 } },
      ],
    });
    const events = await loggedEvents();
    assert.deepEqual(
      events.map(({ time: _, ...event }) => event),
      [
        { external_id: 'known-1', name: 'Song Played', properties: { genre: 'jazz', nested: { a: [1, 2] } }, app_id: 'app-1' },
        { external_id: 'known-2', name: 'Song Played', properties: {} },
        { user_alias: alias, name: 'Page Viewed', properties: {} },
      ],
    );
    assert.equal(events[0]?.time, TIME);
    const clamped = Date.parse(events[1]?.time ?? '');
    assert.ok(clamped >= before && clamped <= Date.now(), 'a future time is stored as now');
    assert.deepEqual(
      (await loggedEvents('?name=Song%20Played')).map((event) => 'external_id' in event && event.external_id),
      ['known-1', 'known-2'],
    );
    assert.deepEqual(
      (await loggedEvents('?external_id=known-1')).map((event) => event.name),
      ['Song Played'],
    );
    assert.deepEqual(await loggedEvents('?external_id=known-1&name=Page%20Viewed'), []);
    assert.deepEqual(braze.control.events({ name: 'Page Viewed' }), [events[2]]);
    braze.control.reset();
    assert.deepEqual(braze.control.events(), []);
  });

  test('one data point per event and per purchased unit, whatever their properties', async () => {
    const properties = Object.fromEntries(Array.from({ length: 20 }, (_, i) => [`p${i}`, i]));
    await track({
      events: [
        { external_id: 'known-1', name: 'a', time: TIME, properties },
        { external_id: 'known-1', name: 'a', time: TIME },
      ],
      purchases: [{ external_id: 'known-2', product_id: 'p', currency: 'EUR', price: 1, quantity: 3, properties }],
    });
    assert.deepEqual(braze.control.dataPoints(), { total: 5, byKind: { event: 2, purchase: 3 } });
    const state = (await (await fetch(`${braze.url}/_sandbox/state`)).json()) as { events: number };
    assert.equal(state.events, 2);
  });

  test("Braze's event rules: each offending object is an error entry in a 201, the others are recorded", async () => {
    const valid = (fields: Record<string, unknown>) => ({ external_id: 'known-1', name: 'ok', time: TIME, ...fields });
    const big = { blob: { text: 'x'.repeat(200) }, list: Array.from({ length: 600 }, () => 'y'.repeat(200)) };
    const response = await track({
      events: [
        valid({ name: undefined }),
        valid({ time: undefined }),
        valid({ time: 'January 1, 2026' }),
        valid({ time: '1767225600' }),
        valid({ properties: { '': 1 } }),
        valid({ properties: { ['k'.repeat(256)]: 1 } }),
        valid({ properties: { $price: 1 } }),
        valid({ properties: { time: 'x' } }),
        valid({ properties: { event_name: 'x' } }),
        valid({ properties: { note: 'n'.repeat(256) } }),
        valid({ properties: big }),
        valid({ properties: 'not-an-object' }),
        valid({ name: 'braze-format', time: '2026-01-01T00:00:00:000+0000' }),
        valid({ name: 'offset', time: '2026-01-01T02:00:00+02:00', properties: { k: 'k'.repeat(255), ['n'.repeat(255)]: { deep: [1] } } }),
        valid({ name: 'date-only', time: '2026-01-01' }),
      ],
    });
    assert.equal(response.status, 201);
    assert.deepEqual(
      response.body.errors?.map((error) => error.index),
      [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11],
    );
    assert.match(response.body.errors?.[10]?.type ?? '', /100 KB/);
    const recorded = await loggedEvents();
    assert.deepEqual(
      recorded.map((event) => [event.name, event.time]),
      [
        ['braze-format', TIME],
        ['offset', TIME],
        ['date-only', TIME],
      ],
    );
  });

  test('keeps all of 100,000 events and filters them by user and name', async () => {
    const users = Array.from({ length: 1_000 }, (_, i) => `user-${i}`);
    const requests = Array.from({ length: Math.ceil(100_000 / 75) }, (_, request) => ({
      events: Array.from({ length: 75 }, (_, i) => ({
        external_id: users[(request * 75 + i) % users.length],
        name: `e${i % 5}`,
        time: TIME,
        properties: { n: i },
      })),
    }));
    for (let next = 0; next < requests.length; next += 8) await Promise.all(requests.slice(next, next + 8).map(track));
    const all = braze.control.events();
    assert.equal(all.length, requests.length * 75);
    const filtered = users.slice(0, 200).map((user) => braze.control.events({ externalId: user, name: 'e1' }));
    assert.deepEqual(
      filtered[7],
      all.filter((event) => 'external_id' in event && event.external_id === 'user-7' && event.name === 'e1'),
    );
    assert.equal(
      (await loggedEvents('?external_id=user-7')).length,
      all.filter((event) => 'external_id' in event && event.external_id === 'user-7').length,
    );
  });
});
