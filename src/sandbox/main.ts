/**
 * `npm run sandbox`: a local Amplitude and a local Braze on loopback, seeded with the same deterministic users,
 * so the worker can run every sync without vendor accounts. Prints (and writes to data/sandbox.env) the
 * environment a worker needs to talk to them.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { PROJECT_ROOT } from '../temporal/cli.js';
import { startSandboxes } from './sandboxes.js';

const sandboxes = await startSandboxes({
  seed: Number(process.env.SANDBOX_SEED ?? 1),
  users: Number(process.env.SANDBOX_USERS ?? 10_000),
  amplitudePort: Number(process.env.AMPLITUDE_SANDBOX_PORT ?? 8281),
  brazePort: Number(process.env.BRAZE_SANDBOX_PORT ?? 8282),
  amplitude: { profileRequestsPerMinute: optionalNumber(process.env.SANDBOX_PROFILE_REQUESTS_PER_MINUTE) },
  dataset: {
    identifiedFraction: optionalNumber(process.env.SANDBOX_IDENTIFIED_FRACTION),
    brazeKnownFraction: optionalNumber(process.env.SANDBOX_BRAZE_KNOWN_FRACTION),
    eventsPerHour: optionalNumber(process.env.SANDBOX_EVENTS_PER_HOUR),
    lateEventFraction: optionalNumber(process.env.SANDBOX_LATE_EVENT_FRACTION),
    lateEventMaxHours: optionalNumber(process.env.SANDBOX_LATE_EVENT_MAX_HOURS),
  },
});

const envFile = process.env.SANDBOX_ENV_FILE ?? join(PROJECT_ROOT, 'data', 'sandbox.env');
const lines = Object.entries(sandboxes.env).map(([name, value]) => `${name}=${value}`);
await mkdir(dirname(envFile), { recursive: true });
await writeFile(envFile, `${lines.join('\n')}\n`);

console.log(`Amplitude sandbox: ${sandboxes.amplitude.url}  (inspect: ${sandboxes.amplitude.url}/_sandbox/state)`);
console.log(`Braze sandbox:     ${sandboxes.braze.url}  (inspect: ${sandboxes.braze.url}/_sandbox/state)`);
console.log(`\nEnvironment for a worker (also written to ${envFile}):\n`);
for (const line of lines) console.log(`export ${line}`);
console.log('\nCtrl-C to stop.');

function optionalNumber(value: string | undefined): number | undefined {
  return value === undefined || value === '' ? undefined : Number(value);
}

const shutdown = () => void sandboxes.close().then(() => process.exit(0));
process.once('SIGINT', shutdown);
process.once('SIGTERM', shutdown);
