/**
 * The receiver: Braze Currents batches (and, on the same service, Amplitude's cohort webhooks) acknowledged into
 * the store's spool. A 2xx means the batch is in the store, so a receiver killed at any instant loses nothing (the
 * sender resends what was not acknowledged); the work happens afterwards in a workflow the receiver wakes.
 * Stateless apart from the store: run as many as needed behind a load balancer.
 *
 * It faces the internet: the bearer token is checked before a byte of the body is read, bodies, requests and idle
 * connections are bounded, every item is checked at the door (`src/ingress/doors.ts`) and what fails there is
 * dead-lettered while the rest flows, and an error answer never carries the store's or the server's internals.
 */
import { createHash, randomUUID, timingSafeEqual } from 'node:crypto';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { Secret } from '../config.js';
import { CURRENTS_STREAM, currentsBatchSchema } from '../currents/amplitude-events.js';
import { cohortStreamInputSchema, cohortStreamName, type CohortStreamOptions } from '../../kinds/cohort-sync/input.js';
import { cohortWebhookBatchSchema, webhookTargetQuerySchema } from '../cohort/webhook.js';
import { admitCohortWebhook, admitCurrentsEvents, describeIssues, type Admitted } from '../ingress/doors.js';
import type { AdmittedBatch, StateStore } from '../store/store.js';
import { coalesce } from '../request-ledger.js';
import { admitStreamed, streamedBodySchema } from '../../kinds/event-stream/door.js';
import { eventStreamNameSchema, eventStreamSpool } from '../../kinds/event-stream/input.js';
import { StreamWaker } from './waker.js';
import { z } from 'zod';
import type { UsageQuotas } from '../config.js';
import { CURRENTS_KIND } from '../currents/amplitude-events.js';
import { COHORT_STREAM_KIND } from '../../kinds/cohort-sync/input.js';
import { EVENT_STREAM_KIND } from '../../kinds/event-stream/input.js';
import { storeMetrics } from '../operator/metrics.js';
import type { UsageCounter } from '../operator/usage-counter.js';
import { usagePage } from '../operator/usage-page.js';
import { usageReport } from '../operator/usage.js';
import type { ConnectedContent, ProfileLookup } from '../profiles/connected-content.js';

export interface ReceiverLimits {
  bodyLimitBytes: number;
  /** The whole request (headers and body) must arrive within this. */
  requestTimeoutMs: number;
  /** A connection with nothing moving for this long is closed (also between keep-alive requests). */
  idleTimeoutMs: number;
  maxConnections: number;
  /** A stream with this many items not yet processed takes no more: 503 with Retry-After (both senders retry). */
  maxBacklog: number;
}

export const DEFAULT_RECEIVER_LIMITS: ReceiverLimits = {
  bodyLimitBytes: 5 * 1024 * 1024,
  requestTimeoutMs: 30_000,
  idleTimeoutMs: 30_000,
  maxConnections: 1_000,
  maxBacklog: 1_000_000,
};

export interface ReceiverOptions {
  store: StateStore;
  limits?: Partial<ReceiverLimits>;
  currentsToken: Secret | undefined;
  /** Called once a Currents batch is spooled: starts (or wakes) the forwarding workflow. Never delays the answer. */
  onCurrentsSpooled: () => Promise<void>;
  /** The bearer token Amplitude's cohort webhooks send; unset: `/amplitude/cohorts` is not served. */
  amplitudeWebhookToken?: Secret;
  /** Called once a cohort webhook batch is spooled: starts (or wakes) that cohort's stream. Never delays the answer. */
  onCohortSpooled?: (stream: CohortStreamOptions) => Promise<void>;
  /** The bearer token Amplitude's Webhooks streaming destination sends; unset: `/amplitude/stream/<name>` is not served. */
  amplitudeStreamToken?: Secret;
  /** Called once something is spooled for the named event stream: starts (or wakes) it. Never delays the answer. */
  onEventStreamSpooled?: (name: string) => Promise<void>;
  /** Braze Connected Content's profile lookups; unset: `/connected-content/userprofile` is not served. */
  connectedContent?: { lookups: ConnectedContent; token: Secret; cacheSeconds: number; fallbackBody: string };
  /** `/status` (the usage page) and `/metrics` (Prometheus), behind their bearer token; unset: neither is served. */
  status?: { token: Secret; quotas: UsageQuotas };
  /** Counts the items each stream spools (as rows staged by its kind); unset: not counted. */
  usage?: UsageCounter;
  /** Resolves when Temporal answers (for `/readyz`); unset: not checked. */
  temporalReachable?: (deadlineMs: number) => Promise<void>;
  logger?: boolean | { level: string };
}

/** What `/currents`, `/amplitude/cohorts` and `/amplitude/stream/<name>` answer a batch they took. */
export interface IngressAck {
  spooled: number;
  duplicates: number;
  deadLettered: number;
}

