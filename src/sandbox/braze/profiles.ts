/**
 * The Braze sandbox's user store: profiles addressable by external_id, alias, braze_id, email or phone, with
 * Braze's attribute semantics (types, `inc`, array add/remove with move-to-end and front truncation, `null`
 * unsets, nested-object merge) and its own independent data-point count under the legacy rules.
 */

export interface UserAlias {
  alias_name: string;
  alias_label: string;
}

export interface Profile {
  brazeId: string;
  externalId?: string;
  aliases: UserAlias[];
  email?: string;
  phone?: string;
  /** Created lazily: most seeded users are never written to. */
  customAttributes?: Map<string, unknown>;
  standardAttributes?: Map<string, unknown>;
  customEvents?: Map<string, { first: string; last: string; count: number }>;
  purchases?: number;
}

export type DataPointKind = 'attribute' | 'array_add' | 'array_remove' | 'nested_key' | 'increment' | 'event' | 'event_property' | 'purchase' | 'purchase_property' | 'cohort_assignment';

/** Braze's standard profile fields: stored apart from custom attributes (and billed the same). */
export const STANDARD_FIELDS = new Set([
  'country', 'current_location', 'date_of_first_session', 'date_of_last_session', 'dob', 'email', 'email_subscribe',
  'email_open_tracking_disabled', 'email_click_tracking_disabled', 'facebook', 'first_name', 'gender', 'home_city',
  'image_url', 'language', 'last_name', 'marked_email_as_spam_at', 'phone', 'push_subscribe', 'push_tokens', 'time_zone',
  'twitter', 'subscription_groups',
]);

export const IDENTIFIER_FIELDS = new Set(['external_id', 'user_alias', 'braze_id', 'email', 'phone', '_update_existing_only', '_merge_objects', 'app_id']);

export class ProfileStore {
  private byExternalId = new Map<string, Profile>();
  private byAlias = new Map<string, Profile>();
  private byBrazeId = new Map<string, Profile>();
  private byEmail = new Map<string, Profile>();
  private byPhone = new Map<string, Profile>();
  private nextBrazeId = 1;
  readonly dataPoints = new Map<DataPointKind, number>();

  constructor(readonly maxArrayLength: number) {}

  get size(): number {
    return this.byBrazeId.size;
  }

  *profiles(): Generator<Profile> {
    yield* this.byBrazeId.values();
  }

  count(kind: DataPointKind, points = 1): void {
    if (points > 0) this.dataPoints.set(kind, (this.dataPoints.get(kind) ?? 0) + points);
  }

  totalDataPoints(): number {
    let total = 0;
    for (const points of this.dataPoints.values()) total += points;
    return total;
  }

  create(ids: { externalId?: string; alias?: UserAlias; email?: string; phone?: string }): Profile {
    const profile: Profile = { brazeId: `braze-${(this.nextBrazeId++).toString(16).padStart(12, '0')}`, aliases: [] };
    this.byBrazeId.set(profile.brazeId, profile);
    if (ids.externalId) this.setExternalId(profile, ids.externalId);
    if (ids.alias) this.addAlias(profile, ids.alias);
    if (ids.email) {
      profile.email = ids.email;
      this.byEmail.set(ids.email, profile);
    }
    if (ids.phone) {
      profile.phone = ids.phone;
      this.byPhone.set(ids.phone, profile);
    }
    return profile;
  }

  byExternal(externalId: string): Profile | undefined {
    return this.byExternalId.get(externalId);
  }

  byUserAlias(alias: UserAlias): Profile | undefined {
    return this.byAlias.get(aliasKey(alias));
  }

  byBraze(brazeId: string): Profile | undefined {
    return this.byBrazeId.get(brazeId);
  }

  byEmailAddress(email: string): Profile | undefined {
    return this.byEmail.get(email);
  }

  byPhoneNumber(phone: string): Profile | undefined {
    return this.byPhone.get(phone);
  }

  setExternalId(profile: Profile, externalId: string): void {
    profile.externalId = externalId;
    this.byExternalId.set(externalId, profile);
  }

  /** A user has at most one alias name per label. */
  addAlias(profile: Profile, alias: UserAlias): boolean {
    if (profile.aliases.some((a) => a.alias_label === alias.alias_label) || this.byAlias.has(aliasKey(alias))) return false;
    profile.aliases.push({ alias_name: alias.alias_name, alias_label: alias.alias_label });
    this.byAlias.set(aliasKey(alias), profile);
    return true;
  }

