/**
 * The dataset's events as the Export API serves them, generated minute by minute in upload-time order, so an
 * hour of a million events is never held at once. Every event is a pure function of (seed, minute, n).
 */
import type { Dataset, PropertyValue } from './dataset.js';
import { createRng } from './http-util.js';
import { formatAmplitudeTime, hash32, hashString, hex, pick, uuidFrom } from './seeded.js';

/** One line of an Export API file. */
export interface ExportLine {
  $insert_id: string | null;
  amplitude_id: number;
  /** Null for anonymous users. */
  user_id: string | null;
  device_id: string;
  event_type: string;
  event_id: number | null;
  /** The session's start in ms since the epoch; -1 outside a session. */
  session_id: number;
  /** Amplitude's `YYYY-MM-DD HH:MM:SS.ffffff` (UTC), as every time below. */
  event_time: string;
  client_event_time: string;
  server_received_time: string;
  /** What the Export API selects hours by. */
  server_upload_time: string;
  processed_time: string;
  library: string;
  platform: string | null;
  event_properties: Record<string, unknown>;
  user_properties: Record<string, unknown>;
  groups: Record<string, unknown>;
  uuid: string;
}

/** A seeded event: an export line with every optional part present. */
export interface SandboxEvent extends ExportLine {
  $insert_id: string;
  event_id: number;
  platform: string;
  event_properties: Record<string, PropertyValue>;
  user_properties: Record<string, PropertyValue>;
  groups: Record<string, never>;
}

const MINUTE_MS = 60_000;
const HOUR_MS = 60 * MINUTE_MS;
/** A minute's volume is within ±20% of the mean, so traffic is uneven without breaking the upper bound. */
const MINUTE_VOLUME_SPREAD = 0.2;
/** Users active in an hour send 2.5 events each on average, so small volumes still give users several events. */
const EVENTS_PER_ACTIVE_USER = 2.5;
/** Events that are not late reach Amplitude within 5 s. */
const ON_TIME_DELAY_MS = 5_000;
const MAX_PROCESSING_MS = 3_000;
const SESSION_MS = 30 * MINUTE_MS;

const EVENT_TYPES = ['Song Played', 'Page Viewed', 'Playlist Created', 'Purchase Completed'] as const;
export const GENRES = ['rock', 'jazz', 'pop', 'classical', 'hip-hop', 'electronic', 'folk', 'metal'] as const;
const PLATFORMS = [
  { platform: 'Web', library: 'amplitude-ts/2.11.0' },
  { platform: 'iOS', library: 'amplitude-swift/1.9.2' },
  { platform: 'Android', library: 'amplitude-android-kotlin/1.16.7' },
] as const;

const VOLUME_SALT = hashString('volume');
const ACTIVE_USER_SALT = hashString('active-user');
const EVENT_SALT = hashString('event');
const UUID_SALT = hashString('uuid');
const PLATFORM_SALT = hashString('platform');
const SESSION_SALT = hashString('session');

/** An event of a minute once its upload time is drawn; the rest is drawn from `rng` when it is built. */
interface DrawnEvent {
  n: number;
  uploadedAt: number;
  rng: () => number;
}

export class HourlyEvents {
  private readonly meanPerMinute: number;
  private readonly activeUsersPerHour: number;
  private readonly lateDelayMs: number;

  constructor(private readonly dataset: Dataset) {
    this.meanPerMinute = dataset.eventsPerHour / 60;
    this.activeUsersPerHour = Math.min(dataset.userCount, Math.ceil(dataset.eventsPerHour / EVENTS_PER_ACTIVE_USER));
    this.lateDelayMs = dataset.lateEventMaxHours * HOUR_MS;
  }

  /** No minute has more than `ceil(mean × 1.2)` events (see `countIn`). */
  get maxPerHour(): number {
    return 60 * Math.ceil(this.meanPerMinute * (1 + MINUTE_VOLUME_SPREAD));
  }

  *inHour(hourStartMs: number): Generator<SandboxEvent> {
    for (const minuteStart of this.minutesWithEvents(hourStartMs)) {
      const drawn = this.drawMinute(minuteStart).sort((a, b) => a.uploadedAt - b.uploadedAt || a.n - b.n);
      for (const event of drawn) yield this.build(event, minuteStart / MINUTE_MS);
    }
  }

  countInHour(hourStartMs: number): number {
    let count = 0;
    for (const minuteStart of this.minutesWithEvents(hourStartMs)) {
      // Only the minute `now` falls in needs its upload times drawn.
      count += minuteStart + MINUTE_MS <= this.dataset.now ? this.countIn(minuteStart) : this.drawMinute(minuteStart).length;
    }
    return count;
  }