/** `/readyz` answers within this, whatever the store or Temporal do. */
const READY_DEADLINE_MS = 2_000;
/** Headers must be complete within this (or the request timeout, if shorter). */
const HEADERS_TIMEOUT_MS = 10_000;
/** How stale a stream's backlog count may be when the receiver decides whether to take more. */
const BACKLOG_CACHE_MS = 1_000;
/** What a 503 asks the sender to wait before it sends again. */
const RETRY_AFTER_SECONDS = 5;

/** `/status?days=N`: how many days the usage page charts. */
const statusQuerySchema = z.object({ days: z.coerce.number().int().min(1).max(400).default(30) });

/** The store failed while a batch was being spooled: nothing of it was acknowledged. */
class StoreUnavailableError extends Error {}

export function buildReceiver(options: ReceiverOptions): FastifyInstance {
  const limits = { ...DEFAULT_RECEIVER_LIMITS, ...options.limits };
  const { store } = options;
  const app = Fastify({
    bodyLimit: limits.bodyLimitBytes,
    requestTimeout: limits.requestTimeoutMs,
    connectionTimeout: limits.idleTimeoutMs,
    keepAliveTimeout: limits.idleTimeoutMs,
    // Node checks the request and header deadlines on this interval (every 30 s by default).
    http: { headersTimeout: Math.min(HEADERS_TIMEOUT_MS, limits.requestTimeoutMs), connectionsCheckingInterval: 1_000 },
    genReqId: () => randomUUID(),
    // Never a token, never a payload, never a query (a profile lookup's names a user): method, path and status only.
    logger:
      options.logger === undefined
        ? false
        : {
            ...(typeof options.logger === 'object' ? options.logger : {}),
            serializers: { req: (request: FastifyRequest) => ({ method: request.method, path: request.url.split('?')[0] }) },
          },
    return503OnClosing: true,
  });
  app.server.maxConnections = limits.maxConnections;
  const waker = new StreamWaker((stream, error) => app.log.error({ err: error, stream }, 'could not start the workflow of a stream'));
  app.addHook('onClose', (_instance, done) => {
    waker.close();
    done();
  });
  const backlogs = new BacklogGuard(store, limits.maxBacklog);

  app.setErrorHandler((error: Error & { statusCode?: number }, request, reply) => {
    // Fastify's own refusals (a body too large, malformed JSON, an unsupported content type) say only what is wrong.
    if (error.statusCode !== undefined && error.statusCode < 500) return reply.code(error.statusCode).send({ error: error.message });
    request.log.error({ err: error }, 'request failed');
    if (error instanceof StoreUnavailableError) {
      return reply
        .code(503)
        .header('retry-after', String(RETRY_AFTER_SECONDS))
        .send({ error: 'the batch could not be stored; nothing of it was taken, send it again', requestId: request.id });
    }
    return reply.code(500).send({ error: 'internal error', requestId: request.id });
  });

  app.get('/healthz', () => ({ status: 'ok' }));
  app.get('/readyz', async (_request, reply) => {
    const within = <T>(check: Promise<T>) => withinDeadline(check, READY_DEADLINE_MS);
    const [storeOk, temporalOk] = await Promise.all([
      within(store.schemaVersion()),
      options.temporalReachable ? within(options.temporalReachable(Date.now() + READY_DEADLINE_MS)) : Promise.resolve(true),
    ]);
    const stalled = waker.failing();
    const checks = {
      store: storeOk ? 'ok' : 'unreachable',
      temporal: temporalOk ? 'ok' : 'unreachable',
      workflows: stalled.length === 0 ? 'ok' : `could not start the workflow of ${stalled.join(', ')} yet (retrying)`,
    };
    const ready = storeOk && temporalOk && stalled.length === 0;
    return reply.code(ready ? 200 : 503).send({ status: ready ? 'ready' : 'not ready', checks });
  });

  // Group commit: the batches of the requests that arrive together are kept in one transaction (one disk sync).
  const admit = coalesce((batches: AdmittedBatch[]) => store.admitIngress(batches, Date.now()));

  /** Keeps what the door refused, spools what it admitted (one transaction), and says what the sender gets back. */
  const spool = async (stream: string, kind: string, admitted: Admitted): Promise<IngressAck> => {
    try {
      const { spooled, duplicates } = await admit({ stream, ...admitted });
      backlogs.add(stream, spooled);
      options.usage?.add('rows_staged', { kind }, spooled);
      return { spooled, duplicates, deadLettered: admitted.letters.length };
    } catch (error) {
      throw new StoreUnavailableError('the store failed while spooling', { cause: error });
    }
  };

  if (options.currentsToken) {
    app.post('/currents', { onRequest: requireBearer(options.currentsToken) }, async (request, reply) => {
      const batch = currentsBatchSchema.safeParse(request.body);
      if (!batch.success) return reply.code(400).send({ error: `not a Currents batch: ${describeIssues(batch.error.issues)}` });
      if (await backlogs.isFull(CURRENTS_STREAM)) return busy(reply);
      const ack = await spool(CURRENTS_STREAM, CURRENTS_KIND, admitCurrentsEvents(batch.data.events));
      if (ack.spooled > 0) waker.wake(CURRENTS_STREAM, options.onCurrentsSpooled);
      return reply.code(200).send(ack);
    });
  }

  if (options.amplitudeWebhookToken) {
    const onCohortSpooled = options.onCohortSpooled ?? (() => Promise.resolve());
    app.post('/amplitude/cohorts', { onRequest: requireBearer(options.amplitudeWebhookToken) }, async (request, reply) => {
      const query = webhookTargetQuerySchema.safeParse(request.query);
      if (!query.success) return reply.code(400).send({ error: `bad webhook URL: ${describeIssues(query.error.issues)}` });
      const batch = cohortWebhookBatchSchema.safeParse(request.body);
      if (!batch.success) return reply.code(400).send({ error: `not a cohort webhook batch: ${describeIssues(batch.error.issues)}` });
      const { target, attribute } = query.data;
      const stream = cohortStreamInputSchema.safeParse({ cohortId: batch.data.cohort_id, target, attributeName: attribute });
      if (!stream.success) return reply.code(400).send({ error: `bad webhook URL: ${describeIssues(stream.error.issues)}` });
      const name = cohortStreamName(stream.data);
      if (await backlogs.isFull(name)) return busy(reply);
      const ack = await spool(name, COHORT_STREAM_KIND, admitCohortWebhook(batch.data, Date.now()));
      if (ack.spooled > 0) waker.wake(name, () => onCohortSpooled(stream.data));
      return reply.code(200).send(ack);
    });
  }

  if (options.amplitudeStreamToken) {
    const onEventStreamSpooled = options.onEventStreamSpooled ?? (() => Promise.resolve());
    app.post<{ Params: { name: string } }>(
      '/amplitude/stream/:name',
      { onRequest: requireBearer(options.amplitudeStreamToken) },
      async (request, reply) => {
        const name = eventStreamNameSchema.safeParse(request.params.name);
        if (!name.success) return reply.code(400).send({ error: `bad stream name: ${describeIssues(name.error.issues)}` });
        const body = streamedBodySchema.safeParse(request.body);
        if (!body.success) return reply.code(400).send({ error: `not an Amplitude event or user: ${describeIssues(body.error.issues)}` });
        const stream = eventStreamSpool(name.data);
        if (await backlogs.isFull(stream)) return busy(reply);
        const ack = await spool(stream, EVENT_STREAM_KIND, admitStreamed(body.data));
        if (ack.spooled > 0) waker.wake(stream, () => onEventStreamSpooled(name.data));
        return reply.code(200).send(ack);
      },
    );
  }

  if (options.connectedContent) {
    const { lookups, token, cacheSeconds, fallbackBody } = options.connectedContent;
    app.get('/connected-content/userprofile', { onRequest: requireBearer(token, { alsoBasicAndApiKey: true }) }, async (request, reply) => {
      const query = request.url.indexOf('?');
      let answer: ProfileLookup;
      try {
        answer = await lookups.lookup(new URLSearchParams(query < 0 ? '' : request.url.slice(query + 1)));
      } catch (error) {
        // The store failed: the message still goes out, with the fallback (a 5xx would cost Braze the message).
        request.log.error({ err: error }, 'profile lookup failed');
        lookups.counts.fallbacks.failed += 1;
        lookups.counts.answers.fallback += 1;
        answer = { status: 200, body: fallbackBody, source: 'fallback', refreshQueued: false };
      }
      if (answer.source) reply.header('x-profile-source', answer.source);
      if (answer.ageSeconds !== undefined) reply.header('x-profile-age', String(answer.ageSeconds));
      if (answer.refreshQueued) reply.header('x-profile-refresh', 'queued');
      // Braze caches GET answers for minutes: a fallback must not stand in for the profile that long.
      const cacheable = answer.status === 200 && answer.source !== 'fallback';
      return reply
        .code(answer.status)
        .header('cache-control', cacheable ? `private, max-age=${cacheSeconds}` : 'no-store')
        .type('application/json; charset=utf-8')
        .send(answer.body);
    });
  }

  if (options.status) {
    const { token, quotas } = options.status;
    const lookups = options.connectedContent?.lookups;
    app.get('/metrics', { onRequest: requireBearer(token) }, async (_request, reply) => {
      const metrics = (await storeMetrics(store, quotas)) + (lookups ? connectedContentMetrics(lookups) : '');
      return reply.type('text/plain; version=0.0.4').header('cache-control', 'no-store').send(metrics);
    });
    app.get('/status', { onRequest: requireBearer(token) }, async (request, reply) => {
      const days = statusQuerySchema.safeParse(request.query);
      if (!days.success) return reply.code(400).send({ error: `bad query: ${describeIssues(days.error.issues)}` });
      const page = usagePage(await usageReport(store, quotas, days.data));
      return reply.type('text/html; charset=utf-8').header('cache-control', 'no-store').send(page);
    });
  }
  return app;
}

