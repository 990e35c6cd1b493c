/**
 * Amplitude's Webhooks streaming destination: every event Amplitude ingests that the destination's filter selects
 * (*Send Events*) is POSTed alone, as its Export API JSON, as soon as it is ingested; with *Send Users*, the user and
 * their properties are POSTed too (on each event that carries user properties, and on each Identify call), in the
 * Identify user format. Each delivery is an attempt of about 4 s holding up to 3 quick retries on a 5xx or 429, then
 * up to 9 more attempts over 4 hours, then it expires. Deliveries run concurrently, so they arrive unordered.
 *
 * On demand (for the demo and the tests) a share of deliveries is dropped (a webhook Amplitude gave up on), posted
 * twice (a retry after an answer that was lost), or held back a random while (reordering). The draws are seeded.
 */
import { createHash } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { z } from 'zod';
import type { ExportLine } from '../dataset.js';
import { postRetrySchema, RetryingPoster, type PostTally } from '../retrying-post.js';

/** Amplitude allows up to five custom headers on a webhook destination. */
const MAX_CUSTOM_HEADERS = 5;
/** Amplitude's later attempts of a delivery: 9 more within 4 hours (its published total; the spacing is ours). */
const AMPLITUDE_RETRY_DELAYS_MS = [60_000, 120_000, 300_000, 600_000, 900_000, 1_800_000, 2_700_000, 3_600_000, 3_420_000];

export const eventStreamDestinationSchema = z.object({
  url: z.url({ protocol: /^https?$/ }),
  headers: z
    .record(z.string(), z.string())
    .default({})
    .refine((headers) => Object.keys(headers).length <= MAX_CUSTOM_HEADERS, { message: `at most ${MAX_CUSTOM_HEADERS} custom headers` }),
  sendEvents: z.boolean().default(true),
  /** *Send Events*' filter: the event types sent; absent: every event. */
  eventTypes: z.array(z.string()).optional(),
  sendUsers: z.boolean().default(false),
  /** One attempt: its posts (the first and its quick retries) must be answered within this, together. */
  attemptTimeoutMs: z.number().int().positive().default(4_000),
  quickRetries: z.number().int().min(0).max(10).default(3),
  /** The waits before each later attempt; the delivery expires after the last. Tests shorten them. */
  retryDelaysMs: z.array(z.number().int().nonnegative()).max(20).default(AMPLITUDE_RETRY_DELAYS_MS),
  /** Deliveries in flight at once. */
  connections: z.number().int().min(1).max(256).default(32),
  /** Deliveries (events and users alike) never sent, as if every attempt had failed: a seeded share. */
  dropFraction: z.number().min(0).max(1).default(0),
  /** Deliveries posted once more after their acknowledgement: a seeded share. */
  duplicateFraction: z.number().min(0).max(1).default(0),
  /** Each delivery waits a seeded random time up to this before its first post, so deliveries overtake each other. */
  maxDelayMs: z.number().int().nonnegative().default(0),
  seed: z.number().int().default(1),
  /** Keep each acknowledged post's time to its answer in the report (`ackLatenciesMs`), as a benchmark wants. */
  collectAckLatencies: z.boolean().default(false),
});
export type EventStreamDestination = z.input<typeof eventStreamDestinationSchema>;
type Destination = z.output<typeof eventStreamDestinationSchema>;

export interface EventStreamReport extends PostTally {
  /** Events selected for the destination (each counted once, however often it was posted). */
  events: number;
  /** User updates selected for the destination. */
  users: number;
  /** Deliveries dropped on purpose: the insert ids of the dropped events, and how many user updates. */
  droppedEventInsertIds: string[];
  droppedUsers: number;
  /** Deliveries posted twice on purpose. */
  duplicatesSent: number;
  /** Deliveries that expired after their last attempt. */
  expired: number;
}

/** The Identify user format the destination sends users in. */
export interface StreamedUser {
  user_id: string | null;
  device_id: string | null;
  user_properties: Record<string, unknown>;
}

export class EventStreamWebhooks {
  private destination: Destination | undefined;
  private poster: RetryingPoster | undefined;
  private report = emptyEventStreamReport();
  private readonly inFlight = new Set<Promise<void>>();
  /** Deliveries posting now, and those waiting for one of them to finish. */
  private posting = 0;
  private readonly waiting: Array<() => void> = [];
  private readonly closing = new AbortController();
  private deliveries = 0;

  /** Throws a ZodError for an invalid destination; `undefined` stops sending (deliveries in flight go on). */
  configure(destination: EventStreamDestination | undefined): void {
    this.destination = destination === undefined ? undefined : eventStreamDestinationSchema.parse(destination);
    void this.poster?.close();
    this.poster = undefined;
    const configured = this.destination;
    if (!configured) return;
    if (configured.collectAckLatencies) this.report.ackLatenciesMs ??= [];
    const headers = { ...configured.headers, 'user-agent': 'Amplitude/Webhook/1.0' };
    const target = {
      url: configured.url,
      headers,
      timeoutMs: configured.attemptTimeoutMs,
      retry: postRetrySchema.parse(undefined),
      connections: configured.connections,
    };
    this.poster = new RetryingPoster(target, this.report, this.closing.signal);
  }

