/**
 * What one exported Amplitude event means for the pipeline, as pure functions: the user it is activity of,
 * whether it is forwarded to Braze, and the Braze custom event it becomes (properties within Braze's rules).
 */
import type { ExportedEvent } from '../amplitude/schemas.js';
import type { AmplitudeIdentity, JsonObject, JsonValue, UserActivity } from '../store/store.js';
import type { EventSelection } from '../../kinds/event-sync/input.js';

const MAX_STRING_LENGTH = 255;
const MAX_NESTED_BYTES = 100 * 1024;
/** Keys Braze refuses in event properties. */
const RESERVED_PROPERTY_KEYS = new Set(['time', 'event_name']);

/** Amplitude's `YYYY-MM-DD HH:MM:SS[.ffffff]` (UTC) as ms since the epoch, or undefined when unreadable. */
export function amplitudeTimeMs(time: string): number | undefined {
  const match = /^(\d{4}-\d{2}-\d{2})[ T](\d{2}:\d{2}:\d{2})(\.\d+)?Z?$/.exec(time);
  if (!match) return undefined;
  const millis = (match[3] ?? '.000').slice(1, 4).padEnd(3, '0');
  const ms = Date.parse(`${match[1]}T${match[2]}.${millis}Z`);
  return Number.isNaN(ms) ? undefined : ms;
}

/** The event's identity across exports, reruns and backfills: its `$insert_id`, else its `uuid`. */
export function eventKeyOf(event: ExportedEvent): string | undefined {
  if (event.$insert_id) return `insert:${event.$insert_id}`;
  return event.uuid ? `uuid:${event.uuid}` : undefined;
}

/** Whose activity the event is: the user id, else (anonymous users) the device id, else the Amplitude id. */
export function userKeyOf(event: Pick<ExportedEvent, 'user_id' | 'device_id'> & { amplitude_id?: number }): string {
  if (event.user_id) return `user_id:${event.user_id}`;
  return event.device_id ? `device_id:${event.device_id}` : `amplitude_id:${event.amplitude_id}`;
}

/**
 * The activity an event records: its user, its time and the user properties it carried. Braze's own engagement
 * events forwarded by Currents are not activity in the product (and carry no user properties), so none.
 */
export function activityOf(event: ExportedEvent): UserActivity | undefined {
  const eventMs = amplitudeTimeMs(event.event_time);
  if (eventMs === undefined || cameFromBraze(event)) return undefined;
  return { userKey: userKeyOf(event), lastEventMs: eventMs, properties: (event.user_properties ?? {}) as UserActivity['properties'] };
}

const MAX_PAIRS_REMEMBERED = 100_000;

/**
 * The Amplitude ids seen with users (and, for identified users, with their devices) in a chunk of events, once each
 * with the latest time: erasures follow them from an Amplitude id to its user and devices.
 */
export class AmplitudeIdentitiesSeen {
  #seen = new Map<string, AmplitudeIdentity>();
  /** Pairs handed out before by this instance (one hour's ingestion): the store has them, within the hour it keeps. */
  #taken = new Set<string>();

  add(event: Pick<ExportedEvent, 'user_id' | 'device_id'> & { amplitude_id?: number | null }, seenAtMs: number): void {
    if (event.amplitude_id === undefined || event.amplitude_id === null) return;
    const amplitudeId = String(event.amplitude_id);
    this.#note(amplitudeId, userKeyOf({ ...event, amplitude_id: event.amplitude_id }), seenAtMs);
    if (event.user_id && event.device_id) this.#note(amplitudeId, `device_id:${event.device_id}`, seenAtMs);
  }

