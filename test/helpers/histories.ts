/**
 * The recorded workflow histories (`npm run record:histories`) that test/replay.test.ts replays: Temporal's
 * JSON history format, one file per workflow run, older recordings kept in sub-folders.
 */
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { SANDBOX_CREDENTIALS } from '../../src/sandbox/sandboxes.js';
import { PROJECT_ROOT } from '../../src/temporal/cli.js';

export const HISTORIES_DIR = join(PROJECT_ROOT, 'test', 'histories');

export interface RecordedHistory {
  /** Relative to the histories folder. */
  file: string;
  json: string;
}

export async function readHistories(dir = HISTORIES_DIR): Promise<RecordedHistory[]> {
  const files = (await readdir(dir, { recursive: true })).filter((file) => file.endsWith('.json')).sort();
  return Promise.all(files.map(async (file) => ({ file, json: await readFile(join(dir, file), 'utf8') })));
}

interface JsonHistory {
  events?: { workflowExecutionStartedEventAttributes?: { workflowType?: { name?: string } } }[];
}

export function workflowTypeOf(json: string): string | undefined {
  return (JSON.parse(json) as JsonHistory).events?.[0]?.workflowExecutionStartedEventAttributes?.workflowType?.name;
}

/** The sandbox's API keys, by name: none may ever appear in a history (keys stay with the workers). */
export const SANDBOX_KEYS: Record<string, string> = Object.fromEntries(
  Object.entries(SANDBOX_CREDENTIALS).filter(([name]) => name.endsWith('Key')),
);

/** The names of the `needles` a history holds, in plain text or inside a payload (base64 JSON). */
export function foundIn(json: string, needles: Record<string, string>): string[] {
  const texts = [...stringsIn(JSON.parse(json))].flatMap((text) => [text, Buffer.from(text, 'base64').toString('utf8')]);
  return Object.entries(needles)
    .filter(([, needle]) => texts.some((text) => text.includes(needle)))
    .map(([name]) => name);
}

function* stringsIn(value: unknown): Generator<string> {
  if (typeof value === 'string') yield value;
  else if (value && typeof value === 'object') for (const item of Object.values(value)) yield* stringsIn(item);
}
