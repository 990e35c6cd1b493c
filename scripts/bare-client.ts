/**
 * The floor a benchmark holds the worker's CPU per Braze request against: what a bare Node client spends to post
 * the same `/users/track` bodies. Two processes, so that each one's CPU is its own:
 *
 *   node --import tsx scripts/bare-client.ts server
 *     a minimal local server that answers as Braze does (a small JSON body and the `X-RateLimit-*` headers);
 *     prints its port.
 *   node --import tsx scripts/bare-client.ts client <port> <bodies.json> <requests> <concurrency> <perSecond>
 *     posts `requests` requests through an undici `Pool` of `concurrency` connections, cycling through the bodies
 *     (parsed into plain objects up front and serialised per request, as a client builds them), at most
 *     `perSecond` a second in fixed one-second windows, reading each answer's headers and JSON; prints its own
 *     CPU time (all threads) spent from the first request to the last answer, after a warm-up it does not count.
 */
import { readFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { Pool } from 'undici';

/** Sent before the measured ones, and not counted. */
const WARM_UP_REQUESTS = 500;

const [mode, ...args] = process.argv.slice(2);
if (mode === 'server') serve();
else if (mode === 'client') await post(args);
else throw new Error('usage: bare-client.ts server | client <port> <bodies.json> <requests> <concurrency> <perSecond>');

function serve(): void {
  const answer = JSON.stringify({ message: 'success', attributes_processed: 75 });
  const server = createServer((req, res) => {
    req.resume();
    req.once('end', () => {
      const resetSeconds = Math.ceil(Date.now() / 1000);
      res.writeHead(201, {
        'content-type': 'application/json; charset=utf-8',
        'content-length': Buffer.byteLength(answer),
        'x-ratelimit-limit': '1000',
        'x-ratelimit-remaining': '500',
        'x-ratelimit-reset': String(resetSeconds),
      });
      res.end(answer);
    });
  });
  server.listen(0, '127.0.0.1', () => {
    const address = server.address();
    console.log(typeof address === 'object' && address ? address.port : '');
  });
  process.once('SIGTERM', () => server.close(() => process.exit(0)));
}

async function post([port, bodiesFile, requests, concurrency, perSecond]: string[]): Promise<void> {
  const objects = (JSON.parse(await readFile(bodiesFile!, 'utf8')) as string[]).map((body) => JSON.parse(body) as unknown);
  const total = Number(requests);
  const pool = new Pool(`http://127.0.0.1:${port}`, { connections: Number(concurrency) });
  const window = { startMs: 0, granted: 0 };
  const takeSlot = async () => {
    for (;;) {
      const nowMs = Date.now();
      const startMs = nowMs - (nowMs % 1000);
      if (window.startMs !== startMs) Object.assign(window, { startMs, granted: 0 });
      if (window.granted < Number(perSecond)) return void window.granted++;
      await sleep(startMs + 1000 - nowMs);
    }
  };
  let remainingSeen = 0;
  const sendAll = async (count: number) => {
    let next = 0;
    await Promise.all(
      Array.from({ length: Number(concurrency) }, async () => {
        while (next < count) {
          const body = objects[next++ % objects.length];
          await takeSlot();
          const response = await pool.request({
            path: '/users/track',
            method: 'POST',
            headers: { 'content-type': 'application/json', authorization: 'Bearer floor' },
            body: JSON.stringify(body),
          });
          remainingSeen += Number(response.headers['x-ratelimit-remaining']);
          const answer = (await response.body.json()) as { message?: string };
          if (answer.message !== 'success') throw new Error(`unexpected answer ${JSON.stringify(answer)}`);
        }
      }),
    );
  };
  // Measured warm, as the worker is: its code was compiled long before it sent to Braze.
  await sendAll(Math.min(WARM_UP_REQUESTS, total));
  const startedAt = process.hrtime.bigint();
  const before = process.cpuUsage();
  await sendAll(total);
  const used = process.cpuUsage(before);
  const seconds = Number(process.hrtime.bigint() - startedAt) / 1e9;
  await pool.close();
  if (!(remainingSeen > 0)) throw new Error('no rate-limit headers were read');
  console.log(JSON.stringify({ requests: total, cpuMs: (used.user + used.system) / 1000, seconds }));
}
