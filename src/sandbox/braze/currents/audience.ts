/** The sandbox's profiles as a Currents audience, split by what identifies them. */
import type { Profile, ProfileStore } from '../profiles.js';
import type { CurrentsAudience, CurrentsUser, UserPool } from './events.js';

function currentsUser(profile: Profile): CurrentsUser {
  return { brazeId: profile.brazeId, externalId: profile.externalId, deviceId: profile.deviceIds[0] };
}

const poolOf = (profiles: readonly Profile[]): UserPool => ({
  size: profiles.length,
  at: (position) => currentsUser(profiles[position]!),
});

/** Holds one reference per profile, read as events are generated. */
export function audienceOf(store: ProfileStore): CurrentsAudience {
  const identified: Profile[] = [];
  const anonymous: Profile[] = [];
  const brazeIdOnly: Profile[] = [];
  for (const profile of store.profiles()) {
    if (profile.externalId !== undefined) identified.push(profile);
    else if (profile.deviceIds.length > 0) anonymous.push(profile);
    else brazeIdOnly.push(profile);
  }
  return { identified: poolOf(identified), anonymous: poolOf(anonymous), brazeIdOnly: poolOf(brazeIdOnly) };
}
