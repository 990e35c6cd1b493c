/**
 * Small helpers shared by the sandbox HTTP servers: JSON in/out, a seeded PRNG and seeded fault injection
 * (so a flaky run can be reproduced exactly).
 */
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';

export class BodyTooLargeError extends Error {
  override readonly name = 'BodyTooLargeError';
  constructor(readonly limitBytes: number) {
    super(`request body exceeds ${limitBytes} bytes`);
  }
}

export class InvalidJsonError extends Error {
  override readonly name = 'InvalidJsonError';
}

/** Reads the whole body as a Buffer, failing fast (without buffering the rest) once it exceeds `limitBytes`. */
export async function readBody(req: IncomingMessage, limitBytes: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limitBytes) {
      req.resume();
      throw new BodyTooLargeError(limitBytes);
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

/** Reads and parses a JSON body. Throws BodyTooLargeError or InvalidJsonError. */
export async function readJsonBody(req: IncomingMessage, limitBytes: number): Promise<unknown> {
  const body = await readBody(req, limitBytes);
  try {
    return JSON.parse(body.toString('utf8')) as unknown;
  } catch {
    throw new InvalidJsonError('request body is not valid JSON');
  }
}

export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const payload = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(payload),
    ...headers,
  });
  res.end(payload);
}

export function sendText(res: ServerResponse, status: number, body: string, contentType = 'text/plain; charset=utf-8'): void {
  res.writeHead(status, { 'content-type': contentType, 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

/** Pipes a body into the (already started) response with backpressure; a client hanging up just ends it. */
export async function pipeToResponse(res: ServerResponse, source: Readable, ...transforms: Transform[]): Promise<void> {
  try {
    await pipeline([source, ...transforms, res]);
  } catch (error) {
    if (!res.destroyed) throw error;
  }
}

/** Passes bytes through at about `bytesPerSecond`, in slices of a twentieth of a second (a slow network or S3). */
export function throttle(bytesPerSecond: number): Transform {
  const sliceBytes = Math.max(1, Math.floor(bytesPerSecond / 20));
  let started: number | undefined;
  let sent = 0;
  const pushPaced = async (stream: Transform, chunk: Buffer) => {
    started ??= Date.now();
    for (let offset = 0; offset < chunk.length; offset += sliceBytes) {
      const slice = chunk.subarray(offset, offset + sliceBytes);
      const due = started + (sent / bytesPerSecond) * 1000;
      if (due > Date.now()) await new Promise((resolve) => setTimeout(resolve, due - Date.now()));
      sent += slice.length;
      stream.push(slice);
    }
  };
  return new Transform({
    transform(chunk: Buffer, _encoding, done) {
      pushPaced(this, chunk).then(() => done(), done);
    },
  });
}

/** mulberry32: a tiny, fast, deterministic PRNG returning floats in [0, 1). */
export function createRng(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface SandboxFaults {
  /** Fraction of requests (0..1) answered with a 500. */
  serverErrorRate?: number;
  /** Every this many requests, start a burst of 429s… */
  rateLimitBurstEvery?: number;
  /** …lasting this many requests (default 1). */
  rateLimitBurstLength?: number;
  /** Delay added before every request is handled. */
  latencyMs?: number;
}

/**
 * Decides, per request and reproducibly for a given seed, whether to answer with an injected failure.
 * Call `delay()` then `maybeFail(res)` at the top of a handler; when it returns true the response was sent.
 */
export class FaultInjector {
  private faults: SandboxFaults;
  private rng: () => number;
  private requestCount = 0;

  constructor(
    faults: SandboxFaults,
    private readonly seed: number,
  ) {
    this.faults = { ...faults };
    this.rng = createRng(seed);
  }

  /** Replaces the faults and restarts the seeded sequence, so the same faults replay the same way. */
  setFaults(faults: SandboxFaults): void {
    this.faults = { ...faults };
    this.rng = createRng(this.seed);
    this.requestCount = 0;
  }

  get current(): SandboxFaults {
    return { ...this.faults };
  }

  async delay(): Promise<void> {
    const latencyMs = this.faults.latencyMs ?? 0;
    if (latencyMs > 0) await new Promise((resolve) => setTimeout(resolve, latencyMs));
  }

  maybeFail(res: ServerResponse): boolean {
    const index = this.requestCount++;
    const burstEvery = this.faults.rateLimitBurstEvery ?? 0;
    // The last `rateLimitBurstLength` requests of every window of `rateLimitBurstEvery` are throttled.
    if (burstEvery > 0 && index % burstEvery >= burstEvery - (this.faults.rateLimitBurstLength ?? 1)) {
      sendJson(res, 429, { error: 'Too many requests (sandbox fault injection)' }, { 'retry-after': '1' });
      return true;
    }
    const serverErrorRate = this.faults.serverErrorRate ?? 0;
    if (serverErrorRate > 0 && this.rng() < serverErrorRate) {
      sendJson(res, 500, { error: 'Internal server error (sandbox fault injection)' });
      return true;
    }
    return false;
  }
}

/** Starts listening and resolves with the loopback base URL (port 0 picks a free port). */
export async function listen(server: Server, port: number, host: string): Promise<string> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('server has no TCP address');
  return `http://${host}:${address.port}`;
}

/** Closes the server, dropping keep-alive and in-flight connections so tests exit promptly. */
export async function closeServer(server: Server): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    server.close((error) => (error ? reject(error) : resolve()));
    server.closeAllConnections();
  });
}
