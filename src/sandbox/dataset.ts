/**
 * The deterministic, seeded world both sandboxes share. Every user, cohort membership and event is a pure
 * function of (seed, index), so a 2,000,000-user dataset costs no memory until a test overrides something.
 */
import { createRng } from './http-util.js';
import { formatAmplitudeTime, hash32, hashString, hex, pick, toUnit, uuidFrom } from './seeded.js';

export type PropertyValue = string | number | boolean | string[];

export interface SandboxRecommendation {
  rec_id: string;
  child_rec_id: string;
  items: string[];
  is_control: boolean;
  recommendation_source: string;
  /** Epoch seconds. */
  last_updated: number;
}

/** The ids of a user: cheap to compute, for code that walks millions of users. */
export interface SandboxIdentity {
  index: number;
  /** Numeric string, as in Amplitude's cohort CSV. */
  amplitudeId: string;
  /** Null for anonymous users. */
  userId: string | null;
  /** Known to Braze: identified users by external_id (= user_id), anonymous ones by their SDK's device_id. */
  existsInBraze: boolean;
}

export interface SandboxUser extends SandboxIdentity {
  deviceId: string;
  lastSeenAt: Date;
  properties: Record<string, PropertyValue>;
  /** Amplitude returns computations as strings, e.g. "5000000.0". */
  computations: Record<string, string>;
  recommendations: SandboxRecommendation[];
}

/** The §3.2 cohort list fields (times in epoch seconds). */
export interface SandboxCohort {
  id: string;
  appId: number;
  name: string;
  description: string;
  size: number;
  lastComputed: number;
  lastMod: number;
  createdAt: number;
  archived: boolean;
  hidden: boolean;
  published: boolean;
  finished: boolean;
  type: string;
  owners: string[];
  viewers: string[];
}

export interface CohortDefinition {
  id: string;
  name: string;
  /** Fraction (0..1) of all users, anonymous included, that the hash rule puts in the cohort. */
  memberFraction: number;
  description?: string;
}

/** One event as the Export API writes it (one JSON line). */
export interface SandboxEvent {
  $insert_id: string;
  amplitude_id: number;
  user_id: string | null;
  device_id: string;
  event_type: string;
  /** Amplitude's `YYYY-MM-DD HH:MM:SS.ffffff` (UTC). */
  event_time: string;
  server_upload_time: string;
  event_properties: Record<string, PropertyValue>;
  user_properties: Record<string, PropertyValue>;
  groups: Record<string, never>;
  uuid: string;
}

export interface DatasetOptions {
  seed: number;
  users: number;
  identifiedFraction?: number;
  brazeKnownFraction?: number;
  /** The dataset's "present": users were last seen in the 180 days before it. */
  now?: number;
}

const DAY_MS = 24 * 60 * 60 * 1000;
const HOUR_MS = 60 * 60 * 1000;
const LAST_SEEN_SPREAD_MS = 180 * DAY_MS;
const AMPLITUDE_ID_BASE = 356_896_000_000;
const APP_ID = 187_520;
const MAX_ACTIVE_USERS_PER_HOUR = 100;
const MAX_EVENTS_PER_USER_HOUR = 4;
const USERS_PER_ACTIVE_USER_HOUR = 200;

const PLANS = ['free', 'free', 'free', 'premium', 'premium', 'family'] as const;
const COUNTRIES = ['US', 'GB', 'DE', 'FR', 'BR', 'JP', 'IN', 'CA'] as const;
const GENRES = ['rock', 'jazz', 'pop', 'classical', 'hip-hop', 'electronic', 'folk', 'metal'] as const;
const EVENT_TYPES = ['Song Played', 'Page Viewed', 'Playlist Created', 'Purchase Completed'] as const;

/** Property names every user has; `props=1` without `propKeys` exports these. */
export const USER_PROPERTY_NAMES = ['plan', 'country', 'ltv', 'beta_tester', 'favorite_genres'] as const;

export const DEFAULT_COHORTS: readonly CohortDefinition[] = [
  { id: '26umsb5', name: 'Superfans', memberFraction: 0.01, description: 'Played 100+ songs in the last 7 days' },
  { id: '3k9x2pq', name: 'Premium trial candidates', memberFraction: 0.1, description: 'Free plan, active weekly' },
  { id: '5fh7t0w', name: 'Active listeners', memberFraction: 0.4, description: 'Played a song in the last 30 days' },
];

const RECOMMENDED_ITEMS = 10;

/** A plain loop: this runs for every user of a 2M-user dataset, where `Array.from` with a callback is slow. */
function songIds(rng: () => number, count: number): string[] {
  const ids: string[] = [];
  for (let i = 0; i < count; i++) ids.push(`song-${Math.floor(rng() * 5_000)}`);
  return ids;
}

