/**
 * The receiver and the Currents forwarder on PostgreSQL, tried as a faulty sender, a faulty vendor and a failing
 * infrastructure would: poisoned batches never block the stream; events Amplitude refuses alone are dead-lettered
 * with its answer while the rest flow; dead letters are listed and replayed once fixed; a paused database or an
 * unreachable Temporal make the receiver say so quickly instead of hanging, and it recovers by itself.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { CURRENTS_FORWARD_WORKFLOW_ID, CURRENTS_STREAM } from '../src/currents/amplitude-events.js';
import { ampbraze } from './helpers/cli.js';
import { amplitudeCounts, currentsEvent, poisonedBatchesFlow, waitUntil } from './helpers/currents-scenarios.js';
import { startHarnessReceiver, type ReceiverProcess } from './helpers/receiver.js';
import { POSTGRES } from './helpers/stores.js';
import { startTcpProxy, type TcpProxy } from './helpers/tcp-proxy.js';
import { testServerAddress, testTemporalEnv } from './helpers/temporal.js';
import { WorkerHarness } from './helpers/worker-harness.js';

const TOKEN = 'ingress-hardening-token-0123456789';
/** The receiver's store timeout here: a paused database is given up on after this. */
const STORE_TIMEOUT_MS = 2_000;
const h = new WorkerHarness(POSTGRES, { seed: 37, users: 500, dataset: { brazeKnownFraction: 1 } }, { queuePrefix: 'ingress-pg' });
let database: TcpProxy;
let receiver: ReceiverProcess;

