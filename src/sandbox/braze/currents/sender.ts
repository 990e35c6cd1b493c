/**
 * The Currents Custom HTTP connector's delivery: `{"events":[…]}` batches of one event type each, posted with
 * `Braze-Currents-Version: 1`, retried on every non-2xx answer, network error or timeout with capped
 * exponential backoff until acknowledged or past a deadline, and, when asked, delivered more than once on
 * purpose (Currents is at-least-once). Memory stays bounded: events are read as batches fill, and ids are only
 * kept when asked for.
 */
import { z } from 'zod';
import { createRng } from '../../http-util.js';
import { postRetrySchema, RetryingPoster } from '../../retrying-post.js';
import type { CurrentsEvent } from './events.js';

export const MAX_CURRENTS_BATCH_SIZE = 100;

const fraction = z.number().min(0).max(1);

export const currentsSenderOptionsSchema = z.object({
  url: z.url({ protocol: /^https?$/ }),
  /** Sent with every post (e.g. `Authorization: Bearer …`); the Currents headers cannot be overridden. */
  headers: z.record(z.string(), z.string()).default({}),
  batchSize: z.number().int().min(1).max(MAX_CURRENTS_BATCH_SIZE).default(MAX_CURRENTS_BATCH_SIZE),
  /** Share of acknowledged batches posted again, whole. */
  duplicateBatchFraction: fraction.default(0),
  /** Share of acknowledged events repeated inside a later batch of their type (with room for one new event). */
  duplicateEventFraction: fraction.default(0),
  retry: postRetrySchema,
  /** Batches in flight at once. */
  concurrency: z.number().int().min(1).max(64).default(4),
  /** A post unanswered for this long counts as failed and is retried. */
  requestTimeoutMs: z.number().int().positive().default(30_000),
  /** Seeds the draws of which batches and events are duplicated. */
  seed: z.number().int().default(1),
  /** Report the ids of the acknowledged events (off by default: a large send would hold every one). */
  collectAcknowledgedIds: z.boolean().default(false),
  /** Report how long each acknowledged post took to be answered (a benchmark's acknowledge latency). */
  collectAckLatencies: z.boolean().default(false),
});

export type CurrentsSenderOptions = z.input<typeof currentsSenderOptionsSchema>;
type SenderSettings = z.output<typeof currentsSenderOptionsSchema>;

export interface CurrentsSendReport {
  /** Events read from the source, each once. */
  events: number;
  /** Batches formed from them (not counting posts of a batch again). */
  batches: number;
  /** Every HTTP attempt: first posts, retries and duplicates. */
  posts: number;
  /** Attempts after a failed one. */
  retriedPosts: number;
  /** Attempts by outcome: the HTTP status, `timeout` or `network_error`. */
  statuses: Record<string, number>;
  /** Acknowledged batches that were acknowledged again on purpose. */
  duplicateBatchesSent: number;
  /** Acknowledged copies beyond an event's first: those of duplicated batches and those repeated in later batches. */
  duplicateEventsSent: number;
  /** Batches never acknowledged by their deadline. */
  gaveUp: number;
  /** Events of those batches, which the receiver may never have seen. */
  gaveUpEvents: number;
  durationMs: number;
  /** With `collectAcknowledgedIds`: each acknowledged event's id once, in the order acknowledged. */
  acknowledgedEventIds?: string[];
  /** With `collectAckLatencies`: each acknowledged post's time to its answer, in ms. */
  ackLatenciesMs?: number[];
}

interface Batch {
  eventType: string;
  events: CurrentsEvent[];
  /** The first this many events are copies of already acknowledged ones. */
  copies: number;
}

export class CurrentsSender {
  private readonly settings: SenderSettings;

  /** Throws a ZodError for invalid options. */
  constructor(options: CurrentsSenderOptions) {
    this.settings = currentsSenderOptionsSchema.parse(options);
  }

  /** Resolves once every batch was acknowledged or given up; rejects with the signal's reason when aborted. */
  async send(events: Iterable<CurrentsEvent>, signal?: AbortSignal): Promise<CurrentsSendReport> {
    const delivery = new Delivery(this.settings, signal);
    return delivery.run(events);
  }
}

/** One send's state, shared by its concurrent workers. */
class Delivery {
  private readonly report: CurrentsSendReport;
  private readonly rng: () => number;
  /** Acknowledged events waiting to ride again in their type's next batch. */
  private readonly pendingCopies = new Map<string, CurrentsEvent[]>();
  private readonly stop = new AbortController();
  private readonly poster: RetryingPoster;

