/**
 * One erasure, end to end: the ids given widened by the ids seen with them; as asked, the users deleted in Braze and
 * deletion requested from Amplitude; every copy removed from the store and the ids suppressed (one transaction). The
 * caller then clears the freed space (`clearFreedSpace`, once for many erasures), so no erased value lingers in files.
 */
import { chunk } from '../braze/batching.js';
import { addressOf } from '../cohort/identifiers.js';
import { RateLimitedError } from '../errors.js';
import type { SharedRateLimiter } from '../rate-limiter.js';
import type { ErasureIdentities } from '../store/store.js';
import type { WorkerContext } from '../worker-context.js';
import type { IdKind } from './suppression.js';

/** Braze's `/users/delete` takes at most 50 identifiers a request; Amplitude's deletion API 100. */
const BRAZE_DELETES_PER_REQUEST = 50;
const AMPLITUDE_DELETIONS_PER_REQUEST = 100;
/** A request a vendor refuses with 429 this many times in a row fails the attempt. */
const RATE_LIMITED_ATTEMPTS = 10;

export interface ErasureOptions {
  erasureKey: string;
  source: string;
  deleteInBraze: boolean;
  deleteInAmplitude: boolean;
  /** Who Amplitude records as asking (its `requester`). */
  requester: string;
  /** Called between vendor requests, so a long erasure keeps its activity's heartbeat. */
  onProgress?: () => void;
}

/** What an erasure did, in counts (it is kept in workflow history and printed; it names no one). */
export interface ErasureReport {
  /** False when this erasure was done before: nothing was done again. */
  done: boolean;
  /** Ids erased, the ids seen with the given ones included. */
  ids: { userIds: number; deviceIds: number; amplitudeIds: number };
  /** Rows removed (or, in ledgers, reduced to a hash) per table. */
  removed: Record<string, number>;
  suppressed: number;
  braze?: { requests: number; deleted: number };
  amplitude?: { requests: number; scheduledDays: string[] };
}

export async function eraseUsers(
  context: Pick<WorkerContext, 'store' | 'suppression' | 'braze' | 'amplitude' | 'brazeIdentityLimiter' | 'amplitudeDeletionLimiter'>,
  given: ErasureIdentities,
  options: ErasureOptions,
): Promise<ErasureReport> {
  const { store, suppression } = context;
  const identities = await store.identitiesSeenWith(given);
  const ids = { userIds: identities.userIds.length, deviceIds: identities.deviceIds.length, amplitudeIds: identities.amplitudeIds.length };
  const hashes = [
    ...hashesOf('user_id', identities.userIds),
    ...hashesOf('device_id', identities.deviceIds),
    ...hashesOf('amplitude_id', identities.amplitudeIds),
  ];
  if ((await store.erasuresRecorded([options.erasureKey])).size > 0) return { done: false, ids, removed: {}, suppressed: 0 };
  const report: ErasureReport = { done: true, ids, removed: {}, suppressed: hashes.length };
  // The vendors first: a retried attempt repeats their (idempotent) deletions, where a store erased first would have
  // nothing left to find them by.
  if (options.deleteInBraze)
    report.braze = await deleteInBraze(context, context.brazeIdentityLimiter, identities, await store.aliasKeysOf(identities), options);
  if (options.deleteInAmplitude)
    report.amplitude = await requestAmplitudeDeletion(context, context.amplitudeDeletionLimiter, identities, options);
  const outcome = await store.eraseUsers({
    erasureKey: options.erasureKey,
    source: options.source,
    atMs: Date.now(),
    identities,
    suppress: hashes,
    keyFingerprint: suppression.key.fingerprint,
    hashKey: (key) => suppression.key.hashKey(key),
  });
  if (!outcome.done) return { done: false, ids, removed: {}, suppressed: 0 };
  report.removed = outcome.removed;
  return report;

  function hashesOf(kind: IdKind, values: readonly string[]): string[] {
    return values.map((value) => suppression.key.hashId(kind, value));
  }
}

async function deleteInBraze(
  context: Pick<WorkerContext, 'braze'>,
  limiter: SharedRateLimiter,
  identities: ErasureIdentities,
  aliasKeys: readonly string[],
  options: ErasureOptions,
): Promise<{ requests: number; deleted: number }> {
  const aliases = aliasKeys.flatMap((key) => {
    const address = addressOf(key);
    return address.kind === 'user_alias' ? [{ aliasName: address.aliasName, aliasLabel: address.aliasLabel }] : [];
  });
  // `/users/delete` takes one kind of identifier a request.
  const targets = [
    ...chunk(identities.userIds, BRAZE_DELETES_PER_REQUEST).map((externalIds) => ({ externalIds })),
    ...chunk(aliases, BRAZE_DELETES_PER_REQUEST).map((userAliases) => ({ userAliases })),
  ];
  const result = { requests: 0, deleted: 0 };
  for (const target of targets) {
    await limiter.acquire(1, { whileWaiting: options.onProgress });
    const { deleted } = await retryingRateLimits(() => context.braze.deleteUsers(target), options);
    result.requests += 1;
    result.deleted += deleted;
  }
  return result;
}

async function requestAmplitudeDeletion(
  context: Pick<WorkerContext, 'amplitude'>,
  limiter: SharedRateLimiter,
  identities: ErasureIdentities,
  options: ErasureOptions,
): Promise<{ requests: number; scheduledDays: string[] }> {
  const requests = [
    ...chunk(identities.userIds, AMPLITUDE_DELETIONS_PER_REQUEST).map((userIds) => ({ userIds })),
    ...chunk(identities.amplitudeIds, AMPLITUDE_DELETIONS_PER_REQUEST).map((amplitudeIds) => ({ amplitudeIds })),
  ];
  const days = new Set<string>();
  for (const request of requests) {
    await limiter.acquire(1, { whileWaiting: options.onProgress });
    const job = await retryingRateLimits(
      () => context.amplitude.requestUserDeletions({ ...request, requester: options.requester }),
      options,
    );
    days.add(job.day);
  }
  return { requests: requests.length, scheduledDays: [...days].sort() };
}

/**
 * Waits out a vendor's rate limit in place (a retried attempt would repeat every deletion before this one), a
 * bounded number of times: past it, the activity fails and its retry goes on after Temporal's back-off.
 */
async function retryingRateLimits<T>(send: () => Promise<T>, options: ErasureOptions): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await send();
    } catch (error) {
      if (!(error instanceof RateLimitedError) || attempt === RATE_LIMITED_ATTEMPTS) throw error;
      options.onProgress?.();
      await new Promise((resolve) => setTimeout(resolve, error.retryAfterMs ?? 1_000));
    }
  }
}
