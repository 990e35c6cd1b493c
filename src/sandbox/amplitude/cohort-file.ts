/**
 * The cohort CSV, generated row by row from the export's membership snapshot and streamed with backpressure,
 * so a 2M-member file never exists in memory.
 */
import type { ServerResponse } from 'node:http';
import { Readable } from 'node:stream';
import { createGzip } from 'node:zlib';
import type { Dataset } from '../dataset.js';
import { pipeToResponse, throttle } from '../http-util.js';
import type { CohortExport } from './cohort-exports.js';
import type { ResolvedOptions } from './options.js';
import type { ProfileStore } from './profiles.js';

export type CsvStyle = Pick<ResolvedOptions, 'tabPrefixValues' | 'duplicateAmplitudeIdHeader'>;

const CHUNK_BYTES = 64 * 1024;
const BASE_ROW_BYTES = 32;
const PROPERTY_COLUMN_BYTES = 16;

const quote = (value: string) => `"${value.replaceAll('"', '""')}"`;

function cellText(value: unknown): string {
  if (value === undefined || value === null) return '';
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  return JSON.stringify(value);
}

/** Member count × a typical row: close enough to decide between inline and a pre-signed link. */
export function estimateCohortFileBytes(job: CohortExport): number {
  return job.membership.size * (BASE_ROW_BYTES + PROPERTY_COLUMN_BYTES * job.propertyColumns.length);
}

/** The CSV text in chunks of about 64 KiB. */
export function* cohortCsvChunks(job: CohortExport, dataset: Dataset, profiles: ProfileStore, style: CsvStyle): Generator<string> {
  const valuePrefix = style.tabPrefixValues ? '\t' : '';
  const cell = (value: unknown) => quote(valuePrefix + cellText(value));
  const idColumns = style.duplicateAmplitudeIdHeader ? ['amplitude_id', 'user_id', 'amplitude_id'] : ['amplitude_id', 'user_id'];
  let chunk = `${[...idColumns, ...job.propertyColumns].map(quote).join(',')}\n`;
  for (const index of job.membership.indexes()) {
    const member = dataset.identity(index);
    const ids = style.duplicateAmplitudeIdHeader
      ? [member.amplitudeId, member.userId, member.amplitudeId]
      : [member.amplitudeId, member.userId];
    const properties = job.propertyColumns.length > 0 ? profiles.propertiesAt(index) : {};
    const row = [...ids.map(cell), ...job.propertyColumns.map((column) => cell(properties[column]))];
    chunk += `${row.join(',')}\n`;
    if (chunk.length >= CHUNK_BYTES) {
      yield chunk;
      chunk = '';
    }
  }
  yield chunk;
}

export interface FileDelivery {
  gzip: boolean;
  bytesPerSecond: number;
}

export async function streamCohortFile(
  res: ServerResponse,
  chunks: Iterable<string>,
  delivery: FileDelivery,
  filename: string,
): Promise<void> {
  res.writeHead(200, {
    'content-type': 'text/csv; charset=utf-8',
    'content-disposition': `attachment; filename="${filename}"`,
    ...(delivery.gzip ? { 'content-encoding': 'gzip' } : {}),
  });
  const source = Readable.from(chunks);
  const transforms = [
    ...(delivery.gzip ? [createGzip()] : []),
    ...(Number.isFinite(delivery.bytesPerSecond) ? [throttle(delivery.bytesPerSecond)] : []),
  ];
  await pipeToResponse(res, source, ...transforms);
}
