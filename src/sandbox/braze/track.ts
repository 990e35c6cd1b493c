/**
 * `POST /users/track` as Braze documents it: a size cap that rejects the whole request, per-object errors in a
 * 201 `success` body while valid objects still apply, `_update_existing_only` per identifier kind, and the
 * order attributes → events → purchases. Recorded events also go to the workspace's event log.
 */
import { applyAttribute, isNested, nestedWriteIsValid, parseAttribute, type AttributeWrite } from './attributes.js';
import { sentIdentifier, type EventLog } from './event-log.js';
import { badRequest, isAlias, isPlainObject, nonEmptyString, success, type Reply } from './json-values.js';
import { recordActivity, type ActivitySummary, type Identifier, type Profile, type ProfileStore } from './profiles.js';

export type ObjectLimit = { mode: 'per_array'; max: number } | { mode: 'combined'; max: number };

export interface TrackLimits {
  objectLimit: ObjectLimit;
  blockedExternalIds: ReadonlySet<string>;
  maxArrayLength: number;
}

const TRACK_ARRAYS = ['attributes', 'events', 'purchases'] as const;
type TrackArray = (typeof TRACK_ARRAYS)[number];

const MISSING_IDENTIFIER = "'external_id' or 'braze_id' or 'user_alias' is required";
const BLOCKED = 'provided external_id is blacklisted and disallowed';
const REQUEST_FLAGS = new Set(['external_id', 'user_alias', 'braze_id', '_update_existing_only', '_merge_objects']);
const MAX_QUANTITY = 100;
const MAX_STRING = 255;
const MAX_NESTED_PROPERTIES_BYTES = 100 * 1024;
const RESERVED_PROPERTY_KEYS = new Set(['time', 'event_name']);
/** ISO-8601 dates and date-times (UTC unless an offset is given), and Braze's other form `yyyy-MM-dd'T'HH:mm:ss:SSSZ`. */
const BRAZE_TIME = /^(\d{4}-\d\d-\d\d)(?:T(\d\d):(\d\d)(?::(\d\d)(?:[.:](\d{1,9}))?)?(Z|[+-]\d\d:?\d\d)?)?$/;

/** A validated object, ready to apply. */
interface Accepted {
  identifier: Identifier;
  createIfMissing: boolean;
  apply(profile: Profile, context: ApplyContext): void;
}

interface ApplyContext {
  store: ProfileStore;
  eventLog: EventLog;
  now: Date;
  maxArrayLength: number;
  /** False when some nested value in the request is invalid: Braze then silently drops every nested write. */
  nestedWritesAllowed: boolean;
}

export function handleTrack(body: Record<string, unknown>, store: ProfileStore, eventLog: EventLog, limits: TrackLimits, now: Date): Reply {
  const arrays: Array<[TrackArray, unknown[]]> = [];
  for (const name of TRACK_ARRAYS) {
    const value = body[name];
    if (value === undefined) continue;
    if (!Array.isArray(value)) return badRequest(`'${name}' must be an array`);
    arrays.push([name, value]);
  }
  if (arrays.length === 0) return badRequest("Request must contain 'attributes', 'events' or 'purchases'");
  const sizes = arrays.map(([, objects]) => objects.length);
  const { mode, max } = limits.objectLimit;
  const overLimit = mode === 'per_array' ? sizes.some((n) => n > max) : sizes.reduce((a, b) => a + b, 0) > max;
  if (overLimit) return { status: 400, body: { message: 'Max Input Length Exceeded', errors: [] } };

  const errors: Array<{ type: string; input_array: TrackArray; index: number }> = [];
  const counts: Record<string, number> = {};
  const accepted: Accepted[] = [];
  const nestedWrites: AttributeWrite[] = [];
  for (const [name, objects] of arrays) {
    let rejected = 0;
    for (let index = 0; index < objects.length; index++) {
      const result = validate(name, objects[index], limits.blockedExternalIds, nestedWrites);
      if (typeof result === 'string') {
        errors.push({ type: result, input_array: name, index });
        rejected += 1;
      } else {
        accepted.push(result);
      }
    }
    counts[`${name}_processed`] = objects.length - rejected;
  }

  const context: ApplyContext = {
    store,
    eventLog,
    now,
    maxArrayLength: limits.maxArrayLength,
    nestedWritesAllowed: nestedWrites.every(nestedWriteIsValid),
  };
  for (const object of accepted) {
    const profile = store.find(object.identifier) ?? (object.createIfMissing ? store.create(object.identifier) : undefined);
    // An update-only write to an unknown user is accepted, changes nothing and costs nothing.
    if (profile) object.apply(profile, context);
  }
  return success(201, { ...counts, ...(errors.length > 0 ? { errors } : {}) });
}

