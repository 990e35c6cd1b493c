/** `ampbraze receive` and `ampbraze currents status`: the receiver, and what the Currents forwarder has done. */
import { WorkflowNotFoundError } from '@temporalio/client';
import type { Command } from 'commander';
import { getCurrentsProgress } from '../../src/client.js';
import { CURRENTS_STREAM } from '../../src/currents/amplitude-events.js';
import type { CurrentsForwardProgress } from './workflow.js';
import { deadLettersLine } from '../../src/cli/dead-letters.js';
import { reportAndExit } from '../../src/cli/output.js';
import { withTemporalClient } from '../../src/cli/temporal-client.js';

export function registerCurrentsCommands(program: Command): void {
  program
    .command('receive')
    .description('run the HTTP receiver for Braze Currents and Amplitude cohort webhooks (same as `npm run receiver`)')
    .action(() => import('../../src/receiver/main.js').then((receiver) => receiver.main()).catch(reportAndExit));

  const currents = program.command('currents').description('Braze Currents → Amplitude');
  currents
    .command('status')
    .description('what the forwarder has done, and the backlog: unforwarded events and the oldest one’s age')
    .action(() =>
      withTemporalClient(async (client) => {
        try {
          console.log(describeCurrentsProgress(await getCurrentsProgress(client)));
        } catch (error) {
          if (!(error instanceof WorkflowNotFoundError)) throw error;
          console.log('No Currents forwarder has run yet: the receiver starts one when it spools the first batch.');
        }
      }).catch(reportAndExit),
    );
}

export function describeCurrentsProgress(progress: CurrentsForwardProgress): string {
  const { totals, backlog } = progress;
  const lines = [
    `${progress.phase} … ${totals.forwarded} forwarded · ${totals.skipped} skipped · ${totals.deadLettered} dead-lettered · ${totals.deferrals} held back for throttling`,
  ];
  if (backlog) {
    lines.push(
      `backlog: ${backlog.pending} unforwarded (${backlog.deferred} throttled), the oldest waiting ${Math.round(backlog.oldestAgeMs / 1000)} s`,
    );
    if (backlog.deadLetters) lines.push(deadLettersLine(backlog.deadLetters, CURRENTS_STREAM));
  }
  for (const [reason, count] of Object.entries({ ...totals.skipReasons, ...totals.deadLetterReasons }))
    lines.push(`  ${count} × ${reason}`);
  return lines.join('\n');
}
