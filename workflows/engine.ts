/**
 * What every sync workflow shares: input validation that fails fast and readably, the budget controls
 * (`setBudget` update, `resume` signal, the pause), and the apply loop — planned pages applied a few at
 * once, budgets held back for pages in flight, continue-as-new only with nothing in flight. Deterministic
 * orchestration only: the pages themselves are activities.
 */
import {
  ActivityFailure,
  ApplicationFailure,
  allHandlersFinished,
  condition,
  defineSignal,
  defineUpdate,
  proxyActivities,
  setCurrentDetails,
  setHandler,
  workflowInfo,
} from '@temporalio/workflow';
import type { z } from 'zod';
import type { PageBudgets, PageOutcome } from '../activities/engine.js';
import { NON_RETRYABLE_FAILURES, workflowFailureTypes } from '../src/failure-types.js';
import { describeInputProblems } from '../src/input-problems.js';

export interface Budgets {
  maxDataPoints?: number;
  maxDataPointsPerDay?: number;
}

/** Raise (or lower) the budgets of a paused or running sync; returns the budgets now in force. */
export const setBudgetUpdate = defineUpdate<Budgets, [Budgets]>('setBudget');
/** Continue a paused sync once, whatever the budget (the operator accepts the cost). */
export const resumeSignal = defineSignal('resume');
/** The receiver's nudge to a stream's workflow: new items are in its spool. */
export const spooledSignal = defineSignal('spooled');

/** The input, parsed; a bad one fails the run at once (not retried), one line per problem naming the field. */
export function parseWorkflowInput<S extends z.ZodType>(schema: S, input: unknown, workflowType: string): z.output<S> {
  const parsed = schema.safeParse(input);
  if (parsed.success) return parsed.data;
  throw ApplicationFailure.create({
    type: workflowFailureTypes(workflowType).invalidInput,
    nonRetryable: true,
    message: `Invalid ${workflowType} input:\n${describeInputProblems(parsed.error)}`,
  });
}

/**
 * The activity proxies every sync kind uses: quick steps, streams (staging) and pages. Streams and pages
 * heartbeat as they go, so a dead worker's activity moves to another one within seconds and resumes from the
 * store. Failures no retry can help (and the kind's refused input) are not retried; the rest are, within a day.
 */
export function syncActivities<A extends object>(workflowType: string) {
  const retry = {
    initialInterval: '1s',
    backoffCoefficient: 2,
    maximumInterval: '1 minute',
    nonRetryableErrorTypes: [...NON_RETRYABLE_FAILURES, workflowFailureTypes(workflowType).invalidInput],
  };
  // The ceiling of an activity's retries: a vendor outage (or another run's lease) lasting longer fails the run,
  // which the next scheduled run starts afresh, rather than retrying for ever.
  const scheduleToCloseTimeout = '1 day';
  return {
    retry,
    scheduleToCloseTimeout,
    quick: proxyActivities<A>({ startToCloseTimeout: '2 minutes', scheduleToCloseTimeout, retry }),
    streaming: proxyActivities<A>({ startToCloseTimeout: '2 hours', heartbeatTimeout: '20 seconds', scheduleToCloseTimeout, retry }),
    pages: proxyActivities<A>({ startToCloseTimeout: '10 minutes', heartbeatTimeout: '20 seconds', scheduleToCloseTimeout, retry }),
    // A vendor job's wait (a cohort export) ends itself with a readable failure at its limit; this only catches a hang.
    jobWait: proxyActivities<A>({ startToCloseTimeout: '3 hours', heartbeatTimeout: '1 minute', scheduleToCloseTimeout, retry }),
    // Recording that a run failed is tried a few times, never for long: the run fails anyway.
    lastWords: proxyActivities<A>({ startToCloseTimeout: '1 minute', retry: { ...retry, maximumAttempts: 3 } }),
  };
}

/** The part of a workflow's `progress` the apply loop writes. */
export interface ApplyProgress {
  phase: string;
  pausedReason?: string;
}

