/**
 * Braze's legacy data-point rules (billing per write, unchanged values included), applied to what we send:
 * each attribute set is 1; an array `add`/`remove` is 1 per value; `inc` is 1; a nested object is 1 per key;
 * each custom event is 1 and each purchase 1 per unit, whatever properties they carry; identifiers and request
 * flags are free.
 */

const FREE_ATTRIBUTE_KEYS = new Set(['external_id', 'user_alias', 'braze_id', '_update_existing_only', '_merge_objects', 'push_tokens']);

export function attributeObjectDataPoints(object: Record<string, unknown>): number {
  let points = 0;
  for (const [key, value] of Object.entries(object)) {
    if (FREE_ATTRIBUTE_KEYS.has(key)) continue;
    points += attributeValueDataPoints(value);
  }
  return points;
}

/** One attribute's write: 1, or 1 per value of an array `add`/`remove`, or 1 per key of a nested object. */
export function attributeValueDataPoints(value: unknown): number {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return 1;
  const operation = value as Record<string, unknown>;
  if ('add' in operation || 'remove' in operation) {
    return arrayLength(operation.add) + arrayLength(operation.remove);
  }
  if ('inc' in operation) return 1;
  return Math.max(1, Object.keys(operation).length);
}

function arrayLength(value: unknown): number {
  return Array.isArray(value) ? value.length : 0;
}

/** Each custom event, whatever properties it carries. */
export const DATA_POINTS_PER_EVENT = 1;

/** Each partner-cohort membership change is one "Amplitude cohort assignment". */
export function partnerCohortChangeDataPoints(ids: number): number {
  return ids;
}
