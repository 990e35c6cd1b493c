/**
 * `POST /users/track` as Braze documents it: a size cap that rejects the whole request, per-object errors in a
 * 201 `success` body while valid objects still apply, `_update_existing_only` per identifier kind, and the
 * order attributes → events → purchases.
 */
import { IDENTIFIER_FIELDS, isPlainObject, type Profile, type ProfileStore, type UserAlias } from './profiles.js';

export type ObjectLimit = { mode: 'per_array'; max: number } | { mode: 'combined'; max: number };

type TrackArray = 'attributes' | 'events' | 'purchases';

export interface TrackError {
  type: string;
  input_array: TrackArray;
  index: number;
}

export type TrackResponse = { status: 400; body: Record<string, unknown> } | { status: 201; body: Record<string, unknown> };

const MISSING_IDENTIFIER = "'external_id' or 'braze_id' or 'user_alias' is required";
const BLOCKED = 'provided external_id is blacklisted and disallowed';

export function handleTrack(body: unknown, store: ProfileStore, limits: { objectLimit: ObjectLimit; blockedExternalIds: ReadonlySet<string> }, now: Date): TrackResponse {
  if (!isPlainObject(body)) return badRequest('Invalid request body');
  const arrays: Partial<Record<TrackArray, unknown[]>> = {};
  for (const name of ['attributes', 'events', 'purchases'] as const) {
    if (body[name] === undefined) continue;
    if (!Array.isArray(body[name])) return badRequest(`'${name}' must be an array`);
    arrays[name] = body[name];
  }
  const sizes = Object.values(arrays).map((a) => a.length);
  if (sizes.length === 0) return badRequest("Request must contain 'attributes', 'events' or 'purchases'");
  const overLimit =
    limits.objectLimit.mode === 'per_array' ? sizes.some((n) => n > limits.objectLimit.max) : sizes.reduce((a, b) => a + b, 0) > limits.objectLimit.max;
  if (overLimit) return { status: 400, body: { message: 'Max Input Length Exceeded', errors: [] } };

  const errors: TrackError[] = [];
  const processed: Record<string, number> = {};
  for (const name of ['attributes', 'events', 'purchases'] as const) {
    const objects = arrays[name];
    if (!objects) continue;
    objects.forEach((object, index) => {
      const error = applyObject(name, object, store, limits.blockedExternalIds, now);
      if (error) errors.push({ type: error, input_array: name, index });
    });
    processed[`${name}_processed`] = objects.length - errors.filter((e) => e.input_array === name).length;
  }
  return { status: 201, body: { message: 'success', ...processed, ...(errors.length > 0 ? { errors } : {}) } };
}

function badRequest(message: string): TrackResponse {
  return { status: 400, body: { message } };
}

/** Validates and applies one object; returns Braze's reason when it is rejected. */
function applyObject(array: TrackArray, object: unknown, store: ProfileStore, blocked: ReadonlySet<string>, now: Date): string | undefined {
  if (!isPlainObject(object)) return 'object is not valid JSON object';
  const identity = identify(object);
  if (!identity) return MISSING_IDENTIFIER;
  if (identity.externalId !== undefined && blocked.has(identity.externalId)) return BLOCKED;
  const problem = array === 'attributes' ? attributeProblem(object) : array === 'events' ? eventProblem(object) : purchaseProblem(object);
  if (problem) return problem;

  const profile = findOrCreate(object, identity, store);
  if (!profile) return undefined; // update-only write to an unknown user: accepted, nothing happens, nothing billed
  if (array === 'attributes') {
    const merge = object._merge_objects === true;
    for (const [key, value] of Object.entries(object)) {
      if (!IDENTIFIER_FIELDS.has(key)) store.applyAttribute(profile, key, value, merge);
    }
  } else if (array === 'events') {
    const time = clampToNow(String(object.time), now);
    store.recordEvent(profile, String(object.name), time, Object.keys((object.properties as object | undefined) ?? {}).length);
  } else {
    store.recordPurchase(profile, typeof object.quantity === 'number' ? object.quantity : 1, Object.keys((object.properties as object | undefined) ?? {}).length);
  }
  return undefined;
}

