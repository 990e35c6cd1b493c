/** `ampbraze cohort sync|schedule|status` and `ampbraze cohort stream status`: thin commands over the typed client API. */
import { WorkflowNotFoundError } from '@temporalio/client';
import type { Command } from 'commander';
import type { CohortStreamProgress } from '../cohort-stream/workflow.js';
import { getCohortStreamProgress, latestCohortSyncRun } from '../../src/client.js';
import { cohortStreamName, cohortSyncId, type CohortSyncInput } from './input.js';
import { COHORT_SYNC } from './kind.js';
import { deadLettersLine } from '../../src/cli/dead-letters.js';
import { reportAndExit } from '../../src/cli/output.js';
import { progressLine } from '../../src/cli/progress.js';
import type { CohortSyncProgress, CohortSyncResult } from './workflow.js';
import { runInputOf, scheduleAction, statusAction, syncAction, withRunOptions, type RunFlags } from '../../src/cli/sync-commands.js';
import { withTemporalClient } from '../../src/cli/temporal-client.js';

interface SyncFlags extends RunFlags {
  target?: 'attribute' | 'partner_cohort';
  attribute?: string;
  identifiers?: string;
  aliasLabel?: string;
  force?: boolean;
}

function syncInput(cohortId: string, flags: SyncFlags): CohortSyncInput {
  return {
    cohortId,
    ...(flags.target && { target: flags.target }),
    ...(flags.attribute && { attributeName: flags.attribute }),
    ...(flags.identifiers && { identifiers: flags.identifiers.split(',') as CohortSyncInput['identifiers'] }),
    ...(flags.aliasLabel && { aliasLabel: flags.aliasLabel }),
    ...(flags.force && { force: true }),
    ...runInputOf(flags),
  };
}

function withSyncOptions(command: Command): Command {
  return withRunOptions(command)
    .option('--target <target>', 'attribute (custom-attribute array) or partner_cohort (native Braze cohort)')
    .option('--attribute <name>', 'custom-attribute array name (default amplitude_cohorts)')
    .option('--identifiers <list>', 'priority list of user_id,user_alias,device_id (default user_id)')
    .option('--alias-label <label>', 'alias label for user_alias (default amplitude_id)')
    .option('--force', 'download even if the cohort has not been recomputed');
}

export function registerCohortCommands(program: Command): void {
  const cohort = program.command('cohort').description('Amplitude cohort → Braze syncs');

  withSyncOptions(cohort.command('sync <cohortId>').description('start a one-time cohort sync'))
    .option('--wait', 'show progress and wait for the result')
    .action(syncAction(COHORT_SYNC, syncInput, { describeProgress, printResult }));

  withSyncOptions(cohort.command('schedule <cohortId>').description('create a Temporal Schedule for a cohort sync'))
    .requiredOption('--cadence <cadence>', 'every_minute, hourly or daily')
    .option('--at <time>', 'daily: HH:MM; hourly: the minute (MM)')
    .option('--time-zone <zone>', 'IANA time zone for --at (default UTC)')
    .action(scheduleAction(COHORT_SYNC, syncInput));

  cohort
    .command('status <cohortId>')
    .description('show the progress of the newest run of a cohort sync, however it was started (also by a schedule)')
    .option('--target <target>', 'attribute or partner_cohort', 'attribute')
    .option('--attribute <name>', 'custom-attribute array name', 'amplitude_cohorts')
    .action(
      statusAction(
        COHORT_SYNC,
        async (client, cohortId: string, flags: { target: 'attribute' | 'partner_cohort'; attribute: string }) => {
          const sync = { cohortId, target: flags.target, attributeName: flags.attribute };
          // Visibility lags a moment behind a start: a run just started under the sync id is still found.
          return (await latestCohortSyncRun(client, sync)) ?? cohortSyncId(sync);
        },
        describeProgress,
      ),
    );

  cohort
    .command('stream')
    .description('real-time cohorts from Amplitude’s cohort webhooks')
    .command('status <cohortId>')
    .description('what the cohort’s webhook stream has applied to Braze, and its backlog')
    .option('--target <target>', 'attribute or partner_cohort', 'attribute')
    .option('--attribute <name>', 'custom-attribute array name', 'amplitude_cohorts')
    .action((cohortId: string, flags: { target: 'attribute' | 'partner_cohort'; attribute: string }) =>
      withTemporalClient(async (client) => {
        try {
          const target = { cohortId, target: flags.target, attributeName: flags.attribute };
          console.log(describeStreamProgress(await getCohortStreamProgress(client, target), cohortStreamName(target)));
        } catch (error) {
          if (!(error instanceof WorkflowNotFoundError)) throw error;
          console.log(`No webhook stream has run for cohort ${cohortId}: the receiver starts one when it spools the cohort’s first batch.`);
        }
      }).catch(reportAndExit),
    );
}

export function describeStreamProgress(progress: CohortStreamProgress, stream: string): string {
  const { totals, backlog } = progress;
  const lines = [
    `Cohort "${progress.cohortName ?? progress.cohortId}": ${progress.phase} … added ${totals.added}, removed ${totals.removed} · ${totals.unchanged} unchanged · ${totals.superseded} superseded · ${totals.failed} failed · ${totals.deadLettered ?? 0} dead-lettered · ${totals.dataPoints} data points`,
  ];
  if (backlog) lines.push(`backlog ${backlog.pending} changes, the oldest waiting ${Math.round(backlog.oldestAgeMs / 1000)} s`);
  if (backlog?.deadLetters) lines.push(deadLettersLine(backlog.deadLetters, stream));
  if (backlog?.warning) lines.push(`warning: ${backlog.warning}`);
  if (progress.waitingFor) lines.push(`waiting for ${progress.waitingFor}, which has the cohort`);
  if (progress.pausedReason) lines.push(`paused: ${progress.pausedReason}`);
  return lines.join('\n');
}

export function describeProgress(progress: CohortSyncProgress): string {
  const { totals } = progress;
  return progressLine(progress, `+${totals.added} −${totals.removed} · ${totals.failed} failed · ${totals.dataPoints} data points`);
}

export function printResult(result: CohortSyncResult): void {
  if (result.unchanged) {
    console.log(`Cohort "${result.cohortName}" is unchanged since the last run: nothing downloaded, nothing sent.`);
    return;
  }
  const plan = result.plan
    ? ` (plan: ${result.plan.enter} enter, ${result.plan.leave} leave, ${result.plan.predictedDataPoints} data points)`
    : '';
  console.log(
    `${result.dryRun ? 'Dry run' : 'Done'}: ${result.added} added, ${result.removed} removed, ${result.skipped} skipped, ${result.failed} failed${plan}`,
  );
  console.log(
    `Braze requests: ${result.brazeRequests} · data points: ${result.dataPoints} · Amplitude downloads: ${result.amplitudeDownloads}`,
  );
  for (const [reason, count] of Object.entries({ ...result.skipReasons, ...result.failureReasons })) console.log(`  ${count} × ${reason}`);
}
