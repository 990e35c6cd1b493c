/** `ampbraze profiles warmup|schedule|status` and `ampbraze profiles list save`: thin commands over the client API. */
import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { loadStoreConfig } from '../../src/config.js';
import { reportAndExit } from '../../src/cli/output.js';
import { scheduleAction, statusAction, syncAction } from '../../src/cli/sync-commands.js';
import { openStateStore } from '../../src/store/index.js';
import { profileWarmupId, profileWarmupInputSchema, type ProfileWarmupInput } from './input.js';
import { PROFILE_WARMUP, saveProfileList } from './kind.js';
import type { ProfileWarmupProgress, ProfileWarmupResult } from './workflow.js';

interface WarmupFlags {
  cohort?: string;
  activeDays?: string;
  list?: string;
  freshWithin?: string;
  maxFetches?: string;
}

function warmupInput(flags: WarmupFlags): ProfileWarmupInput {
  return {
    ...(flags.cohort && { cohortId: flags.cohort }),
    ...(flags.activeDays && { activeWithinDays: Number(flags.activeDays) }),
    ...(flags.list && { list: flags.list }),
    ...(flags.freshWithin && { freshWithin: flags.freshWithin }),
    ...(flags.maxFetches && { maxFetches: Number(flags.maxFetches) }),
  };
}

function withWarmupOptions(command: Command): Command {
  return command
    .option('--cohort <id>', 'warm the members of this Amplitude cohort (one download from the monthly quota)')
    .option('--active-days <n>', 'warm the users active in this many days')
    .option('--list <name>', 'warm a list saved with `ampbraze profiles list save`')
    .option('--fresh-within <duration>', 'leave profiles fetched this long before the start alone (default 1h)')
    .option('--max-fetches <n>', 'fetch at most this many profiles');
}

export function registerProfileCommands(program: Command): void {
  const profiles = program.command('profiles').description('Amplitude profiles kept for Braze Connected Content');

  withWarmupOptions(profiles.command('warmup').description("refresh an audience's profiles before a send"))
    .option('--wait', 'show progress and wait for the result')
    .action(syncAction(PROFILE_WARMUP, warmupInput, { describeProgress: describeWarmupProgress, printResult: printWarmupResult }));

  withWarmupOptions(profiles.command('schedule').description('create a Temporal Schedule of a warm-up (e.g. before a daily campaign)'))
    .requiredOption('--cadence <hourly|daily>', 'how often it runs')
    .option('--at <time>', 'daily: HH:MM; hourly: the minute past the hour')
    .option('--time-zone <zone>', 'IANA time zone for --at (default UTC)')
    .action(scheduleAction(PROFILE_WARMUP, warmupInput));

  withWarmupOptions(profiles.command('status').description('show the progress of a warm-up (named by the same flags)')).action(
    statusAction(
      PROFILE_WARMUP,
      (_client, flags: WarmupFlags) => profileWarmupId(profileWarmupInputSchema.parse(warmupInput(flags))),
      describeWarmupProgress,
    ),
  );

  profiles
    .command('list')
    .description('lists of users to warm')
    .command('save <name>')
    .description('save (or replace) a list of Amplitude user ids, one per line, to warm with --list <name>')
    .requiredOption('--file <path>', 'the file of user ids')
    .action(async (name: string, flags: { file: string }) => {
      try {
        const store = await openStateStore(loadStoreConfig());
        try {
          const users = await saveProfileList(store, name, readFileSync(flags.file, 'utf8').split(/\r?\n/));
          console.log(`Saved list "${name}": ${users} users. Warm it with \`ampbraze profiles warmup --list ${name}\`.`);
        } finally {
          await store.close();
        }
      } catch (error) {
        reportAndExit(error);
      }
    });
}

export function describeWarmupProgress(progress: ProfileWarmupProgress): string {
  return `${progress.phase} … ${progress.fetched} of ${progress.members} profiles fetched · ${progress.unknown} unknown to Amplitude`;
}

export function printWarmupResult(result: ProfileWarmupResult): void {
  console.log(
    `Done, ${result.warmupId}: ${result.fresh} of ${result.members} profiles fresh (${Math.round(result.freshShare * 100)}%); ${result.fetched} fetched now, ${result.unknown} users Amplitude has not seen`,
  );
}