  /** An event Amplitude has just ingested (its Export API line). */
  eventIngested(line: ExportLine): void {
    const destination = this.destination;
    if (!destination) return;
    if (destination.sendEvents && (destination.eventTypes?.includes(line.event_type) ?? true)) {
      this.report.events += 1;
      this.deliver(destination, JSON.stringify(line), line.$insert_id ?? line.uuid);
    }
    if (Object.keys(line.user_properties).length > 0)
      this.userIdentified({ user_id: line.user_id, device_id: line.device_id, user_properties: line.user_properties });
  }

  /** A user's properties set through an event or the Identify API. */
  userIdentified(user: StreamedUser): void {
    const destination = this.destination;
    if (!destination?.sendUsers) return;
    this.report.users += 1;
    this.deliver(destination, JSON.stringify(user), undefined);
  }

  /** Everything sent so far. */
  sent(): EventStreamReport {
    return {
      ...this.report,
      statuses: { ...this.report.statuses },
      droppedEventInsertIds: [...this.report.droppedEventInsertIds],
      ...(this.report.ackLatenciesMs && { ackLatenciesMs: [...this.report.ackLatenciesMs] }),
    };
  }

  /** Resolves once every delivery so far was acknowledged, dropped or expired. */
  async settled(): Promise<void> {
    while (this.inFlight.size > 0) await Promise.all([...this.inFlight]);
  }

  /** Aborts the deliveries still retrying. */
  close(): void {
    this.closing.abort(new Error('the Amplitude sandbox is closing'));
    void this.poster?.close();
  }

  private deliver(destination: Destination, body: string, eventInsertId: string | undefined): void {
    const draw = (what: string) => seededFraction(`${destination.seed}|${what}|${this.deliveries}`);
    this.deliveries += 1;
    if (draw('drop') < destination.dropFraction) {
      if (eventInsertId === undefined) this.report.droppedUsers += 1;
      else this.report.droppedEventInsertIds.push(eventInsertId);
      return;
    }
    const twice = draw('duplicate') < destination.duplicateFraction;
    const delayMs = Math.floor(draw('delay') * destination.maxDelayMs);
    const poster = this.poster!;
    const delivery = (async () => {
      await this.takeSlot(destination.connections);
      try {
        if (delayMs > 0) await sleep(delayMs, undefined, { signal: this.closing.signal });
        if (!(await this.attempts(poster, destination, body))) this.report.expired += 1;
        else if (twice && /^2\d\d$/.test(await poster.postOnce(body))) this.report.duplicatesSent += 1;
      } finally {
        this.releaseSlot();
      }
    })().catch(() => undefined);
    this.inFlight.add(delivery);
    void delivery.finally(() => this.inFlight.delete(delivery));
  }

  /** Amplitude's attempts of one delivery: true once acknowledged, false when it expired. */
  private async attempts(poster: RetryingPoster, destination: Destination, body: string): Promise<boolean> {
    for (let attempt = 0; attempt <= destination.retryDelaysMs.length; attempt++) {
      if (attempt > 0) await sleep(destination.retryDelaysMs[attempt - 1], undefined, { signal: this.closing.signal });
      const deadline = Date.now() + destination.attemptTimeoutMs;
      for (let post = 0; post <= destination.quickRetries && Date.now() < deadline; post++) {
        const outcome = await poster.postOnce(body, deadline - Date.now(), attempt > 0 || post > 0);
        if (/^2\d\d$/.test(outcome)) return true;
        // Only a 5xx or a 429 is retried within the attempt; a timeout or a network error ends it.
        if (!/^(5\d\d|429)$/.test(outcome)) break;
      }
    }
    return false;
  }

  /** Waits for one of `connections` delivery slots. */
  private async takeSlot(connections: number): Promise<void> {
    if (this.posting < connections) {
      this.posting += 1;
      return;
    }
    // The slot passes directly from the delivery that releases it.
    await new Promise<void>((resolve) => this.waiting.push(resolve));
  }

  private releaseSlot(): void {
    const next = this.waiting.shift();
    if (next) next();
    else this.posting -= 1;
  }
}

export function emptyEventStreamReport(): EventStreamReport {
  return {
    events: 0,
    users: 0,
    posts: 0,
    retriedPosts: 0,
    statuses: {},
    droppedEventInsertIds: [],
    droppedUsers: 0,
    duplicatesSent: 0,
    expired: 0,
  };
}

/** A stable draw in [0, 1) for a key. */
function seededFraction(key: string): number {
  return createHash('sha256').update(key).digest().readUInt32BE(0) / 2 ** 32;
}