const USER_SALT = hashString('user');
const DEVICE_SALT = hashString('device');
const EVENT_SALT = hashString('event');

type MembershipBase =
  | { kind: 'rule'; seed: number; salt: number; fraction: number }
  | { kind: 'explicit'; members: ReadonlySet<number> };

/** Which users are in a cohort: a hash rule or an explicit set, plus explicit additions and removals. Immutable. */
export class CohortMembership {
  private cachedSize: number | undefined;

  constructor(
    private readonly userCount: number,
    private readonly base: MembershipBase,
    private readonly added: ReadonlySet<number> = new Set(),
    private readonly removed: ReadonlySet<number> = new Set(),
  ) {}

  includes(index: number): boolean {
    if (this.added.has(index)) return true;
    if (this.removed.has(index)) return false;
    if (this.base.kind === 'explicit') return this.base.members.has(index);
    return toUnit(hash32(this.base.seed, this.base.salt, index)) < this.base.fraction;
  }

  /** Member indexes in ascending order. */
  *indexes(): Generator<number> {
    if (this.base.kind === 'explicit') {
      const candidates = new Set([...this.base.members, ...this.added]);
      yield* [...candidates].filter((index) => !this.removed.has(index)).sort((a, b) => a - b);
      return;
    }
    for (let index = 0; index < this.userCount; index++) if (this.includes(index)) yield index;
  }

  get size(): number {
    if (this.cachedSize === undefined) {
      let count = 0;
      for (const _ of this.indexes()) count++;
      this.cachedSize = count;
    }
    return this.cachedSize;
  }

  withMembers(indexes: Iterable<number>): CohortMembership {
    return new CohortMembership(this.userCount, { kind: 'explicit', members: new Set(indexes) });
  }

  withAdded(indexes: readonly number[]): CohortMembership {
    const removed = new Set(this.removed);
    for (const index of indexes) removed.delete(index);
    return new CohortMembership(this.userCount, this.base, new Set([...this.added, ...indexes]), removed);
  }

  withRemoved(indexes: readonly number[]): CohortMembership {
    const added = new Set(this.added);
    for (const index of indexes) added.delete(index);
    return new CohortMembership(this.userCount, this.base, added, new Set([...this.removed, ...indexes]));
  }
}

interface CohortState {
  listing: Omit<SandboxCohort, 'size'>;
  membership: CohortMembership;
}

export class Dataset {
  readonly seed: number;
  readonly userCount: number;
  readonly now: number;
  readonly appId = APP_ID;
  private readonly identifiedFraction: number;
  private readonly brazeKnownFraction: number;
  private readonly cohortStates = new Map<string, CohortState>();

  constructor(options: DatasetOptions) {
    if (!Number.isInteger(options.users) || options.users < 0) throw new Error('users must be a non-negative integer');
    this.seed = options.seed >>> 0;
    this.userCount = options.users;
    this.now = options.now ?? Date.now();
    this.identifiedFraction = options.identifiedFraction ?? 0.8;
    this.brazeKnownFraction = options.brazeKnownFraction ?? 0.9;
    for (const definition of DEFAULT_COHORTS) this.defineCohort(definition);
  }

  identity(index: number): SandboxIdentity {
    return this.drawIdentity(this.userRng(index), index);
  }

  *identities(): Generator<SandboxIdentity> {
    for (let index = 0; index < this.userCount; index++) yield this.identity(index);
  }

  user(index: number): SandboxUser {
    const rng = this.userRng(index);
    const identity = this.drawIdentity(rng, index);
    const lastSeenAt = new Date(this.now - Math.floor(rng() * LAST_SEEN_SPREAD_MS));
    const plan = pick(rng, PLANS);
    const genres = GENRES.filter(() => rng() < 0.3);
    const purchases = Math.floor(rng() * 40);
    const ltv = plan === 'free' ? 0 : Math.round(rng() * 50_000) / 100;
    return {
      ...identity,
      deviceId: this.deviceIdOf(index),
      lastSeenAt,
      properties: {
        plan,
        country: pick(rng, COUNTRIES),
        ltv,
        beta_tester: rng() < 0.05,
        favorite_genres: genres,
      },
      computations: {
        songs_played_30d: `${Math.floor(rng() * 500)}.0`,
        purchases_90d: `${purchases}.0`,
        lifetime_spend: `${(ltv * 10_000).toFixed(1)}`,
      },
      recommendations: [this.recommendation(rng, 'rec-top-picks', lastSeenAt), this.recommendation(rng, 'rec-new-releases', lastSeenAt)],
    };
  }

  *users(): Generator<SandboxUser> {
    for (let index = 0; index < this.userCount; index++) yield this.user(index);
  }

