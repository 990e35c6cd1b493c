/** `ampbraze events sync|backfill|schedule|status`: thin commands over the typed client API. */
import type { Command } from 'commander';
import { backfillEventSyncs, getEventSyncProgress, scheduleEventSync, startEventSync } from '../client.js';
import { eventSyncId, type EventSyncInput } from '../events/input.js';
import { reportAndExit } from './output.js';
import { describeEventProgress, followProgress, printEventResult } from './progress.js';
import { withTemporalClient } from './temporal-client.js';

interface EventFlags {
  eventTypes?: string;
  identifiers?: string;
  updateExistingOnly?: boolean;
  lagHours?: string;
  dryRun?: boolean;
  maxDataPoints?: string;
  maxDataPointsPerDay?: string;
}

function eventInput(flags: EventFlags): EventSyncInput {
  return {
    ...(flags.eventTypes && { eventTypes: flags.eventTypes.split(',').map((type) => type.trim()) }),
    ...(flags.identifiers && { identifiers: flags.identifiers.split(',') as EventSyncInput['identifiers'] }),
    ...(flags.updateExistingOnly && { updateExistingOnly: true }),
    ...(flags.lagHours && { lagHours: Number(flags.lagHours) }),
    ...(flags.dryRun && { dryRun: true }),
    ...(flags.maxDataPoints && { maxDataPoints: Number(flags.maxDataPoints) }),
    ...(flags.maxDataPointsPerDay && { maxDataPointsPerDay: Number(flags.maxDataPointsPerDay) }),
  };
}

function withEventOptions(command: Command): Command {
  return command
    .option('--event-types <list>', 'event types to forward to Braze, comma-separated, or * for all (default: none, ingest only)')
    .option('--identifiers <list>', 'user_id, then optionally device_id or amplitude_id for anonymous users (as a user alias)')
    .option('--update-existing-only', 'never create Braze users')
    .option('--dry-run', 'ingest and report what would be sent; send nothing')
    .option('--max-data-points <n>', 'pause before this run spends more than this many data points')
    .option('--max-data-points-per-day <n>', 'pause before all syncs together spend more than this many data points today (UTC)');
}

export function registerEventCommands(program: Command): void {
  const events = program.command('events').description('Amplitude events → the activity index and Braze custom events');

  withEventOptions(events.command('sync [hour]').description('process one hour (YYYYMMDDTHH, UTC; default: the latest available)'))
    .option('--lag-hours <n>', 'without an hour: how many hours back the latest available one is (default 3)')
    .option('--wait', 'show progress and wait for the result')
    .action((hour: string | undefined, flags: EventFlags & { wait?: boolean }) =>
      withTemporalClient(async (client, config) => {
        const handle = await startEventSync(client, { ...eventInput(flags), ...(hour && { hour }) }, { taskQueue: config.taskQueue });
        console.log(`Started ${handle.workflowId}`);
        if (flags.wait)
          printEventResult(
            await followProgress(
              () => getEventSyncProgress(client, handle.workflowId),
              describeEventProgress,
              () => handle.result(),
            ),
          );
      }).catch(reportAndExit),
    );

  withEventOptions(
    events.command('backfill').description('process every hour of a past range, in order; safe to repeat (nothing is sent twice)'),
  )
    .requiredOption('--from <hour>', 'first hour, YYYYMMDDTHH (UTC)')
    .requiredOption('--to <hour>', 'last hour, YYYYMMDDTHH (UTC)')
    .option('--concurrency <n>', 'hours processed at once', '2')
    .action((flags: EventFlags & { from: string; to: string; concurrency: string }) =>
      withTemporalClient(async (client, config) => {
        const results = await backfillEventSyncs(client, { from: flags.from, to: flags.to }, eventInput(flags), {
          taskQueue: config.taskQueue,
          concurrency: Number(flags.concurrency),
          onHour: printEventResult,
        });
        const forwarded = results.reduce((sum, result) => sum + result.forwarded, 0);
        console.log(`Backfilled ${results.length} hours: ${forwarded} events forwarded`);
      }).catch(reportAndExit),
    );

  withEventOptions(events.command('schedule').description('create the hourly Temporal Schedule (runs buffered, so hours go in order)'))
    .option('--lag-hours <n>', 'each run processes the hour this far before its start (default 3)')
    .option('--at <minute>', 'the minute past each hour to start (default 0)')
    .action((flags: EventFlags & { at?: string }) =>
      withTemporalClient(async (client, config) => {
        const schedule = await scheduleEventSync(client, eventInput(flags), { at: flags.at, taskQueue: config.taskQueue });
        console.log(`Created schedule ${schedule.scheduleId} (hourly${flags.at ? ` at minute ${flags.at}` : ''})`);
      }).catch(reportAndExit),
    );

  events
    .command('status <hour>')
    .description('show the progress of the one-off run of an hour')
    .action((hour: string) =>
      withTemporalClient(async (client) => {
        console.log(describeEventProgress(await getEventSyncProgress(client, eventSyncId(hour))));
      }).catch(reportAndExit),
    );
}