interface Identity {
  externalId?: string;
  alias?: UserAlias;
  brazeId?: string;
  email?: string;
  phone?: string;
}

function identify(object: Record<string, unknown>): Identity | undefined {
  const alias = object.user_alias;
  if (typeof object.external_id === 'string' && object.external_id !== '') return { externalId: object.external_id };
  if (isPlainObject(alias) && typeof alias.alias_name === 'string' && typeof alias.alias_label === 'string' && alias.alias_name && alias.alias_label) {
    return { alias: { alias_name: alias.alias_name, alias_label: alias.alias_label } };
  }
  if (typeof object.braze_id === 'string' && object.braze_id !== '') return { brazeId: object.braze_id };
  if (typeof object.email === 'string' && object.email !== '') return { email: object.email };
  if (typeof object.phone === 'string' && object.phone !== '') return { phone: object.phone };
  return undefined;
}

/**
 * `_update_existing_only`: external_id, email and phone create unless it is true; an alias creates only when
 * it is explicitly false; a braze_id never creates.
 */
function findOrCreate(object: Record<string, unknown>, identity: Identity, store: ProfileStore): Profile | undefined {
  const flag = object._update_existing_only;
  if (identity.externalId !== undefined) return store.byExternal(identity.externalId) ?? (flag === true ? undefined : store.create({ externalId: identity.externalId }));
  if (identity.alias) return store.byUserAlias(identity.alias) ?? (flag === false ? store.create({ alias: identity.alias }) : undefined);
  if (identity.brazeId !== undefined) return store.byBraze(identity.brazeId);
  if (identity.email !== undefined) return store.byEmailAddress(identity.email) ?? (flag === true ? undefined : store.create({ email: identity.email }));
  const phone = identity.phone ?? '';
  return store.byPhoneNumber(phone) ?? (flag === true ? undefined : store.create({ phone }));
}

function attributeProblem(object: Record<string, unknown>): string | undefined {
  if ('app_id' in object) return "'app_id' is not allowed on attribute objects";
  for (const [key, value] of Object.entries(object)) {
    if (IDENTIFIER_FIELDS.has(key)) continue;
    if (key.startsWith('$')) return `attribute key '${key}' must not start with '$'`;
    if (key.length > 255) return 'attribute keys must be at most 255 characters';
    if (typeof value === 'string' && value.length > 255) return `'${key}' must be a string of at most 255 characters`;
    if (Array.isArray(value) && value.some((item) => typeof item === 'string' && item.length > 255)) return `'${key}' array values must be at most 255 characters`;
  }
  return undefined;
}

function eventProblem(object: Record<string, unknown>): string | undefined {
  if (typeof object.name !== 'string' || object.name === '') return "'name' is required";
  if (typeof object.time !== 'string' || Number.isNaN(Date.parse(object.time))) return "'time' is required and must be an ISO-8601 time";
  return propertiesProblem(object.properties);
}

function purchaseProblem(object: Record<string, unknown>): string | undefined {
  if (typeof object.product_id !== 'string' || object.product_id === '' || object.product_id.length > 255) return "'product_id' is required";
  if (typeof object.currency !== 'string' || !/^[A-Z]{3}$/.test(object.currency)) return "'currency' must be an ISO-4217 code";
  if (typeof object.price !== 'number') return "'price' is required";
  if (object.quantity !== undefined && (typeof object.quantity !== 'number' || object.quantity < 1 || object.quantity > 100)) return "'quantity' must be between 1 and 100";
  return propertiesProblem(object.properties);
}

function propertiesProblem(properties: unknown): string | undefined {
  if (properties === undefined) return undefined;
  if (!isPlainObject(properties)) return "'properties' must be an object";
  for (const [key, value] of Object.entries(properties)) {
    if (key === '' || key.length > 255 || key.startsWith('$') || key === 'time' || key === 'event_name') return `invalid property key '${key}'`;
    if (typeof value === 'string' && value.length > 255) return `property '${key}' must be at most 255 characters`;
  }
  return undefined;
}

function clampToNow(time: string, now: Date): string {
  return Date.parse(time) > now.getTime() ? now.toISOString() : new Date(time).toISOString();
}
