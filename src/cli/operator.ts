/** `ampbraze syncs` and `ampbraze usage`: the operator's view of every sync, and of what they spend. */
import { writeFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { durationMs, loadUsageQuotas } from '../config.js';
import { gatherSyncsReport, syncsText, DEFAULT_THRESHOLDS } from '../operator/syncs.js';
import { usagePage } from '../operator/usage-page.js';
import { usageReport, usageText } from '../operator/usage.js';
import { withStateStore } from './dead-letters.js';
import { reportAndExit } from './output.js';
import { withTemporalClient } from './temporal-client.js';

export function registerOperatorCommands(program: Command): void {
  program
    .command('syncs')
    .description(
      'every sync and schedule: last run and who started it, last success, next run, data points, failures; the receivers’ backlogs. Exits 1 when something is unhealthy',
    )
    .option('--json', 'the report as JSON')
    .option('--max-backlog <n>', 'a stream with more items waiting is unhealthy', String(DEFAULT_THRESHOLDS.maxBacklog))
    .option(
      '--max-backlog-age <duration>',
      'a stream whose oldest item waits longer is unhealthy',
      `${DEFAULT_THRESHOLDS.maxBacklogAgeSeconds / 60}m`,
    )
    .action((flags: { json?: boolean; maxBacklog: string; maxBacklogAge: string }) =>
      withStateStore((store) =>
        withTemporalClient(async (client, config) => {
          const maxBacklogAgeMs = durationMs(flags.maxBacklogAge);
          if (!/^\d+$/.test(flags.maxBacklog) || maxBacklogAgeMs === undefined) {
            throw new Error('--max-backlog takes a whole number and --max-backlog-age a duration such as 15m');
          }
          const report = await gatherSyncsReport(client, store, {
            taskQueue: config.taskQueue,
            thresholds: { maxBacklog: Number(flags.maxBacklog), maxBacklogAgeSeconds: maxBacklogAgeMs / 1000 },
          });
          console.log(flags.json ? JSON.stringify(report, null, 2) : syncsText(report));
          process.exitCode = report.healthy ? 0 : 1;
        }),
      ).catch(reportAndExit),
    );

  program
    .command('usage')
    .description('data points per day per sync, cohort downloads against the quota, User Profile API use, 429s')
    .option('--days <n>', 'how many days, today included', '30')
    .option('--html <file>', 'also write the report as an HTML page with charts')
    .option('--json', 'the report as JSON')
    .action((flags: { days: string; html?: string; json?: boolean }) =>
      withStateStore(async (store) => {
        const days = Number(flags.days);
        if (!Number.isInteger(days) || days < 1 || days > 400) throw new Error('--days takes a whole number from 1 to 400');
        const report = await usageReport(store, loadUsageQuotas(), { days });
        console.log(flags.json ? JSON.stringify(report, null, 2) : usageText(report));
        if (flags.html) {
          await writeFile(flags.html, usagePage(report));
          if (!flags.json) console.log(`\nCharts written to ${flags.html}`);
        }
      }).catch(reportAndExit),
    );
}
