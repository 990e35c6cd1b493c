/**
 * Braze Currents events (the Custom HTTP connector's batches) and what they become in Amplitude, mapped as Braze's
 * own Amplitude connector maps them: the external user id as `user_id`, the Braze device id, event types named
 * `[Appboy] …` (custom events `[Appboy] [Custom Event] <name>`), seconds made milliseconds, the Currents `id` as
 * `insert_id` (Amplitude drops a repeat), `library` "Braze" and Braze's fields in `event_properties`. Pure.
 */
import { z } from 'zod';
import type { AmplitudeEvent } from '../amplitude/schemas.js';
import { identifierSchema, optionalIdentifierSchema } from '../ingress/bounds.js';
import type { JsonObject } from '../store/store.js';

/** The spool stream of Currents events. */
export const CURRENTS_STREAM = 'currents';
/** The kind its rows are counted under in the usage counts. */
export const CURRENTS_KIND = 'currents';
/** The workflow that drains it, and the signal the receiver sends it (with start) when it spools a batch. */
export const CURRENTS_FORWARD_WORKFLOW_ID = 'currents-forward';

/** Braze sends 100 events a batch by default; a larger batch is refused whole rather than half-read. */
export const MAX_CURRENTS_BATCH_EVENTS = 1_000;

export const currentsBatchSchema = z.looseObject({
  events: z.array(z.unknown()).max(MAX_CURRENTS_BATCH_EVENTS, `at most ${MAX_CURRENTS_BATCH_EVENTS} events a batch`),
});

/** Braze leaves an id out, or sends it null or empty, when the user has none. */
const optionalId = optionalIdentifierSchema.nullish();

/** Unix seconds that stay a safe integer as Amplitude's milliseconds. */
const MAX_TIME_SECONDS = Math.floor(Number.MAX_SAFE_INTEGER / 1000);

export const currentsEventSchema = z.looseObject({
  id: identifierSchema,
  event_type: z.string().min(1, 'must not be empty').max(1_024),
  /** Unix seconds. */
  time: z.number().int('must be whole Unix seconds').nonnegative().max(MAX_TIME_SECONDS),
  user: z
    .looseObject({ user_id: optionalId, external_user_id: optionalId, device_id: optionalId, timezone: z.string().max(255).nullish() })
    .optional(),
  properties: z.record(z.string(), z.unknown()).optional(),
});

export type CurrentsEvent = z.output<typeof currentsEventSchema>;

/** A Currents event's user in Amplitude, or why it has none: Braze's connector sends only these users too. */
export function amplitudeUserOf(event: Pick<CurrentsEvent, 'user'>): { user_id?: string; device_id?: string } | undefined {
  const userId = event.user?.external_user_id ?? undefined;
  const deviceId = event.user?.device_id ?? undefined;
  if (!userId && !deviceId) return undefined;
  return { ...(userId && { user_id: userId }), ...(deviceId && { device_id: deviceId }) };
}

/** Which events' partition a Currents event is in: one user (or device) keeps its order. */
export function partitionKeyOf(event: Pick<CurrentsEvent, 'user'>): string {
  const user = amplitudeUserOf(event);
  return user?.user_id ? `user_id:${user.user_id}` : user?.device_id ? `device_id:${user.device_id}` : 'none';
}

const CHANNELS: Record<string, string> = {
  email: 'Email',
  pushnotification: 'Push Notification',
  inappmessage: 'In-App Message',
  contentcard: 'Content Card',
  newsfeedcard: 'News Feed Card',
  sms: 'SMS',
  whatsapp: 'WhatsApp',
  webhook: 'Webhook',
};

const ACTIONS: Record<string, string> = {
  Send: 'Sent',
  Delivery: 'Delivered',
  Open: 'Opened',
  Click: 'Clicked',
  Bounce: 'Bounced',
  SoftBounce: 'Soft Bounced',
  MarkAsSpam: 'Marked As Spam',
  Unsubscribe: 'Unsubscribed',
  Impression: 'Viewed',
  Abort: 'Aborted',
  Dismiss: 'Dismissed',
  Rejection: 'Rejected',
  DeliveryFailure: 'Delivery Failed',
};

const words = (name: string) => name.replace(/([a-z])([A-Z])/g, '$1 $2');

/** The Amplitude event type of a Currents event type, e.g. `users.messages.email.Open` → `[Appboy] Email Opened`. */
export function amplitudeEventType(event: Pick<CurrentsEvent, 'event_type' | 'properties'>): string {
  const parts = event.event_type.split('.');
  if (event.event_type === 'users.behaviors.CustomEvent') {
    const name = event.properties?.name;
    return `[Appboy] [Custom Event] ${typeof name === 'string' && name ? name : 'unnamed'}`;
  }
  if (event.event_type === 'users.behaviors.Purchase') return '[Appboy] Purchase';
  if (parts[1] === 'messages' && parts.length === 4) {
    const [, , channel, action] = parts as [string, string, string, string];
    return `[Appboy] ${CHANNELS[channel] ?? words(channel)} ${ACTIONS[action] ?? words(action)}`;
  }
  // users.behaviors.app.SessionStart → Session Start; users.canvas.Entry → Canvas Entry; users.campaigns.Conversion → …
  const tail = parts.slice(1).filter((part) => !['behaviors', 'app'].includes(part));
  const named = tail.map((part) => words(part.charAt(0).toUpperCase() + part.slice(1)));
  return `[Appboy] ${named.join(' ')}`;
}

/**
 * Braze's fields as event properties; a custom event's or purchase's own properties are prefixed as Braze's connector
 * prefixes them, so they cannot collide with Braze's.
 */
function eventProperties(event: CurrentsEvent): JsonObject {
  const { properties: own, ...fields } = event.properties ?? {};
  const prefix =
    event.event_type === 'users.behaviors.CustomEvent'
      ? '[Custom event property] '
      : event.event_type === 'users.behaviors.Purchase'
        ? '[Purchase property] '
        : undefined;
  const properties: JsonObject = { ...(fields as JsonObject), braze_event_type: event.event_type };
  if (event.user?.user_id) properties.braze_id = event.user.user_id;
  if (prefix && own && typeof own === 'object' && !Array.isArray(own)) {
    for (const [key, value] of Object.entries(own as JsonObject)) properties[`${prefix}${key}`] = value;
  } else if (own !== undefined && !prefix) properties.properties = own as JsonObject;
  return properties;
}

/** The Amplitude event of a Currents event, or undefined for one with neither an external user id nor a device id. */
export function amplitudeEventOf(event: CurrentsEvent): AmplitudeEvent | undefined {
  const user = amplitudeUserOf(event);
  if (!user) return undefined;
  return {
    ...user,
    event_type: amplitudeEventType(event),
    time: event.time * 1000,
    insert_id: event.id,
    library: 'Braze',
    event_properties: eventProperties(event),
  };
}

/** Which Currents event types are forwarded: an allow list of prefixes (empty: all), then a deny list. */
export interface CurrentsFilter {
  include: readonly string[];
  exclude: readonly string[];
}

export function isForwarded(eventType: string, filter: CurrentsFilter): boolean {
  const matches = (prefix: string) => eventType === prefix || eventType.startsWith(prefix.endsWith('.') ? prefix : `${prefix}.`);
  if (filter.include.length > 0 && !filter.include.some(matches)) return false;
  return !filter.exclude.some(matches);
}
