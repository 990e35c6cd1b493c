/**
 * One attribute write with Braze's semantics and its legacy data-point cost: scalars, `inc`, string arrays
 * (set, or add/remove with unique values, move-to-end and front truncation), `null` unsets, nested objects
 * (overwrite, or deep-merge with `_merge_objects`) and arrays of objects (`$add` → `$remove` → `$update`).
 */
import { isPlainObject } from './json-values.js';
import type { DataPointKind, Profile, ProfileStore } from './profiles.js';

/** Braze's standard profile fields: stored apart from custom attributes (and billed the same). */
export const STANDARD_FIELDS = new Set([
  'country',
  'current_location',
  'date_of_first_session',
  'date_of_last_session',
  'dob',
  'email',
  'email_subscribe',
  'email_open_tracking_disabled',
  'email_click_tracking_disabled',
  'facebook',
  'first_name',
  'gender',
  'home_city',
  'image_url',
  'language',
  'last_name',
  'marked_email_as_spam_at',
  'phone',
  'push_subscribe',
  'push_tokens',
  'time_zone',
  'twitter',
  'subscription_groups',
]);

const MAX_STRING = 255;

type Json = Record<string, unknown>;
interface IdentifiedItem {
  key: string;
  value: unknown;
}

export type AttributeWrite =
  | { kind: 'unset' }
  | { kind: 'scalar'; value: string | number | boolean }
  | { kind: 'increment'; by: number }
  | { kind: 'array'; items: unknown[] }
  | { kind: 'array_change'; add: unknown[]; remove: unknown[] }
  | { kind: 'object'; value: Json }
  | { kind: 'object_array'; items: Json[] }
  | { kind: 'object_array_change'; add: Json[]; remove: IdentifiedItem[]; update: Array<IdentifiedItem & { patch: Json }> };

/** Writes to nested data: one invalid nested value makes Braze silently drop all of them in the request. */
export function isNested(write: AttributeWrite): boolean {
  return write.kind === 'object' || write.kind === 'object_array' || write.kind === 'object_array_change';
}

/** Reads one `key: value` of an attributes object; a string is Braze's per-object error for it. */
export function parseAttribute(key: string, value: unknown): AttributeWrite | string {
  if (key.startsWith('$')) return `attribute key '${key}' must not start with '$'`;
  if (key.length > MAX_STRING) return `attribute key '${key.slice(0, 20)}…' is longer than ${MAX_STRING} characters`;
  if (value === null) return { kind: 'unset' };
  if (typeof value === 'string')
    return value.length > MAX_STRING ? `'${key}' must be a string of at most ${MAX_STRING} characters` : { kind: 'scalar', value };
  if (typeof value === 'number' || typeof value === 'boolean') return { kind: 'scalar', value };
  if (Array.isArray(value)) return parseArray(key, value);
  if (!isPlainObject(value)) return `'${key}' has an unsupported value`;
  const keys = Object.keys(value);
  if (keys.length === 1 && typeof value.inc === 'number') return { kind: 'increment', by: value.inc };
  if (keys.length > 0 && keys.every((k) => (k === 'add' || k === 'remove') && Array.isArray(value[k]))) {
    const add = (value.add as unknown[] | undefined) ?? [];
    const remove = (value.remove as unknown[] | undefined) ?? [];
    return !add.every(isArrayValue) || !remove.every(isArrayValue)
      ? `'${key}' array values must be strings or numbers of at most ${MAX_STRING} characters`
      : { kind: 'array_change', add, remove };
  }
  if (keys.length > 0 && keys.every((k) => k === '$add' || k === '$remove' || k === '$update')) return parseObjectArrayChange(key, value);
  return { kind: 'object', value };
}

function parseArray(key: string, items: unknown[]): AttributeWrite | string {
  if (items.length > 0 && items.every(isPlainObject)) return { kind: 'object_array', items };
  return items.every(isArrayValue)
    ? { kind: 'array', items }
    : `'${key}' array values must be strings or numbers of at most ${MAX_STRING} characters`;
}

function parseObjectArrayChange(key: string, change: Json): AttributeWrite | string {
  const list = (name: string) => (change[name] === undefined ? [] : change[name]);
  const [add, remove, update] = [list('$add'), list('$remove'), list('$update')];
  const invalid = `'${key}' has an invalid array-of-objects change`;
  if (!Array.isArray(add) || !Array.isArray(remove) || !Array.isArray(update) || !add.every(isPlainObject)) return invalid;
  const identified = (item: unknown): IdentifiedItem | undefined =>
    isPlainObject(item) && typeof item.$identifier_key === 'string' && item.$identifier_value !== undefined
      ? { key: item.$identifier_key, value: item.$identifier_value }
      : undefined;
  const removals = remove.map(identified);
  const updates = update.map((item) => {
    const target = identified(item);
    return target && isPlainObject(item) && isPlainObject(item.$new_object) ? { ...target, patch: item.$new_object } : undefined;
  });
  if (removals.includes(undefined) || updates.includes(undefined)) return invalid;
  return {
    kind: 'object_array_change',
    add,
    remove: removals as IdentifiedItem[],
    update: updates as Array<IdentifiedItem & { patch: Json }>,
  };
}

