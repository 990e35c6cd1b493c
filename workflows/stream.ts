/**
 * The drain-the-spool lifecycle, written once for every stream the receiver feeds: the receiver signal-with-starts
 * the stream's workflow whenever it spools something; the workflow opens (once per run), drains the spool round by
 * round, waits for the next signal when it is empty, ends itself after `idleTimeout` without one, and continues as
 * new before its history grows large, carrying its totals. A stream supplies how it opens, what one round does and
 * what comes after it (`StreamKind`); its workflow is a call of `runStream`. It carries counts, never items.
 */
import {
  allHandlersFinished,
  condition,
  continueAsNew,
  setCurrentDetails,
  setHandler,
  workflowInfo,
  type QueryDefinition,
} from '@temporalio/workflow';
import type { Duration } from '@temporalio/common';
import type { z } from 'zod';
import type { StreamBacklog } from '../activities/ingress-backlog.js';
import { budgetControls, parseWorkflowInput, readableFailure, spooledSignal, type BudgetControls, type Budgets } from './engine.js';

/** Rounds before continuing as new: each adds a few events to the history. */
const ROUNDS_PER_RUN = 500;

export interface StreamProgress<Totals> {
  phase: string;
  totals: Totals;
  backlog?: StreamBacklog;
}

/** What follows a round: another at once, a wait (which the receiver's next signal may cut short), or a pause. */
export type AfterRound =
  | { next: 'round' }
  /** Nothing to do: wait for a signal; without one within the idle timeout the stream ends. */
  | { next: 'idle' }
  /** Look again after `wait`; `wakeOnSpool`: sooner when the receiver spools more. */
  | { next: 'recheck'; wait: Duration; wakeOnSpool: boolean }
  /** Until the stream's `pause` resolves (its budget raised, a resume). */
  | { next: 'pause'; pause: () => Promise<void> };

/** A stream's run as its steps see it. */
export interface StreamRun<Options, Totals, Progress extends StreamProgress<Totals>> {
  /** The input as given (before its defaults), and the options it parsed to (a step may replace them). */
  input: object;
  options: Options;
  totals: Totals;
  progress: Progress;
  /** The budget controls (`setBudget`, `resume`) of a stream that spends data points. */
  controls?: BudgetControls;
}

export interface StreamKind<
  Input extends object,
  Options extends { idleTimeout: string },
  Totals,
  Progress extends StreamProgress<Totals>,
> {
  workflowType: string;
  inputSchema: z.ZodType<Options, Input>;
  progressQuery: QueryDefinition<Progress>;
  emptyTotals(): Totals;
  /** The progress a run starts with (its totals given). */
  progress(options: Options, totals: Totals): Progress;
  /** The budgets of a stream that spends data points: it gets `setBudget` and `resume`, and pauses at them. */
  budgets?(options: Options): Budgets;
  /** Before anything else, once per run (e.g. its search attributes). */
  setUp?(run: StreamRun<Options, Totals, Progress>): void;
  /** Once per run, before its rounds; false: the stream has nowhere to go, and ends (its details say why). */
  open(run: StreamRun<Options, Totals, Progress>): Promise<boolean>;
  /** One round: drains what it can, adds to the totals, and says what follows. */
  round(run: StreamRun<Options, Totals, Progress>): Promise<AfterRound>;
  /** The Temporal UI's details: after each round, and once the stream ended idle. */
  describe(run: StreamRun<Options, Totals, Progress>): string;
  /** The input the continued run gets (default: this run's, with the budgets raised by an update). */
  continuedInput?(run: StreamRun<Options, Totals, Progress>): Input;
}

export async function runStream<
  Input extends object,
  Options extends { idleTimeout: string },
  Totals,
  Progress extends StreamProgress<Totals>,
>(kind: StreamKind<Input, Options, Totals, Progress>, input: Input, carried?: Totals): Promise<Totals> {
  const options = parseWorkflowInput(kind.inputSchema, input, kind.workflowType);
  // Totals carried from a run before a count existed lack it: it starts at 0.
  const totals: Totals = { ...kind.emptyTotals(), ...carried };
  const stream: StreamRun<Options, Totals, Progress> = { input, options, totals, progress: kind.progress(options, totals) };
  if (kind.budgets) stream.controls = budgetControls(kind.budgets(options));
  let spooled = false;
  setHandler(spooledSignal, () => void (spooled = true));
  setHandler(kind.progressQuery, () => stream.progress);
  kind.setUp?.(stream);

  try {
    if (!(await kind.open(stream))) return await end();
    for (let rounds = 0; rounds < ROUNDS_PER_RUN && !workflowInfo().continueAsNewSuggested; rounds++) {
      spooled = false;
      const after = await kind.round(stream);
      setCurrentDetails(kind.describe(stream));
      if (after.next === 'pause') await after.pause();
      else if (after.next !== 'round') stream.progress.phase = 'waiting';
      if (after.next === 'recheck') await condition(() => after.wakeOnSpool && spooled, after.wait);
      else if (after.next === 'idle') {
        if (!(await condition(() => spooled, options.idleTimeout))) {
          setCurrentDetails(`${kind.describe(stream)}; idle for ${options.idleTimeout}: ended (the receiver starts it again)`);
          return await end();
        }
      }
    }
  } catch (error) {
    throw readableFailure(error, kind.workflowType);
  }
  await condition(allHandlersFinished);
  // The budgets raised by an update live on in the continued run.
  const continued = kind.continuedInput?.(stream) ?? { ...input, ...stream.controls?.defined() };
  return continueAsNew<(input: Input, carried: Totals) => Promise<Totals>>(continued, totals);

  async function end(): Promise<Totals> {
    stream.progress.phase = 'done';
    await condition(allHandlersFinished);
    return totals;
  }
}