  /** None before the dataset's event window, none from `now` on. */
  private *minutesWithEvents(hourStartMs: number): Generator<number> {
    const hourStart = Math.floor(hourStartMs / HOUR_MS) * HOUR_MS;
    if (hourStart < this.dataset.eventWindowStart || this.activeUsersPerHour === 0) return;
    for (let minuteStart = hourStart; minuteStart < hourStart + HOUR_MS && minuteStart < this.dataset.now; minuteStart += MINUTE_MS)
      yield minuteStart;
  }

  /** The mean ±20%, rounded at random so that the mean holds even below one event a minute. */
  private countIn(minuteStart: number): number {
    const rng = createRng(hash32(this.dataset.seed, VOLUME_SALT, minuteStart / MINUTE_MS));
    return Math.floor(this.meanPerMinute * (1 - MINUTE_VOLUME_SPREAD + 2 * MINUTE_VOLUME_SPREAD * rng()) + rng());
  }

  /** The minute's events uploaded before `now`, in the order they were drawn. */
  private drawMinute(minuteStart: number): DrawnEvent[] {
    const minuteIndex = minuteStart / MINUTE_MS;
    const drawn: DrawnEvent[] = [];
    for (let n = 0, count = this.countIn(minuteStart); n < count; n++) {
      const rng = createRng(hash32(this.dataset.seed, EVENT_SALT, minuteIndex, n));
      const uploadedAt = minuteStart + Math.floor(rng() * MINUTE_MS);
      if (uploadedAt < this.dataset.now) drawn.push({ n, uploadedAt, rng });
    }
    return drawn;
  }

  private build({ n, uploadedAt, rng }: DrawnEvent, minuteIndex: number): SandboxEvent {
    const { dataset } = this;
    const index = this.activeUser(Math.floor(uploadedAt / HOUR_MS), Math.floor(rng() * this.activeUsersPerHour));
    const identity = dataset.identity(index);
    const eventType = pick(rng, EVENT_TYPES);
    const late = rng() < dataset.lateEventFraction;
    const eventTime = uploadedAt - Math.floor(rng() * (late ? this.lateDelayMs : ON_TIME_DELAY_MS));
    const processedAt = uploadedAt + Math.floor(rng() * MAX_PROCESSING_MS);
    const eventProperties = eventPropertiesOf(eventType, rng);
    const { platform, library } = PLATFORMS[hash32(dataset.seed, PLATFORM_SALT, index) % PLATFORMS.length] as (typeof PLATFORMS)[number];
    const clientTime = formatAmplitudeTime(eventTime);
    const uploadTime = formatAmplitudeTime(uploadedAt);
    const uuidHash = hash32(dataset.seed, UUID_SALT, minuteIndex, n);
    return {
      $insert_id: `sandbox-${dataset.seed}-${minuteIndex}-${n}`,
      amplitude_id: Number(identity.amplitudeId),
      user_id: identity.userId,
      device_id: dataset.deviceIdOf(index),
      event_type: eventType,
      // Amplitude's per-device event counter; here it counts the seconds since the user's first activity.
      event_id: Math.max(0, Math.floor((eventTime - dataset.firstSeenAt(index)) / 1000)),
      session_id: this.sessionIdOf(index, eventTime),
      event_time: clientTime,
      client_event_time: clientTime,
      server_received_time: uploadTime,
      server_upload_time: uploadTime,
      processed_time: formatAmplitudeTime(processedAt),
      library,
      platform,
      event_properties: eventProperties,
      user_properties: dataset.userPropertiesAt(index, eventTime),
      groups: {},
      uuid: uuidFrom([uuidHash, hash32(uuidHash, 1), hash32(uuidHash, 2)], hex(hash32(uuidHash, 3), 8) + hex(hash32(uuidHash, 4), 4)),
    };
  }

  /** The user behind one of the hour's active-user slots. */
  private activeUser(hourIndex: number, slot: number): number {
    return hash32(this.dataset.seed, ACTIVE_USER_SALT, hourIndex, slot) % this.dataset.userCount;
  }

  /** Sessions are 30-minute windows, phased per user: a user's events in one window share its start. */
  private sessionIdOf(index: number, eventTime: number): number {
    const phase = hash32(this.dataset.seed, SESSION_SALT, index) % SESSION_MS;
    return Math.floor((eventTime - phase) / SESSION_MS) * SESSION_MS + phase;
  }
}

function eventPropertiesOf(eventType: (typeof EVENT_TYPES)[number], rng: () => number): Record<string, PropertyValue> {
  switch (eventType) {
    case 'Purchase Completed':
      return { price: Math.round(rng() * 2_000) / 100, sku: `sku-${Math.floor(rng() * 100)}` };
    case 'Song Played':
      return { genre: pick(rng, GENRES), duration_s: 60 + Math.floor(rng() * 300) };
    default:
      return { path: `/page/${Math.floor(rng() * 20)}` };
  }
}
