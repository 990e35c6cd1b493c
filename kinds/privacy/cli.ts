/**
 * `ampbraze forget` (an erasure: the ids saved in the store, then `forgetUsers` run and awaited), `ampbraze forget
 * --undo` (a suppression lifted, recorded) and `ampbraze privacy sync|schedule` (Amplitude's deletion jobs).
 */
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { loadAmplitudeConfig, loadStoreConfig } from '../../src/config.js';
import { reportAndExit } from '../../src/cli/output.js';
import { scheduleAction, syncAction } from '../../src/cli/sync-commands.js';
import { withTemporalClient } from '../../src/cli/temporal-client.js';
import { watchingForWorker } from '../../src/cli/worker-watch.js';
import { suppressionKeyOf } from '../../src/privacy/suppression.js';
import { openStateStore } from '../../src/store/index.js';
import type { ErasureIdentities } from '../../src/store/store.js';
import { startForgetUsers } from '../../src/client.js';
import { erasureIdentities, identitiesFromLines, PRIVACY_SYNC } from './kind.js';
import type { PrivacySyncInput } from './input.js';
import type { ForgottenJobs } from './activities.js';

interface ForgetFlags {
  userId?: string[];
  deviceId?: string[];
  amplitudeId?: string[];
  file?: string;
  deleteInBraze?: boolean;
  deleteInAmplitude?: boolean;
  requester?: string;
  undo?: boolean;
}

const collect = (value: string, previous: string[] = []) => [...previous, value];

export function registerPrivacyCommands(program: Command): void {
  program
    .command('forget')
    .description(
      'erase users (GDPR/CCPA): every copy in the store, suppressed from every sync, and optionally deleted in Braze and Amplitude',
    )
    .option('--user-id <id>', 'a user id (Braze external id); repeatable', collect)
    .option('--device-id <id>', 'a device id; repeatable', collect)
    .option('--amplitude-id <id>', 'an Amplitude id; repeatable', collect)
    .option('--file <path>', 'ids one per line: user_id:…, device_id:…, amplitude_id:… or a bare user id')
    .option('--delete-in-braze', "delete the users' Braze profiles too (/users/delete)")
    .option('--delete-in-amplitude', 'ask Amplitude to delete the users too (User Privacy API)')
    .option('--requester <who>', 'who Amplitude records as asking for the deletion')
    .option('--undo', 'lift the suppression of these ids instead (recorded); nothing erased comes back')
    .action((flags: ForgetFlags) => (flags.undo ? liftSuppression(flags) : forget(flags)).catch(reportAndExit));

  const privacy = program.command('privacy').description("forget the users of Amplitude's deletion jobs");
  const syncInput = (flags: { deleteInBraze?: boolean; lookbackDays?: string }): PrivacySyncInput => ({
    ...(flags.deleteInBraze && { deleteInBraze: true }),
    ...(flags.lookbackDays && { lookbackDays: Number(flags.lookbackDays) }),
  });
  const withSyncOptions = (command: Command) =>
    command
      .option('--delete-in-braze', 'delete the users in Braze too')
      .option('--lookback-days <n>', 'read jobs scheduled from this many days ago (default 30)');
  withSyncOptions(privacy.command('sync').description("forget the users of Amplitude's deletion jobs now"))
    .option('--wait', 'wait for the result')
    .action(syncAction(PRIVACY_SYNC, syncInput, { describeProgress: (progress) => progress.phase, printResult: printForgottenJobs }));
  withSyncOptions(privacy.command('schedule').description('create a Temporal Schedule of privacy syncs'))
    .requiredOption('--cadence <hourly|daily>', 'how often it runs')
    .option('--at <time>', 'daily: HH:MM; hourly: the minute past the hour')
    .option('--time-zone <zone>', 'IANA time zone for --at (default UTC)')
    .action(scheduleAction(PRIVACY_SYNC, syncInput));
}

function identitiesOf(flags: ForgetFlags): ErasureIdentities {
  const fromFile = flags.file ? identitiesFromLines(readFileSync(flags.file, 'utf8')) : undefined;
  return erasureIdentities({
    userIds: [...(flags.userId ?? []), ...(fromFile?.userIds ?? [])],
    deviceIds: [...(flags.deviceId ?? []), ...(fromFile?.deviceIds ?? [])],
    amplitudeIds: [...(flags.amplitudeId ?? []), ...(fromFile?.amplitudeIds ?? [])],
  });
}

async function forget(flags: ForgetFlags): Promise<void> {
  const store = await openStateStore(loadStoreConfig());
  await withTemporalClient(async (client, config) => {
    const input = {
      ...(flags.deleteInBraze && { deleteInBraze: true }),
      ...(flags.deleteInAmplitude && { deleteInAmplitude: true }),
      ...(flags.requester && { requester: flags.requester }),
    };
    const handle = await startForgetUsers(client, store, identitiesOf(flags), input, { taskQueue: config.taskQueue }).finally(() =>
      store.close(),
    );
    console.log(`Started ${handle.workflowId}`);
    const report = await watchingForWorker(client, config.taskQueue, handle.result());
    if (!report.done) return console.log('This erasure was done before: nothing more to do.');
    const { userIds, deviceIds, amplitudeIds } = report.ids;
    console.log(
      `Erased ${userIds} user ids, ${deviceIds} device ids and ${amplitudeIds} Amplitude ids (the ids seen with those given included).`,
    );
    console.log(`Store: ${describeRemoved(report.removed)}; ${report.suppressed} ids suppressed. ${report.freedSpace}.`);
    if (report.braze) console.log(`Braze: ${report.braze.deleted} profiles deleted in ${report.braze.requests} requests.`);
    if (report.amplitude)
      console.log(
        `Amplitude: ${report.amplitude.requests} deletion requests, scheduled for ${report.amplitude.scheduledDays.join(', ') || '-'}.`,
      );
  });
}

async function liftSuppression(flags: ForgetFlags): Promise<void> {
  const identities = identitiesOf(flags);
  const key = suppressionKeyOf(loadAmplitudeConfig());
  const hashes = [
    ...identities.userIds.map((id) => key.hashId('user_id', id)),
    ...identities.deviceIds.map((id) => key.hashId('device_id', id)),
    ...identities.amplitudeIds.map((id) => key.hashId('amplitude_id', id)),
  ];
  const store = await openStateStore(loadStoreConfig());
  try {
    const lifted = await store.liftSuppressions(hashes, {
      erasureKey: `undo:${randomUUID()}`,
      source: 'ampbraze forget --undo',
      atMs: Date.now(),
    });
    console.log(`Lifted ${lifted} of ${hashes.length} suppressions (recorded). What was erased stays erased.`);
  } finally {
    await store.close();
  }
}

function describeRemoved(removed: Record<string, number>): string {
  const rows = Object.entries(removed).filter(([, n]) => n > 0);
  return rows.length === 0 ? 'nothing held' : rows.map(([table, n]) => `${n} in ${table}`).join(', ');
}

function printForgottenJobs(result: ForgottenJobs): void {
  console.log(
    `${result.jobs} deletion jobs, ${result.amplitudeIds} Amplitude ids: ${result.forgotten} forgotten now, ${result.alreadyForgotten} before.`,
  );
  if (result.forgotten > 0) console.log(`Store: ${describeRemoved(result.removed)}. ${result.freedSpace ?? ''}`);
  if (result.brazeDeleted > 0) console.log(`Braze: ${result.brazeDeleted} profiles deleted.`);
}