/** The Connected Content counters in Prometheus' text format. */
function connectedContentMetrics(lookups: ConnectedContent): string {
  const { answers, fetches, fallbacks } = lookups.counts;
  const counter = (name: string, help: string, label: string, values: Record<string, number>) => [
    `# HELP ${name} ${help}`,
    `# TYPE ${name} counter`,
    ...Object.entries(values).map(([value, count]) => `${name}{${label}="${value}"} ${count}`),
  ];
  return [
    ...counter(
      'ampbraze_connected_content_answers_total',
      'Connected Content profile answers, by where they came from.',
      'source',
      answers,
    ),
    ...counter('ampbraze_connected_content_fetches_total', 'User Profile API fetches the receiver made, by outcome.', 'outcome', fetches),
    ...counter('ampbraze_connected_content_fallbacks_total', 'Fallback answers, by why no profile could be had.', 'reason', fallbacks),
    '',
  ].join('\n');
}

/**
 * An `onRequest` hook: refuses a request without `Authorization: Bearer <token>` before its body is read, and
 * closes the connection, so an unauthenticated sender cannot make the receiver read or parse anything it sent.
 * `alsoBasicAndApiKey` also takes the token as basic auth's password (Connected Content's `:basic_auth`) or as
 * `Api-Key <token>` (a template that called Amplitude changes only its URL and the key's value).
 */
