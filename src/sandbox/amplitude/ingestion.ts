/**
 * Events Amplitude accepted through HTTP V2 or Batch: insert_id deduplication per device for 7 days, the
 * per-user/per-device rate limits, and user property updates carried by events.
 */
import { createHash } from 'node:crypto';
import { FixedWindowCounter } from './limits.js';
import type { ProfileStore } from './profiles.js';
import type { UserProperties } from './user-properties.js';

export type IngestEndpoint = 'httpapi' | 'batch';

export interface IngestedEvent {
  endpoint: IngestEndpoint;
  /** Server upload time, ms since the epoch. */
  receivedAt: number;
  /** The event as sent, with `device_id` defaulted from `user_id` when it was missing. */
  event: Record<string, unknown>;
}

export interface Throttling {
  epsThreshold: number;
  throttledUsers: Record<string, number>;
  throttledDevices: Record<string, number>;
  throttledEvents: number[];
}

export interface RateLimit {
  eventsPerSecondPerId: number;
  /** Amplitude averages the rate over this window. */
  windowMs: number;
}

const DEDUP_WINDOW_MS = 7 * 24 * 60 * 60 * 1000;

/** Amplitude sets a missing device_id to a hash of the user_id. */
export function defaultDeviceId(userId: string): string {
  return createHash('sha256').update(userId).digest('hex').slice(0, 32);
}

export class Ingestion {
  private readonly events: IngestedEvent[] = [];
  /** `device_id \0 insert_id` → when it was first ingested. */
  private readonly insertIds = new Map<string, number>();
  private readonly rateCounters: Record<IngestEndpoint, FixedWindowCounter>;

  constructor(
    private readonly profiles: ProfileStore,
    private readonly rateLimits: Record<IngestEndpoint, RateLimit>,
  ) {
    this.rateCounters = {
      httpapi: new FixedWindowCounter(rateLimits.httpapi.windowMs),
      batch: new FixedWindowCounter(rateLimits.batch.windowMs),
    };
  }

  get count(): number {
    return this.events.length;
  }

  list(): IngestedEvent[] {
    return [...this.events];
  }

  /** Which ids (and so which events) this request would push over the per-id limit; undefined if none. */
  throttling(endpoint: IngestEndpoint, events: ReadonlyArray<Record<string, unknown>>): Throttling | undefined {
    const { eventsPerSecondPerId, windowMs } = this.rateLimits[endpoint];
    const limit = eventsPerSecondPerId * (windowMs / 1000);
    const counter = this.rateCounters[endpoint];
    const totals = new Map<string, number>();
    const throttledEvents: number[] = [];
    events.forEach((event, index) => {
      let throttled = false;
      for (const key of rateKeys(event)) {
        const total = (totals.get(key) ?? counter.count(key)) + 1;
        totals.set(key, total);
        if (total > limit) throttled = true;
      }
      if (throttled) throttledEvents.push(index);
    });
    if (throttledEvents.length === 0) return undefined;
    const ratesOver = (prefix: string) =>
      Object.fromEntries(
        [...totals]
          .filter(([key, total]) => key.startsWith(prefix) && total > limit)
          .map(([key, total]) => [key.slice(prefix.length), total / (windowMs / 1000)]),
      );
    return { epsThreshold: eventsPerSecondPerId, throttledUsers: ratesOver('user:'), throttledDevices: ratesOver('device:'), throttledEvents };
  }

  /** Stores the events (already validated, device_id set), skipping insert_id repeats. */
  ingest(endpoint: IngestEndpoint, events: ReadonlyArray<Record<string, unknown>>, now = Date.now()): void {
    for (const event of events) {
      for (const key of rateKeys(event)) this.rateCounters[endpoint].add(key, 1, now);
      if (this.isDuplicate(event, now)) continue;
      const ids = { userId: event.user_id as string | undefined, deviceId: event.device_id as string };
      this.profiles.markSeen(ids);
      if (event.user_properties) this.profiles.updateProperties(ids, event.user_properties as UserProperties);
      this.events.push({ endpoint, receivedAt: now, event });
    }
  }

  private isDuplicate(event: Record<string, unknown>, now: number): boolean {
    if (typeof event.insert_id !== 'string') return false;
    const key = `${event.device_id as string}\0${event.insert_id}`;
    const firstSeen = this.insertIds.get(key);
    if (firstSeen !== undefined && now - firstSeen < DEDUP_WINDOW_MS) return true;
    this.insertIds.set(key, now);
    return false;
  }
}

function rateKeys(event: Record<string, unknown>): string[] {
  return [...(typeof event.user_id === 'string' ? [`user:${event.user_id}`] : []), `device:${event.device_id as string}`];
}
