/**
 * Braze Currents engagement events for the sandbox's profiles, shaped as the Custom HTTP connector posts them.
 * Event n is a pure function of (seed, n, audience), so any number is generated lazily and one seed always gives
 * the same events, ids included.
 */
import { createRng } from '../../http-util.js';
import { hash32, hashString, hex, pick, uuidFrom } from '../../seeded.js';

export interface CurrentsEventUser {
  /** The braze_id. */
  user_id: string;
  external_user_id?: string;
  device_id?: string;
  timezone: string;
}

export interface CurrentsEvent {
  event_type: string;
  /** Globally unique: what a consumer deduplicates at-least-once delivery by. */
  id: string;
  /** Unix seconds. */
  time: number;
  user: CurrentsEventUser;
  properties: Record<string, unknown>;
}

/** A profile as an event names it. */
export interface CurrentsUser {
  brazeId: string;
  externalId?: string;
  deviceId?: string;
}

/** Profiles read by position, so that a store of millions is not copied into user objects. */
export interface UserPool {
  readonly size: number;
  at(position: number): CurrentsUser;
}

/** Identified users have an external_id; anonymous ones only a device_id; the rest neither, only a braze_id. */
export interface CurrentsAudience {
  identified: UserPool;
  anonymous: UserPool;
  brazeIdOnly: UserPool;
}

type IdentityKind = keyof CurrentsAudience;

export interface CurrentsGenerationOptions {
  count: number;
  /** Default 1. */
  seed?: number;
  /** Share of events by anonymous users, known only by a device_id (default 0.05). */
  anonymousFraction?: number;
  /** Share of events by users with neither an external_id nor a device_id (default 0.005). */
  brazeIdOnlyFraction?: number;
  /** Unix seconds the events lead up to (default: the current time). */
  nowSeconds?: number;
  /** The events happened during this many seconds before `nowSeconds` (default 3,600). */
  spreadSeconds?: number;
}

interface Draw {
  rng: () => number;
  user: CurrentsUser;
  time: number;
  seed: number;
}

interface EventKind {
  type: string;
  weight: number;
  /** Email events need an address, which anonymous users do not have. */
  email?: boolean;
  properties(draw: Draw): Record<string, unknown>;
}

const EVENT_SALT = hashString('currents-event');
const ID_SALT = hashString('currents-id');
const SYNTHETIC_SALT = hashString('currents-synthetic-user');
const SESSION_SALT = hashString('currents-session');
const DISPATCH_SALT = hashString('currents-dispatch');
const HOUR_SECONDS = 3_600;
/** Users drawn for a kind the sandbox has no profile of come from this many synthetic ones, so they recur. */
const SYNTHETIC_USERS = 1_000;

/** A UUID-like id that is a pure function of the parts. */
function stableId(...parts: number[]): string {
  const h = (n: number) => hash32(...parts, n);
  return uuidFrom([h(1), h(2), h(3)], hex(h(4), 8) + hex(h(5), 4));
}

const named = (text: string) => stableId(hashString(text));

const APPS = { ios: named('app/ios'), android: named('app/android'), web: named('app/web') } as const;
const CAMPAIGNS = ['Weekly mix', 'Premium trial offer', 'New releases this Friday', 'We miss you'].map((name) => ({
  name,
  id: named(`campaign/${name}`),
  variations: [named(`campaign/${name}/a`), named(`campaign/${name}/b`)],
}));
const TIMEZONES = [
  'America/New_York',
  'America/Los_Angeles',
  'America/Toronto',
  'America/Sao_Paulo',
  'Europe/London',
  'Europe/Berlin',
  'Europe/Paris',
  'Asia/Tokyo',
  'Asia/Kolkata',
] as const;
const USER_AGENTS = [
  'Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148',
  'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36',
  'Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15',
] as const;
const GENRES = ['rock', 'jazz', 'pop', 'classical', 'hip-hop', 'electronic'] as const;
const PRODUCTS = [
  { product_id: 'premium_monthly', price: 9.99 },
  { product_id: 'family_monthly', price: 14.99 },
  { product_id: 'premium_annual', price: 99.99 },
] as const;

/** The fields every message engagement event carries; a dispatch is one campaign's send in one hour. */
function messageFields({ rng, time, seed }: Draw): Record<string, unknown> {
  const campaignIndex = Math.floor(rng() * CAMPAIGNS.length);
  const campaign = CAMPAIGNS[campaignIndex]!;
  return {
    campaign_id: campaign.id,
    campaign_name: campaign.name,
    message_variation_id: pick(rng, campaign.variations),
    send_id: stableId(seed, DISPATCH_SALT, campaignIndex, Math.floor(time / HOUR_SECONDS), 1),
    dispatch_id: stableId(seed, DISPATCH_SALT, campaignIndex, Math.floor(time / HOUR_SECONDS), 2),
  };
}

const emailFields = (draw: Draw) => ({ ...messageFields(draw), email_address: `${draw.user.externalId ?? draw.user.brazeId}@example.com` });

function pushFields(draw: Draw): Record<string, unknown> {
  const platform = draw.rng() < 0.55 ? 'ios' : 'android';
  return { ...messageFields(draw), platform, app_id: APPS[platform] };
}

const anyApp = (rng: () => number) => pick(rng, [APPS.ios, APPS.android, APPS.web]);

function customEvent({ rng }: Draw): Record<string, unknown> {
  const songId = `song-${Math.floor(rng() * 5_000)}`;
  const events = [
    { name: 'song_played', properties: { song_id: songId, genre: pick(rng, GENRES) } },
    { name: 'playlist_created', properties: { playlist_size: 1 + Math.floor(rng() * 50) } },
    { name: 'song_shared', properties: { song_id: songId, network: pick(rng, ['whatsapp', 'instagram', 'link']) } },
  ];
  return { app_id: anyApp(rng), ...pick(rng, events) };
}