  indexOfAmplitudeId(amplitudeId: string): number | undefined {
    if (!/^\d+$/.test(amplitudeId)) return undefined;
    return this.validIndex(Number(amplitudeId) - AMPLITUDE_ID_BASE);
  }

  indexOfUserId(userId: string): number | undefined {
    const match = /^user-(\d{6,})$/.exec(userId);
    const index = match?.[1] === undefined ? undefined : this.validIndex(Number(match[1]));
    return index !== undefined && this.identity(index).userId === userId ? index : undefined;
  }

  indexOfDeviceId(deviceId: string): number | undefined {
    const index = this.validIndex(Number.parseInt(deviceId.slice(-12), 16));
    return index !== undefined && this.deviceIdOf(index) === deviceId ? index : undefined;
  }

  cohorts(): SandboxCohort[] {
    return [...this.cohortStates.values()].map((state) => ({ ...state.listing, size: state.membership.size }));
  }

  cohort(cohortId: string): SandboxCohort | undefined {
    const state = this.cohortStates.get(cohortId);
    return state && { ...state.listing, size: state.membership.size };
  }

  /** The cohort's current membership; immutable, so holding it is a snapshot. */
  cohortMembership(cohortId: string): CohortMembership | undefined {
    return this.cohortStates.get(cohortId)?.membership;
  }

  *cohortMembers(cohortId: string): Generator<SandboxIdentity> {
    for (const index of this.requireCohort(cohortId).membership.indexes()) yield this.identity(index);
  }

  cohortIdsOf(index: number): string[] {
    return [...this.cohortStates].filter(([, state]) => state.membership.includes(index)).map(([id]) => id);
  }

  defineCohort(definition: CohortDefinition): SandboxCohort {
    if (this.cohortStates.has(definition.id)) throw new Error(`cohort ${definition.id} already exists`);
    const createdAt = Math.floor(this.now / 1000) - 200 * 86_400 + this.cohortStates.size * 3_600;
    const computedAt = Math.floor(this.now / 1000) - 3_600;
    this.cohortStates.set(definition.id, {
      listing: {
        id: definition.id,
        appId: this.appId,
        name: definition.name,
        description: definition.description ?? '',
        lastComputed: computedAt,
        lastMod: computedAt,
        createdAt,
        archived: false,
        hidden: false,
        published: true,
        finished: true,
        type: 'redshift',
        owners: ['sandbox-owner@example.com'],
        viewers: [],
      },
      membership: new CohortMembership(this.userCount, {
        kind: 'rule',
        seed: this.seed,
        salt: hashString(definition.id),
        fraction: definition.memberFraction,
      }),
    });
    return this.cohort(definition.id) as SandboxCohort;
  }

  /** Replaces the membership with exactly these users (overriding the hash rule). */
  setCohortMembers(cohortId: string, amplitudeIds: readonly string[]): SandboxCohort {
    return this.recompute(cohortId, (membership) => membership.withMembers(this.indexesOf(amplitudeIds)));
  }

  addCohortMembers(cohortId: string, amplitudeIds: readonly string[]): SandboxCohort {
    return this.recompute(cohortId, (membership) => membership.withAdded(this.indexesOf(amplitudeIds)));
  }

  removeCohortMembers(cohortId: string, amplitudeIds: readonly string[]): SandboxCohort {
    return this.recompute(cohortId, (membership) => membership.withRemoved(this.indexesOf(amplitudeIds)));
  }

  /** An upper bound on `eventsInHour(…)`, for size estimates. */
  get maxEventsPerHour(): number {
    return this.activeUsersPerHour * MAX_EVENTS_PER_USER_HOUR;
  }

  private get activeUsersPerHour(): number {
    return Math.min(MAX_ACTIVE_USERS_PER_HOUR, Math.ceil(this.userCount / USERS_PER_ACTIVE_USER_HOUR));
  }

  /**
   * The events whose server upload time falls in the hour starting at `hourStartMs`, ordered by upload time:
   * a bounded number of users sampled per hour, a few events each. None before the 180-day window or after
   * `now`. The sample ignores `lastSeenAt` so that recent hours, which a sync reads most, are not near-empty.
   */
  *eventsInHour(hourStartMs: number): Generator<SandboxEvent> {
    const hourStart = Math.floor(hourStartMs / HOUR_MS) * HOUR_MS;
    if (hourStart < this.now - LAST_SEEN_SPREAD_MS || hourStart >= this.now || this.userCount === 0) return;
    const hourIndex = hourStart / HOUR_MS;
    const events: SandboxEvent[] = [];
    for (let slot = 0; slot < this.activeUsersPerHour; slot++) {
      const rng = createRng(hash32(this.seed, EVENT_SALT, hourIndex, slot));
      const user = this.user(Math.floor(rng() * this.userCount));
      const eventCount = 1 + Math.floor(rng() * MAX_EVENTS_PER_USER_HOUR);
      for (let n = 0; n < eventCount; n++) {
        const uploadedAt = hourStart + Math.floor(rng() * HOUR_MS);
        if (uploadedAt >= this.now) continue;
        events.push(this.event(user, rng, uploadedAt, `${hourIndex}-${slot}-${n}`));
      }
    }
    events.sort((a, b) => a.server_upload_time.localeCompare(b.server_upload_time));
    yield* events;
  }

