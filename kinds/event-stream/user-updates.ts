/**
 * What a batch of streamed items says about users' properties: of each user the latest update (an event's user
 * properties at its event time, or an Identify update at its arrival), checked against the activity index so that an
 * older update arriving late never overwrites a newer one; and the Braze attributes that the real-time trait
 * mappings make of the properties that result. Pure.
 */
import type { JsonObject, UserActivity } from '../../src/store/store.js';
import { REALTIME_TRAITS_PREFIX, type RealtimeTraitMapping, type TraitSelection } from '../trait-sync/input.js';
import { attributeChanges, desiredAttributes } from '../trait-sync/values.js';

export interface PropertyUpdate {
  userKey: string;
  timeMs: number;
  properties: JsonObject;
  /** An Identify update names only the properties it changes; an event carries them all. */
  partial: boolean;
}

/** Keeps of each user the update with the latest time (of equal times, the one offered last). */
export function offerUpdate(latest: Map<string, PropertyUpdate>, update: PropertyUpdate): void {
  const known = latest.get(update.userKey);
  if (!known || update.timeMs >= known.timeMs)
    latest.set(update.userKey, update.partial && known ? { ...update, properties: { ...known.properties, ...update.properties } } : update);
}

/**
 * The activity to record for each update, given what the index holds: an update older than the user's recorded
 * activity is left out (counted by the caller); a partial one is applied over the recorded properties.
 */
export function activityAfter(
  updates: Iterable<PropertyUpdate>,
  recorded: ReadonlyMap<string, UserActivity>,
): { activity: UserActivity[]; older: number } {
  const activity: UserActivity[] = [];
  let older = 0;
  for (const update of updates) {
    const known = recorded.get(update.userKey);
    if (known && known.lastEventMs > update.timeMs) {
      older += 1;
      continue;
    }
    const properties = update.partial ? { ...known?.properties, ...update.properties } : update.properties;
    activity.push({ userKey: update.userKey, lastEventMs: update.timeMs, properties });
  }
  return { activity, older };
}

/** The trait selections of the saved real-time mappings: properties only, and never an unset. */
export function realtimeSelections(saved: ReadonlyArray<{ stream: string; settings: JsonObject }>): TraitSelection[] {
  return saved
    .filter(({ stream }) => stream.startsWith(REALTIME_TRAITS_PREFIX))
    .map(({ settings }) => {
      const { properties, attributePrefix, rename, types } = settings as unknown as RealtimeTraitMapping;
      return { properties, computations: [], recommendations: [], attributePrefix, rename, types, onMissing: 'keep' };
    });
}

/** The attribute writes every mapping asks of a user with these properties, against what Braze last accepted. */
export function attributeWrites(
  properties: JsonObject,
  selections: readonly TraitSelection[],
  sent: ReadonlyMap<string, string> | undefined,
): JsonObject {
  const writes: JsonObject = {};
  for (const selection of selections) Object.assign(writes, attributeChanges(desiredAttributes(properties, selection), sent, selection));
  return writes;
}