function validate(array: TrackArray, object: unknown, blocked: ReadonlySet<string>, nestedWrites: AttributeWrite[]): Accepted | string {
  if (!isPlainObject(object)) return 'object must be a JSON object';
  const target = targetOf(object);
  if (!target) return MISSING_IDENTIFIER;
  if (target.identifier.kind === 'external_id' && blocked.has(target.identifier.value)) return BLOCKED;
  const apply =
    array === 'attributes'
      ? validateAttributes(object, target.identifier, nestedWrites)
      : array === 'events'
        ? validateEvent(object, target.identifier)
        : validatePurchase(object);
  return typeof apply === 'string' ? apply : { identifier: target.identifier, createIfMissing: target.createIfMissing, apply };
}

/**
 * `_update_existing_only`: external_id, email and phone create a profile unless it is true; an alias creates
 * one only when it is explicitly false; a braze_id never creates. When both are sent, email wins over phone.
 */
function targetOf(object: Record<string, unknown>): { identifier: Identifier; createIfMissing: boolean } | undefined {
  const updateOnly = object._update_existing_only;
  if (nonEmptyString(object.external_id))
    return { identifier: { kind: 'external_id', value: object.external_id }, createIfMissing: updateOnly !== true };
  if (isAlias(object.user_alias)) {
    const { alias_name, alias_label } = object.user_alias;
    return { identifier: { kind: 'user_alias', alias: { alias_name, alias_label } }, createIfMissing: updateOnly === false };
  }
  if (nonEmptyString(object.braze_id)) return { identifier: { kind: 'braze_id', value: object.braze_id }, createIfMissing: false };
  if (nonEmptyString(object.email)) return { identifier: { kind: 'email', value: object.email }, createIfMissing: updateOnly !== true };
  if (nonEmptyString(object.phone)) return { identifier: { kind: 'phone', value: object.phone }, createIfMissing: updateOnly !== true };
  return undefined;
}

function validateAttributes(
  object: Record<string, unknown>,
  identifier: Identifier,
  nestedWrites: AttributeWrite[],
): Accepted['apply'] | string {
  if ('app_id' in object) return "'app_id' is not allowed on attribute objects";
  const writes: Array<[string, AttributeWrite]> = [];
  for (const key in object) {
    if (REQUEST_FLAGS.has(key) || key === identifier.kind) continue;
    const write = parseAttribute(key, object[key]);
    if (typeof write === 'string') return write;
    writes.push([key, write]);
  }
  for (const [, write] of writes) if (isNested(write)) nestedWrites.push(write);
  const mergeObjects = object._merge_objects === true;
  return (profile, { store, maxArrayLength, nestedWritesAllowed }) => {
    for (const [key, write] of writes) {
      if (nestedWritesAllowed || !isNested(write)) applyAttribute(store, profile, key, write, { mergeObjects, maxArrayLength });
    }
  };
}

