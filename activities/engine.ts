/**
 * The apply step every sync kind shares: a page's priced Braze requests go out through the workspace's shared
 * rate limiter and the request ledger (recorded before they go and again with what they did), with throttled
 * heartbeats, the data-point metric and the budget check. A sync kind supplies only its requests and what an
 * accepted request changes in its snapshot.
 */
import { FailureType } from '../src/failure-types.js';
import { activityInfo, ApplicationFailure, Context, heartbeat } from '@temporalio/activity';
import type { BrazeEndpoints, PageRequest, SentChange } from '../src/braze/page-request.js';
import { RateLimitedError, VendorError } from '../src/errors.js';
import {
  MAX_ROWS_PER_TRANSACTION,
  type DiffPageOptions,
  type MemberFailure,
  type OutcomeTotals,
  type Page,
  type PlanKind,
  type RunStatus,
  type SendingRequest,
  type SentRequest,
} from '../src/store/store.js';
import type { WorkerContext } from '../src/worker-context.js';
import { aliasesIn, identifyMarkedAliases } from './identify-aliases.js';
import type { RunRef } from './sync-lease.js';

/** 429s one request may meet inside its page before the page fails over to Temporal's retry. */
const RATE_LIMITED_RESENDS = 5;

export interface ApplyRequestsInput<R extends PageRequest> {
  run: RunRef;
  /** Names the page in the ledger, e.g. `enter:3|`: request keys start with it. */
  pagePrefix: string;
  requests: readonly R[];
  /** `/users/track` requests take slots of the shared workspace limit; partner cohort calls do not. */
  rateLimited: boolean;
  /** The `sync_kind` label of the data-point metric. */
  syncKind: string;
  /** What an accepted request changes in the sync's snapshot. */
  snapshotOf: (sent: SentChange) => SentRequest['snapshot'];
}

export interface PageOutcome {
  /** `over_budget`: nothing was sent because the page would exceed a budget. */
  status: 'applied' | 'over_budget';
  accepted: number;
  failed: number;
  dataPoints: number;
  brazeRequests: number;
  /** The page's cost, reported when it was over budget. */
  pageDataPoints: number;
  /** Events sent again because an earlier attempt's request for them was cut off without an answer (at-least-once). */
  resent?: number;
  /** Aliases of anonymous users who signed in, identified to their external id before the page was sent. */
  identified?: number;
  budget?: 'run' | 'day';
}

/** Budgets a page is checked against before anything of it is sent. */
export interface PageBudgets {
  /** Data points this run may still spend, if it has a budget. */
  runBudgetRemaining?: number;
  /** The per-day budget across all syncs, if any. */
  maxDataPointsPerDay?: number;
  /** Data points the run's other pages in flight may still spend: held back from both budgets. */
  inFlightDataPoints: number;
}

/**
 * Everything of one planned page that `read` still returns (keyset pages of the planned key range): what a
 * retried attempt reads again is only what earlier attempts have not done.
 */
export async function readPlannedPage<T>(
  context: WorkerContext,
  run: RunRef,
  plan: { kind: PlanKind; page: number },
  read: (options: DiffPageOptions) => Promise<Page<T>>,
): Promise<T[]> {
  const range = await context.store.plannedPage(run.runId, plan.kind, plan.page);
  if (!range) throw ApplicationFailure.nonRetryable(`Run ${run.runId} planned no ${plan.kind} page ${plan.page}`, FailureType.PlanMissing);
  const items: T[] = [];
  let afterKey = range.afterKey;
  do {
    const page = await read({ afterKey, throughKey: range.throughKey, limit: MAX_ROWS_PER_TRANSACTION });
    items.push(...page.items);
    afterKey = page.nextAfterKey;
  } while (afterKey !== undefined);
  return items;
}

/**
 * Applies one page within its budgets: nothing is sent when the page (with the others in flight) would exceed
 * one, else its requests go through `applyRequests` and the outcome has the page's totals from the ledger.
 */
export async function applyPage<R extends PageRequest>(
  context: WorkerContext,
  budgets: PageBudgets,
  input: ApplyRequestsInput<R>,
): Promise<PageOutcome> {
  const pageDataPoints = input.requests.reduce((sum, request) => sum + request.dataPoints, 0);
  const pageOutcome: PageOutcome = { status: 'applied', accepted: 0, failed: 0, dataPoints: 0, brazeRequests: 0, pageDataPoints };
  const overBudget = await budgetExceeded(context, budgets, pageDataPoints);
  if (overBudget) return { ...pageOutcome, status: 'over_budget', budget: overBudget };
  // Before anything is written for a user who signed in, their anonymous profile becomes theirs (REST targets only).
  const identified = input.rateLimited ? await identifyMarkedAliases(context, input.run, () => heartbeat()) : 0;
  const totals = await applyRequests(context, input);
  return {
    ...pageOutcome,
    ...(identified > 0 && { identified }),
    accepted: totals.accepted,
    failed: totals.rejected,
    dataPoints: totals.dataPoints,
    brazeRequests: totals.requests,
  };
}

