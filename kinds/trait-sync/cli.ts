/** `ampbraze traits sync|schedule|status`: thin commands over the typed client API. */
import type { Command } from 'commander';
import { TRAIT_SYNC } from './kind.js';
import { traitSyncId, traitSyncInputSchema, type TraitSyncInput } from './input.js';
import { progressLine } from '../../src/cli/progress.js';
import type { TraitSyncProgress, TraitSyncResult } from './workflow.js';
import { runInputOf, scheduleAction, statusAction, syncAction, withRunOptions, type RunFlags } from '../../src/cli/sync-commands.js';

interface TraitFlags extends RunFlags {
  properties?: string;
  computations?: string;
  input?: string;
  name?: string;
  prefix?: string;
  windowDays?: string;
  audienceCohort?: string;
  onMissing?: 'unset' | 'keep';
  standardFields?: boolean;
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
    ...runInputOf(flags),
  };
}

function list(names: string): string[] {
  return names.split(',').map((name) => name.trim());
}

function withTraitOptions(command: Command): Command {
  return withRunOptions(command)
    .option('--properties <list>', 'Amplitude user properties to sync, comma-separated (each becomes a custom attribute)')
    .option('--computations <list>', 'Amplitude computation ids to sync, comma-separated (through the User Profile API)')
    .option('--input <json>', 'the whole traitSync input as JSON (e.g. with "recommendations", "rename", "types"); flags override it')
    .option('--name <name>', 'name the sync (its id becomes trait-sync-<name>)')
    .option('--prefix <prefix>', 'put before every attribute name, e.g. amp_')
    .option('--window-days <n>', 'sync users active in this many days (default 90)')
    .option('--audience-cohort <id>', 'sync the members of this Amplitude cohort (properties from its file) instead of active users')
    .option('--on-missing <unset|keep>', 'when a value disappears: unset it in Braze (default) or keep it')
    .option('--standard-fields', "allow attributes named like Braze's standard profile fields");
}

export function registerTraitCommands(program: Command): void {
  const traits = program.command('traits').description('Amplitude user properties → Braze custom attributes, for active users');

  withTraitOptions(traits.command('sync').description('run a trait sync once'))
    .option('--wait', 'show progress and wait for the result')
    .action(syncAction(TRAIT_SYNC, traitInput, { describeProgress: describeTraitProgress, printResult: printTraitResult }));

  withTraitOptions(traits.command('schedule').description('create a Temporal Schedule for a trait sync (overlapping runs are skipped)'))
    .requiredOption('--cadence <hourly|daily>', 'how often it runs')
    .option('--at <time>', 'daily: HH:MM; hourly: the minute past the hour')
    .option('--time-zone <zone>', 'IANA time zone for --at (default UTC)')
    .action(scheduleAction(TRAIT_SYNC, traitInput));

  withTraitOptions(
    traits.command('status').description('show the progress of the one-off run of a trait sync (named by the same flags)'),
  ).action(
    statusAction(
      TRAIT_SYNC,
      (_client, flags: TraitFlags) => traitSyncId(traitSyncInputSchema.parse(traitInput(flags))),
      describeTraitProgress,
    ),
  );
}

export function describeTraitProgress(progress: TraitSyncProgress): string {
  const { totals } = progress;
  return progressLine(progress, `${totals.written} users written · ${totals.failed} failed · ${totals.dataPoints} data points`);
}

export function printTraitResult(result: TraitSyncResult): void {
  if (result.runInProgress) {
    console.log(`Run ${result.runInProgress} of ${result.syncId} is in progress; this run did nothing.`);
    return;
  }
  if (result.audienceUnchanged) {
    console.log(
      `Unchanged, ${result.syncId}: the audience cohort has not been recomputed since the last success; nothing downloaded or sent.`,
    );
    return;
  }
  const values = `${result.set} values ${result.dryRun ? 'to set' : 'set'}, ${result.unset} ${result.dryRun ? 'to unset' : 'unset'}`;
  console.log(
    `${result.dryRun ? 'Dry run' : 'Done'}, ${result.syncId}: ${result.users} users in the window (${result.created} new, ${result.updated} updated, ${result.unchanged} unchanged); ${values}, ${result.skipped} skipped, ${result.failed} failed`,
  );
  console.log(
    `Braze requests: ${result.brazeRequests} · data points: ${result.dataPoints}${result.dryRun ? ` (predicted: ${result.set + result.unset})` : ''}${result.amplitudeDownloads > 0 ? ` · cohort downloads: ${result.amplitudeDownloads}` : ''}`,
  );
  if (result.profiles) {
    const { audience, fetched, fetchedWithin24h } = result.profiles;
    console.log(
      `User Profile API requests: ${result.profileApiRequests} · profiles fetched: ${fetched} of ${audience} users, ${fetchedWithin24h} within 24 h`,
    );
  }
  for (const [reason, count] of Object.entries({ ...result.skipReasons, ...result.failureReasons })) console.log(`  ${count} × ${reason}`);
}
