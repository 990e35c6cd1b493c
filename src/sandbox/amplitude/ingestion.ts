/**
 * Events Amplitude accepted through HTTP V2 or Batch: insert_id deduplication per device for 7 days, the
 * per-user/per-device rate limits, user property updates carried by events, and the lines the Export API adds
 * for them to the hour they were received in.
 */
import { createHash, randomUUID } from 'node:crypto';
import type { ExportLine } from '../dataset.js';
import { formatAmplitudeTime } from '../seeded.js';
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
const HOUR_MS = 60 * 60 * 1000;
/** The `library` Amplitude records for events sent without one: `http/2.0` as seen for HTTP V2, Batch's by analogy. */
const DEFAULT_LIBRARY: Record<IngestEndpoint, string> = { httpapi: 'http/2.0', batch: 'batch/1.0' };

/** Amplitude sets a missing device_id to a hash of the user_id. */
export function defaultDeviceId(userId: string): string {
  return createHash('sha256').update(userId).digest('hex').slice(0, 32);
}

/**
 * Whether a user id is among the `fraction` that `Ingestion.setHotIds` makes hot (a stable draw by id), so a
 * benchmark can tell the throttled ids from the others.
 */
export function isHotId(id: string, fraction: number): boolean {
  return createHash('sha256').update(id).digest().readUInt32BE(0) / 2 ** 32 < fraction;
}

export class Ingestion {
  private readonly events: IngestedEvent[] = [];
  /** Ids other sources push over the per-id limit until `untilMs`: each is throttled whatever this client sends. */
  private hotIds = { fraction: 0, untilMs: 0 };
  /** Events Amplitude cannot take and will not say so by index (see `setUnnamedRefusals`), by insert_id. */
  private unnamedRefusals = new Set<string>();
  /** `device_id \0 insert_id` → when it was first ingested. */
  private readonly insertIds = new Map<string, number>();
  /** Hour index → that hour's lines, in upload-time order. */
  private readonly exportLinesByHour = new Map<number, ExportLine[]>();
  private readonly rateCounters: Record<IngestEndpoint, FixedWindowCounter>;