/** One data point per event, whatever properties it carries. */
function validateEvent(object: Record<string, unknown>, identifier: Identifier): Accepted['apply'] | string {
  if (!nonEmptyString(object.name)) return "'name' is required";
  const time = parseBrazeTime(object.time);
  if (time === undefined) return "'time' is required and must be an ISO-8601 time";
  const invalidProperties = propertiesError(object.properties);
  if (invalidProperties) return invalidProperties;
  const { name, app_id: appId } = object;
  const properties = (object.properties ?? {}) as Record<string, unknown>;
  return (profile, { store, eventLog, now }) => {
    const storedTime = clampToNow(time, now);
    recordActivity((profile.edit().customEvents ??= new Map<string, ActivitySummary>()), name, storedTime, 1);
    store.count('event');
    eventLog.record(
      {
        ...sentIdentifier(identifier),
        name,
        time: storedTime,
        properties,
        ...(typeof appId === 'string' ? { app_id: appId } : {}),
      },
      now.getTime(),
    );
  };
}

function validatePurchase(object: Record<string, unknown>): Accepted['apply'] | string {
  if (!nonEmptyString(object.product_id) || object.product_id.length > 255)
    return "'product_id' is required and must be at most 255 characters";
  if (typeof object.currency !== 'string' || !/^[A-Z]{3}$/.test(object.currency)) return "'currency' must be an ISO-4217 code";
  if (typeof object.price !== 'number') return "'price' is required";
  const quantity = object.quantity ?? 1;
  if (typeof quantity !== 'number' || !Number.isInteger(quantity) || quantity < 1 || quantity > MAX_QUANTITY)
    return `'quantity' must be an integer between 1 and ${MAX_QUANTITY}`;
  const time = object.time === undefined ? null : parseBrazeTime(object.time);
  if (time === undefined) return "'time' must be an ISO-8601 time";
  const invalidProperties = propertiesError(object.properties);
  if (invalidProperties) return invalidProperties;
  const productId = object.product_id;
  return (profile, { store, now }) => {
    recordActivity(
      (profile.edit().purchases ??= new Map<string, ActivitySummary>()),
      productId,
      clampToNow(time ?? now.getTime(), now),
      quantity,
    );
    // A quantity of n is recorded (and billed) as n purchases; properties cost nothing.
    store.count('purchase', quantity);
  };
}

/** Why event or purchase properties are refused, if they are. */
function propertiesError(properties: unknown): string | undefined {
  if (properties === undefined) return undefined;
  if (!isPlainObject(properties)) return "'properties' must be an object";
  for (const [key, value] of Object.entries(properties)) {
    if (key === '' || key.length > MAX_STRING || key.startsWith('$') || RESERVED_PROPERTY_KEYS.has(key))
      return `invalid property key '${key}'`;
    if (typeof value === 'string' && value.length > MAX_STRING) return `property '${key}' must be at most ${MAX_STRING} characters`;
  }
  const nested = Object.values(properties).some((value) => typeof value === 'object' && value !== null);
  if (nested && Buffer.byteLength(JSON.stringify(properties)) > MAX_NESTED_PROPERTIES_BYTES)
    return "'properties' with nested values must be at most 100 KB";
  return undefined;
}

/** Epoch ms of a time Braze accepts (see BRAZE_TIME), or undefined. */
function parseBrazeTime(value: unknown): number | undefined {
  const match = typeof value === 'string' ? BRAZE_TIME.exec(value) : null;
  if (!match) return undefined;
  const [, date, hours = '00', minutes = '00', seconds = '00', fraction = '0', zone = 'Z'] = match;
  const offset = zone === 'Z' ? zone : `${zone.slice(0, 3)}:${zone.slice(-2)}`;
  const parsed = Date.parse(`${date}T${hours}:${minutes}:${seconds}.${fraction.slice(0, 3).padEnd(3, '0')}${offset}`);
  return Number.isNaN(parsed) ? undefined : parsed;
}

function clampToNow(time: number, now: Date): string {
  return new Date(Math.min(time, now.getTime())).toISOString();
}