  private event(user: SandboxUser, rng: () => number, uploadedAt: number, key: string): SandboxEvent {
    const eventType = pick(rng, EVENT_TYPES);
    const eventTime = uploadedAt - Math.floor(rng() * 5_000);
    const eventProperties: Record<string, PropertyValue> =
      eventType === 'Purchase Completed'
        ? { price: Math.round(rng() * 2_000) / 100, sku: `sku-${Math.floor(rng() * 100)}` }
        : eventType === 'Song Played'
          ? { genre: pick(rng, GENRES), duration_s: 60 + Math.floor(rng() * 300) }
          : { path: `/page/${Math.floor(rng() * 20)}` };
    const uuidHash = hash32(this.seed, hashString(key));
    return {
      $insert_id: `sandbox-${this.seed}-${key}`,
      amplitude_id: AMPLITUDE_ID_BASE + user.index,
      user_id: user.userId,
      device_id: user.deviceId,
      event_type: eventType,
      event_time: formatAmplitudeTime(eventTime),
      server_upload_time: formatAmplitudeTime(uploadedAt),
      event_properties: eventProperties,
      user_properties: { plan: user.properties.plan as string, country: user.properties.country as string },
      groups: {},
      uuid: uuidFrom([uuidHash, hash32(uuidHash, 1), hash32(uuidHash, 2)], hex(hash32(uuidHash, 3), 8) + hex(hash32(uuidHash, 4), 4)),
    };
  }

  private userRng(index: number): () => number {
    if (this.validIndex(index) === undefined) throw new RangeError(`no user at index ${index}`);
    return createRng(hash32(this.seed, USER_SALT, index));
  }

  /** The first draws of a user's stream, so `identity(i)` and `user(i)` agree without computing the rest. */
  private drawIdentity(rng: () => number, index: number): SandboxIdentity {
    const identified = rng() < this.identifiedFraction;
    return {
      index,
      amplitudeId: String(AMPLITUDE_ID_BASE + index),
      userId: identified ? `user-${String(index).padStart(6, '0')}` : null,
      existsInBraze: rng() < this.brazeKnownFraction,
    };
  }

  private recommendation(rng: () => number, recId: string, lastSeenAt: Date): SandboxRecommendation {
    return {
      rec_id: recId,
      child_rec_id: `${recId}-child`,
      items: songIds(rng, RECOMMENDED_ITEMS),
      is_control: rng() < 0.1,
      recommendation_source: 'model',
      last_updated: Math.floor(lastSeenAt.getTime() / 1000),
    };
  }

  /** The last 12 hex digits carry the index, so a device id maps back to its user without an index. */
  deviceIdOf(index: number): string {
    const hashes: [number, number, number] = [
      hash32(this.seed, DEVICE_SALT, index, 1),
      hash32(this.seed, DEVICE_SALT, index, 2),
      hash32(this.seed, DEVICE_SALT, index, 3),
    ];
    return uuidFrom(hashes, index.toString(16).padStart(12, '0'));
  }

  private validIndex(index: number): number | undefined {
    return Number.isInteger(index) && index >= 0 && index < this.userCount ? index : undefined;
  }

  private indexesOf(amplitudeIds: readonly string[]): number[] {
    return amplitudeIds.map((amplitudeId) => {
      const index = this.indexOfAmplitudeId(amplitudeId);
      if (index === undefined) throw new Error(`unknown amplitude id ${amplitudeId}`);
      return index;
    });
  }

  private requireCohort(cohortId: string): CohortState {
    const state = this.cohortStates.get(cohortId);
    if (!state) throw new Error(`unknown cohort ${cohortId}`);
    return state;
  }

  /** Applies a membership change and bumps `lastComputed`, strictly, even twice in the same second. */
  private recompute(cohortId: string, change: (membership: CohortMembership) => CohortMembership): SandboxCohort {
    const state = this.requireCohort(cohortId);
    state.membership = change(state.membership);
    const computedAt = Math.max(Math.floor(Date.now() / 1000), state.listing.lastComputed + 1);
    state.listing = { ...state.listing, lastComputed: computedAt, lastMod: computedAt };
    return this.cohort(cohortId) as SandboxCohort;
  }
}