/** Registers the budget update and the resume signal; `budgets` is what is in force now. */
export function budgetControls(initial: Budgets) {
  const budgets: Budgets = { ...initial };
  let resumeOnce = false;
  setHandler(resumeSignal, () => void (resumeOnce = true));
  setHandler(
    setBudgetUpdate,
    (next) => {
      Object.assign(budgets, next);
      return { ...budgets };
    },
    {
      validator: (next: Budgets) => {
        for (const name of ['maxDataPoints', 'maxDataPointsPerDay'] as const) {
          const value = next[name];
          if (value !== undefined && !(Number.isInteger(value) && value > 0)) throw new Error(`${name} must be a positive integer`);
        }
      },
    },
  );
  return {
    budgets,
    /** Whether an operator said "resume" since the last call (which uses it up). */
    takeResume(): boolean {
      const resume = resumeOnce;
      resumeOnce = false;
      return resume;
    },
    /** Pauses until the budgets change or resume is signalled; a daily budget also frees itself at the next UTC midnight. */
    async pause(progress: ApplyProgress, outcome: PageOutcome): Promise<void> {
      const before = { ...budgets };
      progress.phase = 'paused';
      progress.pausedReason = `the next page costs ${outcome.pageDataPoints} data points, over the ${outcome.budget === 'day' ? 'daily' : 'run'} budget`;
      setCurrentDetails(`Paused: ${progress.pausedReason}. Raise the budget (update "setBudget") or signal "resume".`);
      const untilMidnight = outcome.budget === 'day' ? msUntilNextUtcDay() : undefined;
      await condition(
        () => resumeOnce || before.maxDataPoints !== budgets.maxDataPoints || before.maxDataPointsPerDay !== budgets.maxDataPointsPerDay,
        untilMidnight ?? '3650 days',
      );
      progress.phase = 'applying';
      progress.pausedReason = undefined;
    },
    /**
     * What a page is checked against: what is left of the run's budget after `spent`, the daily budget, and what
     * the other pages in flight may still spend; nothing when the page goes whatever the budget (a resume).
     */
    pageBudgets(spent: number, inFlightDataPoints: number, ignoreBudgets: boolean): PageBudgets {
      if (ignoreBudgets) return { inFlightDataPoints };
      const runBudgetRemaining = budgets.maxDataPoints === undefined ? undefined : budgets.maxDataPoints - spent;
      return { runBudgetRemaining, maxDataPointsPerDay: budgets.maxDataPointsPerDay, inFlightDataPoints };
    },
    /** The budgets set, for the next run's input: budgets raised by an update live in this run only. */
    defined(): Budgets {
      return Object.fromEntries(Object.entries(budgets).filter(([, value]) => value !== undefined));
    },
  };
}

export type BudgetControls = ReturnType<typeof budgetControls>;

export interface PageWindow {
  pageCount: number;
  /** Every page before this one is applied. */
  nextPage: number;
  pagesInFlight: number;
  /** The most one page can cost: what each page in flight holds back from the budgets. */
  maxPageDataPoints: number;
  /** Applies page `index`; `inFlightDataPoints` is what the others in flight may still spend. */
  apply(index: number, inFlightDataPoints: number, ignoreBudgets: boolean): Promise<PageOutcome>;
  /** A page was applied (counts, progress, search attributes). */
  applied(index: number, outcome: PageOutcome): void;
  /** Continues as new from `nextPage` (never returns). */
  continueAsNew(nextPage: number): Promise<never>;
}

/**
 * Applies the planned pages, up to `pagesInFlight` at once, from `window.nextPage` on. Every page in flight
 * holds back the most a page can cost from the budgets; a page refused for that reason while others were in
 * flight is tried again alone, and pauses the run only if it is over budget on its own. The run continues as
 * new only with nothing in flight, so every page before `nextPage` is applied.
 */
export async function applyPages(window: PageWindow, controls: BudgetControls, progress: ApplyProgress): Promise<void> {
  progress.phase = 'applying';
  const inFlight = new Set<Promise<void>>();
  const refused: number[] = [];
  let next = window.nextPage;

  const launch = (index: number) => {
    const done = window.apply(index, inFlight.size * window.maxPageDataPoints, false).then((outcome) => {
      inFlight.delete(done);
      if (outcome.status === 'over_budget') refused.push(index);
      else window.applied(index, outcome);
    });
    inFlight.add(done);
  };

  for (;;) {
    while (
      inFlight.size < window.pagesInFlight &&
      refused.length === 0 &&
      next < window.pageCount &&
      !workflowInfo().continueAsNewSuggested
    ) {
      launch(next++);
    }
    if (inFlight.size > 0) {
      await Promise.race(inFlight);
      continue;
    }
    const alone = refused.shift();
    if (alone !== undefined) {
      window.applied(alone, await applyAloneWithinBudget(alone));
    } else if (next < window.pageCount) {
      await condition(allHandlersFinished);
      await window.continueAsNew(next);
    } else {
      return;
    }
  }

  /** Sends one page with nothing else in flight; while it would exceed a budget, pauses until the budget is raised or resume is signalled. */
  async function applyAloneWithinBudget(index: number): Promise<PageOutcome> {
    for (;;) {
      const outcome = await window.apply(index, 0, controls.takeResume());
      if (outcome.status === 'applied') return outcome;
      await controls.pause(progress, outcome);
    }
  }
}

/** An activity's own non-retryable failure (quota, bad input, vendor rejection) becomes the run's failure, verbatim. */
export function readableFailure(error: unknown, workflowType: string): unknown {
  if (error instanceof ActivityFailure && error.cause instanceof ApplicationFailure) {
    const type = error.cause.type ?? workflowFailureTypes(workflowType).failed;
    return ApplicationFailure.create({ type, message: error.cause.message, nonRetryable: true });
  }
  return error;
}

function msUntilNextUtcDay(): number {
  const now = Date.now(); // deterministic inside workflows
  return 86_400_000 - (now % 86_400_000);
}
