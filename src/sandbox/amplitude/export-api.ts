/** The Export API, `GET /api/2/export`: a zip of hourly gzipped JSON-lines files, streamed hour by hour. */
import { Readable } from 'node:stream';
import { Zip, ZipPassThrough, gzipSync, strToU8 } from 'fflate';
import type { Dataset } from '../dataset.js';
import { pipeToResponse, sendText } from '../http-util.js';
import type { Exchange } from './context.js';

const HOUR_MS = 60 * 60 * 1000;
const MAX_RANGE_HOURS = 365 * 24;
/** A generous per-event size, so the estimate errs towards "too large". */
const ESTIMATED_EVENT_BYTES = 600;
const HOUR_PARAMETER = /^(\d{4})(\d{2})(\d{2})T(\d{2})$/;

function parseHour(value: string | null): number | undefined {
  const match = value === null ? null : HOUR_PARAMETER.exec(value);
  if (!match) return undefined;
  const [year, month, day, hour] = match.slice(1).map(Number) as [number, number, number, number];
  const ms = Date.UTC(year, month - 1, day, hour);
  const date = new Date(ms);
  const roundTrips = date.getUTCMonth() === month - 1 && date.getUTCDate() === day && date.getUTCHours() === hour;
  return roundTrips ? ms : undefined;
}

/** Amplitude's file naming: `<app>/<app>_<YYYY-MM-DD>_<H>#0.json.gz`. */
function hourFileName(appId: number, hourStart: number): string {
  const date = new Date(hourStart);
  return `${appId}/${appId}_${date.toISOString().slice(0, 10)}_${date.getUTCHours()}#0.json.gz`;
}

function* zipChunks(dataset: Dataset, hours: readonly number[]): Generator<Uint8Array> {
  const pending: Uint8Array[] = [];
  let failure: Error | undefined;
  const zip = new Zip((error, chunk) => {
    if (error) failure = error;
    else pending.push(chunk);
  });
  const flush = () => {
    if (failure) throw failure;
    return pending.splice(0);
  };
  for (const hourStart of hours) {
    const lines = [...dataset.eventsInHour(hourStart)].map((event) => `${JSON.stringify(event)}\n`).join('');
    if (lines === '') continue;
    const file = new ZipPassThrough(hourFileName(dataset.appId, hourStart));
    file.mtime = hourStart;
    zip.add(file);
    file.push(gzipSync(strToU8(lines)), true);
    yield* flush();
  }
  zip.end();
  yield* flush();
}

export async function exportEvents({ res, url, context }: Exchange): Promise<void> {
  const start = parseHour(url.searchParams.get('start'));
  const end = parseHour(url.searchParams.get('end'));
  if (start === undefined || end === undefined) return sendText(res, 400, 'start and end must be YYYYMMDDTHH (UTC)');
  if (end < start) return sendText(res, 400, 'end must not be before start');
  const hourCount = (end - start) / HOUR_MS + 1;
  if (hourCount > MAX_RANGE_HOURS) return sendText(res, 400, 'The time range cannot exceed 365 days');
  if (hourCount * context.dataset.maxEventsPerHour * ESTIMATED_EVENT_BYTES > context.options.exportMaxBytes) {
    return sendText(res, 400, `Raw data export exceeds the size limit of ${context.options.exportMaxBytes} bytes; request a shorter range`);
  }
  const hours = Array.from({ length: hourCount }, (_, offset) => start + offset * HOUR_MS);
  const firstHourWithData = hours.findIndex((hourStart) => !context.dataset.eventsInHour(hourStart).next().done);
  if (firstHourWithData === -1) return sendText(res, 404, 'No data for the requested time range');
  res.writeHead(200, {
    'content-type': 'application/zip',
    'content-disposition': `attachment; filename="export_${url.searchParams.get('start')}_${url.searchParams.get('end')}.zip"`,
  });
  await pipeToResponse(res, Readable.from(zipChunks(context.dataset, hours.slice(firstHourWithData))));
}
