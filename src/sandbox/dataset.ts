/**
 * The deterministic, seeded world both sandboxes share. Every user, cohort membership and event is a pure
 * function of (seed, index), so a 2,000,000-user dataset costs no memory until a test overrides something.
 */
import { GENRES, HourlyEvents, type SandboxEvent } from './dataset-events.js';
import { createRng } from './http-util.js';
import { hash32, hashString, pick, toUnit, uuidFrom } from './seeded.js';

export type { ExportLine, SandboxEvent } from './dataset-events.js';

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
  /** Before the dataset's event window: every event of the user comes after it. */
  firstSeenAt: Date;
  lastSeenAt: Date;
  /** As of the dataset's `now` (see `userPropertiesAt`). */
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

export interface DatasetOptions {
  seed: number;
  users: number;
  identifiedFraction?: number;
  brazeKnownFraction?: number;
  /** The dataset's "present": users were last seen, and events uploaded, in the 180 days before it. */
  now?: number;
  /** Events uploaded per hour, roughly (default: one per 80 users, at most 250). */
  eventsPerHour?: number;
  /** Fraction (0..1) of an hour's events that happened up to `lateEventMaxHours` before their upload (default 0.02). */
  lateEventFraction?: number;
  /** Default 48. */
  lateEventMaxHours?: number;
}

const DAY_MS = 24 * 60 * 60 * 1000;
const HOUR_MS = 60 * 60 * 1000;
const LAST_SEEN_SPREAD_MS = 180 * DAY_MS;
/** First activities spread over the year before the event window (and its late events). */
const FIRST_SEEN_SPREAD_MS = 365 * DAY_MS;
const AMPLITUDE_ID_BASE = 356_896_000_000;
const APP_ID = 187_520;
const USERS_PER_DEFAULT_HOURLY_EVENT = 80;
const MAX_DEFAULT_EVENTS_PER_HOUR = 250;

const PLANS = ['free', 'free', 'free', 'premium', 'premium', 'family'] as const;
const COUNTRIES = ['US', 'GB', 'DE', 'FR', 'BR', 'JP', 'IN', 'CA'] as const;

/** The seeded profile properties `props=1` exports without `propKeys` (every user also has `level`, which grows daily). */
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
const FIRST_SEEN_SALT = hashString('first-seen');

