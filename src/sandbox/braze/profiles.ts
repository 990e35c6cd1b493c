/**
 * The Braze sandbox's user store: profiles addressable by external_id, alias, braze_id, email, phone or
 * device_id, kept compact because a benchmark seeds about two million of them (maps are created on first
 * write, braze_ids are derived from the slot number), plus the workspace's independent data-point counter.
 */
import type { UserAlias } from './json-values.js';

/** first/last/count of a custom event or a purchased product, as `/users/export/ids` reports them. */
export interface ActivitySummary {
  first: string;
  last: string;
  count: number;
}

export type DataPointKind =
  'attribute' | 'array_add' | 'array_remove' | 'increment' | 'nested_key' | 'event' | 'purchase' | 'cohort_assignment';

export type Identifier =
  { kind: 'external_id' | 'braze_id' | 'email' | 'phone' | 'device_id'; value: string } | { kind: 'user_alias'; alias: UserAlias };

const NO_ALIASES: readonly UserAlias[] = Object.freeze([]);
const NO_DEVICES: readonly string[] = Object.freeze([]);

/** What most profiles never have, kept out of the profile itself until first needed. */
export interface ProfileDetails {
  aliases: readonly UserAlias[];
  deviceIds: readonly string[];
  /** Braze's standard fields (email, phone, first_name, …): billed like custom attributes, stored apart. */
  standardAttributes?: Map<string, unknown>;
  customEvents?: Map<string, ActivitySummary>;
  /** By product_id. */
  purchases?: Map<string, ActivitySummary>;
}

export class Profile {
  externalId: string | undefined;
  /** Created on first write: most seeded users are never written to. */
  customAttributes: Map<string, unknown> | undefined = undefined;
  private details: ProfileDetails | undefined = undefined;

  constructor(
    readonly slot: number,
    externalId: string | undefined,
  ) {
    this.externalId = externalId;
  }

  get brazeId(): string {
    return this.slot.toString(16).padStart(24, '0');
  }

  /** Anonymous profiles are the only ones a device_id can address in cohort imports. */
  get identified(): boolean {
    return this.externalId !== undefined;
  }

  get aliases(): readonly UserAlias[] {
    return this.details?.aliases ?? NO_ALIASES;
  }

  get deviceIds(): readonly string[] {
    return this.details?.deviceIds ?? NO_DEVICES;
  }

  get standardAttributes(): ReadonlyMap<string, unknown> | undefined {
    return this.details?.standardAttributes;
  }

  get customEvents(): ReadonlyMap<string, ActivitySummary> | undefined {
    return this.details?.customEvents;
  }

  get purchases(): ReadonlyMap<string, ActivitySummary> | undefined {
    return this.details?.purchases;
  }

  /** The details for writing, created on first use. */
  edit(): ProfileDetails {
    return (this.details ??= { aliases: NO_ALIASES, deviceIds: NO_DEVICES });
  }
}

const BRAZE_ID = /^[0-9a-f]{24}$/;

export class ProfileStore {
  private readonly slots: Array<Profile | undefined> = [];
  private live = 0;
  private readonly byExternalId = new ExternalIdIndex();
  private readonly byAlias = new Map<string, Profile>();
  private readonly byEmail = new Map<string, Profile>();
  private readonly byPhone = new Map<string, Profile>();
  private readonly byDevice = new Map<string, Profile>();
  readonly dataPoints = new Map<DataPointKind, number>();

  get size(): number {
    return this.live;
  }

  contains(profile: Profile): boolean {
    return this.slots[profile.slot] === profile;
  }

  *profiles(): Generator<Profile> {
    for (const profile of this.slots) if (profile) yield profile;
  }

  count(kind: DataPointKind, points = 1): void {
    if (points > 0) this.dataPoints.set(kind, (this.dataPoints.get(kind) ?? 0) + points);
  }

  totalDataPoints(): number {
    let total = 0;
    for (const points of this.dataPoints.values()) total += points;
    return total;
  }

