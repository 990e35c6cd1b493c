/** One User Profile API fetch, as every reader of profiles makes it: within the shared budget, kept for all of them. */
import type { AmplitudeClient } from '../amplitude/client.js';
import type { AmplitudeUserProfile } from '../amplitude/schemas.js';
import { RateLimitedError } from '../errors.js';
import type { SharedRateLimiter } from '../rate-limiter.js';
import type { CachedProfile } from '../store/store.js';
import { PROFILE_FETCH, profileIdentityOf } from './answer.js';

export interface FetchedProfile {
  /** What the store keeps of it. */
  kept: CachedProfile;
  /** Parsed; null: Amplitude has not seen the user. */
  profile: AmplitudeUserProfile | null;
}

/**
 * Fetches the profile of a `user_id:` or `device_id:` key, on a slot already taken from `limiter`. When Amplitude says
 * the organisation's limit is spent (others share it), every process that shares the limiter waits for its reset.
 */
export async function fetchProfile(amplitude: AmplitudeClient, limiter: SharedRateLimiter, userKey: string): Promise<FetchedProfile> {
  try {
    const profile = await amplitude.getUserProfile(profileIdentityOf(userKey), PROFILE_FETCH);
    return { kept: { userKey, fetchedAtMs: Date.now(), userData: profile?.answer ?? null }, profile };
  } catch (error) {
    if (error instanceof RateLimitedError) await limiter.observe({ remaining: 0, resetAtMs: Date.now() + error.retryAfterMs });
    throw error;
  }
}
