/** HTTP V2 / Batch event validation: every offending event, by field, as Amplitude's 400 index maps. */
import { InvalidUserPropertiesError, validateUserProperties } from './user-properties.js';

export interface EventValidation {
  invalidFields: Record<string, number[]>;
  missingFields: Record<string, number[]>;
}

/** Ids Amplitude refuses outright, compared case-insensitively. */
const INVALID_IDS = new Set([
  'anonymous',
  'nil',
  'none',
  'null',
  'n/a',
  'na',
  'undefined',
  'unknown',
  '',
  '00000000-0000-0000-0000-000000000000',
  '{}',
  'lmy47d',
  '0',
  '-1',
]);
const MAX_STRING_LENGTH = 1_024;
/** Anything below this is a time in seconds (or garbage), not milliseconds since the epoch. */
const MIN_MILLISECOND_TIME = 1e11;

const isPresent = (value: unknown) => value !== undefined && value !== null;
const isRecord = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value);

export function isValidId(value: unknown, minIdLength: number): value is string {
  return (
    typeof value === 'string' && value.length >= minIdLength && value.length <= MAX_STRING_LENGTH && !INVALID_IDS.has(value.toLowerCase())
  );
}

function userPropertiesAreValid(value: unknown): boolean {
  try {
    validateUserProperties(value);
    return true;
  } catch (error) {
    if (error instanceof InvalidUserPropertiesError) return false;
    throw error;
  }
}

/** Field → test that is true when the (present) value is invalid. */
const INVALID_WHEN: Record<string, (value: unknown) => boolean> = {
  event_type: (value) => typeof value !== 'string' || value.length > MAX_STRING_LENGTH,
  time: (value) => !Number.isSafeInteger(value) || (value as number) < MIN_MILLISECOND_TIME,
  insert_id: (value) => typeof value !== 'string' || value.length === 0 || value.length > MAX_STRING_LENGTH,
  session_id: (value) => !Number.isSafeInteger(value),
  event_properties: (value) => !isRecord(value),
  user_properties: (value) => !userPropertiesAreValid(value),
};

export function validateEvents(events: readonly unknown[], minIdLength: number): EventValidation {
  const invalidFields: Record<string, number[]> = {};
  const missingFields: Record<string, number[]> = {};
  const flag = (fields: Record<string, number[]>, field: string, index: number) => (fields[field] ??= []).push(index);
  events.forEach((event, index) => {
    if (!isRecord(event)) {
      flag(invalidFields, 'event', index);
      return;
    }
    if (!isPresent(event.event_type) || event.event_type === '') flag(missingFields, 'event_type', index);
    for (const [field, isInvalid] of Object.entries(INVALID_WHEN)) {
      const value = event[field];
      if (isPresent(value) && (field !== 'event_type' || value !== '') && isInvalid(value)) flag(invalidFields, field, index);
    }
    for (const field of ['user_id', 'device_id'] as const) {
      if (isPresent(event[field]) && !isValidId(event[field], minIdLength)) flag(invalidFields, field, index);
    }
    // Amplitude does not document the field it names when both ids are absent; device_id is what it derives.
    if (!isPresent(event.user_id) && !isPresent(event.device_id)) flag(missingFields, 'device_id', index);
  });
  return { invalidFields, missingFields };
}
