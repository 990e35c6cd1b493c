/** The profiles a Braze sandbox starts with (and returns to on reset), read once and kept compactly. */
import type { UserAlias } from './json-values.js';
import type { ProfileStore } from './profiles.js';

export interface BrazeSeedUser {
  external_id?: string;
  user_aliases?: UserAlias[];
  /** Only an anonymous profile (no external_id) can be matched by device_id in a cohort import. */
  device_ids?: string[];
  custom_attributes?: Record<string, unknown>;
}

/** A seed user that is only an external_id is kept as the bare string: most of a large seed is. */
export type CompactSeed = Array<string | BrazeSeedUser>;

export function compactSeed(users: Iterable<BrazeSeedUser>): CompactSeed {
  const seed: CompactSeed = [];
  for (const user of users) {
    const bare = user.external_id !== undefined && !user.user_aliases?.length && !user.device_ids?.length && !user.custom_attributes;
    seed.push(bare ? (user.external_id as string) : user);
  }
  return seed;
}

export function loadSeed(store: ProfileStore, seed: CompactSeed): void {
  for (const user of seed) {
    if (typeof user === 'string') {
      store.create({ kind: 'external_id', value: user });
      continue;
    }
    const profile = store.create(user.external_id === undefined ? undefined : { kind: 'external_id', value: user.external_id });
    for (const alias of user.user_aliases ?? []) store.addAlias(profile, alias);
    for (const deviceId of user.device_ids ?? []) store.addDevice(profile, deviceId);
    if (user.custom_attributes) profile.customAttributes = new Map(Object.entries(user.custom_attributes));
  }
}
