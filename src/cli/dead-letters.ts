/** `ampbraze deadletters list|replay|discard`: what the receiver's streams could not process, and what to do with it. */
import { existsSync } from 'node:fs';
import type { Command } from 'commander';
import { loadStoreConfig } from '../config.js';
import { jsonText } from '../ingress/bounds.js';
import { deadLetters, discardDeadLetters, replayDeadLetters, type DeadLetterFilter } from '../ingress/dead-letters.js';
import { openStateStore, type StateStore } from '../store/index.js';
import { reportAndExit } from './output.js';
import { withTemporalClient } from './temporal-client.js';

/** A dead letter's content, as far as a line shows it. */
const PREVIEW_CHARS = 160;

interface FilterFlags {
  stream?: string;
  key?: string[];
  reason?: string;
  limit?: string;
}

/** The line a status command prints for a stream that keeps dead letters. */
export function deadLettersLine(count: number, stream: string): string {
  return `${count} dead letter${count === 1 ? '' : 's'}: \`ampbraze deadletters list --stream ${stream}\` shows them, \`… replay\` sends them again once fixed`;
}

export function registerDeadLetterCommands(program: Command): void {
  const command = program
    .command('deadletters')
    .description('items the receiver’s streams could not process (refused at the door, or by a vendor), kept with the reason');
  const withFilters = (sub: Command, defaultLimit?: string) =>
    sub
      .option('--stream <name>', 'one stream: currents, or cohort-webhook:cohort-sync-<cohortId>[-partner|-attribute-<name>]')
      .option('--key <key...>', 'only these dead letters (keys as listed)')
      .option('--reason <text>', 'only those whose reason contains this text')
      .option('--limit <n>', 'at most this many', defaultLimit);

  withFilters(command.command('list').description('oldest first: when, stream, key, reason and the start of the content'), '50')
    .option('--json', 'one JSON object per line, content included')
    .action((flags: FilterFlags & { json?: boolean }) =>
      withStateStore(async (store) => {
        let listed = 0;
        for await (const letter of deadLetters(store, filterOf(flags))) {
          listed++;
          if (flags.json) console.log(jsonText(letter));
          else {
            const content = jsonText(letter.body);
            const preview = content.length > PREVIEW_CHARS ? `${content.slice(0, PREVIEW_CHARS)}…` : content;
            console.log(`${new Date(letter.atMs).toISOString()}  ${letter.stream}  ${letter.dedupeKey}\n  ${letter.reason}\n  ${preview}`);
          }
        }
        if (!flags.json) console.log(listed === 0 ? 'No dead letters.' : `${listed} listed.`);
      }).catch(reportAndExit),
    );

  withFilters(
    command.command('replay').description('send them through their stream again (the door checks them again); wakes its workflow'),
  ).action((flags: FilterFlags) =>
    withStateStore((store) =>
      withTemporalClient(async (client, config) => {
        const report = await replayDeadLetters(store, filterOf(flags), { client, taskQueue: config.taskQueue });
        console.log(`${report.replayed} replayed${report.woken.length > 0 ? `; woke ${report.woken.join(', ')}` : ''}`);
        for (const refused of report.stillRefused) console.log(`still refused: ${refused.stream} ${refused.dedupeKey}: ${refused.reason}`);
      }),
    ).catch(reportAndExit),
  );

  withFilters(command.command('discard').description('delete them for good (name a stream, keys or a reason, or --all)'))
    .option('--all', 'every dead letter of every stream')
    .action((flags: FilterFlags & { all?: boolean }) =>
      withStateStore(async (store) => {
        const filter = filterOf(flags);
        if (!flags.all && !filter.stream && !filter.keys && !filter.reasonContains) {
          throw new Error('name what to discard: --stream, --key or --reason (or --all)');
        }
        console.log(`${await discardDeadLetters(store, filter)} discarded`);
      }).catch(reportAndExit),
    );
}

function filterOf(flags: FilterFlags): DeadLetterFilter {
  const limit = flags.limit === undefined ? undefined : Number(flags.limit);
  if (limit !== undefined && !(Number.isInteger(limit) && limit >= 1)) throw new Error('--limit must be a whole number ≥ 1');
  return {
    ...(flags.stream && { stream: flags.stream }),
    ...(flags.key && { keys: flags.key }),
    ...(flags.reason && { reasonContains: flags.reason }),
    ...(limit !== undefined && { limit }),
  };
}

/** The workers' state store (STATE_DB or STATE_STORE_URL, as they have it); never a new, empty one. */
/** Opens the store the workers use (STATE_DB or STATE_STORE_URL), refusing to create an empty one by mistake. */
export async function withStateStore<T>(body: (store: StateStore) => Promise<T>): Promise<T> {
  const config = loadStoreConfig();
  if (config.kind === 'sqlite' && config.path !== ':memory:' && !existsSync(config.path)) {
    throw new Error(`no state store at ${config.path}: set STATE_DB (or STATE_STORE_URL) as the workers have it`);
  }
  const store = await openStateStore(config);
  try {
    return await body(store);
  } finally {
    await store.close();
  }
}