function purchase({ rng }: Draw): Record<string, unknown> {
  const product = pick(rng, PRODUCTS);
  return { app_id: anyApp(rng), ...product, currency: 'USD', properties: { source: pick(rng, ['paywall', 'settings', 'email']) } };
}

const sessionStart = ({ rng, seed }: Draw) => ({
  app_id: anyApp(rng),
  session_id: stableId(seed, SESSION_SALT, Math.floor(rng() * 4294967296)),
});

/** Weighted roughly as a music app's traffic: each email funnel step rarer than the one before. */
const EVENT_KINDS: readonly EventKind[] = [
  { type: 'users.messages.email.Send', weight: 20, email: true, properties: emailFields },
  { type: 'users.messages.email.Delivery', weight: 18, email: true, properties: emailFields },
  {
    type: 'users.messages.email.Open',
    weight: 9,
    email: true,
    properties: (d) => ({ ...emailFields(d), user_agent: pick(d.rng, USER_AGENTS) }),
  },
  {
    type: 'users.messages.email.Click',
    weight: 3,
    email: true,
    properties: (d) => ({ ...emailFields(d), url: 'https://example.com/listen', user_agent: pick(d.rng, USER_AGENTS) }),
  },
  { type: 'users.messages.pushnotification.Send', weight: 12, properties: pushFields },
  { type: 'users.messages.pushnotification.Open', weight: 3, properties: pushFields },
  { type: 'users.behaviors.CustomEvent', weight: 20, properties: customEvent },
  { type: 'users.behaviors.Purchase', weight: 3, properties: purchase },
  { type: 'users.behaviors.app.SessionStart', weight: 12, properties: sessionStart },
];
const DEVICE_EVENT_KINDS = EVENT_KINDS.filter((kind) => !kind.email);

export const CURRENTS_EVENT_TYPES: readonly string[] = EVENT_KINDS.map((kind) => kind.type);

function pickWeighted(rng: () => number, kinds: readonly EventKind[]): EventKind {
  let remaining = rng() * kinds.reduce((sum, kind) => sum + kind.weight, 0);
  for (const kind of kinds) {
    remaining -= kind.weight;
    if (remaining < 0) return kind;
  }
  return kinds[kinds.length - 1]!;
}

/** When the sandbox has no profile of a kind, a synthetic user keeps the configured shares. */
function syntheticUser(seed: number, kind: IdentityKind, position: number): CurrentsUser {
  const h = (n: number) => hash32(seed, SYNTHETIC_SALT, hashString(kind), position, n);
  // Braze ids of sandbox profiles are slot numbers, far below this prefix.
  const brazeId = `ff${hex(h(1), 8)}${hex(h(2), 8)}${hex(h(3), 6)}`;
  if (kind === 'identified') return { brazeId, externalId: `currents-user-${hex(h(4), 8)}` };
  if (kind === 'anonymous') return { brazeId, deviceId: stableId(seed, SYNTHETIC_SALT, position, h(5)) };
  return { brazeId };
}

function drawUser(rng: () => number, audience: CurrentsAudience, kind: IdentityKind, seed: number): CurrentsUser {
  const pool = audience[kind];
  const size = pool.size > 0 ? pool.size : SYNTHETIC_USERS;
  const position = Math.floor(rng() * size);
  return pool.size > 0 ? pool.at(position) : syntheticUser(seed, kind, position);
}

function eventUser(user: CurrentsUser): CurrentsEventUser {
  return {
    user_id: user.brazeId,
    ...(user.externalId === undefined ? {} : { external_user_id: user.externalId }),
    ...(user.deviceId === undefined ? {} : { device_id: user.deviceId }),
    timezone: TIMEZONES[hashString(user.brazeId) % TIMEZONES.length]!,
  };
}

export function* generateCurrentsEvents(audience: CurrentsAudience, options: CurrentsGenerationOptions): Generator<CurrentsEvent> {
  const seed = (options.seed ?? 1) >>> 0;
  const anonymousFraction = options.anonymousFraction ?? 0.05;
  const brazeIdOnlyFraction = options.brazeIdOnlyFraction ?? 0.005;
  const nowSeconds = Math.floor(options.nowSeconds ?? Date.now() / 1000);
  const spreadSeconds = options.spreadSeconds ?? HOUR_SECONDS;
  for (let index = 0; index < options.count; index++) {
    const rng = createRng(hash32(seed, EVENT_SALT, index));
    const identityDraw = rng();
    const kind: IdentityKind =
      identityDraw < brazeIdOnlyFraction
        ? 'brazeIdOnly'
        : identityDraw < brazeIdOnlyFraction + anonymousFraction
          ? 'anonymous'
          : 'identified';
    const user = drawUser(rng, audience, kind, seed);
    const time = nowSeconds - Math.floor(rng() * spreadSeconds);
    const eventKind = pickWeighted(rng, kind === 'anonymous' ? DEVICE_EVENT_KINDS : EVENT_KINDS);
    yield {
      event_type: eventKind.type,
      // The index as the tail makes ids unique within a seed; the hashes make them differ between seeds.
      id: uuidFrom(
        [hash32(seed, ID_SALT, index, 1), hash32(seed, ID_SALT, index, 2), hash32(seed, ID_SALT, index, 3)],
        index.toString(16).padStart(12, '0'),
      ),
      time,
      user: eventUser(user),
      properties: eventKind.properties({ rng, user, time, seed }),
    };
  }
}
