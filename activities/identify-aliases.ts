/**
 * Anonymous users who signed in: the aliases marked since (a user id appeared with the device or Amplitude id an alias
 * is named after) are identified to that external id before a page writes anything, so Braze merges the alias profile
 * into the identified one instead of keeping two people. Each alias is claimed by one worker and recorded once done;
 * one Braze refuses is recorded with its reason, as a skip of the run.
 */
import { NonRetryableVendorError } from '../src/errors.js';
import type { TrackPayload } from '../src/braze/batching.js';
import type { AliasIdentification, BrazeAliasRef } from '../src/store/store.js';
import type { WorkerContext } from '../src/worker-context.js';
import { skipped } from './engine.js';
import type { RunRef } from './sync-lease.js';

/** `/users/identify` takes at most 50 aliases a request. */
const IDENTIFY_PER_REQUEST = 50;
/** An alias claimed by a worker that died is taken again after this long. */
const CLAIM_MS = 30_000;

export async function identifyMarkedAliases(context: WorkerContext, run: RunRef, whileWaiting: () => void): Promise<number> {
  let identified = 0;
  for (;;) {
    const claimed = await context.store.claimAliasesToIdentify(IDENTIFY_PER_REQUEST, Date.now(), CLAIM_MS);
    if (claimed.length === 0) return identified;
    await context.brazeIdentityLimiter.acquire(1, { whileWaiting });
    let results: AliasIdentification[];
    try {
      await context.braze.identifyAliases(
        claimed.map(({ externalId, aliasName, aliasLabel }) => ({ externalId, alias: { aliasName, aliasLabel } })),
      );
      results = claimed.map((alias) => ({ ...alias, identified: true }));
    } catch (error) {
      // Anything else is retried with the activity; the claims lapse and are taken again.
      if (!(error instanceof NonRetryableVendorError)) throw error;
      const reason = `alias not identified: ${error.vendorMessage ?? error.message}`;
      results = claimed.map((alias) => ({ ...alias, identified: false, reason }));
      await context.store.recordFailures(
        run.runId,
        claimed.map(({ aliasLabel, aliasName }) => skipped(`alias:${aliasLabel}:${aliasName}`, reason)),
      );
    }
    await context.store.recordIdentifications(results, Date.now());
    identified += results.filter((result) => result.identified).length;
    whileWaiting();
  }
}

/** The aliases a track request addresses: recorded before it goes, so that a later sign-in can be identified. */
export function aliasesIn(payload: TrackPayload): BrazeAliasRef[] {
  const aliases = new Map<string, BrazeAliasRef>();
  for (const objects of [payload.attributes, payload.events, payload.purchases]) {
    for (const object of objects ?? []) {
      const alias = object.user_alias as { alias_name?: unknown; alias_label?: unknown } | undefined;
      if (typeof alias?.alias_name === 'string' && typeof alias.alias_label === 'string')
        aliases.set(`${alias.alias_label}:${alias.alias_name}`, { aliasName: alias.alias_name, aliasLabel: alias.alias_label });
    }
  }
  return [...aliases.values()];
}
