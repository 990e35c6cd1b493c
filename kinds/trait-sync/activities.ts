/**
 * The trait sync's I/O steps: read the audience and its latest user properties from the activity index that
 * `eventSync` feeds, stage each user's changed attributes (against the values the workspace's Braze last
 * accepted), and send them through the engine. Each step is idempotent: a retried attempt resumes from what the
 * store holds (the staged users, the attribute snapshot) instead of starting over.
 */
import { FailureType } from '../../src/failure-types.js';
import { ApplicationFailure, Context, heartbeat } from '@temporalio/activity';
import type { AmplitudeUserProfile } from '../../src/amplitude/schemas.js';
import { fetchProfile } from '../../src/profiles/fetch.js';
import { coalesce } from '../../src/request-ledger.js';
import type {
  CachedProfile,
  JsonObject,
  JsonValue,
  MemberFailure,
  ProfileFetch,
  StagedTraitChange,
  StagingCheckpoint,
} from '../../src/store/store.js';
import { acceptedSnapshot, externalIdOf, traitPageRequests, userKeyOfUserId } from './braze-attributes.js';
import { readsProfiles, REALTIME_TRAITS_PREFIX, type TraitSelection, TRAIT_SYNC_KIND } from './input.js';
import { attributeChanges, cohortFileProperties, desiredAttributes, stillToSend, type ProfileValues } from './values.js';
import type { WorkerContext } from '../../src/worker-context.js';
import { findCohort } from '../../activities/cohort-export.js';
import {
  applyPage,
  closeRun,
  lastSyncedSourceVersion,
  readPlannedPage,
  runWithConcurrency,
  skipped,
  skipReasonsOf,
  throttledHeartbeat,
  type PageOutcome,
  type RunFailures,
} from '../../activities/engine.js';
import type {
  ApplyTraitPageInput,
  FetchedProfiles,
  FetchProfilesInput,
  FinishTraitRunInput,
  PrepareTraitRunInput,
  PreparedTraitRun,
  StagedTraits,
  StageTraitChangesInput,
  TraitPlan,
} from './activity-types.js';
import { keepLease, takeLease, type RunRef } from '../../activities/sync-lease.js';

const DAY_MS = 86_400_000;
/** Users read from the activity index per store round trip (and staged per transaction). */
const STAGE_CHUNK_USERS = 1_000;
const HEARTBEAT_EVERY_ROWS = 500;
const OUT_OF_WINDOW = 'last active before the window';
/** Users taken from the fetch queue at a time, and profiles fetched at once (the limiter paces them). */
const PROFILE_QUEUE_BATCH = 1_000;
const PROFILE_CONCURRENCY = 4;
/** The freshness reported: users whose profile was fetched within this long. */
const FRESH_WITHIN_MS = DAY_MS;
const NO_USER_ID = 'anonymous: no user id to address in Braze (a trait sync writes by user id only)';

