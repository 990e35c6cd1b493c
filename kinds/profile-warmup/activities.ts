/**
 * The warm-up's I/O steps: put the audience in the store, refresh its profiles that are not fresh (newest activity
 * first, within the shared User Profile API budget), and count how much of it is fresh. Each step is idempotent: a
 * fetched profile is fresh, so a retried page skips it; the audience and the cohort download are the run's own.
 */
import { ApplicationFailure, Context, heartbeat } from '@temporalio/activity';
import { createCohortExportActivities, findCohort } from '../../activities/cohort-export.js';
import { runWithConcurrency, throttledHeartbeat } from '../../activities/engine.js';
import { claimLease, type RunRef } from '../../activities/sync-lease.js';
import { profileIdentityOf } from '../../src/profiles/answer.js';
import { fetchProfile } from '../../src/profiles/fetch.js';
import { coalesce } from '../../src/request-ledger.js';
import type { AudienceCursor, CachedProfile, ProfileAudienceCounts } from '../../src/store/store.js';
import type { WorkerContext } from '../../src/worker-context.js';

const DAY_MS = 86_400_000;
/** Users put in the audience per store round trip. */
const STAGE_CHUNK_USERS = 1_000;
/** Audience members read per page; a page's due users are fetched a few at once (the limiter paces them). */
const AUDIENCE_PAGE_USERS = 500;
const FETCH_CONCURRENCY = 4;
/** One call fetches at most this many, so the workflow records its place often. */
const FETCHES_PER_CALL = 2_000;
const USER_ID_KEY = 'user_id:';

export interface StageWarmupInput {
  run: RunRef;
  /** A saved list's (`list:<name>`), or the run's own to fill (`warmup:<run id>`). */
  audienceId: string;
  cohortId?: string;
  activeWithinDays?: number;
}

export interface WarmProfilesInput {
  run: RunRef;
  audienceId: string;
  freshSinceMs: number;
  after?: AudienceCursor;
  maxFetches: number;
}

export interface WarmedPage {
  fetched: number;
  /** Of those, users Amplitude has not seen. */
  unknown: number;
  /** Whether every member has been read; if not, the next call reads on after `resumeAfter` (none: from the start). */
  done: boolean;
  resumeAfter?: AudienceCursor;
}