  find(identifier: Identifier): Profile | undefined {
    switch (identifier.kind) {
      case 'external_id':
        return this.byExternalId.get(identifier.value);
      case 'user_alias':
        return this.byAlias.get(aliasKey(identifier.alias));
      case 'braze_id':
        return BRAZE_ID.test(identifier.value) ? this.slots[parseInt(identifier.value, 16)] : undefined;
      case 'email':
        return this.byEmail.get(identifier.value);
      case 'phone':
        return this.byPhone.get(identifier.value);
      case 'device_id':
        return this.byDevice.get(identifier.value);
    }
  }

  /** Creates a profile known by `identifier` (a braze_id cannot be chosen, so it creates an anonymous one). */
  create(identifier?: Identifier): Profile {
    const profile = new Profile(this.slots.length, undefined);
    this.slots.push(profile);
    this.live += 1;
    if (identifier?.kind === 'external_id') this.setExternalId(profile, identifier.value);
    else if (identifier?.kind === 'user_alias') this.addAlias(profile, identifier.alias);
    else if (identifier?.kind === 'email' || identifier?.kind === 'phone')
      this.setStandardAttribute(profile, identifier.kind, identifier.value);
    else if (identifier?.kind === 'device_id') this.addDevice(profile, identifier.value);
    return profile;
  }

  setExternalId(profile: Profile, externalId: string): void {
    profile.externalId = externalId;
    this.byExternalId.set(externalId, profile);
  }

  /** A user has at most one alias name per label, and an alias belongs to one user. */
  addAlias(profile: Profile, alias: UserAlias): boolean {
    if (profile.aliases.some((a) => a.alias_label === alias.alias_label) || this.byAlias.has(aliasKey(alias))) return false;
    profile.edit().aliases = [...profile.aliases, { alias_name: alias.alias_name, alias_label: alias.alias_label }];
    this.byAlias.set(aliasKey(alias), profile);
    return true;
  }

  addDevice(profile: Profile, deviceId: string): void {
    if (this.byDevice.has(deviceId)) return;
    profile.edit().deviceIds = [...profile.deviceIds, deviceId];
    this.byDevice.set(deviceId, profile);
  }

  /** Writes a standard field, keeping the email and phone lookups in step (the latest writer wins a shared value). */
  setStandardAttribute(profile: Profile, key: string, value: unknown): void {
    const attributes = (profile.edit().standardAttributes ??= new Map<string, unknown>());
    const index = key === 'email' ? this.byEmail : key === 'phone' ? this.byPhone : undefined;
    const previous = attributes.get(key);
    if (index && typeof previous === 'string' && index.get(previous) === profile) index.delete(previous);
    if (value === null) attributes.delete(key);
    else attributes.set(key, value);
    if (index && typeof value === 'string') index.set(value, profile);
  }

  delete(profile: Profile): void {
    if (!this.contains(profile)) return;
    this.slots[profile.slot] = undefined;
    this.live -= 1;
    if (profile.externalId !== undefined) this.byExternalId.delete(profile.externalId);
    for (const alias of profile.aliases) this.byAlias.delete(aliasKey(alias));
    for (const deviceId of profile.deviceIds) this.byDevice.delete(deviceId);
    for (const [key, index] of [
      ['email', this.byEmail],
      ['phone', this.byPhone],
    ] as const) {
      const value = profile.standardAttributes?.get(key);
      if (typeof value === 'string' && index.get(value) === profile) index.delete(value);
    }
  }

  /**
   * Deletes `from` and moves its aliases and devices to `into`, leaving its attributes, events and purchases
   * behind: what identify does with `merge_behavior` "none".
   */
  takeOverIdentifiers(from: Profile, into: Profile): void {
    this.delete(from);
    for (const alias of from.aliases) this.addAlias(into, alias);
    for (const deviceId of from.deviceIds) this.addDevice(into, deviceId);
  }

