/**
 * Applying the cohort webhook batches the receiver spooled. A round holds the sync's lease for a moment (so a
 * `cohortSync` of the same cohort and target never sends alongside it), reads the oldest spooled changes, keeps of
 * each member the change computed last, drops those no newer than what was applied already (by an earlier webhook,
 * or by the last complete `cohortSync`), and sends the rest through the engine against the sync's own snapshot.
 * Idempotent: a retried round finds what it sent in the snapshot and the changes it finished completed.
 */
import { workflowFailureTypes } from '../../src/failure-types.js';
import { ApplicationFailure, heartbeat } from '@temporalio/activity';
import { cohortPageRequests, type Member } from '../cohort-sync/braze-changes.js';
import { addressOf } from '../../src/cohort/identifiers.js';
import { cohortStreamName, COHORT_STREAM_KIND } from '../cohort-sync/input.js';
import { membershipChangeSchema, noCohortStreamCounts, type CohortStreamCounts, type MembershipChange } from '../../src/cohort/webhook.js';
import { describeIssues } from '../../src/ingress/doors.js';
import { MAX_ROWS_PER_TRANSACTION, type MembershipMark, type SpooledDeadLetter, type SpooledItem } from '../../src/store/store.js';
import type { WorkerContext } from '../../src/worker-context.js';
import type { ChangeKind, CohortTarget } from '../cohort-sync/activity-types.js';
import { applyPage, lastSyncedSourceVersion, type PageBudgets, type PageOutcome } from '../../activities/engine.js';
import { streamBacklog, withoutSuppressedItems, type StreamBacklog } from '../../activities/ingress-backlog.js';
import { subjectIdsOfJson } from '../../src/privacy/suppression.js';
import { claimLease, type RunRef } from '../../activities/sync-lease.js';

/** The real-time promise is seconds: a change waiting longer than this is a warning (progress, doctor). */
export const COHORT_STREAM_BACKLOG_WARN_MS = 2 * 60_000;

export interface CohortStreamRef {
  run: RunRef;
  cohortId: string;
  target: CohortTarget;
  attributeName: string;
}

export interface CohortStreamRoundInput extends CohortStreamRef, PageBudgets {
  maxChanges: number;
}

/** The cohort's name, or that Amplitude does not list it (its spooled changes were dead-lettered). */
export type PreparedCohortStream = { cohortName: string } | { unknownCohort: true; deadLettered: number };

/** What one round did. */
export interface CohortStreamRound extends CohortStreamCounts {
  /** `busy`: a cohortSync run has the lease; `over_budget`: nothing was sent, the changes wait. */
  status: 'applied' | 'busy' | 'over_budget';
  /** Spooled changes read. */
  read: number;
  runInProgress?: string;
  /** The page over a budget, when `over_budget`. */
  overBudget?: PageOutcome;
  backlog: StreamBacklog;
}

