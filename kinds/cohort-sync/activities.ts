/**
 * The cohort sync's I/O steps. Each is idempotent: a retried attempt resumes from what the store already
 * holds (staging checkpoint, committed snapshot, counted data points) instead of starting over.
 */
import { ApplicationFailure, heartbeat } from '@temporalio/activity';
import {
  addressOf,
  DEFERRED_DEVICE_LOOKUP,
  resolveMember,
  type CohortMemberIds,
  type MemberResolution,
} from '../../src/cohort/identifiers.js';
import { cohortPageRequests } from './braze-changes.js';
import type { SubjectIds } from '../../src/privacy/suppression.js';
import { RateLimitedError } from '../../src/errors.js';
import type { AmplitudeDeviceId, MemberFailure, StagedMember } from '../../src/store/store.js';
import type { WorkerContext } from '../../src/worker-context.js';
import type {
  ApplyCohortPageInput,
  CohortPlan,
  FinishCohortRunInput,
  PageOutcome,
  PrepareCohortRunInput,
  RunFailures,
  PreparedCohortRun,
  StageCohortMembersInput,
  StagedCohort,
} from './activity-types.js';
import { findCohort } from '../../activities/cohort-export.js';
import {
  applyPage,
  closeRun,
  lastSyncedSourceVersion,
  readPlannedPage,
  runWithConcurrency,
  skipped,
  skipReasonsOf,
} from '../../activities/engine.js';
import { keepLease, takeLease, type RunRef } from '../../activities/sync-lease.js';
import { COHORT_SYNC_KIND } from './input.js';

const STAGE_CHUNK_ROWS = 2_000;
const HEARTBEAT_EVERY_ROWS = 500;
/** The User Activity API allows 10 concurrent requests per project; leave room for other tools. */
const USER_LOOKUP_CONCURRENCY = 4;

