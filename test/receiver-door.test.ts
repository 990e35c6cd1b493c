/**
 * The receiver's door, tried as an attacker or a broken client would, on the real receiver process with a SQLite
 * store: the token is checked before a byte of the body is read, a slow client is cut off, connections are capped,
 * another process holding the store's write lock never stalls the receiver, and a stream whose backlog is full is
 * refused with 503 rather than growing the spool.
 */
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { after, before, describe, test } from 'node:test';
import Database from 'better-sqlite3';
import { openSqliteStateStore } from '../src/store/sqlite.js';
import { currentsEvent } from './helpers/currents-scenarios.js';
import { startReceiverProcess, type ReceiverProcess } from './helpers/receiver.js';
import { SQLITE } from './helpers/stores.js';
import { connectTestEnvironment, uniqueTaskQueue, testTemporalEnv } from './helpers/temporal.js';
import { CURRENTS_FORWARD_WORKFLOW_ID } from '../src/currents/amplitude-events.js';

const TOKEN = 'receiver-door-token-0123456789';
let receiver: ReceiverProcess;
let storePath: string;

before(async () => {
  storePath = (await SQLITE.freshEnv()).STATE_DB!;
  receiver = await startReceiverProcess({
    STATE_DB: storePath,
    CURRENTS_TOKEN: TOKEN,
    ...testTemporalEnv(),
    // No worker polls this queue: what is spooled stays, as a backlog.
    TEMPORAL_TASK_QUEUE: uniqueTaskQueue('nobody'),
    RECEIVER_REQUEST_TIMEOUT: '2s',
    RECEIVER_IDLE_TIMEOUT: '5s',
    RECEIVER_MAX_CONNECTIONS: '20',
    RECEIVER_MAX_BACKLOG: '30',
  });
});
after(async () => {
  await receiver?.stop();
  if (process.exitCode) console.error(`The receiver printed:\n${receiver?.output()}`);
  // The forwarder this receiver started waits on a queue nobody polls: the next file's receiver must start its own.
  const env = await connectTestEnvironment();
  await env.client.workflow
    .getHandle(CURRENTS_FORWARD_WORKFLOW_ID)
    .terminate('the test file is over')
    .catch(() => undefined);
  await env.teardown();
});

/** A raw connection, to send what no HTTP client would: headers without their body, a body byte by byte. */
async function rawConnection(): Promise<{ socket: Socket; received: () => string; closed: Promise<void> }> {
  const { hostname, port } = new URL(receiver.url);
  const socket = connect(Number(port), hostname);
  await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  let received = '';
  socket.on('data', (chunk: Buffer) => (received += chunk.toString()));
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  socket.on('error', () => undefined);
  return { socket, received: () => received, closed };
}

const headers = (length: number, authorization?: string) =>
  [
    'POST /currents HTTP/1.1',
    `Host: ${new URL(receiver.url).host}`,
    'Content-Type: application/json',
    `Content-Length: ${length}`,
    ...(authorization ? [`Authorization: ${authorization}`] : []),
    '',
    '',
  ].join('\r\n');

async function until(condition: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return true;
}

const post = (events: unknown[], authorization = `Bearer ${TOKEN}`) =>
  fetch(`${receiver.url}/currents`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization },
    body: JSON.stringify({ events }),
  });

