/** `npm run temporal:install`: find (or install) the Temporal CLI and print where it is. */
import { resolveTemporalCli } from '../src/temporal/cli.js';

const cli = await resolveTemporalCli({ install: true, allowSdkDownload: false, log: (line) => console.error(line) });
if (cli.kind === 'binary') console.log(cli.path);
