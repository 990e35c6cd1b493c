/**
 * The commands every sync kind has, written once over its descriptor (kinds/<kind>/kind.ts): `sync` (start a run, and with
 * `--wait` follow its progress and print its result), `schedule` and `status`; and the flags every run takes.
 */
import type { Command } from 'commander';
import { scheduleSync, startSync, syncProgress, type Cadence, type SyncKind } from '../sync-kind.js';
import { reportAndExit } from './output.js';
import { followProgress } from './progress.js';
import { withTemporalClient } from './temporal-client.js';
import { watchingForWorker } from './worker-watch.js';

/** The flags of the input fields every kind takes (`runInputFields`). */
export interface RunFlags {
  dryRun?: boolean;
  maxDataPoints?: string;
  maxDataPointsPerDay?: string;
  pageSize?: string;
}

export function withRunOptions(command: Command): Command {
  return command
    .option('--dry-run', 'plan and price the run; send nothing')
    .option('--max-data-points <n>', 'pause before this run spends more than this many data points')
    .option('--max-data-points-per-day <n>', 'pause before all syncs together spend more than this many data points today (UTC)')
    .option('--page-size <n>', 'users (or events) per page activity');
}

/** The input fields of the run flags that are set. */
export function runInputOf(flags: RunFlags) {
  return {
    ...(flags.dryRun && { dryRun: true }),
    ...(flags.maxDataPoints && { maxDataPoints: Number(flags.maxDataPoints) }),
    ...(flags.maxDataPointsPerDay && { maxDataPointsPerDay: Number(flags.maxDataPointsPerDay) }),
    ...(flags.pageSize && { pageSize: Number(flags.pageSize) }),
  };
}

/** How a kind's runs read on a terminal. */
export interface SyncWords<Progress, Result> {
  describeProgress: (progress: Progress) => string;
  printResult: (result: Result) => void;
}

/**
 * Commander calls an action with the command's arguments, then its options, then the command itself: the actions
 * below hand `inputOf` the arguments and the options, and read their own flags from the options.
 */
function argumentsAndOptions<Args extends unknown[], Flags>(given: unknown[]): { args: Args; flags: Flags } {
  const args = given.slice(0, -1) as Args;
  return { args, flags: args.at(-1) as Flags };
}

/** `… sync`: starts a run of `kind` with the input the command's arguments make; `--wait` follows it to its result. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- any workflow whose result the words print
export function syncAction<Args extends unknown[], Input, Options, Progress, Result, W extends (...args: any[]) => Promise<Result>>(
  kind: SyncKind<W, Input, Options, Progress>,
  inputOf: (...args: Args) => Input,
  words: SyncWords<Progress, Result>,
) {
  return (...given: unknown[]) => {
    const { args, flags } = argumentsAndOptions<Args, { wait?: boolean }>(given);
    return withTemporalClient(async (client, config) => {
      const handle = await startSync(client, kind, inputOf(...args), { taskQueue: config.taskQueue });
      console.log(`Started ${handle.workflowId}`);
      if (!flags.wait) return;
      const result = await followProgress(
        () => syncProgress(client, kind, handle.workflowId),
        words.describeProgress,
        () => watchingForWorker(client, config.taskQueue, handle.result()),
      );
      words.printResult(result as Result);
    }).catch(reportAndExit);
  };
}

/** `… schedule`: a Temporal Schedule of `kind`'s runs, with the input the command's arguments make. */
export function scheduleAction<Args extends unknown[], Input, Options, Progress>(
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- any workflow
  kind: SyncKind<any, Input, Options, Progress>,
  inputOf: (...args: Args) => Input,
) {
  return (...given: unknown[]) => {
    const { args, flags } = argumentsAndOptions<Args, { cadence?: Cadence; at?: string; timeZone?: string }>(given);
    const { cadence = 'hourly', at, timeZone } = flags;
    return withTemporalClient(async (client, config) => {
      const input = inputOf(...args);
      const schedule = await scheduleSync(client, kind, input, { cadence, at, timeZone, taskQueue: config.taskQueue });
      console.log(`Created schedule ${schedule.scheduleId} (${cadence}${at ? ` at ${at}` : ''})`);
    }).catch(reportAndExit);
  };
}

/** `… status`: the progress of the run whose workflow id the command's arguments name. */
export function statusAction<Args extends unknown[], Progress>(
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- any workflow
  kind: SyncKind<any, any, any, Progress>,
  workflowIdOf: (client: Parameters<Parameters<typeof withTemporalClient>[0]>[0], ...args: Args) => Promise<string> | string,
  describe: (progress: Progress) => string,
) {
  return (...given: unknown[]) =>
    withTemporalClient(async (client) => {
      const workflowId = await workflowIdOf(client, ...argumentsAndOptions<Args, unknown>(given).args);
      console.log(`Run ${workflowId}`);
      console.log(describe(await syncProgress(client, kind, workflowId)));
    }).catch(reportAndExit);
}