export function createTraitSyncActivities(context: WorkerContext) {
  const { store } = context;
  const scope = context.brazeWorkspace;

  /** The activity index is the audience: refuses to sync it when no event sync has fed it for too long. */
  async function checkActivityIndex(input: PrepareTraitRunInput): Promise<{ audience: 'activity index' }> {
    if (input.windowDays > context.activeWindowDays) {
      throw ApplicationFailure.nonRetryable(
        `windowDays is ${input.windowDays}, but the activity index keeps users active in the last ${context.activeWindowDays} days (ACTIVE_WINDOW_DAYS): lower windowDays or raise ACTIVE_WINDOW_DAYS on the workers`,
        'InvalidTraitSync',
      );
    }
    const lastFed = await store.lastSucceededRunOfKind('event');
    const ageMs = lastFed?.finishedAt ? Date.now() - lastFed.finishedAt.getTime() : undefined;
    if (ageMs === undefined || ageMs > context.activityIndexMaxAgeMs) {
      const when = ageMs === undefined ? 'no event sync has fed it yet' : `the last event sync finished ${describeAge(ageMs)} ago`;
      throw ApplicationFailure.create({
        type: FailureType.ActivityIndexStale,
        nonRetryable: true,
        message: `The activity index is stale (${when}; ACTIVITY_INDEX_MAX_AGE is ${describeAge(context.activityIndexMaxAgeMs)}), so the audience and its properties would be out of date. Start the hourly ingestion with "ampbraze events schedule" (and "ampbraze events backfill --from … --to …" for past hours), or give the sync an audience cohort (audienceCohortId); then run this sync again.`,
      });
    }
    return { audience: 'activity index' };
  }

  /** A cohort is the audience: its listing says which version a download would get (the quota is spent later). */
  async function audienceCohort(input: PrepareTraitRunInput) {
    const cohort = await findCohort(context, input.audienceCohortId!);
    const sourceVersion = `${cohort.lastComputed}:${input.selectionFingerprint}`;
    return { audience: 'cohort' as const, cohortName: cohort.name, size: cohort.size ?? 0, sourceVersion };
  }

  /** Pages through the activity index: the users active in the window with a user id are the audience. */
  async function stageIndexAudience(input: StageTraitChangesInput, skip: (reason: string) => void, stage: StageUsers): Promise<void> {
    const windowStartMs = Date.now() - input.windowDays * DAY_MS;
    let afterKey: string | undefined;
    let read = 0;
    do {
      const page = await store.activeUsers({ afterKey, limit: STAGE_CHUNK_USERS, sinceMs: 0 });
      read += page.items.length;
      const audience = page.items.filter((user) => {
        if (user.lastEventMs < windowStartMs) skip(OUT_OF_WINDOW);
        else if (externalIdOf(user.userKey) === undefined) skip(NO_USER_ID);
        else return true;
        return false;
      });
      afterKey = page.nextAfterKey;
      const lastKey = page.items.at(-1)?.userKey;
      if (lastKey !== undefined) await stage(audience, { rowsConsumed: read, bytesConsumed: 0, afterKey: lastKey });
      heartbeat();
    } while (afterKey !== undefined);
  }

  /** Streams the audience cohort's export: its members with a user id, and their properties from its columns. */
  async function stageCohortAudience(requestId: string, skip: (reason: string) => void, stage: StageUsers): Promise<void> {
    let row = 0;
    let chunk: AudienceUser[] = [];
    for await (const member of context.amplitude.streamCohortMembers(requestId)) {
      row += 1;
      if (row % HEARTBEAT_EVERY_ROWS === 0) heartbeat();
      if (member.userId === null) skip(NO_USER_ID);
      else chunk.push({ userKey: userKeyOfUserId(member.userId), properties: cohortFileProperties(member.properties) });
      if (chunk.length === STAGE_CHUNK_USERS) {
        await stage(chunk, { rowsConsumed: row, bytesConsumed: 0 });
        chunk = [];
      }
    }
    await stage(chunk, { rowsConsumed: row, bytesConsumed: 0 });
  }

  /** Counts one chunk of the audience into `staged`, and what its users need written (against the attribute snapshot). */
  async function changesOf(input: StageTraitChangesInput, users: readonly AudienceUser[], staged: StagedTraits) {
    const { run, selection } = input;
    const userKeys = users.map((user) => user.userKey);
    const sent = await store.attributeSnapshots(scope, userKeys);
    const profiles = readsProfiles(selection) ? await store.profileFetches(run.syncId, userKeys) : new Map<string, ProfileFetch>();
    const rows: StagedTraitChange[] = [];
    const rejectedValues: MemberFailure[] = [];
    for (const user of users) {
      staged.users += 1;
      const desired = desiredAttributes(user.properties, selection, profiles.get(user.userKey)?.values as ProfileValues | undefined);
      for (const [attribute, problem] of desired.problems)
        rejectedValues.push(skipped(`${user.userKey}#${attribute}`, `"${attribute}" is ${problem}`));
      const changes = attributeChanges(desired, sent.get(user.userKey), selection);
      const written = Object.values(changes);
      if (written.length === 0) {
        staged.unchanged += 1;
        continue;
      }
      if (sent.has(user.userKey)) staged.updated += 1;
      else staged.created += 1;
      staged.unset += written.filter((value) => value === null).length;
      staged.set += written.filter((value) => value !== null).length;
      rows.push({ userKey: user.userKey, changes });
    }
    return { changes: rows, rejectedValues };
  }

  return {
    /**
     * Takes the sync's lease (or reports the run that has it) and records the run as started, then checks that the
     * activity index is fresh (a stale index would sync a stale audience) or reads the audience cohort's listing.
     */
    prepareTraitRun: async (input: PrepareTraitRunInput): Promise<PreparedTraitRun> => {
      const lease = await takeLease(store, input.run, input.ifRunning);
      if (!lease.held) return { status: 'busy', runInProgress: lease.runInProgress };
      // Recorded before anything can fail, so that finishing the run (which frees the lease) always finds it.
      await store.startRun({ runId: input.run.runId, syncId: input.run.syncId, kind: 'trait', startedAt: new Date() });
      // The event streams apply the mapping from now on, or no longer (a sync that turned `realtime` off).
      const realtimeKey = `${REALTIME_TRAITS_PREFIX}${input.run.syncId}`;
      if (input.realtimeMapping) await store.saveStreamSettings(realtimeKey, { ...input.realtimeMapping }, Date.now());
      else await store.deleteStreamSettings(realtimeKey);
      const audience = input.audienceCohortId === undefined ? await checkActivityIndex(input) : await audienceCohort(input);
      if (audience.audience === 'cohort' && audience.sourceVersion === (await lastSyncedSourceVersion(context, input.run.syncId)))
        return { ...audience, status: 'unchanged' };
      return { ...audience, status: 'ready' };
    },

    /**
     * Reads the audience — the activity index's users active in the window, or the members of the audience
     * cohort's export — and stages each user's changed attributes. Users up to the committed checkpoint are read
     * again (to count the whole audience) but not staged again, so a retried attempt resumes where the last one
     * committed.
     */
    stageTraitChanges: async (input: StageTraitChangesInput): Promise<StagedTraits> => {
      const { run } = input;
      await keepLease(store, run);
      const staged: StagedTraits = { users: 0, unchanged: 0, created: 0, updated: 0, set: 0, unset: 0, skipReasons: {} };
      const skip = (reason: string) => (staged.skipReasons[reason] = (staged.skipReasons[reason] ?? 0) + 1);
      // What an earlier attempt committed: read again to count the whole audience, not staged again.
      const committed = await store.stagingCheckpoint(run.runId);
      const stage = async (users: readonly AudienceUser[], checkpoint: StagingCheckpoint) => {
        const rows = await changesOf(input, users, staged);
        if (committed && isCommitted(checkpoint, committed)) return;
        await keepLease(store, run);
        await store.recordFailures(run.runId, rows.rejectedValues);
        await store.stageTraitChanges(run.runId, rows.changes, checkpoint);
        context.usage.add('rows_staged', { kind: TRAIT_SYNC_KIND }, rows.changes.length);
      };
      if (input.cohortExport) await stageCohortAudience(input.cohortExport.requestId, skip, stage);
      else await stageIndexAudience(input, skip, stage);
      for (const [reason, count] of Object.entries(await skipReasonsOf(context, run.runId))) staged.skipReasons[reason] = count;
      return staged;
    },

    /**
     * Fetches the audience's computations and recommendations from the User Profile API within the project's
     * share of its limit (shared by every worker and sync through the store): users never fetched or active
     * since their fetch first, then the stalest, at most `maxFetches` per run. Each answer is recorded as it
     * comes, so a retried attempt (a killed worker) or the next run never fetches a finished user again.
     */
    fetchProfiles: async (input: FetchProfilesInput): Promise<FetchedProfiles> => {
      const { run, selection } = input;
      await keepLease(store, run);
      const windowStartMs = Date.now() - input.windowDays * DAY_MS;
      const counts = await store.profileFetchCounts(run.syncId, { sinceMs: windowStartMs, fetchedSinceMs: input.runStartedMs });
      let remaining = input.maxFetches - counts.fetchedSince;
      let requests = 0;
      const heartbeatNow = throttledHeartbeat();
      // Each answer is kept twice: the values this sync takes from it, and the whole answer every reader shares.
      const record = coalesce(async (fetches: Array<{ values: ProfileFetch; kept: CachedProfile }>) => {
        await store.recordProfileFetches(
          run.syncId,
          fetches.map((fetch) => fetch.values),
        );
        await store.keepProfiles(fetches.map((fetch) => fetch.kept));
        return fetches.map(() => undefined);
      });
      while (remaining > 0) {
        const queue = await store.profileFetchQueue(run.syncId, {
          sinceMs: windowStartMs,
          limit: Math.min(remaining, PROFILE_QUEUE_BATCH),
        });
        // Past the users that need a fetch come the stalest: never those this run fetched already.
        const due = queue.filter((entry) => entry.fetchedAtMs === undefined || entry.fetchedAtMs < input.runStartedMs);
        if (due.length === 0) break;
        await keepLease(store, run);
        await runWithConcurrency(due, PROFILE_CONCURRENCY, async (entry) => {
          await context.amplitudeProfiles.acquire(1, { signal: Context.current().cancellationSignal, whileWaiting: () => heartbeat() });
          requests += 1;
          const { kept, profile } = await fetchProfile(context.amplitude, context.amplitudeProfiles, entry.userKey);
          const values = profileValuesOf(profile, selection) as unknown as JsonObject;
          await record({ values: { userKey: entry.userKey, fetchedAtMs: kept.fetchedAtMs, values }, kept });
          heartbeatNow();
        });
        remaining -= due.length;
        if (due.length < queue.length) break;
      }
      const fresh = await store.profileFetchCounts(run.syncId, { sinceMs: windowStartMs, fetchedSinceMs: Date.now() - FRESH_WITHIN_MS });
      return { profileApiRequests: requests, audience: fresh.audience, fetched: fresh.fetched, fetchedWithin24h: fresh.fetchedSince };
    },

    /** Cuts the staged users into numbered pages. */
    planTraitRun: async (input: { run: RunRef; pageSize: number; attributesPerUser: number }): Promise<TraitPlan> => {
      await keepLease(store, input.run);
      const { users, pages } = await store.planTraitPages(input.run.runId, input.pageSize);
      return { users, pages, maxPageDataPoints: Math.min(input.pageSize, users) * input.attributesPerUser };
    },

    /**
     * Sends what is left of one planned page. Changes are checked again against the snapshot just before they
     * go: a value another sync (or an earlier attempt of this page) has written since is not paid for twice.
     */
    applyTraitPage: async (input: ApplyTraitPageInput): Promise<PageOutcome> => {
      const { run } = input;
      await keepLease(store, run);
      const staged = await readPlannedPage(context, run, { kind: 'trait', page: input.page }, (options) =>
        store.stagedTraitChanges(run.runId, options),
      );
      const sentNow = await store.attributeSnapshots(
        scope,
        staged.map((user) => user.userKey),
      );
      const changesOf = new Map<string, JsonObject>();
      const toSend = staged.flatMap((user) => {
        const changes = stillToSend(user.changes, sentNow.get(user.userKey));
        if (Object.keys(changes).length === 0) return [];
        changesOf.set(user.userKey, changes);
        return [{ userKey: user.userKey, changes }];
      });
      return applyPage(context, input, {
        run,
        pagePrefix: `trait:${input.page}|`,
        requests: traitPageRequests(toSend, context.brazeObjectsPerRequest),
        rateLimited: true,
        syncKind: TRAIT_SYNC_KIND,
        snapshotOf: (sent) => ({ attributes: acceptedSnapshot(scope, sent.accepted, changesOf) }),
      });
    },

    /** Records the run, clears its staging, frees the sync, and reports Braze's rejections. */
    finishTraitRun: (input: FinishTraitRunInput): Promise<RunFailures> => closeRun(context, input),
  };
}