  delete(profile: Profile): void {
    this.byBrazeId.delete(profile.brazeId);
    if (profile.externalId) this.byExternalId.delete(profile.externalId);
    for (const alias of profile.aliases) this.byAlias.delete(aliasKey(alias));
    if (profile.email) this.byEmail.delete(profile.email);
    if (profile.phone) this.byPhone.delete(profile.phone);
  }

  /** Applies one attribute write and counts its data points. Validation happened before. */
  applyAttribute(profile: Profile, key: string, value: unknown, mergeObjects: boolean): void {
    const standard = STANDARD_FIELDS.has(key);
    const attributes = standard ? (profile.standardAttributes ??= new Map()) : (profile.customAttributes ??= new Map());
    if (standard && key === 'email' && typeof value === 'string') {
      profile.email = value;
      this.byEmail.set(value, profile);
    }
    if (value === null) {
      attributes.delete(key);
      this.count('attribute');
      return;
    }
    if (isArrayOperation(value)) {
      const current = Array.isArray(attributes.get(key)) ? [...(attributes.get(key) as unknown[])] : [];
      for (const item of value.add ?? []) {
        const at = current.indexOf(item);
        if (at >= 0) current.splice(at, 1); // re-adding a value moves it to the end
        current.push(item);
      }
      for (const item of value.remove ?? []) {
        const at = current.indexOf(item);
        if (at >= 0) current.splice(at, 1);
      }
      attributes.set(key, current.slice(Math.max(0, current.length - this.maxArrayLength)));
      this.count('array_add', value.add?.length ?? 0);
      this.count('array_remove', value.remove?.length ?? 0);
      return;
    }
    if (isIncrement(value)) {
      const current: unknown = attributes.get(key);
      attributes.set(key, (typeof current === 'number' ? current : 0) + value.inc);
      this.count('increment');
      return;
    }
    if (Array.isArray(value)) {
      const unique = [...new Set<unknown>(value)];
      attributes.set(key, unique.slice(Math.max(0, unique.length - this.maxArrayLength)));
      this.count('attribute');
      return;
    }
    if (typeof value === 'object') {
      const current: unknown = attributes.get(key);
      const next: unknown = mergeObjects && isPlainObject(current) ? deepMerge(current, value as Record<string, unknown>) : structuredClone(value);
      attributes.set(key, next);
      this.count('nested_key', Math.max(1, countKeys(value as Record<string, unknown>)));
      return;
    }
    attributes.set(key, value);
    this.count('attribute');
  }

  recordEvent(profile: Profile, name: string, time: string, propertyCount: number): void {
    const events = (profile.customEvents ??= new Map<string, { first: string; last: string; count: number }>());
    const existing = events.get(name);
    if (existing) {
      existing.count += 1;
      if (time < existing.first) existing.first = time;
      if (time > existing.last) existing.last = time;
    } else {
      events.set(name, { first: time, last: time, count: 1 });
    }
    this.count('event');
    this.count('event_property', propertyCount);
  }

  recordPurchase(profile: Profile, quantity: number, propertyCount: number): void {
    profile.purchases = (profile.purchases ?? 0) + quantity;
    this.count('purchase', quantity);
    this.count('purchase_property', propertyCount);
  }
}

export function aliasKey(alias: UserAlias): string {
  return `${alias.alias_label}\u0000${alias.alias_name}`;
}

export function isArrayOperation(value: unknown): value is { add?: unknown[]; remove?: unknown[] } {
  if (!isPlainObject(value)) return false;
  const keys = Object.keys(value);
  return keys.length > 0 && keys.every((k) => (k === 'add' || k === 'remove') && Array.isArray(value[k]));
}

export function isIncrement(value: unknown): value is { inc: number } {
  return isPlainObject(value) && Object.keys(value).length === 1 && typeof value.inc === 'number';
}

export function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function deepMerge(base: Record<string, unknown>, patch: Record<string, unknown>): Record<string, unknown> {
  const merged: Record<string, unknown> = { ...base };
  for (const [key, value] of Object.entries(patch)) {
    merged[key] = isPlainObject(value) && isPlainObject(base[key]) ? deepMerge(base[key], value) : value;
  }
  return merged;
}

function countKeys(object: Record<string, unknown>): number {
  let keys = 0;
  for (const value of Object.values(object)) keys += isPlainObject(value) ? countKeys(value) : 1;
  return keys;
}