  /** `onIngested`: each event stored (not a repeat), as its Export API line: what a streaming destination sends. */
  constructor(
    private readonly profiles: ProfileStore,
    private readonly rateLimits: Record<IngestEndpoint, RateLimit>,
    private readonly onIngested: (line: ExportLine) => void = () => undefined,
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

  /** The Export API lines of the events received in the hour starting at `hourStartMs`, in upload-time order. */
  exportLinesInHour(hourStartMs: number): readonly ExportLine[] {
    return this.exportLinesByHour.get(Math.floor(hourStartMs / HOUR_MS)) ?? [];
  }

  /**
   * Makes a share of all user ids hot for a while, as if the app's own SDKs sent them at more than the
   * per-id limit: events of those ids are throttled (429 naming them) until `forMs` has passed.
   */
  setHotIds(fraction: number, forMs: number, now = Date.now()): void {
    this.hotIds = { fraction, untilMs: now + forMs };
  }

  /**
   * Makes requests holding an event with one of these insert_ids fail with a 400 that names no event ("Invalid event
   * JSON", no index maps), as Amplitude answers for an event it cannot read; an empty list ends it.
   */
  setUnnamedRefusals(insertIds: readonly string[]): void {
    this.unnamedRefusals = new Set(insertIds);
  }

  /** Whether this request holds an event refused without being named. */
  refusesUnnamed(events: ReadonlyArray<Record<string, unknown>>): boolean {
    return this.unnamedRefusals.size > 0 && events.some((event) => this.unnamedRefusals.has(String(event.insert_id)));
  }

  /** Which ids (and so which events) this request would push over the per-id limit; undefined if none. */
  throttling(endpoint: IngestEndpoint, events: ReadonlyArray<Record<string, unknown>>, now = Date.now()): Throttling | undefined {
    const { eventsPerSecondPerId, windowMs } = this.rateLimits[endpoint];
    const limit = eventsPerSecondPerId * (windowMs / 1000);
    const counter = this.rateCounters[endpoint];
    const hot = now < this.hotIds.untilMs ? this.hotIds.fraction : 0;
    const totals = new Map<string, number>();
    const throttledEvents: number[] = [];
    events.forEach((event, index) => {
      let throttled = false;
      for (const key of rateKeys(event)) {
        const background = hot > 0 && key.startsWith('user:') && isHotId(key.slice('user:'.length), hot) ? limit : 0;
        const total = (totals.get(key) ?? counter.count(key) + background) + 1;
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
    return {
      epsThreshold: eventsPerSecondPerId,
      throttledUsers: ratesOver('user:'),
      throttledDevices: ratesOver('device:'),
      throttledEvents,
    };
  }

  /** Stores the events (already validated, device_id set), skipping insert_id repeats. */
  ingest(endpoint: IngestEndpoint, events: ReadonlyArray<Record<string, unknown>>, now = Date.now()): void {
    for (const event of events) {
      for (const key of rateKeys(event)) this.rateCounters[endpoint].add(key, 1, now);
      if (this.isDuplicate(event, now)) continue;
      const ids = { userId: event.user_id as string | undefined, deviceId: event.device_id as string };
      const userKey = this.profiles.markSeen(ids);
      if (event.user_properties) this.profiles.updateProperties(ids, event.user_properties as UserProperties);
      this.events.push({ endpoint, receivedAt: now, event });
      const line = exportLineOf(endpoint, now, event, this.profiles.amplitudeIdOf(userKey));
      this.addExportLine(line, now);
      this.onIngested(line);
    }
  }

  private addExportLine(line: ExportLine, receivedAt: number): void {
    const hourIndex = Math.floor(receivedAt / HOUR_MS);
    const lines = this.exportLinesByHour.get(hourIndex) ?? [];
    this.exportLinesByHour.set(hourIndex, lines);
    lines.push(line);
    // Requests are ingested in receive order, unless a caller passes an earlier `now`.
    const previous = lines[lines.length - 2];
    if (previous && previous.server_upload_time > line.server_upload_time)
      lines.sort((a, b) => a.server_upload_time.localeCompare(b.server_upload_time));
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

const isRecord = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value);

/** The Export API line of an ingested (validated) event: the fields it was sent with, Amplitude's times and ids. */
function exportLineOf(endpoint: IngestEndpoint, receivedAt: number, event: Record<string, unknown>, amplitudeId: number): ExportLine {
  const eventTime = formatAmplitudeTime(typeof event.time === 'number' ? event.time : receivedAt);
  const received = formatAmplitudeTime(receivedAt);
  return {
    $insert_id: typeof event.insert_id === 'string' ? event.insert_id : null,
    amplitude_id: amplitudeId,
    user_id: typeof event.user_id === 'string' ? event.user_id : null,
    device_id: event.device_id as string,
    event_type: event.event_type as string,
    event_id: typeof event.event_id === 'number' ? event.event_id : null,
    session_id: typeof event.session_id === 'number' ? event.session_id : -1,
    event_time: eventTime,
    client_event_time: eventTime,
    server_received_time: received,
    server_upload_time: received,
    processed_time: received,
    library: typeof event.library === 'string' ? event.library : DEFAULT_LIBRARY[endpoint],
    platform: typeof event.platform === 'string' ? event.platform : null,
    event_properties: isRecord(event.event_properties) ? event.event_properties : {},
    user_properties: isRecord(event.user_properties) ? event.user_properties : {},
    groups: isRecord(event.groups) ? event.groups : {},
    uuid: randomUUID(),
  };
}

function rateKeys(event: Record<string, unknown>): string[] {
  return [...(typeof event.user_id === 'string' ? [`user:${event.user_id}`] : []), `device:${event.device_id as string}`];
}
