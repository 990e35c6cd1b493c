/** `ampbraze events sync|backfill|schedule|status`: thin commands over the typed client API. */
import type { Command } from 'commander';
import { backfillEventSyncs } from '../../src/client.js';
import { eventSyncId, type EventSyncInput } from './input.js';
import { EVENT_SYNC } from './kind.js';
import { reportAndExit } from '../../src/cli/output.js';
import { progressLine } from '../../src/cli/progress.js';
import type { EventSyncProgress, EventSyncResult } from './workflow.js';
import { runInputOf, scheduleAction, statusAction, syncAction, withRunOptions, type RunFlags } from '../../src/cli/sync-commands.js';
import { withTemporalClient } from '../../src/cli/temporal-client.js';
import { watchingForWorker } from '../../src/cli/worker-watch.js';

interface EventFlags extends RunFlags {
  eventTypes?: string;
  identifiers?: string;
  updateExistingOnly?: boolean;
  lagHours?: string;
}

function eventInput(flags: EventFlags): EventSyncInput {
  return {
    ...(flags.eventTypes && { eventTypes: flags.eventTypes.split(',').map((type) => type.trim()) }),
    ...(flags.identifiers && { identifiers: flags.identifiers.split(',') as EventSyncInput['identifiers'] }),
    ...(flags.updateExistingOnly && { updateExistingOnly: true }),
    ...(flags.lagHours && { lagHours: Number(flags.lagHours) }),
    ...runInputOf(flags),
  };
}

function withEventOptions(command: Command): Command {
  return withRunOptions(command)
    .option('--event-types <list>', 'event types to forward to Braze, comma-separated, or * for all (default: none, ingest only)')
    .option('--identifiers <list>', 'user_id, then optionally device_id or amplitude_id for anonymous users (as a user alias)')
    .option('--update-existing-only', 'never create Braze users');
}

export function registerEventCommands(program: Command): void {
  const events = program.command('events').description('Amplitude events → the activity index and Braze custom events');

  withEventOptions(events.command('sync [hour]').description('process one hour (YYYYMMDDTHH, UTC; default: the latest available)'))
    .option('--lag-hours <n>', 'without an hour: how many hours back the latest available one is (default 3)')
    .option('--wait', 'show progress and wait for the result')
    .action(
      syncAction(EVENT_SYNC, (hour: string | undefined, flags: EventFlags) => ({ ...eventInput(flags), ...(hour && { hour }) }), {
        describeProgress: describeEventProgress,
        printResult: printEventResult,
      }),
    );

  withEventOptions(
    events.command('backfill').description('process every hour of a past range, in order; safe to repeat (nothing is sent twice)'),
  )
    .requiredOption('--from <hour>', 'first hour, YYYYMMDDTHH (UTC)')
    .requiredOption('--to <hour>', 'last hour, YYYYMMDDTHH (UTC)')
    .option('--concurrency <n>', 'hours processed at once', '2')
    .action((flags: EventFlags & { from: string; to: string; concurrency: string }) =>
      withTemporalClient(async (client, config) => {
        const backfill = backfillEventSyncs(client, { from: flags.from, to: flags.to }, eventInput(flags), {
          taskQueue: config.taskQueue,
          concurrency: Number(flags.concurrency),
          onHour: printEventResult,
        });
        const results = await watchingForWorker(client, config.taskQueue, backfill);
        const forwarded = results.reduce((sum, result) => sum + result.forwarded, 0);
        console.log(`Backfilled ${results.length} hours: ${forwarded} events forwarded`);
      }).catch(reportAndExit),
    );

  withEventOptions(events.command('schedule').description('create the hourly Temporal Schedule (runs buffered, so hours go in order)'))
    .option('--lag-hours <n>', 'each run processes the hour this far before its start (default 3)')
    .option('--at <minute>', 'the minute past each hour to start (default 0)')
    .action(scheduleAction(EVENT_SYNC, eventInput));

  events
    .command('status <hour>')
    .description('show the progress of the one-off run of an hour')
    .action(statusAction(EVENT_SYNC, (_client, hour: string) => eventSyncId(hour), describeEventProgress));
}

export function describeEventProgress(progress: EventSyncProgress): string {
  const { totals } = progress;
  return progressLine(
    progress,
    `hour ${progress.hour} · ${totals.forwarded} forwarded · ${totals.failed} failed · ${totals.dataPoints} data points`,
  );
}

export function printEventResult(result: EventSyncResult): void {
  if (result.runInProgress) {
    console.log(`Hour ${result.hour}: run ${result.runInProgress} is in progress; this run did nothing.`);
    return;
  }
  const sent = result.dryRun ? `${result.plan?.toSend ?? 0} would be forwarded` : `${result.forwarded} forwarded`;
  console.log(
    `${result.dryRun ? 'Dry run' : 'Done'}, hour ${result.hour}: ${result.events} events from ${result.usersActive} users; ${sent}, ${result.alreadySent} already sent, ${result.skipped} skipped, ${result.failed} failed`,
  );
  console.log(
    `Braze requests: ${result.brazeRequests} · data points: ${result.dataPoints}${result.resent ? ` · ${result.resent} resent after a lost request` : ''}${result.unconfirmed ? ` · ${result.unconfirmed} unconfirmed (never resent)` : ''}`,
  );
  for (const [reason, count] of Object.entries({ ...result.skipReasons, ...result.failureReasons, ...result.droppedProperties }))
    console.log(`  ${count} × ${reason}`);
}