describe('the door', () => {
  test('a 5 MB body without a token is refused with 401 before any of it is sent, and the connection closed', async () => {
    const { socket, received, closed } = await rawConnection();
    socket.write(headers(5 * 1024 * 1024));
    assert.ok(await until(() => received().startsWith('HTTP/1.1 401'), 3_000), `got: ${JSON.stringify(received())}`);
    assert.match(received(), /connection: close/i);
    await closed;
  });

  test('a client sending its body slowly, with a valid token, is cut off at the request timeout', async () => {
    const { socket, received, closed } = await rawConnection();
    socket.write(headers(1_000, `Bearer ${TOKEN}`));
    const startedAt = Date.now();
    const drip = setInterval(() => socket.writable && socket.write(' '), 200);
    try {
      await Promise.race([closed, new Promise((resolve) => setTimeout(resolve, 15_000))]);
    } finally {
      clearInterval(drip);
    }
    const elapsed = Date.now() - startedAt;
    assert.ok(socket.destroyed || received().startsWith('HTTP/1.1 408'), 'the connection was ended');
    assert.ok(elapsed < 6_000, `cut off after ${elapsed} ms (request timeout 2 s)`);
  });

  test('connections beyond the cap are dropped; the others are served', async () => {
    const idle = await Promise.all(Array.from({ length: 20 }, () => rawConnection()));
    try {
      const extra = await rawConnection().catch(() => undefined);
      if (extra)
        await Promise.race([
          extra.closed,
          new Promise((_, reject) => setTimeout(() => reject(new Error('the 21st connection stayed open')), 3_000)),
        ]);
    } finally {
      for (const { socket } of idle) socket.destroy();
    }
    await until(() => false, 200);
    assert.equal((await fetch(`${receiver.url}/healthz`)).status, 200);
  });

  test('the Bearer scheme is case-insensitive (RFC 6750); anything else without the token is 401', async () => {
    assert.equal((await post([currentsEvent('scheme-1', 'user-scheme')], `bearer ${TOKEN}`)).status, 200);
    assert.equal((await post([currentsEvent('scheme-2', 'user-scheme')], `BEARER ${TOKEN}`)).status, 200);
    assert.equal((await post([], `Basic ${TOKEN}`)).status, 401);
    assert.equal((await post([], `Bearer ${TOKEN}x`)).status, 401);
  });
});

describe('the store under the receiver', () => {
  test('the receiver’s store syncs every commit to disk before it acknowledges', () => {
    assert.match(receiver.output(), /state store: SQLite .*, every commit synced to disk/);
  });

  test('another process holding the write lock for 3 s: liveness keeps answering at once, and the batch is taken after', async () => {
    const holder = new Database(storePath);
    holder.exec('BEGIN IMMEDIATE');
    let released = false;
    const release = setTimeout(() => {
      holder.exec('COMMIT');
      released = true;
    }, 3_000);
    try {
      const posting = post([currentsEvent('locked-1', 'user-locked')]);
      const slowest = await (async () => {
        let worst = 0;
        while (!released) {
          const startedAt = Date.now();
          assert.equal((await fetch(`${receiver.url}/healthz`)).status, 200);
          worst = Math.max(worst, Date.now() - startedAt);
          await new Promise((resolve) => setTimeout(resolve, 100));
        }
        return worst;
      })();
      assert.ok(slowest < 500, `/healthz took ${slowest} ms while the lock was held`);
      const response = await posting;
      assert.equal(response.status, 200);
      assert.deepEqual(await response.json(), { spooled: 1, duplicates: 0, deadLettered: 0 });
    } finally {
      clearTimeout(release);
      if (!released) holder.exec('COMMIT');
      holder.close();
    }
  });

  test('a stream whose backlog reached RECEIVER_MAX_BACKLOG is refused with 503 and Retry-After; nothing more is spooled', async () => {
    // Nothing drains this store: the events above and these stay pending.
    let lastStatus = 200;
    for (let i = 0; i < 10 && lastStatus === 200; i++) {
      lastStatus = (await post(Array.from({ length: 10 }, (_, j) => currentsEvent(`backlog-${i}-${j}`, `user-backlog-${j}`)))).status;
    }
    assert.equal(lastStatus, 503);
    const refused = await post([currentsEvent('backlog-over', 'user-backlog-over')]);
    assert.equal(refused.status, 503);
    assert.equal(refused.headers.get('retry-after'), '5');
    assert.match(((await refused.json()) as { error: string }).error, /RECEIVER_MAX_BACKLOG/);
    const store = openSqliteStateStore(storePath);
    try {
      const { pending } = await store.ingressBacklog('currents', Date.now());
      assert.ok(pending >= 30 && pending < 40, `${pending} pending: at most one batch past the limit`);
    } finally {
      await store.close();
    }
  });
});