export type TraitSyncActivities = ReturnType<typeof createTraitSyncActivities>;

/** A user of the audience, and their latest Amplitude user properties. */
interface AudienceUser {
  userKey: string;
  properties: JsonObject;
}

type StageUsers = (users: readonly AudienceUser[], checkpoint: StagingCheckpoint) => Promise<void>;

/**
 * Whether a chunk's checkpoint is covered by the one an earlier attempt committed: by key for the activity index
 * (users may have joined it since), by row for a cohort export (the same file, read in the same order).
 */
function isCommitted(checkpoint: StagingCheckpoint, committed: StagingCheckpoint): boolean {
  if (checkpoint.afterKey !== undefined && committed.afterKey !== undefined) return checkpoint.afterKey <= committed.afterKey;
  return checkpoint.rowsConsumed <= committed.rowsConsumed;
}

function describeAge(ms: number): string {
  const hours = ms / 3_600_000;
  return hours >= 48 ? `${Math.round(hours / 24)} days` : hours >= 1 ? `${Math.round(hours)} hours` : `${Math.round(ms / 60_000)} minutes`;
}

/** What the sync keeps of a user's profile: its computations and recommendations (an unknown user has none). */
function profileValuesOf(
  profile: AmplitudeUserProfile | null,
  selection: Pick<TraitSelection, 'computations' | 'recommendations'>,
): ProfileValues {
  const values: ProfileValues = { computations: {}, recommendations: {} };
  for (const id of selection.computations) {
    const value = profile?.properties[id];
    values.computations[id] = typeof value === 'string' ? value : value === undefined || value === null ? null : JSON.stringify(value);
  }
  for (const { id } of selection.recommendations) {
    const recommendation = profile?.recommendations?.find((rec) => rec.recId === id);
    values.recommendations[id] = recommendation
      ? { items: recommendation.items as JsonValue[], isControl: recommendation.isControl }
      : null;
  }
  return values;
}
