/**
 * What a user's Amplitude properties mean as Braze custom attributes, as pure functions: each value mapped to
 * a Braze type faithfully (or to the type the sync asks for), values Braze would reject named with the reason,
 * and the changes against the values Braze last accepted — only those are sent.
 */
import type { JsonObject, JsonValue } from '../../src/store/store.js';
import { traitAttributes, type AttributeType, type TraitSelection } from './input.js';

const MAX_STRING_LENGTH = 255;
const NUMERIC_STRING = /^-?\d+(\.\d+)?([eE][-+]?\d+)?$/;
/** Amplitude's `YYYY-MM-DD HH:MM:SS[.ffffff]` and ISO-8601 dates or date-times. */
const TIME_STRING = /^\d{4}-\d{2}-\d{2}([ T]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?)?$/;
/** Braze stores a time outside these years as a string. */
const [MIN_YEAR, MAX_YEAR] = [0, 3000];

export type MappedValue = { value: JsonValue } | { problem: string };

/** One Amplitude value as the Braze value to send (a string, number, boolean, ISO time or string array), or why not. */
export function brazeValue(value: JsonValue, type: AttributeType | undefined): MappedValue {
  switch (type) {
    case undefined:
      return faithful(value);
    case 'string':
      if (typeof value === 'number' || typeof value === 'boolean') return { value: String(value) };
      return typeof value === 'string' ? checkedString(value) : mismatch(value, type);
    case 'number': {
      const number = typeof value === 'string' && NUMERIC_STRING.test(value.trim()) ? Number(value) : value;
      return typeof number === 'number' && Number.isFinite(number) ? { value: number } : mismatch(value, type);
    }
    case 'boolean':
      if (typeof value === 'boolean') return { value };
      return value === 'true' || value === 'false' ? { value: value === 'true' } : mismatch(value, type);
    case 'time':
      return timeValue(value);
  }
}

function faithful(value: JsonValue): MappedValue {
  if (typeof value === 'string') return checkedString(value);
  if (typeof value === 'number') return Number.isFinite(value) ? { value } : { problem: 'a number Braze cannot store' };
  if (typeof value === 'boolean') return { value };
  if (Array.isArray(value)) {
    // Braze arrays hold unique strings: numbers and booleans are written as their text, a repeat is left out.
    const items: string[] = [];
    for (const item of value) {
      if (item === null || typeof item === 'object') return { problem: 'an array of objects or arrays (not a Braze string array)' };
      const text = String(item);
      if (text.length > MAX_STRING_LENGTH) return { problem: `an array item over ${MAX_STRING_LENGTH} characters` };
      if (!items.includes(text)) items.push(text);
    }
    return { value: items };
  }
  return { problem: 'an object (nested attributes are not synced)' };
}

function checkedString(value: string): MappedValue {
  return value.length > MAX_STRING_LENGTH ? { problem: `a string over ${MAX_STRING_LENGTH} characters` } : { value };
}

function timeValue(value: JsonValue): MappedValue {
  let ms: number | undefined;
  if (typeof value === 'number' && Number.isFinite(value)) ms = value;
  else if (typeof value === 'string' && TIME_STRING.test(value.trim()))
    ms = Date.parse(
      value
        .trim()
        .replace(' ', 'T')
        .replace(/(T[\d:.]+)$/, '$1Z'),
    );
  if (ms === undefined || Number.isNaN(ms)) return mismatch(value, 'time');
  const year = new Date(ms).getUTCFullYear();
  if (year < MIN_YEAR || year > MAX_YEAR) return { problem: `a time in the year ${year}, which Braze would store as a string` };
  return { value: new Date(ms).toISOString() };
}

function mismatch(value: JsonValue, type: AttributeType): MappedValue {
  const found = Array.isArray(value) ? 'an array' : value === null ? 'null' : `a ${typeof value}`;
  return { problem: `${found} where the sync's type is ${type}` };
}

/**
 * A cohort file's property cell as the value it stands for: the file holds text only, so the text of a number,
 * `true` or `false`, or a JSON array reads as that value (a sync's `types` still decides what Braze gets); an empty cell is no value.
 */