/**
 * Sends a page's requests (a few at once) and returns the page's totals from the ledger, which include what
 * earlier attempts of the page sent: a retried attempt adds to them, it never counts a request twice.
 */
export async function applyRequests<R extends PageRequest>(context: WorkerContext, input: ApplyRequestsInput<R>): Promise<OutcomeTotals> {
  const { run, pagePrefix } = input;
  const day = new Date().toISOString().slice(0, 10);
  // Named after the page, the attempt and the first key: a retried attempt adds to what earlier ones did.
  const attemptSuffix = `@${activityInfo().attempt}`;
  const heartbeatNow = throttledHeartbeat();
  const braze = input.rateLimited ? pacedBraze(context, heartbeatNow) : context.braze;
  let firstDataPoints = 0;
  try {
    await runWithConcurrency(input.requests, context.brazeConcurrency, async (request) => {
      const requestKey = `${pagePrefix}${request.firstKey}${attemptSuffix}`;
      const pending = { syncId: run.syncId, runId: run.runId, requestKey, day, dataPoints: request.dataPoints };
      const sent = await sendAndRecord(context, braze, request, pending, input);
      if (sent.first) firstDataPoints += sent.dataPoints;
      context.usage.add('rows_sent', { kind: input.syncKind }, sent.accepted.length + sent.rejected.length);
      heartbeatNow();
    });
  } finally {
    // Once per page, not per request: each metric update is a call into the SDK's native core.
    if (firstDataPoints > 0) {
      Context.current()
        .metricMeter.createCounter('ampbraze_data_points', 'points', 'Braze data points spent')
        .add(firstDataPoints, { sync_kind: input.syncKind });
    }
  }
  return context.store.requestOutcomeTotals(run.runId, pagePrefix);
}

/**
 * Sends one request, recorded in the request ledger before it goes and again with what it did. A rate-limited
 * request waits for a slot of the workspace limit shared by every worker, right before its HTTP call; a 429 all
 * the same (other integrations write to the workspace too) blocks the limit for everyone until Braze's reset,
 * and the request goes again under a key of its own. `first` is false when the request was recorded before.
 */
async function sendAndRecord(
  context: WorkerContext,
  braze: BrazeEndpoints,
  request: PageRequest,
  pending: SendingRequest,
  input: Pick<ApplyRequestsInput<PageRequest>, 'rateLimited' | 'snapshotOf'>,
): Promise<SentChange & { first: boolean }> {
  for (let resend = 0; ; resend++) {
    const thisSend = { ...pending, requestKey: `${pending.requestKey}#${resend}` };
    await context.requestLedger.sending(thisSend);
    let sent: SentChange;
    try {
      sent = await request.send(braze, thisSend.requestKey);
    } catch (error) {
      // Answered with an error status, Braze changed and billed nothing; without an answer, it may have.
      if (error instanceof VendorError && error.status !== undefined && error.status >= 400) {
        await context.requestLedger.sent({ ...thisSend, snapshot: {}, rejected: [], dataPoints: 0 });
      }
      // Past a few 429s, the page fails and Temporal retries it after the vendor's delay (`nextRetryDelay`); until
      // then the request waits, as every worker does, for the reset the 429 reported (see `pacedBraze`).
      if (!(input.rateLimited && error instanceof RateLimitedError) || resend + 1 === RATE_LIMITED_RESENDS) throw error;
      continue;
    }
    // The snapshot records only what Braze accepted; rejected keys stay in the diff and are retried next run.
    const first = await context.requestLedger.sent({
      ...thisSend,
      snapshot: input.snapshotOf(sent),
      accepted: sent.accepted.length,
      rejected: sent.rejected,
      dataPoints: sent.dataPoints,
    });
    return { ...sent, first };
  }
}

/**
 * Braze's endpoints with `track` taking a slot of the workspace's shared limit just before each call (a slot taken
 * before the ledger writes could arrive in the next window, on top of that window's full allowance), and Braze's
 * answer fed back to the limit: its `X-RateLimit-*` headers, or a 429's reset, which every worker then waits for.
 */
