/** `ampbraze cohort sync|schedule|status` and `ampbraze cohort stream status`: thin commands over the typed client API. */
import { WorkflowNotFoundError } from '@temporalio/client';
import type { Command } from 'commander';
import type { CohortStreamProgress } from '../../workflows/cohort-stream.js';
import {
  getCohortStreamProgress,
  getSyncProgress,
  latestCohortSyncRun,
  scheduleCohortSync,
  startCohortSync,
  type Cadence,
} from '../client.js';
import { cohortStreamName, cohortSyncId, type CohortSyncInput } from '../cohort/input.js';
import { deadLettersLine } from './dead-letters.js';
import { reportAndExit } from './output.js';
import { describeProgress, followProgress, printResult } from './progress.js';
import { withTemporalClient } from './temporal-client.js';

interface SyncFlags {
  target?: 'attribute' | 'partner_cohort';
  attribute?: string;
  identifiers?: string;
  aliasLabel?: string;
  dryRun?: boolean;
  maxDataPoints?: string;
  maxDataPointsPerDay?: string;
  pageSize?: string;
  force?: boolean;
}

function syncInput(cohortId: string, flags: SyncFlags): CohortSyncInput {
  return {
    cohortId,
    ...(flags.target && { target: flags.target }),
    ...(flags.attribute && { attributeName: flags.attribute }),
    ...(flags.identifiers && { identifiers: flags.identifiers.split(',') as CohortSyncInput['identifiers'] }),
    ...(flags.aliasLabel && { aliasLabel: flags.aliasLabel }),
    ...(flags.dryRun && { dryRun: true }),
    ...(flags.force && { force: true }),
    ...(flags.maxDataPoints && { maxDataPoints: Number(flags.maxDataPoints) }),
    ...(flags.maxDataPointsPerDay && { maxDataPointsPerDay: Number(flags.maxDataPointsPerDay) }),
    ...(flags.pageSize && { pageSize: Number(flags.pageSize) }),
  };
}

function withSyncOptions(command: Command): Command {
  return command
    .option('--target <target>', 'attribute (custom-attribute array) or partner_cohort (native Braze cohort)')
    .option('--attribute <name>', 'custom-attribute array name (default amplitude_cohorts)')
    .option('--identifiers <list>', 'priority list of user_id,user_alias,device_id (default user_id)')
    .option('--alias-label <label>', 'alias label for user_alias (default amplitude_id)')
    .option('--dry-run', 'plan and price the sync, send nothing')
    .option('--max-data-points <n>', 'pause before this run spends more than this many data points')
    .option('--max-data-points-per-day <n>', 'pause before all syncs together spend more than this many data points today (UTC)')
    .option('--page-size <n>', 'users per page activity (default 1000)')
    .option('--force', 'download even if the cohort has not been recomputed');
}

export function registerCohortCommands(program: Command): void {
  const cohort = program.command('cohort').description('Amplitude cohort → Braze syncs');

  withSyncOptions(cohort.command('sync <cohortId>').description('start a one-time cohort sync'))
    .option('--wait', 'show progress and wait for the result')
    .action((cohortId: string, flags: SyncFlags & { wait?: boolean }) =>
      withTemporalClient(async (client, config) => {
        const handle = await startCohortSync(client, syncInput(cohortId, flags), { taskQueue: config.taskQueue });
        console.log(`Started ${handle.workflowId}`);
        if (flags.wait)
          printResult(
            await followProgress(
              () => getSyncProgress(client, handle.workflowId),
              describeProgress,
              () => handle.result(),
            ),
          );
      }).catch(reportAndExit),
    );

  withSyncOptions(cohort.command('schedule <cohortId>').description('create a Temporal Schedule for a cohort sync'))
    .requiredOption('--cadence <cadence>', 'every_minute, hourly or daily')
    .option('--at <time>', 'daily: HH:MM; hourly: the minute (MM)')
    .option('--time-zone <zone>', 'IANA time zone for --at (default UTC)')
    .action((cohortId: string, flags: SyncFlags & { cadence: Cadence; at?: string; timeZone?: string }) =>
      withTemporalClient(async (client, config) => {
        const schedule = await scheduleCohortSync(client, syncInput(cohortId, flags), {
          cadence: flags.cadence,
          at: flags.at,
          timeZone: flags.timeZone,
          taskQueue: config.taskQueue,
        });
        console.log(`Created schedule ${schedule.scheduleId} (${flags.cadence}${flags.at ? ` at ${flags.at}` : ''})`);
      }).catch(reportAndExit),
    );

  cohort
    .command('status <cohortId>')
    .description('show the progress of the newest run of a cohort sync, however it was started (also by a schedule)')
    .option('--target <target>', 'attribute or partner_cohort', 'attribute')
    .option('--attribute <name>', 'custom-attribute array name', 'amplitude_cohorts')
    .action((cohortId: string, flags: { target: 'attribute' | 'partner_cohort'; attribute: string }) =>
      withTemporalClient(async (client) => {
        const sync = { cohortId, target: flags.target, attributeName: flags.attribute };
        // Visibility lags a moment behind a start: a run just started under the sync id is still found.
        const workflowId = (await latestCohortSyncRun(client, sync)) ?? cohortSyncId(sync);
        console.log(`Run ${workflowId}`);
        console.log(describeProgress(await getSyncProgress(client, workflowId)));
      }).catch(reportAndExit),
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
