/** Who an erasure is about, as stored (a request) and as widened by the ids seen together. */
import type { ErasureIdentities } from '../store.js';

export interface IdentityRow {
  amplitudeId: string;
  /** `user_id:…` or `device_id:…`. */
  userKey: string;
}

export function identitiesJson(identities: ErasureIdentities): string {
  return JSON.stringify(identities);
}

export function parseIdentities(json: string): ErasureIdentities {
  const { userIds = [], deviceIds = [], amplitudeIds = [] } = JSON.parse(json) as Partial<ErasureIdentities>;
  return { userIds, deviceIds, amplitudeIds };
}

/**
 * The ids given and those seen with them, two steps out: an Amplitude id leads to its user and devices, a user or
 * device to its Amplitude ids, and those to their devices (an erased user's other devices are theirs too).
 */
export async function expandIdentities(
  given: ErasureIdentities,
  seenWith: (amplitudeIds: string[], userKeys: string[]) => Promise<IdentityRow[]>,
): Promise<ErasureIdentities> {
  const users = new Set(given.userIds);
  const devices = new Set(given.deviceIds);
  const amplitudeIds = new Set(given.amplitudeIds);
  for (let step = 0; step < 2; step++) {
    const userKeys = [...[...users].map((id) => `user_id:${id}`), ...[...devices].map((id) => `device_id:${id}`)];
    for (const { amplitudeId, userKey } of await seenWith([...amplitudeIds], userKeys)) {
      amplitudeIds.add(amplitudeId);
      if (userKey.startsWith('user_id:')) users.add(userKey.slice('user_id:'.length));
      else if (userKey.startsWith('device_id:')) devices.add(userKey.slice('device_id:'.length));
    }
  }
  return { userIds: [...users], deviceIds: [...devices], amplitudeIds: [...amplitudeIds] };
}
