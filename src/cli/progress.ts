/** Live progress of a sync on a terminal, fed by the workflow's `progress` query. */
import type { CohortSyncProgress, CohortSyncResult } from '../../workflows/cohort-sync.js';
import type { EventSyncProgress, EventSyncResult } from '../../workflows/event-sync.js';
import type { TraitSyncProgress, TraitSyncResult } from '../../workflows/trait-sync.js';

/** Polls the `progress` query into a progress bar (a line per phase when not on a terminal) until the run ends. */
export async function followProgress<P, R>(
  query: () => Promise<P>,
  describe: (progress: P) => string,
  result: () => Promise<R>,
): Promise<R> {
  const interactive = process.stdout.isTTY;
  let lastLine = '';
  // At most one query at a time, and none left when the caller closes the connection: the SDK would retry a
  // query still in flight on the closed channel, and that throws outside any promise.
  let polling: Promise<void> | undefined;
  const timer = setInterval(() => {
    if (polling) return;
    polling = query()
      .then((progress) => {
        const line = describe(progress);
        if (line === lastLine) return;
        if (interactive) process.stdout.write(`\r${line.padEnd(lastLine.length)}`);
        else if (line.split(' ')[0] !== lastLine.split(' ')[0]) console.log(line);
        lastLine = line;
      })
      .catch(() => undefined) // the query races the run's start and end; the next tick tries again
      .finally(() => (polling = undefined));
  }, 500);
  try {
    return await result();
  } finally {
    clearInterval(timer);
    await polling;
    if (interactive && lastLine) process.stdout.write('\n');
  }
}

export function describeProgress(progress: CohortSyncProgress): string {
  const { totals } = progress;
  return progressLine(progress, `+${totals.added} −${totals.removed} · ${totals.failed} failed · ${totals.dataPoints} data points`);
}

export function describeEventProgress(progress: EventSyncProgress): string {
  const { totals } = progress;
  return progressLine(
    progress,
    `hour ${progress.hour} · ${totals.forwarded} forwarded · ${totals.failed} failed · ${totals.dataPoints} data points`,
  );
}

function progressLine(progress: { phase: string; page: number; pagesTotal: number; pausedReason?: string }, counts: string): string {
  if (progress.phase !== 'applying' && progress.phase !== 'paused') return `${progress.phase} … ${counts}`;
  const width = 24;
  const done = progress.pagesTotal === 0 ? width : Math.round((progress.page / progress.pagesTotal) * width);
  const bar = `[${'#'.repeat(done)}${'-'.repeat(width - done)}]`;
  const paused = progress.pausedReason ? ` · PAUSED: ${progress.pausedReason}` : '';
  return `${progress.phase} ${bar} page ${progress.page}/${progress.pagesTotal} · ${counts}${paused}`;
}

export function printResult(result: CohortSyncResult): void {
  if (result.unchanged) {
    console.log(`Cohort "${result.cohortName}" is unchanged since the last run: nothing downloaded, nothing sent.`);
    return;
  }
  const plan = result.plan
    ? ` (plan: ${result.plan.enter} enter, ${result.plan.leave} leave, ${result.plan.predictedDataPoints} data points)`
    : '';
  console.log(
    `${result.dryRun ? 'Dry run' : 'Done'}: ${result.added} added, ${result.removed} removed, ${result.skipped} skipped, ${result.failed} failed${plan}`,
  );
  console.log(
    `Braze requests: ${result.brazeRequests} · data points: ${result.dataPoints} · Amplitude downloads: ${result.amplitudeDownloads}`,
  );
  for (const [reason, count] of Object.entries({ ...result.skipReasons, ...result.failureReasons })) console.log(`  ${count} × ${reason}`);
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
    `Braze requests: ${result.brazeRequests} · data points: ${result.dataPoints}${result.unconfirmed ? ` · ${result.unconfirmed} unconfirmed (never resent)` : ''}`,
  );
  for (const [reason, count] of Object.entries({ ...result.skipReasons, ...result.failureReasons, ...result.droppedProperties }))
    console.log(`  ${count} × ${reason}`);
}

export function describeTraitProgress(progress: TraitSyncProgress): string {
  const { totals } = progress;
  return progressLine(progress, `${totals.written} users written · ${totals.failed} failed · ${totals.dataPoints} data points`);
}

export function printTraitResult(result: TraitSyncResult): void {
  if (result.runInProgress) {
    console.log(`Run ${result.runInProgress} of ${result.syncId} is in progress; this run did nothing.`);
    return;
  }
  if (result.audienceUnchanged) {
    console.log(
      `Unchanged, ${result.syncId}: the audience cohort has not been recomputed since the last success; nothing downloaded or sent.`,
    );
    return;
  }
  const values = `${result.set} values ${result.dryRun ? 'to set' : 'set'}, ${result.unset} ${result.dryRun ? 'to unset' : 'unset'}`;
  console.log(
    `${result.dryRun ? 'Dry run' : 'Done'}, ${result.syncId}: ${result.users} users in the window (${result.created} new, ${result.updated} updated, ${result.unchanged} unchanged); ${values}, ${result.skipped} skipped, ${result.failed} failed`,
  );
  console.log(
    `Braze requests: ${result.brazeRequests} · data points: ${result.dataPoints}${result.dryRun ? ` (predicted: ${result.set + result.unset})` : ''}${result.amplitudeDownloads > 0 ? ` · cohort downloads: ${result.amplitudeDownloads}` : ''}`,
  );
  if (result.profiles) {
    const { audience, fetched, fetchedWithin24h } = result.profiles;
    console.log(
      `User Profile API requests: ${result.profileApiRequests} · profiles fetched: ${fetched} of ${audience} users, ${fetchedWithin24h} within 24 h`,
    );
  }
  for (const [reason, count] of Object.entries({ ...result.skipReasons, ...result.failureReasons })) console.log(`  ${count} × ${reason}`);
}