export function createCohortStreamActivities(context: WorkerContext) {
  const { store } = context;

  const backlogOf = (stream: CohortStreamRef) => cohortStreamBacklog(context, cohortStreamName(stream));

  return {
    /**
     * Checks the cohort exists and, for the partner cohort target, creates (or renames) Braze's native cohort. A cohort
     * Amplitude does not list (deleted, or another project's webhook) has its spooled changes dead-lettered.
     */
    prepareCohortStream: async (input: Omit<CohortStreamRef, 'run'>): Promise<PreparedCohortStream> => {
      const cohort = (await context.amplitude.listCohorts()).find((listed) => listed.id === input.cohortId);
      if (!cohort) return { unknownCohort: true, deadLettered: await deadLetterStream(context, input) };
      if (input.target === 'partner_cohort') {
        if (!context.brazePartnerConfigured) {
          throw ApplicationFailure.create({
            type: workflowFailureTypes('cohortStream').invalidInput,
            nonRetryable: true,
            message: 'target "partner_cohort" needs BRAZE_PARTNER_NAME, BRAZE_PARTNER_API_KEY and BRAZE_DATA_IMPORT_KEY on the workers',
          });
        }
        const createdAt = new Date((cohort.createdAt ?? cohort.lastComputed) * 1000).toISOString();
        await context.braze.createOrRenamePartnerCohort({ cohortId: input.cohortId, name: cohort.name, createdAt });
      }
      return { cohortName: cohort.name };
    },

    applyCohortStreamRound: async (input: CohortStreamRoundInput): Promise<CohortStreamRound> => {
      const { run } = input;
      const stream = cohortStreamName(input);
      const round: Omit<CohortStreamRound, 'backlog'> = { status: 'applied', read: 0, ...noCohortStreamCounts() };
      const lease = await claimLease(store, run, 'round');
      if (!lease.held) return { ...round, status: 'busy', runInProgress: lease.runInProgress, backlog: await backlogOf(input) };
      try {
        const pending = await store.pendingIngress(stream, { nowMs: Date.now(), limit: input.maxChanges });
        round.read = pending.length;
        const items = await withoutSuppressedItems(
          context,
          stream,
          pending,
          (item) => subjectIdsOfJson(item.body),
          () => round.suppressed++,
        );
        const { changes: readable, letters } = readChanges(items);
        await store.deadLetterIngress(stream, letters, Date.now());
        round.deadLettered = letters.length;
        const latest = latestChangePerMember(readable);
        round.superseded = readable.length - latest.size;
        const syncedUpTo = Number((await lastSyncedSourceVersion(context, run.syncId)) ?? 0);
        const states = await store.membershipStates(run.syncId, [...latest.keys()]);
        const changes: Record<ChangeKind, Member[]> = { enter: [], leave: [] };
        const marks: MembershipMark[] = [];
        for (const [memberKey, change] of latest) {
          const state = states.get(memberKey);
          if (change.computed_time <= Math.max(syncedUpTo, state?.markedAt ?? 0)) {
            round.superseded += 1;
            continue;
          }
          marks.push({ memberKey, computedTime: change.computed_time });
          const inSnapshot = state?.inSnapshot ?? false;
          if (change.in_cohort === inSnapshot) round.unchanged += 1;
          else changes[change.in_cohort ? 'enter' : 'leave'].push({ memberKey, address: addressOf(memberKey) });
        }
        // Named after the round's first spooled change: a retried round adds to what its earlier attempts sent.
        const roundKey = `stream:${items[0]?.seq ?? 0}`;
        for (const kind of ['enter', 'leave'] as const) {
          if (changes[kind].length === 0) continue;
          const outcome = await applyPage(context, input, {
            run,
            pagePrefix: `${roundKey}:${kind}|`,
            requests: cohortPageRequests(changes[kind], { ...input, kind }, context.brazeObjectsPerRequest),
            rateLimited: input.target === 'attribute',
            syncKind: COHORT_STREAM_KIND,
            snapshotOf: (sent) => (kind === 'enter' ? { added: sent.accepted } : { removed: sent.accepted }),
          });
          if (outcome.status === 'over_budget')
            return { ...round, status: 'over_budget', overBudget: outcome, backlog: await backlogOf(input) };
          round[kind === 'enter' ? 'added' : 'removed'] = outcome.accepted;
          round.failed += outcome.failed;
          round.identified += outcome.identified ?? 0;
          round.dataPoints += outcome.dataPoints;
          round.brazeRequests += outcome.brazeRequests;
        }
        await store.recordMembershipMarks(run.syncId, marks);
        await store.completeIngress(
          stream,
          items.map((item) => item.seq),
          Date.now(),
        );
        return { ...round, backlog: await backlogOf(input) };
      } finally {
        await store.releaseSyncLease(run.syncId, run.runId);
      }
    },

    cohortStreamBacklog: backlogOf,
  };
}

export type CohortStreamActivities = ReturnType<typeof createCohortStreamActivities>;

/** A cohort webhook spool's backlog (`stream` as `cohortStreamName` names it), with a warning past two minutes. */
export function cohortStreamBacklog(context: WorkerContext, stream: string): Promise<StreamBacklog> {
  return streamBacklog(
    context.store,
    stream,
    COHORT_STREAM_BACKLOG_WARN_MS,
    (oldestAgeMs) => `the oldest webhook change has waited ${Math.round(oldestAgeMs / 1000)} s (is a cohortSync holding the cohort?)`,
  );
}

/** What a stream whose cohort Amplitude does not list is left with: nothing to apply it to. */
const UNKNOWN_COHORT_REASON = (cohortId: string) =>
  `Amplitude lists no cohort "${cohortId}" (deleted, or a webhook of another project): the change has nowhere to go`;

/** Dead-letters every change spooled for a stream whose cohort is unknown; returns how many. */
async function deadLetterStream(context: WorkerContext, target: Omit<CohortStreamRef, 'run'>): Promise<number> {
  const stream = cohortStreamName(target);
  let deadLettered = 0;
  for (;;) {
    const items = await context.store.pendingIngress(stream, { nowMs: Number.MAX_SAFE_INTEGER, limit: MAX_ROWS_PER_TRANSACTION });
    if (items.length === 0) return deadLettered;
    await context.store.deadLetterIngress(
      stream,
      items.map((item) => ({ ...item, reason: UNKNOWN_COHORT_REASON(target.cohortId) })),
      Date.now(),
    );
    deadLettered += items.length;
    heartbeat();
  }
}

/** The membership changes of spooled items; one that does not read as a change is dead-lettered rather than block. */
function readChanges(items: readonly SpooledItem[]): { changes: MembershipChange[]; letters: SpooledDeadLetter[] } {
  const changes: MembershipChange[] = [];
  const letters: SpooledDeadLetter[] = [];
  for (const item of items) {
    const change = membershipChangeSchema.safeParse(item.body);
    if (change.success) changes.push(change.data);
    else letters.push({ ...item, reason: `unreadable in the spool: ${describeIssues(change.error.issues)}` });
  }
  return { changes, letters };
}

/** Of each member's changes, the one computed last (of equal times, the one spooled last), by member key. */
function latestChangePerMember(changes: readonly MembershipChange[]): Map<string, MembershipChange> {
  const latest = new Map<string, MembershipChange>();
  for (const change of changes) {
    const memberKey = `ext:${change.user_id}`;
    const known = latest.get(memberKey);
    if (!known || change.computed_time >= known.computed_time) latest.set(memberKey, change);
  }
  return latest;
}
