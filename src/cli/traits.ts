/** `ampbraze traits sync|schedule|status`: thin commands over the typed client API. */
import type { Command } from 'commander';
import { getTraitSyncProgress, scheduleTraitSync, startTraitSync } from '../client.js';
import { traitSyncId, traitSyncInputSchema, type TraitSyncInput } from '../traits/input.js';
import { reportAndExit } from './output.js';
import { describeTraitProgress, followProgress, printTraitResult } from './progress.js';
import { withTemporalClient } from './temporal-client.js';

interface TraitFlags {
  properties?: string;
  computations?: string;
  input?: string;
  name?: string;
  prefix?: string;
  windowDays?: string;
  audienceCohort?: string;
  onMissing?: 'unset' | 'keep';
  standardFields?: boolean;
  dryRun?: boolean;
  maxDataPoints?: string;
  maxDataPointsPerDay?: string;
}

/** The workflow input: `--input` JSON (for `rename` and `types`), with the flags on top. */
function traitInput(flags: TraitFlags): TraitSyncInput {
  const base = flags.input ? (JSON.parse(flags.input) as Partial<TraitSyncInput>) : {};
  return {
    ...base,
    ...(flags.properties && { properties: list(flags.properties) }),
    ...(flags.computations && { computations: list(flags.computations) }),
    ...(flags.name && { name: flags.name }),
    ...(flags.prefix && { attributePrefix: flags.prefix }),
    ...(flags.windowDays && { windowDays: Number(flags.windowDays) }),
    ...(flags.audienceCohort && { audienceCohortId: flags.audienceCohort }),
    ...(flags.onMissing && { onMissing: flags.onMissing }),
    ...(flags.standardFields && { standardFields: true }),
    ...(flags.dryRun && { dryRun: true }),
    ...(flags.maxDataPoints && { maxDataPoints: Number(flags.maxDataPoints) }),
    ...(flags.maxDataPointsPerDay && { maxDataPointsPerDay: Number(flags.maxDataPointsPerDay) }),
  };
}

function list(names: string): string[] {
  return names.split(',').map((name) => name.trim());
}

function withTraitOptions(command: Command): Command {
  return command
    .option('--properties <list>', 'Amplitude user properties to sync, comma-separated (each becomes a custom attribute)')
    .option('--computations <list>', 'Amplitude computation ids to sync, comma-separated (through the User Profile API)')
    .option('--input <json>', 'the whole traitSync input as JSON (e.g. with "recommendations", "rename", "types"); flags override it')
    .option('--name <name>', 'name the sync (its id becomes trait-sync-<name>)')
    .option('--prefix <prefix>', 'put before every attribute name, e.g. amp_')
    .option('--window-days <n>', 'sync users active in this many days (default 90)')
    .option('--audience-cohort <id>', 'sync the members of this Amplitude cohort (properties from its file) instead of active users')
    .option('--on-missing <unset|keep>', 'when a value disappears: unset it in Braze (default) or keep it')
    .option('--standard-fields', "allow attributes named like Braze's standard profile fields")
    .option('--dry-run', 'report what would be sent; send nothing')
    .option('--max-data-points <n>', 'pause before this run spends more than this many data points')
    .option('--max-data-points-per-day <n>', 'pause before all syncs together spend more than this many data points today (UTC)');
}

export function registerTraitCommands(program: Command): void {
  const traits = program.command('traits').description('Amplitude user properties → Braze custom attributes, for active users');

  withTraitOptions(traits.command('sync').description('run a trait sync once'))
    .option('--wait', 'show progress and wait for the result')
    .action((flags: TraitFlags & { wait?: boolean }) =>
      withTemporalClient(async (client, config) => {
        const handle = await startTraitSync(client, traitInput(flags), { taskQueue: config.taskQueue });
        console.log(`Started ${handle.workflowId}`);
        if (flags.wait)
          printTraitResult(
            await followProgress(
              () => getTraitSyncProgress(client, handle.workflowId),
              describeTraitProgress,
              () => handle.result(),
            ),
          );
      }).catch(reportAndExit),
    );

  withTraitOptions(traits.command('schedule').description('create a Temporal Schedule for a trait sync (overlapping runs are skipped)'))
    .requiredOption('--cadence <hourly|daily>', 'how often it runs')
    .option('--at <time>', 'daily: HH:MM; hourly: the minute past the hour')
    .option('--time-zone <zone>', 'IANA time zone for --at (default UTC)')
    .action((flags: TraitFlags & { cadence: 'hourly' | 'daily'; at?: string; timeZone?: string }) =>
      withTemporalClient(async (client, config) => {
        const schedule = await scheduleTraitSync(client, traitInput(flags), {
          cadence: flags.cadence,
          at: flags.at,
          timeZone: flags.timeZone,
          taskQueue: config.taskQueue,
        });
        console.log(`Created schedule ${schedule.scheduleId} (${flags.cadence}${flags.at ? ` at ${flags.at}` : ''})`);
      }).catch(reportAndExit),
    );

  withTraitOptions(
    traits.command('status').description('show the progress of the one-off run of a trait sync (named by the same flags)'),
  ).action((flags: TraitFlags) =>
    withTemporalClient(async (client) => {
      console.log(describeTraitProgress(await getTraitSyncProgress(client, traitSyncId(traitSyncInputSchema.parse(traitInput(flags))))));
    }).catch(reportAndExit),
  );
}