function requireBearer(token: Secret, options: { alsoBasicAndApiKey?: boolean } = {}) {
  const expected = digest(token.reveal());
  return async (request: FastifyRequest, reply: FastifyReply) => {
    const authorization = request.headers.authorization ?? '';
    // RFC 6750: the scheme is case-insensitive. Digests are compared, so neither length nor prefix leaks.
    const given =
      /^bearer +(\S+) *$/i.exec(authorization)?.[1] ?? (options.alsoBasicAndApiKey ? otherSchemeToken(authorization) : undefined);
    if (given !== undefined && timingSafeEqual(digest(given), expected)) return;
    return reply
      .code(401)
      .header('www-authenticate', 'Bearer')
      .header('connection', 'close')
      .send({ error: 'missing or wrong bearer token' });
  };
}

/** The token of `Basic base64(user:token)` or `Api-Key token`. */
function otherSchemeToken(authorization: string): string | undefined {
  const basic = /^basic +([A-Za-z0-9+/=]+) *$/i.exec(authorization)?.[1];
  if (basic !== undefined) {
    const credentials = Buffer.from(basic, 'base64').toString('utf8');
    return credentials.slice(credentials.indexOf(':') + 1);
  }
  return /^api-key +(\S+) *$/i.exec(authorization)?.[1];
}

function digest(value: string): Buffer {
  return createHash('sha256').update(value).digest();
}

function busy(reply: FastifyReply) {
  return reply
    .code(503)
    .header('retry-after', String(RETRY_AFTER_SECONDS))
    .send({ error: 'the receiver’s backlog for this stream is full (RECEIVER_MAX_BACKLOG); send it again later' });
}

/** Whether `check` settles successfully within `ms`; a check still running then counts as failed (and is left to end). */
async function withinDeadline(check: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), ms)));
  try {
    return await Promise.race([
      check.then(
        () => true,
        () => false,
      ),
      late,
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Refuses more items for a stream whose backlog reached the limit, rather than growing the spool until the disk is
 * full. The count is read from the store at most once a second per stream and kept current with what is spooled.
 */
class BacklogGuard {
  readonly #known = new Map<string, { pending: number; readAtMs: number }>();

  constructor(
    private readonly store: StateStore,
    private readonly maxBacklog: number,
  ) {}

  async isFull(stream: string): Promise<boolean> {
    const now = Date.now();
    let known = this.#known.get(stream);
    if (!known || now - known.readAtMs > BACKLOG_CACHE_MS) {
      try {
        known = { pending: (await this.store.ingressBacklog(stream, now)).pending, readAtMs: now };
      } catch (error) {
        throw new StoreUnavailableError('the store failed while reading the backlog', { cause: error });
      }
      this.#known.set(stream, known);
    }
    return known.pending >= this.maxBacklog;
  }

  add(stream: string, spooled: number): void {
    const known = this.#known.get(stream);
    if (known) known.pending += spooled;
  }
}
