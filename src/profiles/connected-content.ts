/**
 * Braze Connected Content's profile lookups, answered from the store: Amplitude's Profile API allows 600 requests a
 * minute per organisation, a campaign's send makes thousands a second. A kept profile is answered at once (and, past
 * its age, refreshed in the background); a user never fetched is fetched while Braze waits, if the shared budget has a
 * slot left; otherwise the answer is the configured fallback — never a 429, which would cost Braze the message.
 */
import type { AmplitudeClient } from '../amplitude/client.js';
import type { SharedRateLimiter } from '../rate-limiter.js';
import type { CachedProfile, StateStore } from '../store/store.js';
import type { SuppressionList } from '../privacy/suppression.js';
import { parseProfileQuery, profileAnswer, profileIdentityOf, type ProfileQuery } from './answer.js';
import { fetchProfile } from './fetch.js';

/** Where an answer came from: the store, Amplitude just now, the fallback, or none (an erased user: as if unseen). */
export type ProfileSource = 'store' | 'refreshed' | 'fallback' | 'suppressed';

export interface ProfileLookup {
  status: 200 | 400;
  body: string;
  /** None for a query refused as Amplitude would refuse it. */
  source?: ProfileSource;
  /** Seconds since the profile was fetched (none for a fallback). */
  ageSeconds?: number;
  /** A refresh of the profile was queued (it was older than the configured age, or could not be fetched now). */
  refreshQueued: boolean;
}

export interface ConnectedContentOptions {
  store: StateStore;
  amplitude: AmplitudeClient;
  /** The shared User Profile API budget (every worker and receiver takes its slots from the store). */
  limiter: SharedRateLimiter;
  /** A kept profile older than this is answered, and refreshed in the background. */
  maxAgeMs: number;
  /** What a user never fetched gets when no fetch can be made now: JSON. */
  fallbackBody: string;
  /** How long Braze is kept waiting for a fetch of a user never fetched, before the fallback. */
  fetchTimeoutMs: number;
  /** Erased users: answered as a user Amplitude has not seen, never fetched or kept. */
  suppression: SuppressionList;
  onError: (error: unknown) => void;
}

/** Profiles waiting for a background fetch, at most; past it, a user is queued again by their next request. */
const MAX_QUEUED_REFRESHES = 10_000;
const REFRESH_CONCURRENCY = 4;
/** While the budget is spent, the background queue looks for a slot again this often. */
const REFRESH_RETRY_MS = 1_000;

export class ConnectedContent {
  /** Answers by source, fetches by outcome: the receiver's `/metrics`. */
  readonly counts = {
    answers: { store: 0, refreshed: 0, fallback: 0, suppressed: 0 } satisfies Record<ProfileSource, number>,
    fetches: { kept: 0, failed: 0 },
    fallbacks: { budget: 0, failed: 0, timeout: 0 },
  };
  readonly #options: ConnectedContentOptions;
  /** Fetches under way (or asking for their slot), so that concurrent requests for one user make one fetch. */
  readonly #inFlight = new Map<string, Promise<CachedProfile | 'budget' | undefined>>();
  readonly #queued = new Set<string>();
  /** The last slot request to the store: they go one at a time (see `#takeSlot`). */
  #slotRequest: Promise<unknown> = Promise.resolve();
  #refreshing = 0;
  #retryTimer: NodeJS.Timeout | undefined;
  #closed = false;

  constructor(options: ConnectedContentOptions) {
    this.#options = options;
  }

