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
import { cohortStreamInputSchema, cohortStreamName, type CohortStreamOptions } from '../cohort/input.js';
import {
  cohortWebhookBatchSchema,
  cohortWebhookUserSchema,
  webhookTargetQuerySchema,
  type CohortWebhookBatch,
  type MembershipChange,
} from '../cohort/webhook.js';
import type { DeadLetter, IngressItem, JsonObject, JsonValue, StateStore } from '../store/store.js';

export interface ReceiverOptions {
  store: StateStore;
  bodyLimitBytes: number;
  currentsToken: Secret | undefined;
  /** Called once a Currents batch is spooled: starts (or wakes) the forwarding workflow. Never delays the answer. */
  onCurrentsSpooled: () => Promise<void>;
  /** The bearer token Amplitude's cohort webhooks send; unset: `/amplitude/cohorts` is not served. */
  amplitudeWebhookToken?: Secret;
  /** Called once a cohort webhook batch is spooled: starts (or wakes) that cohort's stream. Never delays the answer. */
  onCohortSpooled?: (stream: CohortStreamOptions) => Promise<void>;
  logger?: boolean | { level: string };
}

/** What `/currents` and `/amplitude/cohorts` answer a batch they took. */
export interface IngressAck {
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
      const ack: IngressAck = { spooled, duplicates, deadLettered: letters.length };
      return reply.code(200).send(ack);
    });
  }

  if (options.amplitudeWebhookToken) {
    const token = options.amplitudeWebhookToken;
    const nudges = new Map<string, () => void>();
    const nudgeStream = (stream: CohortStreamOptions) => {
      const name = cohortStreamName(stream);
      let nudge = nudges.get(name);
      if (!nudge) {
        const start = () => options.onCohortSpooled?.(stream) ?? Promise.resolve();
        nudge = coalescing(start, (error) => app.log.error({ err: error }, `could not start the cohort stream of ${stream.cohortId}`));
        nudges.set(name, nudge);
      }
      nudge();
    };
    app.post('/amplitude/cohorts', async (request, reply) => {
      if (!hasBearer(request, token)) return unauthorized(reply);
      const query = webhookTargetQuerySchema.safeParse(request.query);
      if (!query.success) return reply.code(400).send({ error: `bad webhook URL: ${describeIssues(query.error.issues)}` });
      const batch = cohortWebhookBatchSchema.safeParse(request.body);
      if (!batch.success) return reply.code(400).send({ error: `not a cohort webhook batch: ${describeIssues(batch.error.issues)}` });
      const { target, attribute } = query.data;
      const stream = cohortStreamInputSchema.safeParse({ cohortId: batch.data.cohort_id, target, attributeName: attribute });
      if (!stream.success) return reply.code(400).send({ error: `bad webhook URL: ${describeIssues(stream.error.issues)}` });
      const { items, letters } = sortWebhookUsers(batch.data);
      const name = cohortStreamName(stream.data);
      const now = Date.now();
      await options.store.deadLetterIngress(name, letters, now);
      const { spooled, duplicates } = await options.store.spoolIngress(name, items, now);
      if (spooled > 0) nudgeStream(stream.data);
      const ack: IngressAck = { spooled, duplicates, deadLettered: letters.length };
      return reply.code(200).send(ack);
    });
  }
  return app;
}

/**
 * One membership change per user, keyed by the batch's `message_id` and the user (a retried batch repeats both);
 * a user entry without a user id becomes a dead letter keyed by its place in the batch.
 */
export function sortWebhookUsers(batch: CohortWebhookBatch): { items: IngressItem[]; letters: DeadLetter[] } {
  const items: IngressItem[] = [];
  const letters: DeadLetter[] = [];
  batch.users.forEach((raw, index) => {
    const user = cohortWebhookUserSchema.safeParse(raw);
    if (user.success) {
      const change: MembershipChange = { user_id: user.data.user_id, in_cohort: batch.in_cohort, computed_time: batch.computed_time };
      items.push({ dedupeKey: `${batch.message_id}|${user.data.user_id}`, partitionKey: user.data.user_id, body: change });
    } else {
      const reason = `users[${index}]: ${describeIssues(user.error.issues)}`;
      letters.push({ dedupeKey: `${batch.message_id}#${index}`, reason, body: (raw ?? null) as JsonValue });
    }
  });
  return { items, letters };
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