function pacedBraze(context: WorkerContext, heartbeatNow: () => void): BrazeEndpoints {
  const limiter = context.brazeLimiter;
  const waiting = { signal: Context.current().cancellationSignal, whileWaiting: () => heartbeatNow() };
  return {
    track: async (payload) => {
      const aliases = aliasesIn(payload);
      if (aliases.length > 0) await context.store.recordAliasesWritten(aliases, Date.now());
      const slot = await limiter.acquire(1, waiting);
      try {
        const result = await context.braze.track(payload);
        await limiter.observe(result.rateLimit, slot);
        return result;
      } catch (error) {
        if (error instanceof RateLimitedError) await limiter.observe({ remaining: 0, resetAtMs: Date.now() + error.retryAfterMs }, slot);
        throw error;
      }
    },
    updatePartnerCohortUsers: (update) => context.braze.updatePartnerCohortUsers(update),
  };
}

/** Whether sending the page, with what the run's other pages in flight may still spend, would exceed a budget. */
async function budgetExceeded(context: WorkerContext, budgets: PageBudgets, pageDataPoints: number): Promise<'run' | 'day' | undefined> {
  const atMost = pageDataPoints + budgets.inFlightDataPoints;
  if (budgets.runBudgetRemaining !== undefined && atMost > budgets.runBudgetRemaining) return 'run';
  if (budgets.maxDataPointsPerDay !== undefined) {
    const spentToday = await context.store.dataPointsOnDay(new Date().toISOString().slice(0, 10));
    if (spentToday + atMost > budgets.maxDataPointsPerDay) return 'day';
  }
  return undefined;
}

/** Prefix of skip reasons in the run's failure ledger, which also holds Braze's per-object rejections. */
const SKIPPED = 'skipped:';

/** A key the run did not send, with why: kept in the failure ledger apart from Braze's rejections. */
export function skipped(memberKey: string, reason: string): MemberFailure {
  return { memberKey, reason: `${SKIPPED} ${reason}` };
}

/** The run's skip reasons so far, counted. */
export async function skipReasonsOf(context: WorkerContext, runId: string): Promise<Record<string, number>> {
  const skipReasons: Record<string, number> = {};
  for (const { reason, count } of await context.store.failureCountsByReason(runId)) {
    if (reason.startsWith(SKIPPED)) skipReasons[reason.slice(SKIPPED.length + 1)] = count;
  }
  return skipReasons;
}

/** Reasons Braze gave for the keys it rejected in the run, counted (skip reasons, which share the ledger, excluded). */
export interface RunFailures {
  failed: number;
  failureReasons: Record<string, number>;
}

export interface CloseRunInput {
  run: RunRef;
  status: 'succeeded' | 'failed' | 'dry_run' | 'unchanged';
  sourceVersion?: string;
  stats: Record<string, unknown>;
}

/** The source version (cohort `lastComputed`, …) the sync's last complete success synced, if any. */
export async function lastSyncedSourceVersion(context: WorkerContext, syncId: string): Promise<string | undefined> {
  const runs = await context.store.recentRuns({ syncId, limit: 20 });
  return runs.find((run) => run.status === 'succeeded' && run.sourceVersion !== undefined)?.sourceVersion;
}

/** Records the run's end in the run ledger, clears its staging, frees its lease, and reports its failures. */
export async function closeRun(context: WorkerContext, input: CloseRunInput): Promise<RunFailures> {
  const { store } = context;
  const { runId, syncId } = input.run;
  const failureReasons: Record<string, number> = {};
  for (const { reason, count } of await store.failureCountsByReason(runId)) {
    if (!reason.startsWith(SKIPPED)) failureReasons[reason] = count;
  }
  const status: RunStatus = input.status === 'failed' ? 'failed' : 'succeeded';
  await store.finishRun({
    runId,
    status,
    finishedAt: new Date(),
    // A dry run proves nothing was sent, so it must not let the next run skip its source.
    sourceVersion: input.status === 'dry_run' ? undefined : input.sourceVersion,
    stats: JSON.parse(JSON.stringify({ ...input.stats, outcome: input.status })) as Record<string, never>,
  });
  await store.clearStaging(runId);
  await store.releaseSyncLease(syncId, runId);
  return { failed: Object.values(failureReasons).reduce((sum, n) => sum + n, 0), failureReasons };
}

/**
 * A heartbeat for loops that would call it hundreds of times a second: each call costs a trip through the SDK
 * into its native core, while Temporal only needs one well within the heartbeat timeout.
 */
export function throttledHeartbeat(intervalMs = 1_000): (details?: unknown) => void {
  let last = 0;
  return (details) => {
    const now = Date.now();
    if (now - last < intervalMs) return;
    last = now;
    heartbeat(details);
  };
}

export async function runWithConcurrency<T>(items: readonly T[], concurrency: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const lanes = Array.from({ length: Math.min(concurrency, items.length) }, async () => {
    while (next < items.length) await work(items[next++] as T);
  });
  await Promise.all(lanes);
}
