/**
 * Streaming parser for the Behavioral Cohorts API's CSV download. One row is in memory at a time, so a
 * 2M-member cohort costs no more than a small one.
 */
import type { Readable } from 'node:stream';
import { parse } from 'csv-parse';

export interface CohortMember {
  amplitudeId: string;
  /** Null for anonymous members (empty `user_id`). */
  userId: string | null;
  /** The `props=1` property columns, by header name. */
  properties: Record<string, string>;
}

interface ColumnLayout {
  amplitudeId: number;
  userId: number | undefined;
  properties: Array<[name: string, index: number]>;
}

const AMPLITUDE_ID = 'amplitude_id';
const USER_ID = 'user_id';

/** Group cohorts prefix values (and possibly headers) with a tab. */
function stripTab(value: string): string {
  return value.startsWith('\t') ? value.slice(1) : value;
}

/** Maps header names to column indexes; a repeated header (seen with `props=1`) keeps its first column. */
function readHeader(header: string[]): ColumnLayout {
  const firstIndex = new Map<string, number>();
  header.forEach((name, index) => {
    const column = stripTab(name);
    if (!firstIndex.has(column)) firstIndex.set(column, index);
  });
  const amplitudeId = firstIndex.get(AMPLITUDE_ID);
  if (amplitudeId === undefined) throw new Error(`cohort CSV header has no ${AMPLITUDE_ID} column`);
  return {
    amplitudeId,
    userId: firstIndex.get(USER_ID),
    properties: [...firstIndex].filter(([name]) => name !== AMPLITUDE_ID && name !== USER_ID),
  };
}

function toMember(record: string[], layout: ColumnLayout, line: number): CohortMember {
  const amplitudeId = stripTab(record[layout.amplitudeId] ?? '');
  if (!amplitudeId) throw new Error(`cohort CSV line ${line} has an empty ${AMPLITUDE_ID}`);
  const userId = layout.userId === undefined ? '' : stripTab(record[layout.userId] ?? '');
  const properties: Record<string, string> = {};
  for (const [name, index] of layout.properties) properties[name] = stripTab(record[index] ?? '');
  return { amplitudeId, userId: userId || null, properties };
}

/** Yields the members of a (decoded) cohort CSV stream. Ending the iteration early releases the input. */
export async function* parseCohortMembers(input: Readable): AsyncGenerator<CohortMember> {
  const parser = parse({ bom: true, skip_empty_lines: true });
  input.on('error', (error) => parser.destroy(error));
  input.pipe(parser);
  try {
    let layout: ColumnLayout | undefined;
    for await (const record of parser as AsyncIterable<string[]>) {
      if (layout === undefined) layout = readHeader(record);
      else yield toMember(record, layout, parser.info.lines);
    }
  } finally {
    input.destroy();
  }
}