  /** What was seen since the last call and not handed out before. */
  take(): AmplitudeIdentity[] {
    const seen = [...this.#seen.values()];
    this.#seen = new Map();
    // Bounded: past it, pairs are handed out again (and the store's upsert finds them unchanged).
    if (this.#taken.size > MAX_PAIRS_REMEMBERED) this.#taken.clear();
    for (const { amplitudeId, userKey } of seen) this.#taken.add(`${amplitudeId}\u0000${userKey}`);
    return seen;
  }

  #note(amplitudeId: string, userKey: string, seenAtMs: number): void {
    const key = `${amplitudeId}\u0000${userKey}`;
    if (this.#taken.has(key)) return;
    const known = this.#seen.get(key);
    if (!known || known.seenAtMs < seenAtMs) this.#seen.set(key, { amplitudeId, userKey, seenAtMs });
  }
}

/**
 * The aliases an identified event may have been written to while its user was anonymous (named after its device or
 * Amplitude id), each with the external id that now appears with it: what `markAliasesToIdentify` takes.
 */
export function aliasLinksOf(event: {
  user_id?: string | null;
  device_id?: string | null;
  amplitude_id?: number | null;
}): Array<{ aliasName: string; externalId: string }> {
  if (!event.user_id) return [];
  const names = [event.device_id, event.amplitude_id === undefined || event.amplitude_id === null ? undefined : String(event.amplitude_id)];
  return names.flatMap((aliasName) => (aliasName ? [{ aliasName, externalId: event.user_id! }] : []));
}

/** Events Braze Currents forwarded into Amplitude: streaming them back would loop. */
export function cameFromBraze(event: ExportedEvent): boolean {
  return event.event_type.startsWith('[Appboy]') || event.library?.toLowerCase() === 'braze';
}

/** Whether the selection forwards this event type (with these properties) at all. */
export function isSelected(event: ExportedEvent, selection: Pick<EventSelection, 'eventTypes' | 'propertyFilters'>): boolean {
  const { eventTypes, propertyFilters } = selection;
  if (!(eventTypes.includes('*') || eventTypes.includes(event.event_type))) return false;
  const filters = propertyFilters[event.event_type] ?? {};
  return Object.entries(filters).every(([name, allowed]) => allowed.includes(event.event_properties?.[name] as string | number | boolean));
}

export type EventDecision =
  | { forward: false; skipReason?: string }
  | { forward: true; eventKey: string; body: JsonObject; droppedProperties: Record<string, number> };

/**
 * What happens to one event: not selected (nothing to report), skipped with a reason, or forwarded as this Braze
 * event object (identifier, name, time, properties) with the properties Braze would refuse dropped and counted.
 */
export function decide(event: ExportedEvent, selection: EventSelection): EventDecision {
  if (!isSelected(event, selection)) return { forward: false };
  if (cameFromBraze(event)) return { forward: false, skipReason: 'came from Braze (Currents): never streamed back' };
  const eventKey = eventKeyOf(event);
  if (eventKey === undefined)
    return { forward: false, skipReason: 'has neither $insert_id nor uuid, so it cannot be kept from duplicating' };
  const timeMs = amplitudeTimeMs(event.event_time);
  if (timeMs === undefined) return { forward: false, skipReason: 'has an unreadable event_time' };
  const identifier = brazeIdentifierOf(event, selection);
  if (identifier === undefined)
    return { forward: false, skipReason: `is anonymous: no ${selection.identifiers.join(' / ')} to address in Braze` };
  const { properties, dropped } = brazeProperties(event.event_properties ?? {}, selection.eventProperties);
  const body: JsonObject = { ...identifier, name: event.event_type, time: new Date(timeMs).toISOString() };
  if (Object.keys(properties).length > 0) body.properties = properties;
  // An alias-only profile is created only when the flag is explicitly false; an external_id creates unless true.
  body._update_existing_only = selection.updateExistingOnly;
  return { forward: true, eventKey, body, droppedProperties: dropped };
}

function brazeIdentifierOf(event: ExportedEvent, selection: EventSelection): JsonObject | undefined {
  if (event.user_id) return { external_id: event.user_id };
  for (const identifier of selection.identifiers) {
    const aliasName = identifier === 'device_id' ? event.device_id : identifier === 'amplitude_id' ? String(event.amplitude_id) : undefined;
    if (aliasName)
      return {
        user_alias: {
          alias_name: aliasName,
          alias_label: selection.aliasLabel ?? `amplitude_${identifier === 'device_id' ? 'device_id' : 'id'}`,
        },
      };
  }
  return undefined;
}

/** The event properties Braze accepts (optionally only the listed ones), and why the others were dropped. */
export function brazeProperties(
  eventProperties: Record<string, unknown>,
  only?: readonly string[],
): { properties: JsonObject; dropped: Record<string, number> } {
  const properties: JsonObject = {};
  const dropped: Record<string, number> = {};
  for (const [key, value] of Object.entries(eventProperties)) {
    if (only && !only.includes(key)) continue;
    const problem = propertyProblem(key, value);
    if (problem === undefined) properties[key] = value as JsonValue;
    else dropped[problem] = (dropped[problem] ?? 0) + 1;
  }
  return { properties, dropped };
}

function propertyProblem(key: string, value: unknown): string | undefined {
  if (key === '' || key.startsWith('$') || key.length > MAX_STRING_LENGTH)
    return 'property name Braze refuses (empty, over 255 characters or starting with $)';
  if (RESERVED_PROPERTY_KEYS.has(key)) return `property name "${key}" is reserved by Braze`;
  if (value === null || value === undefined) return 'property without a value';
  if (typeof value === 'string' && value.length > MAX_STRING_LENGTH) return 'string property over 255 characters';
  if (typeof value === 'object' && Buffer.byteLength(JSON.stringify(value)) > MAX_NESTED_BYTES) return 'nested property over 100 KB';
  return undefined;
}
