/**
 * `npm run temporal`: the embedded Temporal server (persistent SQLite under data/, Web UI on 8233, the
 * project's search attributes registered). Users of a Temporal cluster or Temporal Cloud skip this and point
 * TEMPORAL_ADDRESS at their cluster instead.
 */
import { join } from 'node:path';
import { PROJECT_ROOT, resolveTemporalCli } from '../src/temporal/cli.js';
import { startDevServer } from '../src/temporal/dev-server.js';

const port = Number(process.env.TEMPORAL_DEV_PORT ?? 7233);
const uiPort = Number(process.env.TEMPORAL_DEV_UI_PORT ?? 8233);
const cli = await resolveTemporalCli({ log: (line) => console.error(line) });
const server = await startDevServer({
  cli,
  port,
  uiPort,
  dbFilename: join(PROJECT_ROOT, 'data', 'temporal.db'),
  inheritOutput: true,
});
console.log(`Temporal dev server on ${server.address}; Web UI at ${server.uiUrl}. Ctrl-C to stop.`);

const shutdown = () => void server.stop().then(() => process.exit(0));
process.once('SIGINT', shutdown);
process.once('SIGTERM', shutdown);
