/** `ampbraze`: the command line, a thin layer over the typed client API in src/client.ts. */
import { Command } from 'commander';
import { KINDS } from '../../kinds/index.js';
import { registerDeadLetterCommands } from './dead-letters.js';
import { doctorCommand } from './doctor.js';
import { registerOperatorCommands } from './operator.js';
import { reportAndExit } from './output.js';

const program = new Command()
  .name('ampbraze')
  .description('Amplitude → Braze sync on Temporal: cohorts, traits, events and Currents')
  .showHelpAfterError();

program
  .command('doctor')
  .description('check from a worker that Temporal, the state store, Amplitude and Braze are reachable with the configured credentials')
  .option('--timeout <seconds>', 'how long to wait for a worker', '60')
  .action((options: { timeout: string }) => doctorCommand({ timeoutMs: Number(options.timeout) * 1000 }).catch(reportAndExit));

program
  .command('worker')
  .description('run a worker (same as `npm run worker`)')
  .action(() => import('../worker.js').then((worker) => worker.main()).catch(reportAndExit));

program
  .command('receiver')
  .description('run the HTTP receiver (same as `receive` and `npm run receiver`)')
  .action(() => import('../receiver/main.js').then((receiver) => receiver.main()).catch(reportAndExit));

for (const kind of KINDS) kind.registerCommands?.(program);
registerDeadLetterCommands(program);
registerOperatorCommands(program);

await program.parseAsync();