export function createProfileWarmupActivities(context: WorkerContext) {
  const { store } = context;
  const cohortExports = createCohortExportActivities(context);

  /** One warm-up of an audience at a time: a second one started meanwhile fails, naming the first. */
  async function holdAudience(run: RunRef): Promise<void> {
    const lease = await claimLease(store, run);
    if (!lease.held) {
      throw ApplicationFailure.nonRetryable(`${lease.runInProgress} is warming this audience already`, 'WarmupInProgress');
    }
  }

  async function stageActiveUsers(audienceId: string, activeWithinDays: number): Promise<void> {
    const sinceMs = Date.now() - activeWithinDays * DAY_MS;
    let afterKey: string | undefined = USER_ID_KEY;
    do {
      const page = await store.activeUsers({ afterKey, limit: STAGE_CHUNK_USERS, sinceMs });
      const identified = page.items.filter((user) => user.userKey.startsWith(USER_ID_KEY));
      await store.addToProfileAudience(
        audienceId,
        identified.map((user) => user.userKey),
      );
      // Keys are in order: past the identified users, there are none left to read.
      afterKey = identified.length < page.items.length ? undefined : page.nextAfterKey;
      heartbeat();
    } while (afterKey !== undefined);
  }

  async function stageCohortMembers(run: RunRef, audienceId: string, cohortId: string): Promise<void> {
    await findCohort(context, cohortId);
    const { requestId } = await cohortExports.requestCohortExport({ run, cohortId });
    await cohortExports.waitForCohortExport({ run, requestId, cohortId });
    let chunk: string[] = [];
    for await (const member of context.amplitude.streamCohortMembers(requestId)) {
      if (member.userId !== null) chunk.push(`${USER_ID_KEY}${member.userId}`);
      if (chunk.length === STAGE_CHUNK_USERS) {
        await store.addToProfileAudience(audienceId, chunk);
        chunk = [];
        heartbeat();
      }
    }
    await store.addToProfileAudience(audienceId, chunk);
  }

  return {
    /** Puts the audience in the store (a saved list is there already) and resolves with its size. */
    stageWarmupAudience: async (input: StageWarmupInput): Promise<number> => {
      const { run, audienceId } = input;
      await holdAudience(run);
      // Anonymous users are not warmed: a Braze template asks for a profile by its external id (the user id).
      if (input.cohortId !== undefined) await stageCohortMembers(run, audienceId, input.cohortId);
      else if (input.activeWithinDays !== undefined) await stageActiveUsers(audienceId, input.activeWithinDays);
      const { members } = await store.profileAudienceCounts(audienceId, 0);
      if (members === 0 && input.cohortId === undefined && input.activeWithinDays === undefined) {
        throw ApplicationFailure.nonRetryable(
          `No list is saved as "${audienceId}" (or it is empty): save it with "ampbraze profiles list save <name> --file …" first`,
          'InvalidProfileWarmup',
        );
      }
      return members;
    },

    /**
     * Fetches the profiles of the audience that are not fresh, page by page from the cursor, newest activity first,
     * each on a slot of the shared budget (waiting for one heartbeats). Each answer is kept as it comes.
     */
    warmProfiles: async (input: WarmProfilesInput): Promise<WarmedPage> => {
      await holdAudience(input.run);
      const signal = Context.current().cancellationSignal;
      const heartbeatNow = throttledHeartbeat();
      const keep = coalesce(async (profiles: CachedProfile[]) => {
        await store.keepProfiles(profiles);
        return profiles.map(() => undefined);
      });
      const limit = Math.min(input.maxFetches, FETCHES_PER_CALL);
      const warmed = { fetched: 0, unknown: 0 };
      let after = input.after;
      do {
        const page = await store.profileAudiencePage(input.audienceId, {
          after,
          limit: AUDIENCE_PAGE_USERS,
          freshSinceMs: input.freshSinceMs,
        });
        const due = page.due.slice(0, limit - warmed.fetched);
        // An erased user's profile is neither fetched nor kept.
        const suppressed = await context.suppression.check(due, profileIdentityOf);
        const fetching = suppressed.size === 0 ? due : due.filter((userKey) => !suppressed.has(userKey));
        await runWithConcurrency(fetching, FETCH_CONCURRENCY, async (userKey) => {
          await context.amplitudeProfiles.acquire(1, { signal, whileWaiting: () => heartbeat() });
          const { kept } = await fetchProfile(context.amplitude, context.amplitudeProfiles, userKey);
          await keep(kept);
          warmed.fetched += 1;
          if (kept.userData === null) warmed.unknown += 1;
          heartbeatNow();
        });
        // A page cut short by the limit is read again by the next call: its fetched users are fresh by then.
        if (due.length < page.due.length) return { ...warmed, done: false, ...(after && { resumeAfter: after }) };
        after = page.next;
        // A fresh audience is read through without a fetch: each page shows the activity is alive.
        heartbeat();
        await holdAudience(input.run);
      } while (after !== undefined && warmed.fetched < limit);
      return { ...warmed, done: after === undefined, ...(after && { resumeAfter: after }) };
    },

    /** Counts the audience's fresh profiles, drops the run's own audience (never a saved list), and frees the audience. */
    finishWarmup: async (input: {
      run: RunRef;
      audienceId: string;
      freshSinceMs: number;
      keepAudience: boolean;
    }): Promise<ProfileAudienceCounts> => {
      const counts = await store.profileAudienceCounts(input.audienceId, input.freshSinceMs);
      if (!input.keepAudience) await store.deleteProfileAudience(input.audienceId);
      await store.releaseSyncLease(input.run.syncId, input.run.runId);
      return counts;
    },
  };
}

export type ProfileWarmupActivities = ReturnType<typeof createProfileWarmupActivities>;
