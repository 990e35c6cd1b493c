/**
 * The paged-sync lifecycle, written once for every sync kind: validate the input; begin the run (the sync's lease
 * and the run ledger, or an early end: another run in progress, nothing new to sync); stage and plan; apply the
 * planned pages a few at once within the budgets, pausing at them; continue as new with nothing in flight; finish;
 * and on failure record it and fail readably. A kind supplies its steps and its words (`PagedSyncKind`); its
 * workflow is a call of `runPagedSync`. Deterministic orchestration only: every step is an activity.
 */
import {
  ContinueAsNew,
  allHandlersFinished,
  condition,
  continueAsNew,
  setCurrentDetails,
  setHandler,
  upsertSearchAttributes,
  workflowInfo,
  type QueryDefinition,
} from '@temporalio/workflow';
import type { SearchAttributePair } from '@temporalio/common';
import type { z } from 'zod';
import type { PageBudgets, PageOutcome } from '../activities/engine.js';
import type { RunRef } from '../activities/sync-lease.js';
import { DATA_POINTS } from '../src/temporal/search-attributes.js';
import { applyPages, budgetControls, parseWorkflowInput, readableFailure, type Budgets } from './engine.js';

/** What every kind counts. */
export interface PagedTotals {
  failed: number;
  failureReasons: Record<string, number>;
  dataPoints: number;
  brazeRequests: number;
  /** Aliases of anonymous users who signed in, identified to their external id (absent: none). */
  identified?: number;
}

/** Where a continued-as-new run picks up; the rest is in the store. A kind adds what its pages and finish need. */
export interface PagedCheckpoint<Totals extends PagedTotals> {
  runId: string;
  /** Every page before this one is applied. */
  nextPage: number;
  totals: Totals;
}

/** The input fields the lifecycle reads, which every kind's input has (`runInputFields`). */
export interface PagedOptions extends Budgets {
  dryRun: boolean;
  pagesInFlight: number;
}

export interface PagedProgress<Totals> {
  phase: string;
  page: number;
  pagesTotal: number;
  totals: Totals;
  pausedReason?: string;
}

/** One run as a kind's steps see it. */
export interface PagedRun<Options, Totals> {
  options: Options;
  run: RunRef;
  totals: Totals;
  /** Sets the phase (for the `progress` query) and, given, what the run is doing (the Temporal UI's details). */
  step: (phase: string, details?: string) => void;
}

/** How a run's first step (lease, run ledger) ends: on with what it found, or early. */
export type Begun<Found, State> =
  { status: 'busy'; runInProgress: string } | { status: 'unchanged'; state: State } | { status: 'changed'; found: Found };

export type FinishStatus = 'succeeded' | 'dry_run' | 'unchanged';

export interface PagedSyncKind<
  Input extends object,
  Options extends PagedOptions,
  Totals extends PagedTotals,
  State extends PagedCheckpoint<Totals>,
  Found,
  Result,
> {
  workflowType: string;
  inputSchema: z.ZodType<Options, Input>;
  progressQuery: QueryDefinition<PagedProgress<Totals>>;
  /** The sync's id (its snapshot, lease and ledgers hang off it), its runs' search attributes and progress fields. */
  identify(
    options: Options,
    checkpoint: State | undefined,
  ): {
    syncId: string;
    searchAttributes: SearchAttributePair[];
    progress?: Record<string, unknown>;
  };
  emptyTotals(): Totals;
  /** The first step: the sync's lease and the run ledger, and whether there is anything to sync. */
  begin(run: PagedRun<Options, Totals>): Promise<Begun<Found, State>>;
  /** Stages and plans what `begin` found: the checkpoint the pages start from. */
  stage(run: PagedRun<Options, Totals>, found: Found): Promise<State>;
  pageCount(state: State): number;
  /** The most one page can cost: what each page in flight holds back from the budgets. */
  maxPageDataPoints(state: State): number;
  applyPage(run: PagedRun<Options, Totals>, state: State, page: number, budgets: PageBudgets): Promise<PageOutcome>;
  /** Adds a page's outcome to the kind's own totals (the lifecycle adds failures, data points and requests). */
  countPage(totals: Totals, state: State, page: number, outcome: PageOutcome): void;
  /** Finishes the run in the run ledger and says what it did. */
  finish(run: PagedRun<Options, Totals>, status: FinishStatus, state: State): Promise<Result>;
  /** Records in the run ledger that the run failed (best effort: the run fails anyway). */
  recordFailure(run: PagedRun<Options, Totals>): Promise<unknown>;
  /** The result of a run that sent nothing because another one was in progress. */
  skippedResult(run: PagedRun<Options, Totals>, runInProgress: string): Result;
  /** The details shown after each page, and once the run is done. */
  describePages(run: PagedRun<Options, Totals>): string;
  describeResult(result: Result): string;
  /** The input a continued run gets (default: the input, with the budgets in force). */
  continuedInput?(input: Input, state: State): Input;
}