/** The store's URL with its host and port replaced by the proxy's. */
const throughProxy = (url: string, port: number) => url.replace(/@[^/]+\//, `@127.0.0.1:${port}/`);

before(async () => {
  await h.ready;
  // A forwarder another file left open would take this file's signals on a queue nobody polls.
  await terminateForwarder();
  const { hostname, port } = new URL(h.storeEnv.STATE_STORE_URL!);
  database = await startTcpProxy({ host: hostname, port: Number(port) });
  receiver = await startHarnessReceiver(h, {
    CURRENTS_TOKEN: TOKEN,
    RECEIVER_BODY_LIMIT: String(3 * 1024 * 1024),
    RECEIVER_STORE_TIMEOUT: `${STORE_TIMEOUT_MS}ms`,
    STATE_STORE_URL: throughProxy(h.storeEnv.STATE_STORE_URL!, database.port),
  });
});
after(async () => {
  await receiver?.stop();
  await terminateForwarder();
  await database?.close();
  if (process.exitCode) console.error(`The receiver printed:\n${receiver?.output()}`);
});

/** One forwarder per namespace: ended so that the next test (or file) starts its own. */
const terminateForwarder = () =>
  h.env.client.workflow
    .getHandle(CURRENTS_FORWARD_WORKFLOW_ID)
    .terminate('the test is over')
    .catch(() => undefined);

const post = (url: string, events: unknown[]) =>
  fetch(`${url}/currents`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${TOKEN}` },
    body: JSON.stringify({ events }),
  });

const setUnnamedRefusals = async (insertIds: string[]) => {
  const response = await fetch(`${h.sandboxes.amplitude.url}/_sandbox/unnamed-refusals`, {
    method: 'POST',
    body: JSON.stringify({ insertIds }),
  });
  assert.equal(response.status, 200);
};

const cliEnv = () => ({ ...h.storeEnv, ...testTemporalEnv(), TEMPORAL_TASK_QUEUE: h.taskQueue });

describe('Currents content on PostgreSQL', () => {
  test('poisoned events amid good ones, sent twice: 200, the good ones in Amplitude once, the poisoned dead-lettered with the reason', () =>
    poisonedBatchesFlow(h, receiver.url, TOKEN));

  test('one event Amplitude answers 413 to, one it refuses with a 400 naming none: each dead-lettered with the answer, the rest flow', async () => {
    await setUnnamedRefusals(['unnamed-1']);
    const oversize = currentsEvent('oversize-1', 'user-oversize', { properties: { blob: 'x'.repeat(1_100_000) } });
    const good = Array.from({ length: 6 }, (_, i) => currentsEvent(`alone-good-${i}`, `user-alone-${i}`));
    const response = await post(receiver.url, [
      good[0],
      oversize,
      good[1],
      good[2],
      currentsEvent('unnamed-1', 'user-unnamed'),
      ...good.slice(3),
    ]);
    assert.deepEqual(await response.json(), { spooled: 8, duplicates: 0, deadLettered: 0 });
    await waitUntil(() => good.every((event) => amplitudeCounts(h).get(event.id) === 1), 'the good events reached Amplitude');
    const reasons = async () =>
      new Map(
        (await h.context.store.deadLetters({ stream: CURRENTS_STREAM, limit: 1_000 })).map((letter) => [letter.dedupeKey, letter.reason]),
      );
    await waitUntil(async () => (await reasons()).has('unnamed-1') && (await reasons()).has('oversize-1'), 'both were dead-lettered');
    assert.equal((await reasons()).get('oversize-1'), 'Amplitude: 413 Payload too large, for this event alone');
    assert.equal((await reasons()).get('unnamed-1'), 'Amplitude: 400 Invalid event JSON, for this event alone');
    assert.ok(!amplitudeCounts(h).has('unnamed-1') && !amplitudeCounts(h).has('oversize-1'));
    const { status } = await h.env.client.workflow.getHandle(CURRENTS_FORWARD_WORKFLOW_ID).describe();
    assert.notEqual(status.name, 'FAILED', 'the forwarder goes on');
    assert.equal((await h.context.store.ingressBacklog(CURRENTS_STREAM, Date.now())).pending, 0, 'nothing is stuck in the spool');
  });

  test('`ampbraze deadletters`: listed with the reason; replayed once fixed, the event reaches Amplitude once; a door refusal stays', async () => {
    const listed = await ampbraze(['deadletters', 'list', '--stream', CURRENTS_STREAM, '--limit', '100'], cliEnv());
    assert.equal(listed.code, 0, listed.stderr);
    assert.match(listed.stdout, /currents {2}unnamed-1\n {2}Amplitude: 400 Invalid event JSON, for this event alone\n {2}\{"event_type"/);
    assert.match(listed.stdout, /events\[1\]: id: must not contain a NUL character/);

    await setUnnamedRefusals([]); // the fix
    const replayed = await ampbraze(['deadletters', 'replay', '--stream', CURRENTS_STREAM, '--key', 'unnamed-1'], cliEnv());
    assert.equal(replayed.code, 0, replayed.stderr);
    assert.match(replayed.stdout, /^1 replayed; woke currents$/m);
    await waitUntil(() => amplitudeCounts(h).get('unnamed-1') === 1, 'the replayed event reached Amplitude');

    const [doorLetter] = (await h.context.store.deadLetters({ stream: CURRENTS_STREAM, limit: 1_000 })).filter((letter) =>
      letter.reason.includes('NUL character'),
    );
    const again = await ampbraze(['deadletters', 'replay', '--stream', CURRENTS_STREAM, '--key', doorLetter!.dedupeKey], cliEnv());
    assert.match(again.stdout, /^0 replayed$/m);
    assert.match(again.stdout, /still refused: currents content:[0-9a-f]{64}: events\[0\]: id: must not contain a NUL character/);

    const afterwards = await ampbraze(['deadletters', 'list', '--json', '--limit', '1000'], cliEnv());
    const keys = afterwards.stdout
      .trim()
      .split('\n')
      .map((line) => (JSON.parse(line) as { dedupeKey: string }).dedupeKey);
    assert.ok(!keys.includes('unnamed-1') && keys.includes(doorLetter!.dedupeKey));
    await new Promise((resolve) => setTimeout(resolve, 2_000));
    assert.equal(amplitudeCounts(h).get('unnamed-1'), 1, 'still once');
  });
});

describe('the receiver when its store or Temporal fail', () => {
  test('PostgreSQL paused: /readyz 503 within its deadline, a post 503 within the store timeout, saying nothing internal; then recovers', async () => {
    database.setMode('pause');
    try {
      let startedAt = Date.now();
      const ready = await fetch(`${receiver.url}/readyz`);
      assert.equal(ready.status, 503);
      assert.ok(Date.now() - startedAt < 4_000, `readyz answered after ${Date.now() - startedAt} ms`);
      assert.equal(((await ready.json()) as { checks: { store: string } }).checks.store, 'unreachable');
      startedAt = Date.now();
      assert.equal((await fetch(`${receiver.url}/healthz`)).status, 200);
      assert.ok(Date.now() - startedAt < 1_000, 'liveness does not wait for the store');

      startedAt = Date.now();
      const refused = await post(receiver.url, [currentsEvent('while-paused-1', 'user-paused')]);
      const elapsed = Date.now() - startedAt;
      assert.equal(refused.status, 503);
      assert.ok(elapsed < 3 * STORE_TIMEOUT_MS + 2_000, `answered after ${elapsed} ms`);
      assert.equal(refused.headers.get('retry-after'), '5');
      const body = await refused.text();
      assert.match(body, /"requestId":"[0-9a-f-]{36}"/);
      assert.doesNotMatch(body, /ECONN|timeout|127\.0\.0\.1|postgres|SQL|pg_|stack/i, 'no internals');
    } finally {
      database.setMode('forward');
    }
    await waitUntil(async () => (await fetch(`${receiver.url}/readyz`)).status === 200, 'ready again', 30_000);
    assert.equal((await post(receiver.url, [currentsEvent('after-pause-1', 'user-paused')])).status, 200);
    await waitUntil(() => amplitudeCounts(h).get('after-pause-1') === 1, 'the event after the pause reached Amplitude');
  });

  test('Temporal unreachable: a batch is acknowledged, /readyz says so, and the forwarder starts by itself once Temporal answers', async () => {
    await terminateForwarder();
    const { hostname, port } = new URL(`grpc://${testServerAddress()}`);
    const temporal = await startTcpProxy({ host: hostname, port: Number(port) }, 'refuse');
    const cut = await startHarnessReceiver(h, { CURRENTS_TOKEN: TOKEN, TEMPORAL_ADDRESS: `127.0.0.1:${temporal.port}` });
    try {
      const response = await post(cut.url, [currentsEvent('no-temporal-1', 'user-no-temporal')]);
      assert.deepEqual(await response.json(), { spooled: 1, duplicates: 0, deadLettered: 0 });
      await waitUntil(async () => {
        const ready = await fetch(`${cut.url}/readyz`);
        const { checks } = (await ready.json()) as { checks: { temporal: string; workflows: string } };
        return ready.status === 503 && checks.temporal === 'unreachable' && checks.workflows !== 'ok';
      }, '/readyz reports Temporal and the workflow it could not start');
      temporal.setMode('forward');
      await waitUntil(() => amplitudeCounts(h).get('no-temporal-1') === 1, 'the event reached Amplitude with no further post', 60_000);
      await waitUntil(async () => (await fetch(`${cut.url}/readyz`)).status === 200, 'ready again');
    } finally {
      await cut.stop();
      await temporal.close();
    }
  });
});