  constructor(
    private readonly settings: SenderSettings,
    private readonly signal: AbortSignal | undefined,
  ) {
    this.rng = createRng(settings.seed);
    this.report = {
      events: 0,
      batches: 0,
      posts: 0,
      retriedPosts: 0,
      statuses: {},
      duplicateBatchesSent: 0,
      duplicateEventsSent: 0,
      gaveUp: 0,
      gaveUpEvents: 0,
      durationMs: 0,
      ...(settings.collectAcknowledgedIds ? { acknowledgedEventIds: [] } : {}),
      ...(settings.collectAckLatencies ? { ackLatenciesMs: [] } : {}),
    };
    // The Currents headers cannot be overridden by the configured ones.
    const headers = { ...settings.headers, 'content-type': 'application/json', 'braze-currents-version': '1' };
    const target = {
      url: settings.url,
      headers,
      timeoutMs: settings.requestTimeoutMs,
      retry: settings.retry,
      connections: settings.concurrency,
    };
    this.poster = new RetryingPoster(target, this.report, this.stop.signal);
  }

  async run(events: Iterable<CurrentsEvent>): Promise<CurrentsSendReport> {
    const started = Date.now();
    const abort = () => this.stop.abort(this.signal?.reason);
    if (this.signal?.aborted) abort();
    this.signal?.addEventListener('abort', abort, { once: true });
    const batches = this.batches(events);
    const worker = async () => {
      // Workers share one generator: it runs synchronously to each yield, so they never enter it at once.
      for (let next = batches.next(); !next.done; next = batches.next()) await this.deliver(next.value);
    };
    try {
      // A failing worker stops the others, so the agent is only destroyed once none is posting.
      const workers = Array.from({ length: this.settings.concurrency }, () => worker().catch((error: unknown) => this.stop.abort(error)));
      await Promise.all(workers);
      if (this.stop.signal.aborted) throw this.stop.signal.reason;
    } finally {
      this.signal?.removeEventListener('abort', abort);
      await this.poster.close();
    }
    return { ...this.report, durationMs: Date.now() - started };
  }

  /** A queue per event type: a batch leaves when full, and the partial ones when the events run out. */
  private *batches(events: Iterable<CurrentsEvent>): Generator<Batch> {
    const filling = new Map<string, Batch>();
    for (const event of events) {
      this.report.events += 1;
      let batch = filling.get(event.event_type);
      if (!batch) {
        batch = this.startBatch(event.event_type);
        filling.set(event.event_type, batch);
      }
      batch.events.push(event);
      if (batch.events.length >= this.settings.batchSize) {
        filling.delete(event.event_type);
        this.report.batches += 1;
        yield batch;
      }
    }
    for (const batch of filling.values()) {
      this.report.batches += 1;
      yield batch;
    }
  }

  private startBatch(eventType: string): Batch {
    const pending = this.pendingCopies.get(eventType) ?? [];
    const copies = pending.splice(0, this.settings.batchSize - 1);
    return { eventType, events: copies, copies: copies.length };
  }

  private async deliver(batch: Batch): Promise<void> {
    const body = JSON.stringify({ events: batch.events });
    const originals = batch.events.slice(batch.copies);
    if (!(await this.poster.postUntilAcknowledged(body))) {
      this.report.gaveUp += 1;
      this.report.gaveUpEvents += originals.length;
      return;
    }
    this.report.duplicateEventsSent += batch.copies;
    for (const event of originals) this.report.acknowledgedEventIds?.push(event.id);
    this.offerCopies(batch.eventType, originals);
    if (this.rng() < this.settings.duplicateBatchFraction && (await this.poster.postUntilAcknowledged(body))) {
      this.report.duplicateBatchesSent += 1;
      this.report.duplicateEventsSent += batch.events.length;
    }
  }

  private offerCopies(eventType: string, events: readonly CurrentsEvent[]): void {
    const fraction = this.settings.duplicateEventFraction;
    if (fraction === 0) return;
    const pending = this.pendingCopies.get(eventType) ?? [];
    this.pendingCopies.set(eventType, pending);
    for (const event of events) {
      // At most a batch's worth waits per type, so copies cannot pile up.
      if (pending.length < this.settings.batchSize && this.rng() < fraction) pending.push(event);
    }
  }
}