  /**
   * Folds `from` into `into` and deletes `from` (identify with "merge", and merge): its identifiers move over,
   * attributes only `from` has are copied, and event and purchase summaries are combined. Nothing is billed.
   */
  absorb(from: Profile, into: Profile): void {
    this.takeOverIdentifiers(from, into);
    into.customAttributes = fillMissing(into.customAttributes, from.customAttributes);
    for (const [key, value] of from.standardAttributes ?? []) {
      if (!into.standardAttributes?.has(key)) this.setStandardAttribute(into, key, value);
    }
    const details = into.edit();
    details.customEvents = combineSummaries(details.customEvents, from.customEvents);
    details.purchases = combineSummaries(details.purchases, from.purchases);
  }
}

/**
 * Profiles by external_id. The ids the sandbox's dataset gives its users (`user-` and a number, zero-padded to six
 * digits) are kept in an array by that number: a lookup in a Map of millions of strings costs several cache misses,
 * which made it the largest share of the sandbox's CPU per `/users/track` request. Any other id is in a Map.
 */
class ExternalIdIndex {
  private readonly byNumber: Array<Profile | undefined> = [];
  private readonly byName = new Map<string, Profile>();

  get(externalId: string): Profile | undefined {
    const number = datasetUserNumber(externalId);
    return number === undefined ? this.byName.get(externalId) : this.byNumber[number];
  }

  set(externalId: string, profile: Profile): void {
    const number = datasetUserNumber(externalId);
    if (number === undefined) this.byName.set(externalId, profile);
    else this.byNumber[number] = profile;
  }

  delete(externalId: string): void {
    const number = datasetUserNumber(externalId);
    if (number === undefined) this.byName.delete(externalId);
    else this.byNumber[number] = undefined;
  }
}

const DATASET_ID_PREFIX = 'user-';
const DATASET_ID_DIGITS = 6;
const ZERO = 48;
const NINE = 57;

/** The number of an id exactly as the dataset writes it (`user-000042`, `user-1234567`), else undefined. */
function datasetUserNumber(externalId: string): number | undefined {
  const digits = externalId.length - DATASET_ID_PREFIX.length;
  if (digits < DATASET_ID_DIGITS || digits > 9 || !externalId.startsWith(DATASET_ID_PREFIX)) return undefined;
  // Longer than the padding means no leading zero, so each number has one spelling.
  if (digits > DATASET_ID_DIGITS && externalId.charCodeAt(DATASET_ID_PREFIX.length) === ZERO) return undefined;
  let number = 0;
  for (let at = DATASET_ID_PREFIX.length; at < externalId.length; at++) {
    const code = externalId.charCodeAt(at);
    if (code < ZERO || code > NINE) return undefined;
    number = number * 10 + (code - ZERO);
  }
  return number;
}

/** Adds `count` occurrences at `time` to the summary of `name`. */
export function recordActivity(summaries: Map<string, ActivitySummary>, name: string, time: string, count: number): void {
  const existing = summaries.get(name);
  if (!existing) {
    summaries.set(name, { first: time, last: time, count });
    return;
  }
  existing.count += count;
  if (time < existing.first) existing.first = time;
  if (time > existing.last) existing.last = time;
}

function aliasKey(alias: UserAlias): string {
  return `${alias.alias_label}\u0000${alias.alias_name}`;
}

function fillMissing(
  target: Map<string, unknown> | undefined,
  source: ReadonlyMap<string, unknown> | undefined,
): Map<string, unknown> | undefined {
  if (!source) return target;
  const filled = target ?? new Map<string, unknown>();
  for (const [key, value] of source) if (!filled.has(key)) filled.set(key, value);
  return filled;
}

function combineSummaries(
  target: Map<string, ActivitySummary> | undefined,
  source: ReadonlyMap<string, ActivitySummary> | undefined,
): Map<string, ActivitySummary> | undefined {
  if (!source) return target;
  const combined = target ?? new Map<string, ActivitySummary>();
  for (const [name, summary] of source) {
    recordActivity(combined, name, summary.first, summary.count);
    recordActivity(combined, name, summary.last, 0);
  }
  return combined;
}