  /** The answer to a Profile API query (`user_id`, `get_recs`, `rec_id`, …). */
  async lookup(params: URLSearchParams): Promise<ProfileLookup> {
    const query = parseProfileQuery(params);
    if ('refused' in query) return { status: 400, body: JSON.stringify({ error: query.refused }), refreshQueued: false };
    if ((await this.#options.suppression.check([query.userKey], profileIdentityOf)).size > 0) {
      this.counts.answers.suppressed += 1;
      return { status: 200, body: profileAnswer(null, query), source: 'suppressed', refreshQueued: false };
    }
    const kept = await this.#options.store.cachedProfile(query.userKey);
    if (kept) {
      const stale = Date.now() - kept.fetchedAtMs > this.#options.maxAgeMs;
      if (stale) this.#queue(query.userKey);
      return this.#answer(kept, query, 'store', stale);
    }
    const fetched = await this.#fetchNow(query.userKey);
    if (fetched.profile) return this.#answer(fetched.profile, query, 'refreshed', false);
    this.counts.fallbacks[fetched.reason] += 1;
    this.counts.answers.fallback += 1;
    if (fetched.reason !== 'timeout') this.#queue(query.userKey);
    return { status: 200, body: this.#options.fallbackBody, source: 'fallback', refreshQueued: fetched.reason !== 'timeout' };
  }

  /** Stops the background refreshes (those under way finish on their own). */
  close(): void {
    this.#closed = true;
    clearTimeout(this.#retryTimer);
  }

  async #answer(kept: CachedProfile, query: ProfileQuery, source: ProfileSource, refreshQueued: boolean): Promise<ProfileLookup> {
    // User properties come from the activity index: only a query that asks for them reads it.
    const properties = query.properties
      ? (await this.#options.store.userActivities([query.userKey])).get(query.userKey)?.properties
      : undefined;
    this.counts.answers[source] += 1;
    return {
      status: 200,
      body: profileAnswer(kept.userData, query, properties),
      source,
      ageSeconds: Math.max(0, Math.floor((Date.now() - kept.fetchedAtMs) / 1_000)),
      refreshQueued,
    };
  }

  /**
   * A fetch made while Braze waits: only on a slot free now, and no longer than the fetch timeout. Concurrent lookups of
   * one user share one fetch (the first registers it before it asks for a slot).
   */
  async #fetchNow(
    userKey: string,
  ): Promise<{ profile: CachedProfile; reason?: never } | { profile?: never; reason: 'budget' | 'failed' | 'timeout' }> {
    let fetch = this.#inFlight.get(userKey);
    if (!fetch) {
      fetch = this.#fetchOnFreeSlot(userKey);
      this.#inFlight.set(userKey, fetch);
      void fetch.finally(() => this.#inFlight.delete(userKey));
    }
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), this.#options.fetchTimeoutMs)));
    try {
      const outcome = await Promise.race([fetch, timeout]);
      if (outcome === 'timeout' || outcome === 'budget') return { reason: outcome };
      return outcome ? { profile: outcome } : { reason: 'failed' };
    } finally {
      clearTimeout(timer);
    }
  }

  /** 'budget' when no slot is free now; otherwise the fetch on it (undefined when it failed: reported, never thrown). */
  async #fetchOnFreeSlot(userKey: string): Promise<CachedProfile | 'budget' | undefined> {
    try {
      // A fetch that ended between this lookup's read and now has kept the profile: read again before spending a slot.
      const keptMeanwhile = await this.#options.store.cachedProfile(userKey);
      if (keptMeanwhile) return keptMeanwhile;
      if (!(await this.#takeSlot())) return 'budget';
    } catch (error) {
      this.#options.onError(error);
      return undefined;
    }
    return this.#fetchAndKeep(userKey);
  }

  /**
   * A slot of the shared budget, if one is free now. Requests go to the store one at a time: at the start of a window a
   * burst of new users would otherwise queue on the budget's row, each holding a store connection the lookups need.
   */
  #takeSlot(): Promise<boolean> {
    const slot = this.#slotRequest.then(async () => (await this.#options.limiter.tryAcquire(1)) > 0);
    this.#slotRequest = slot.catch(() => undefined);
    return slot;
  }

  /** Fetches on a slot already taken and keeps the answer; undefined when the fetch failed (it is reported). */
  async #fetchAndKeep(userKey: string): Promise<CachedProfile | undefined> {
    const { store, amplitude, limiter } = this.#options;
    try {
      const { kept } = await fetchProfile(amplitude, limiter, userKey);
      await store.keepProfiles([kept]);
      this.counts.fetches.kept += 1;
      return kept;
    } catch (error) {
      this.counts.fetches.failed += 1;
      this.#options.onError(error);
      return undefined;
    }
  }

  #queue(userKey: string): void {
    if (this.#queued.size >= MAX_QUEUED_REFRESHES || this.#inFlight.has(userKey)) return;
    this.#queued.add(userKey);
    this.#pump();
  }

  /** Background refreshes: as many as the budget has slots for now; the rest wait for the next window. */
  #pump(): void {
    if (this.#closed || this.#retryTimer) return;
    while (this.#refreshing < REFRESH_CONCURRENCY && this.#queued.size > 0) {
      const userKey = this.#queued.values().next().value as string;
      this.#queued.delete(userKey);
      this.#refreshing += 1;
      void this.#refresh(userKey).finally(() => {
        this.#refreshing -= 1;
        this.#pump();
      });
    }
  }

  async #refresh(userKey: string): Promise<void> {
    const granted = await this.#takeSlot().catch((error: unknown) => (this.#options.onError(error), false));
    if (!granted) {
      // Spent: back in the queue, and the queue waits for a slot.
      this.#queued.add(userKey);
      this.#retryTimer ??= setTimeout(() => {
        this.#retryTimer = undefined;
        this.#pump();
      }, REFRESH_RETRY_MS).unref();
      return;
    }
    // A lookup of this user meanwhile waits for this fetch rather than making its own.
    const fetch = this.#fetchAndKeep(userKey);
    this.#inFlight.set(userKey, fetch);
    await fetch.finally(() => this.#inFlight.delete(userKey));
  }
}
