/** `ampbraze events stream start|configure|status`: thin commands over the event stream's client functions. */
import type { Command } from 'commander';
import { deadLettersLine } from '../../src/cli/dead-letters.js';
import { reportAndExit } from '../../src/cli/output.js';
import { withTemporalClient } from '../../src/cli/temporal-client.js';
import { eventStreamSpool, type EventStreamSettingsChange } from './input.js';
import { configureEventStream, getEventStreamProgress, startEventStream } from './kind.js';
import type { EventStreamProgress } from './workflow.js';

interface StreamFlags {
  eventTypes?: string;
  identifiers?: string;
  updateExistingOnly?: boolean;
  input?: string;
}

/** The settings the flags name: `--input` (JSON, as in the Temporal UI), then the flags over it. */
function settingsOf(flags: StreamFlags): EventStreamSettingsChange {
  return {
    ...(flags.input && (JSON.parse(flags.input) as EventStreamSettingsChange)),
    ...(flags.eventTypes && { eventTypes: flags.eventTypes.split(',').map((type) => type.trim()) }),
    ...(flags.identifiers && { identifiers: flags.identifiers.split(',') as EventStreamSettingsChange['identifiers'] }),
    ...(flags.updateExistingOnly && { updateExistingOnly: true }),
  };
}

function withSettingsOptions(command: Command): Command {
  return command
    .option('--event-types <list>', 'event types sent to Braze, comma-separated, or * for all (default: none, activity only)')
    .option('--identifiers <list>', 'user_id, then optionally device_id or amplitude_id for anonymous users (as a user alias)')
    .option('--update-existing-only', 'never create Braze users')
    .option('--input <json>', 'any other settings, as JSON (the same fields as the workflow input)');
}

export function registerEventStreamCommands(program: Command): void {
  const events = program.commands.find((command) => command.name() === 'events') ?? program.command('events');
  const stream = events
    .command('stream')
    .description('Amplitude’s Webhooks streaming destination → Braze within seconds (POST /amplitude/stream/<name>)');

  withSettingsOptions(
    stream.command('start <name>').description('start the named stream with these settings (kept for its later runs)'),
  ).action((name: string, flags: StreamFlags) =>
    withTemporalClient(async (client, config) => {
      const handle = await startEventStream(client, { ...settingsOf(flags), name }, { taskQueue: config.taskQueue });
      console.log(`Started ${handle.workflowId}: point Amplitude’s Webhook destination at <receiver>/amplitude/stream/${name}`);
    }).catch(reportAndExit),
  );

  withSettingsOptions(stream.command('configure <name>').description('change a running stream’s settings (the fields given)')).action(
    (name: string, flags: StreamFlags) =>
      withTemporalClient(async (client) => {
        const settings = await configureEventStream(client, name, settingsOf(flags));
        console.log(`Stream "${name}" now runs with ${JSON.stringify(settings)}`);
      }).catch(reportAndExit),
  );

  stream
    .command('status <name>')
    .description('what the stream has sent and skipped, its settings, and its backlog')
    .action((name: string) =>
      withTemporalClient(async (client) => {
        console.log(describeEventStreamProgress(await getEventStreamProgress(client, name)));
      }).catch(reportAndExit),
    );
}

export function describeEventStreamProgress(progress: EventStreamProgress): string {
  const { totals, backlog } = progress;
  const lines = [
    `${progress.phase} … ${totals.sent} events sent · ${totals.alreadySent} already sent · ${totals.skipped} skipped · ${totals.failed} failed · ${totals.dataPoints} data points`,
  ];
  if (totals.resent + totals.unconfirmed > 0)
    lines.push(`after lost requests: ${totals.resent} resent (at-least-once) · ${totals.unconfirmed} unconfirmed (at-most-once)`);
  if (progress.pausedReason) lines.push(`paused: ${progress.pausedReason}`);
  if (backlog) {
    lines.push(`backlog: ${backlog.pending} waiting, the oldest for ${Math.round(backlog.oldestAgeMs / 1000)} s`);
    if (backlog.warning) lines.push(`warning: ${backlog.warning}`);
    if (backlog.deadLetters) lines.push(deadLettersLine(backlog.deadLetters, eventStreamSpool(progress.name)));
  }
  for (const [reason, count] of Object.entries(totals.skipReasons)) lines.push(`  ${count} × ${reason}`);
  return lines.join('\n');
}
