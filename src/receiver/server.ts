/**
 * The receiver: Braze Currents batches (and, on the same service, Amplitude's cohort webhooks) acknowledged into
 * the store's spool. A 2xx means the batch is in the store, so a receiver killed at any instant loses nothing (the
 * sender resends what was not acknowledged); the work happens afterwards in a workflow the receiver nudges.
 * Stateless apart from the store: run as many as needed behind a load balancer.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { Secret } from '../config.js';
import { CURRENTS_STREAM, currentsBatchSchema, currentsEventSchema, partitionKeyOf } from '../currents/amplitude-events.js';
import type { DeadLetter, IngressItem, JsonObject, JsonValue, StateStore } from '../store/store.js';

export interface ReceiverOptions {
  store: StateStore;
  bodyLimitBytes: number;
  currentsToken: Secret | undefined;
  /** Called once a Currents batch is spooled: starts (or wakes) the forwarding workflow. Never delays the answer. */
  onCurrentsSpooled: () => Promise<void>;
  logger?: boolean | { level: string };
}

/** What `/currents` answers a batch it took. */
export interface CurrentsAck {
  spooled: number;
  duplicates: number;
  deadLettered: number;
}

export function buildReceiver(options: ReceiverOptions): FastifyInstance {
  const app = Fastify({
    bodyLimit: options.bodyLimitBytes,
    // Never a token, never a payload: requests are logged by method, URL and status only.
    logger:
      options.logger === undefined
        ? false
        : { ...(typeof options.logger === 'object' ? options.logger : {}), redact: ['req.headers.authorization'] },
    disableRequestLogging: options.logger === undefined,
    return503OnClosing: true,
  });
  const nudgeCurrents = coalescing(options.onCurrentsSpooled, (error) => app.log.error({ err: error }, 'could not start currentsForward'));

  app.get('/healthz', () => ({ status: 'ok' }));
  app.get('/readyz', async (_request, reply) => {
    try {
      await options.store.schemaVersion();
      return { status: 'ready' };
    } catch {
      return reply.code(503).send({ status: 'store unreachable' });
    }
  });

  if (options.currentsToken) {
    const token = options.currentsToken;
    app.post('/currents', async (request, reply) => {
      if (!hasBearer(request, token)) return unauthorized(reply);
      const batch = currentsBatchSchema.safeParse(request.body);
      if (!batch.success) return reply.code(400).send({ error: `not a Currents batch: ${describeIssues(batch.error.issues)}` });
      const { items, letters } = sortCurrentsEvents(batch.data.events);
      const now = Date.now();
      // Bad events never block the stream: kept with the reason, while the good ones go on.
      await options.store.deadLetterIngress(CURRENTS_STREAM, letters, now);
      const { spooled, duplicates } = await options.store.spoolIngress(CURRENTS_STREAM, items, now);
      if (spooled > 0) nudgeCurrents();
      const ack: CurrentsAck = { spooled, duplicates, deadLettered: letters.length };
      return reply.code(200).send(ack);
    });
  }
  return app;
}

/** Valid events become spool items keyed by their `id`; the rest become dead letters keyed by `id` or content. */
export function sortCurrentsEvents(events: readonly unknown[]): { items: IngressItem[]; letters: DeadLetter[] } {
  const items: IngressItem[] = [];
  const letters: DeadLetter[] = [];
  events.forEach((raw, index) => {
    const parsed = currentsEventSchema.safeParse(raw);
    if (parsed.success) {
      items.push({ dedupeKey: parsed.data.id, partitionKey: partitionKeyOf(parsed.data), body: raw as JsonObject });
    } else {
      const id = typeof (raw as { id?: unknown } | null)?.id === 'string' ? (raw as { id: string }).id : '';
      const dedupeKey =
        id ||
        `content:${createHash('sha256')
          .update(JSON.stringify(raw) ?? 'undefined')
          .digest('hex')}`;
      letters.push({ dedupeKey, reason: `events[${index}]: ${describeIssues(parsed.error.issues)}`, body: (raw ?? null) as JsonValue });
    }
  });
  return { items, letters };
}

function describeIssues(issues: ReadonlyArray<{ path: PropertyKey[]; message: string }>): string {
  return issues.map((issue) => `${issue.path.length > 0 ? `${issue.path.map(String).join('.')}: ` : ''}${issue.message}`).join('; ');
}

/** A constant-time comparison of `Authorization: Bearer <token>` (digests, so neither length nor prefix leaks). */
function hasBearer(request: FastifyRequest, token: Secret): boolean {
  const header = request.headers.authorization ?? '';
  const given = header.startsWith('Bearer ') ? header.slice('Bearer '.length) : '';
  const digest = (value: string) => createHash('sha256').update(value).digest();
  return timingSafeEqual(digest(given), digest(token.reveal())) && given.length > 0;
}

function unauthorized(reply: FastifyReply) {
  return reply.code(401).header('www-authenticate', 'Bearer').send({ error: 'missing or wrong bearer token' });
}

/**
 * Runs `task` when called, at most one at a time; calls while it runs make one more run afterwards. A burst of
 * batches costs the Temporal server a signal or two, not one each.
 */
function coalescing(task: () => Promise<void>, onError: (error: unknown) => void): () => void {
  let running = false;
  let again = false;
  const run = async () => {
    running = true;
    do {
      again = false;
      await task().catch(onError);
    } while (again);
    running = false;
  };
  return () => {
    if (running) again = true;
    else void run();
  };
}