function isArrayValue(item: unknown): boolean {
  return (typeof item === 'string' && item.length <= MAX_STRING) || typeof item === 'number';
}

/** Nested keys: ≤255 characters without spaces, `.` or `$`; no nulls; dates only as `{"$time": ISO-8601}`. */
export function nestedWriteIsValid(write: AttributeWrite): boolean {
  switch (write.kind) {
    case 'object':
      return nestedValueIsValid(write.value);
    case 'object_array':
      return write.items.every(nestedValueIsValid);
    case 'object_array_change':
      return write.add.every(nestedValueIsValid) && write.update.every((u) => nestedValueIsValid(u.patch));
    default:
      return true;
  }
}

function nestedValueIsValid(value: unknown): boolean {
  if (value === null) return false;
  if (typeof value === 'string') return value.length <= MAX_STRING;
  if (Array.isArray(value)) return value.every(nestedValueIsValid);
  if (!isPlainObject(value)) return true;
  const keys = Object.keys(value);
  if (keys.length === 1 && keys[0] === '$time') return typeof value.$time === 'string' && !Number.isNaN(Date.parse(value.$time));
  return keys.every((k) => k.length > 0 && k.length <= MAX_STRING && !/[\s.$]/.test(k)) && Object.values(value).every(nestedValueIsValid);
}

/** Applies a parsed write to the profile and bills it. */
export function applyAttribute(
  store: ProfileStore,
  profile: Profile,
  key: string,
  write: AttributeWrite,
  options: { mergeObjects: boolean; maxArrayLength: number },
): void {
  const standard = STANDARD_FIELDS.has(key);
  const current = (standard ? profile.standardAttributes : profile.customAttributes)?.get(key);
  const { value, costs } = nextValue(write, current, options);
  if (standard) store.setStandardAttribute(profile, key, value ?? null);
  else if (value === undefined) profile.customAttributes?.delete(key);
  else (profile.customAttributes ??= new Map()).set(key, value);
  for (const [kind, points] of costs) store.count(kind, points);
}

function nextValue(
  write: AttributeWrite,
  current: unknown,
  options: { mergeObjects: boolean; maxArrayLength: number },
): { value: unknown; costs: Array<[DataPointKind, number]> } {
  switch (write.kind) {
    case 'unset':
      return { value: undefined, costs: [['attribute', 1]] };
    case 'scalar':
      return { value: write.value, costs: [['attribute', 1]] };
    case 'increment':
      return { value: (typeof current === 'number' ? current : 0) + write.by, costs: [['increment', 1]] };
    case 'array':
      return { value: lastItems([...new Set(write.items)], options.maxArrayLength), costs: [['attribute', 1]] };
    case 'array_change': {
      const items = Array.isArray(current) ? [...(current as unknown[])] : [];
      for (const item of write.add) {
        const at = items.indexOf(item);
        if (at >= 0) items.splice(at, 1); // re-adding a value moves it to the end
        items.push(item);
      }
      const remaining = items.filter((item) => !write.remove.includes(item));
      return {
        value: lastItems(remaining, options.maxArrayLength),
        costs: [
          ['array_add', write.add.length],
          ['array_remove', write.remove.length],
        ],
      };
    }
    case 'object': {
      const value = options.mergeObjects && isPlainObject(current) ? deepMerge(current, write.value) : structuredClone(write.value);
      return { value, costs: [['nested_key', Math.max(1, leafKeyCount(write.value))]] };
    }
    case 'object_array':
      return { value: structuredClone(write.items), costs: [['nested_key', sumOf(write.items.map(leafKeyCount))]] };
    case 'object_array_change': {
      const matches = (item: unknown, target: IdentifiedItem) => isPlainObject(item) && item[target.key] === target.value;
      let items: unknown[] = [...(Array.isArray(current) ? (current as unknown[]) : []), ...structuredClone(write.add)];
      items = items.filter((item) => !write.remove.some((target) => matches(item, target)));
      const updates = options.mergeObjects ? write.update : []; // `$update` only works with `_merge_objects: true`
      for (const update of updates) items = items.map((item) => (matches(item, update) ? deepMerge(item as Json, update.patch) : item));
      const points = sumOf(write.add.map(leafKeyCount)) + write.remove.length + sumOf(updates.map((u) => leafKeyCount(u.patch)));
      return { value: items, costs: [['nested_key', points]] };
    }
  }
}

/** Braze keeps an array's last `max` values (the oldest go first). */
function lastItems(items: unknown[], max: number): unknown[] {
  return items.length > max ? items.slice(items.length - max) : items;
}

function deepMerge(base: Json, patch: Json): Json {
  const merged: Json = { ...base };
  for (const [key, value] of Object.entries(patch)) {
    const existing = base[key];
    merged[key] = isPlainObject(value) && isPlainObject(existing) ? deepMerge(existing, value) : structuredClone(value);
  }
  return merged;
}

/** Each nested key is billed; a `{"$time": …}` wrapper is one value. */
function leafKeyCount(object: Json): number {
  let keys = 0;
  for (const value of Object.values(object)) keys += isPlainObject(value) && !('$time' in value) ? leafKeyCount(value) : 1;
  return keys;
}

function sumOf(values: number[]): number {
  return values.reduce((a, b) => a + b, 0);
}