export function createCohortSyncActivities(context: WorkerContext) {
  const { amplitude, store } = context;

  /** Addresses a chunk of members, looking up the device ids the identifiers call for (within the API's limit). */
  async function resolveChunk(members: readonly CohortMemberIds[], options: StageCohortMembersInput) {
    const staged: StagedMember[] = [];
    const skipped: MemberFailure[] = [];
    const needDevice: CohortMemberIds[] = [];
    const place = (member: CohortMemberIds, resolution: MemberResolution) => {
      if ('memberKey' in resolution)
        staged.push({ memberKey: resolution.memberKey, amplitudeId: member.amplitudeId, userId: member.userId ?? undefined });
      else skipped.push(skip(member, 'skipReason' in resolution ? resolution.skipReason : DEFERRED_DEVICE_LOOKUP));
    };
    for (const member of members) {
      const resolution = resolveMember(member, options);
      if ('needsDeviceId' in resolution) needDevice.push(member);
      else place(member, resolution);
    }
    const deviceIds = await deviceIdsOf(needDevice.map((member) => member.amplitudeId));
    for (const member of needDevice) {
      const deviceId = deviceIds.get(member.amplitudeId);
      place(member, deviceId === undefined ? { needsDeviceId: true } : resolveMember({ ...member, deviceId }, options));
    }
    return { staged, skipped };
  }

  /** Members whose user is erased are left out, recorded as skipped under the hash that matched (never an id). */
  async function withoutSuppressed<T>(members: readonly T[], idsOf: (member: T) => SubjectIds, erased: MemberFailure[]): Promise<T[]> {
    const suppressed = await context.suppression.check(members, idsOf);
    if (suppressed.size === 0) return [...members];
    for (const { reason, idHash } of suppressed.values()) erased.push(skipped(`erased:${idHash}`, reason));
    return members.filter((member) => !suppressed.has(member));
  }

  /** Device ids known from earlier lookups, plus as many new lookups as the shared User Activity limit grants now. */
  async function deviceIdsOf(amplitudeIds: readonly string[]): Promise<Map<string, string | null>> {
    if (amplitudeIds.length === 0) return new Map();
    const known = await store.knownDeviceIds(amplitudeIds);
    const unknown = amplitudeIds.filter((id) => !known.has(id));
    const granted = await context.amplitudeUserLookups.tryAcquire(unknown.length);
    const lookedUp: AmplitudeDeviceId[] = [];
    let throttled = false;
    await runWithConcurrency(unknown.slice(0, granted), USER_LOOKUP_CONCURRENCY, async (amplitudeId) => {
      if (throttled) return;
      try {
        const [deviceId = null] = await amplitude.getUserDeviceIds(amplitudeId);
        lookedUp.push({ amplitudeId, deviceId });
      } catch (error) {
        // Others share the project's limit too: Amplitude's 429 defers the rest of this run's lookups.
        if (!(error instanceof RateLimitedError)) throw error;
        throttled = true;
      }
    });
    await store.recordDeviceIds(lookedUp);
    for (const { amplitudeId, deviceId } of lookedUp) known.set(amplitudeId, deviceId);
    return known;
  }

  /** The keys of a planned page still in the diff: all of them on a first attempt, what is left on a retry. */
  async function remainingPageMembers(input: ApplyCohortPageInput): Promise<string[]> {
    const { runId, syncId } = input.run;
    const plan = { kind: input.kind, page: input.page };
    return readPlannedPage(context, input.run, plan, (options) => store.diffPage(runId, syncId, { ...options, kind: input.kind }));
  }

  return {
    /**
     * Takes the sync's lease (or reports the run that has it), reads cohort metadata (free) and decides whether
     * anything can have changed since the last success.
     */
    prepareCohortRun: async (input: PrepareCohortRunInput): Promise<PreparedCohortRun> => {
      const { run } = input;
      const lease = await takeLease(store, run, input.ifRunning);
      if (!lease.held) return { status: 'busy', runInProgress: lease.runInProgress };
      // Recorded before anything can fail, so that finishing the run (which frees the lease) always finds it.
      await store.startRun({ runId: run.runId, syncId: run.syncId, kind: 'cohort', startedAt: new Date() });
      const cohort = await findCohort(context, input.cohortId);
      const lastSource = await lastSyncedSourceVersion(context, run.syncId);
      if (!input.force && lastSource === String(cohort.lastComputed)) {
        return { status: 'unchanged', cohortName: cohort.name, lastComputed: cohort.lastComputed };
      }
      if (input.target === 'partner_cohort' && !context.brazePartnerConfigured) {
        throw ApplicationFailure.create({
          type: 'InvalidCohortSync',
          nonRetryable: true,
          message: 'target "partner_cohort" needs BRAZE_PARTNER_NAME, BRAZE_PARTNER_API_KEY and BRAZE_DATA_IMPORT_KEY on the workers',
        });
      }
      return {
        status: 'changed',
        cohortName: cohort.name,
        lastComputed: cohort.lastComputed,
        createdAt: cohort.createdAt ?? cohort.lastComputed,
        size: cohort.size ?? 0,
      };
    },

    /** Creates the native Braze cohort ("[Amplitude] <name>: <id>"), or renames it; safe to repeat. */
    ensurePartnerCohort: async (input: { cohortId: string; cohortName: string; createdAt: number }): Promise<void> => {
      await context.braze.createOrRenamePartnerCohort({
        cohortId: input.cohortId,
        name: input.cohortName,
        createdAt: new Date(input.createdAt * 1000).toISOString(),
      });
    },

    /**
     * Streams the cohort file into staging in chunks, resuming after the rows a previous attempt committed.
     * Members no identifier can address are recorded as skipped (with the reason) in the run's failure ledger.
     */
    stageCohortMembers: async (input: StageCohortMembersInput): Promise<StagedCohort> => {
      // The checkpoint is committed with the rows it covers: rows up to it are in the store, the rest are not.
      const { runId } = input.run;
      await keepLease(store, input.run);
      const resumedFromRow = (await store.stagingCheckpoint(runId))?.rowsConsumed ?? 0;
      heartbeat({ rowsConsumed: resumedFromRow });
      let row = 0;
      let committedRows = resumedFromRow;
      let chunk: CohortMemberIds[] = [];
      const flush = async () => {
        const erased: MemberFailure[] = [];
        const resolved = await resolveChunk(await withoutSuppressed(chunk, (member) => member, erased), input);
        // A member addressed by device is checked by it too, once it is looked up.
        const staged = await withoutSuppressed(resolved.staged, (member) => ({ deviceId: deviceIdOf(member.memberKey) }), erased);
        await keepLease(store, input.run);
        await store.markAliasesToIdentify(signedIn(staged, input), Date.now());
        await store.recordFailures(runId, [...resolved.skipped, ...erased]);
        await store.stageChunk(runId, staged, { rowsConsumed: row, bytesConsumed: 0 });
        context.usage.add('rows_staged', { kind: COHORT_SYNC_KIND }, staged.length);
        committedRows = row;
        chunk = [];
      };
      for await (const member of amplitude.streamCohortMembers(input.requestId)) {
        row += 1;
        // A stalled download stops the heartbeats, so the attempt times out and a retry resumes after committedRows.
        if (row % HEARTBEAT_EVERY_ROWS === 0) heartbeat({ rowsConsumed: committedRows });
        if (row <= resumedFromRow) continue;
        chunk.push({ amplitudeId: member.amplitudeId, userId: member.userId });
        if (chunk.length === STAGE_CHUNK_ROWS) await flush();
      }
      await flush();
      const skipReasons = await skipReasonsOf(context, runId);
      const skippedCount = Object.values(skipReasons).reduce((sum, n) => sum + n, 0);
      return { rows: row, resumedFromRow, staged: await store.stagedCount(runId), skipped: skippedCount, skipReasons };
    },

    /** Cuts the diff into numbered pages, so the workflow can apply several at once by number. */
    planCohortRun: async (input: { run: RunRef; pageSize: number }): Promise<CohortPlan> => {
      await keepLease(store, input.run);
      const planned = await store.planPages(input.run.runId, input.run.syncId, input.pageSize);
      const { enter, leave } = { enter: planned.enter.changes, leave: planned.leave.changes };
      // One data point per membership change, for both targets (array add/remove value, cohort assignment).
      return {
        enter,
        leave,
        predictedDataPoints: enter + leave,
        pages: { enter: planned.enter.pages, leave: planned.leave.pages },
        maxPageDataPoints: Math.min(input.pageSize, Math.max(enter, leave)),
      };
    },

    /**
     * Sends what is left of one planned page. Every request is in the ledger before it is sent and is recorded
     * with the snapshot change it made, so a retried attempt sends only what is left, counts no request twice, and
     * counts the data points of a request cut off by a crash, which Braze may have billed.
     */
    applyCohortPage: async (input: ApplyCohortPageInput): Promise<PageOutcome> => {
      const { run } = input;
      await keepLease(store, run);
      const members = (await remainingPageMembers(input)).map((memberKey) => ({ memberKey, address: addressOf(memberKey) }));
      return applyPage(context, input, {
        run,
        pagePrefix: `${input.kind}:${input.page}|`,
        requests: cohortPageRequests(members, input, context.brazeObjectsPerRequest),
        // Partner cohort calls do not count toward the REST limits.
        rateLimited: input.target === 'attribute',
        syncKind: COHORT_SYNC_KIND,
        snapshotOf: (sent) => (input.kind === 'enter' ? { added: sent.accepted } : { removed: sent.accepted }),
      });
    },

    /** Records the run in the ledger, clears its staging, and reports why members failed (from the failure ledger). */
    finishCohortRun: (input: FinishCohortRunInput): Promise<RunFailures> => closeRun(context, input),
  };
}

export type CohortSyncActivities = ReturnType<typeof createCohortSyncActivities>;

/**
 * Members addressed by external id whom the sync addresses by an alias named after their Amplitude id while they are
 * anonymous: if that alias was written to, it is to be identified to them (a sign-in).
 */
function signedIn(staged: readonly StagedMember[], options: StageCohortMembersInput): Array<{ aliasName: string; externalId: string }> {
  if (!options.identifiers.includes('user_alias') || options.aliasNameFrom !== 'amplitude_id') return [];
  return staged.flatMap((member) =>
    member.userId && member.memberKey.startsWith('ext:') ? [{ aliasName: member.amplitudeId, externalId: member.userId }] : [],
  );
}

function deviceIdOf(memberKey: string): string | undefined {
  const address = addressOf(memberKey);
  return address.kind === 'device_id' ? address.deviceId : undefined;
}

function skip(member: CohortMemberIds, reason: string): MemberFailure {
  return skipped(`amplitude_id:${member.amplitudeId}`, reason);
}