type MembershipBase = { kind: 'rule'; seed: number; salt: number; fraction: number } | { kind: 'explicit'; members: ReadonlySet<number> };

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
  readonly eventsPerHour: number;
  readonly lateEventFraction: number;
  readonly lateEventMaxHours: number;
  private readonly identifiedFraction: number;
  private readonly brazeKnownFraction: number;
  private readonly cohortStates = new Map<string, CohortState>();
  private readonly hourlyEvents: HourlyEvents;

  constructor(options: DatasetOptions) {
    if (!Number.isInteger(options.users) || options.users < 0) throw new Error('users must be a non-negative integer');
    this.seed = options.seed >>> 0;
    this.userCount = options.users;
    this.now = options.now ?? Date.now();
    this.identifiedFraction = options.identifiedFraction ?? 0.8;
    this.brazeKnownFraction = options.brazeKnownFraction ?? 0.9;
    this.eventsPerHour =
      options.eventsPerHour ?? Math.min(MAX_DEFAULT_EVENTS_PER_HOUR, Math.ceil(this.userCount / USERS_PER_DEFAULT_HOURLY_EVENT));
    this.lateEventFraction = options.lateEventFraction ?? 0.02;
    this.lateEventMaxHours = options.lateEventMaxHours ?? 48;
    if (!(this.eventsPerHour >= 0 && Number.isFinite(this.eventsPerHour))) throw new Error('eventsPerHour must be a non-negative number');
    if (!(this.lateEventFraction >= 0 && this.lateEventFraction <= 1)) throw new Error('lateEventFraction must be between 0 and 1');
    if (!(this.lateEventMaxHours >= 0 && Number.isFinite(this.lateEventMaxHours)))
      throw new Error('lateEventMaxHours must be a non-negative number');
    this.hourlyEvents = new HourlyEvents(this);
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
    const { lastSeenAt, purchases, properties } = this.drawProfile(rng, this.levelAt(index, this.now));
    return {
      ...identity,
      deviceId: this.deviceIdOf(index),
      firstSeenAt: new Date(this.firstSeenAt(index)),
      lastSeenAt,
      properties,
      computations: {
        songs_played_30d: `${Math.floor(rng() * 500)}.0`,
        purchases_90d: `${purchases}.0`,
        lifetime_spend: `${(properties.ltv * 10_000).toFixed(1)}`,
      },
      recommendations: [this.recommendation(rng, 'rec-top-picks', lastSeenAt), this.recommendation(rng, 'rec-new-releases', lastSeenAt)],
    };
  }

  /**
   * A user's properties as they were at `timeMs`, as events of that time carry them: the seeded ones, which never
   * change, and `level`, the whole days since the user's first activity, which only grows.
   */
  userPropertiesAt(index: number, timeMs: number): Record<string, PropertyValue> {
    const rng = this.userRng(index);
    this.drawIdentityFlags(rng);
    return this.drawProfile(rng, this.levelAt(index, timeMs)).properties;
  }

  /** Epoch ms of the user's first activity. */
  firstSeenAt(index: number): number {
    const beforeWindow = LAST_SEEN_SPREAD_MS + this.lateEventMaxHours * HOUR_MS;
    return this.now - beforeWindow - Math.floor(toUnit(hash32(this.seed, FIRST_SEEN_SALT, index)) * FIRST_SEEN_SPREAD_MS);
  }

  private levelAt(index: number, timeMs: number): number {
    return Math.max(0, Math.floor((timeMs - this.firstSeenAt(index)) / DAY_MS));
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

  /** Events are uploaded from here until `now`. */
  get eventWindowStart(): number {
    return this.now - LAST_SEEN_SPREAD_MS;
  }

  /** An upper bound on `eventsInHour(…)`, for size estimates. */
  get maxEventsPerHour(): number {
    return this.hourlyEvents.maxPerHour;
  }

  /**
   * The events whose server upload time falls in the hour starting at `hourStartMs`, ordered by upload time (and
   * streamed: a minute's worth is held at a time). Users are sampled per hour, regardless of `lastSeenAt`, so
   * that recent hours, which a sync reads most, are not near-empty. None before `eventWindowStart` or from `now` on.
   */
  eventsInHour(hourStartMs: number): Generator<SandboxEvent> {
    return this.hourlyEvents.inHour(hourStartMs);
  }

  /** `[...eventsInHour(hourStartMs)].length`, without building the events. */
  countEventsInHour(hourStartMs: number): number {
    return this.hourlyEvents.countInHour(hourStartMs);
  }

  /** Amplitude ids from here on belong to no dataset user, for users first seen by a sandbox. */
  get firstUnusedAmplitudeId(): number {
    return AMPLITUDE_ID_BASE + this.userCount;
  }

  private userRng(index: number): () => number {
    if (this.validIndex(index) === undefined) throw new RangeError(`no user at index ${index}`);
    return createRng(hash32(this.seed, USER_SALT, index));
  }

  /** The draws after the identity: when the user was last seen, and the properties (with `level` as given). */
  private drawProfile(rng: () => number, level: number) {
    const lastSeenAt = new Date(this.now - Math.floor(rng() * LAST_SEEN_SPREAD_MS));
    const plan = pick(rng, PLANS);
    const genres = GENRES.filter(() => rng() < 0.3);
    const purchases = Math.floor(rng() * 40);
    const ltv = plan === 'free' ? 0 : Math.round(rng() * 50_000) / 100;
    const properties = { plan, country: pick(rng, COUNTRIES), ltv, beta_tester: rng() < 0.05, favorite_genres: genres, level };
    return { lastSeenAt, purchases, properties };
  }

  /** The first draws of a user's stream, so `identity(i)` and `user(i)` agree without computing the rest. */
  private drawIdentity(rng: () => number, index: number): SandboxIdentity {
    const { identified, existsInBraze } = this.drawIdentityFlags(rng);
    return {
      index,
      amplitudeId: String(AMPLITUDE_ID_BASE + index),
      userId: identified ? `user-${String(index).padStart(6, '0')}` : null,
      existsInBraze,
    };
  }

  private drawIdentityFlags(rng: () => number): { identified: boolean; existsInBraze: boolean } {
    const identified = rng() < this.identifiedFraction;
    return { identified, existsInBraze: rng() < this.brazeKnownFraction };
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