export function cohortFileValue(text: string): JsonValue | undefined {
  if (text === '') return undefined;
  if (text === 'true' || text === 'false') return text === 'true';
  // Only the text a number prints as: "12.5" is a number, "0123" (a zip code) and "12.50" stay text.
  if (NUMERIC_STRING.test(text) && String(Number(text)) === text) return Number(text);
  if (text.startsWith('[') && text.endsWith(']')) {
    try {
      const parsed: unknown = JSON.parse(text);
      if (Array.isArray(parsed)) return parsed as JsonValue[];
    } catch {
      // Not JSON after all: the text itself is the value.
    }
  }
  return text;
}

/** A cohort member's property cells (by column name) as user properties. */
export function cohortFileProperties(cells: Record<string, string>): JsonObject {
  const properties: JsonObject = {};
  for (const [name, text] of Object.entries(cells)) {
    const value = cohortFileValue(text);
    if (value !== undefined) properties[name] = value;
  }
  return properties;
}

/**
 * A user's attributes: the values to write, the attributes whose value Braze would reject (with why), and the
 * attributes whose source has not been read for the user yet (a profile not fetched): those are left alone.
 */
export interface DesiredAttributes {
  values: Map<string, JsonValue>;
  problems: Map<string, string>;
  unknown: Set<string>;
}

/**
 * What a user's User Profile API answer holds for a sync: computations by id (Amplitude sends them as strings)
 * and recommendations by id (null when the profile has none of that id).
 */
export interface ProfileValues {
  computations: Record<string, string | null>;
  recommendations: Record<string, { items: JsonValue[]; isControl: boolean } | null>;
}

/**
 * What the sync wants Braze to hold for a user with these Amplitude user properties and (for computations and
 * recommendations) this profile, undefined while the user's profile has not been fetched.
 */
export function desiredAttributes(properties: JsonObject, selection: TraitSelection, profile?: ProfileValues): DesiredAttributes {
  const desired: DesiredAttributes = { values: new Map(), problems: new Map(), unknown: new Set() };
  for (const { source, key, attribute, controlDefault } of traitAttributes(selection)) {
    if (source !== 'property' && profile === undefined) {
      desired.unknown.add(attribute);
      continue;
    }
    let mapped: MappedValue | undefined;
    if (source === 'property') {
      const value = properties[key];
      if (value !== undefined && value !== null) mapped = brazeValue(value, selection.types[attribute]);
    } else if (source === 'computation') {
      const value = profile!.computations[key];
      // Computations arrive as strings ("5000000.0"): numeric ones are numbers unless the sync types them.
      if (value !== undefined && value !== null)
        mapped = brazeValue(value, selection.types[attribute] ?? (NUMERIC_STRING.test(value) ? 'number' : undefined));
    } else {
      const recommendation = profile!.recommendations[key];
      const items = recommendation?.isControl ? controlDefault : recommendation?.items;
      if (items !== undefined) mapped = brazeValue(items, undefined);
    }
    if (mapped === undefined) continue;
    if ('value' in mapped) desired.values.set(attribute, mapped.value);
    else desired.problems.set(attribute, mapped.problem);
  }
  return desired;
}

/** How a value is kept in the attribute snapshot (and compared with it). */
export function snapshotValue(value: JsonValue): string {
  return JSON.stringify(value);
}

/**
 * The writes that bring Braze from what it last accepted (`sent`, attribute → snapshot value) to `desired`:
 * changed values, and `null` for a value that disappeared when the sync unsets. An attribute whose new value
 * Braze would reject is left as it is (and reported), never unset; so is one whose source is not read yet.
 */
export function attributeChanges(
  desired: DesiredAttributes,
  sent: ReadonlyMap<string, string> | undefined,
  selection: TraitSelection,
): JsonObject {
  const changes: JsonObject = {};
  for (const { attribute } of traitAttributes(selection)) {
    if (desired.unknown.has(attribute)) continue;
    const value = desired.values.get(attribute);
    const last = sent?.get(attribute);
    if (value !== undefined) {
      if (last !== snapshotValue(value)) changes[attribute] = value;
    } else if (last !== undefined && selection.onMissing === 'unset' && !desired.problems.has(attribute)) {
      changes[attribute] = null;
    }
  }
  return changes;
}

/** The staged changes still needed against the snapshot as it is now: a value written since is not sent again. */
export function stillToSend(changes: JsonObject, sentNow: ReadonlyMap<string, string> | undefined): JsonObject {
  const needed: JsonObject = {};
  for (const [attribute, value] of Object.entries(changes)) {
    const last = sentNow?.get(attribute);
    if (value === null ? last !== undefined : last !== snapshotValue(value)) needed[attribute] = value;
  }
  return needed;
}