export async function runPagedSync<
  Input extends object,
  Options extends PagedOptions,
  Totals extends PagedTotals,
  State extends PagedCheckpoint<Totals>,
  Found,
  Result,
>(kind: PagedSyncKind<Input, Options, Totals, State, Found, Result>, input: Input, checkpoint?: State): Promise<Result> {
  const options = parseWorkflowInput(kind.inputSchema, input, kind.workflowType);
  const { sync, progress } = openRun(kind, options, checkpoint);
  const { totals } = sync;
  const controls = budgetControls({ maxDataPoints: options.maxDataPoints, maxDataPointsPerDay: options.maxDataPointsPerDay });

  // Every kind's first step records the run before anything can fail; one that found another run in progress did not.
  let started = true;
  try {
    let state = checkpoint;
    if (!state) {
      const begun = await kind.begin(sync);
      if (begun.status === 'busy') {
        started = false;
        const result = kind.skippedResult(sync, begun.runInProgress);
        sync.step('done', kind.describeResult(result));
        return result;
      }
      if (begun.status === 'unchanged') return await finish('unchanged', begun.state);
      state = await kind.stage(sync, begun.found);
      if (options.dryRun) return await finish('dry_run', state);
    }
    const current = state;
    progress.pagesTotal = kind.pageCount(current);
    await applyPages(
      {
        pageCount: progress.pagesTotal,
        nextPage: current.nextPage,
        pagesInFlight: options.pagesInFlight,
        maxPageDataPoints: kind.maxPageDataPoints(current),
        apply: (page, inFlightDataPoints, ignoreBudgets) =>
          kind.applyPage(sync, current, page, controls.pageBudgets(totals.dataPoints, inFlightDataPoints, ignoreBudgets)),
        applied: (page, outcome) => {
          kind.countPage(totals, current, page, outcome);
          totals.failed += outcome.failed;
          totals.dataPoints += outcome.dataPoints;
          totals.brazeRequests += outcome.brazeRequests;
          if (outcome.identified) totals.identified = (totals.identified ?? 0) + outcome.identified;
          progress.page += 1;
          upsertSearchAttributes([{ key: DATA_POINTS, value: totals.dataPoints }]);
          setCurrentDetails(`Page ${progress.page} of ${progress.pagesTotal}: ${kind.describePages(sync)}`);
        },
        continueAsNew: (nextPage) =>
          continueAsNew<(input: Input, checkpoint: State) => Promise<Result>>(
            { ...(kind.continuedInput?.(input, current) ?? input), ...controls.defined() },
            { ...current, nextPage, totals },
          ),
      },
      controls,
      progress,
    );
    return await finish('succeeded', current);
  } catch (error) {
    if (error instanceof ContinueAsNew) throw error;
    if (started) await kind.recordFailure(sync).catch(() => undefined);
    throw readableFailure(error, kind.workflowType);
  }

  async function finish(status: FinishStatus, state: State): Promise<Result> {
    sync.step('finishing');
    const result = await kind.finish(sync, status, state);
    sync.step('done', kind.describeResult(result));
    await condition(allHandlersFinished);
    return result;
  }
}

/** The run as its steps see it, its `progress` query answered and its search attributes set. */
function openRun<Input extends object, Options extends PagedOptions, Totals extends PagedTotals, State extends PagedCheckpoint<Totals>>(
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- any Found and Result: only the run's identity is read
  kind: PagedSyncKind<Input, Options, Totals, State, any, any>,
  options: Options,
  checkpoint: State | undefined,
): { sync: PagedRun<Options, Totals>; progress: PagedProgress<Totals> } {
  const identity = kind.identify(options, checkpoint);
  const { workflowId, runId: temporalRunId } = workflowInfo();
  const run: RunRef = { syncId: identity.syncId, runId: checkpoint?.runId ?? `${identity.syncId}/${temporalRunId}`, workflowId };
  // A checkpoint written before a count existed lacks it: it starts at 0.
  const totals = { ...kind.emptyTotals(), ...checkpoint?.totals };
  const progress: PagedProgress<Totals> = {
    phase: 'preparing',
    page: checkpoint?.nextPage ?? 0,
    pagesTotal: 0,
    totals,
    ...identity.progress,
  };
  const sync: PagedRun<Options, Totals> = {
    options,
    run,
    totals,
    step: (phase, details) => {
      progress.phase = phase;
      if (details !== undefined) setCurrentDetails(details);
    },
  };
  setHandler(kind.progressQuery, () => progress);
  upsertSearchAttributes([...identity.searchAttributes, { key: DATA_POINTS, value: totals.dataPoints }]);
  return { sync, progress };
}
