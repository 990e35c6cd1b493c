/**
 * The Export API, `GET /api/2/export`: a zip of gzipped JSON-lines files, several per hour for big hours. It is
 * streamed: lines are generated as the client reads, gzipped chunk by chunk, so a million-event hour is never held.
 */
import { pipeline, Readable } from 'node:stream';
import { createGzip } from 'node:zlib';
import { Zip, ZipPassThrough } from 'fflate';
import type { ExportLine } from '../dataset.js';
import { pipeToResponse, sendText, throttle } from '../http-util.js';
import type { Exchange, SandboxContext } from './context.js';

const HOUR_MS = 60 * 60 * 1000;
const MAX_RANGE_HOURS = 365 * 24;
/** A generous per-event size, so the estimate errs towards "too large". */
const ESTIMATED_EVENT_BYTES = 1_000;
const TEXT_CHUNK_CHARS = 64 * 1024;
/** Fast compression in large steps: the sandbox must not be what limits a benchmark reading big hours. */
const GZIP_OPTIONS = { level: 1, chunkSize: 64 * 1024 };
const HOUR_PARAMETER = /^(\d{4})(\d{2})(\d{2})T(\d{2})$/;
/** Amplitude's description of its 504. */
const TIMEOUT_MESSAGE =
  'The amount of data is large causing a timeout. For large amounts of data, the Amazon S3 destination is recommended.';

/** Epoch ms of a `YYYYMMDDTHH` (UTC) hour, or undefined. */
export function parseHour(value: string | null): number | undefined {
  const match = value === null ? null : HOUR_PARAMETER.exec(value);
  if (!match) return undefined;
  const [year, month, day, hour] = match.slice(1).map(Number) as [number, number, number, number];
  const ms = Date.UTC(year, month - 1, day, hour);
  const date = new Date(ms);
  const roundTrips = date.getUTCMonth() === month - 1 && date.getUTCDate() === day && date.getUTCHours() === hour;
  return roundTrips ? ms : undefined;
}

/** An hour's lines in upload-time order: the dataset's, and those ingested through HTTP V2 / Batch. */
export function* exportLinesInHour(context: SandboxContext, hourStart: number): Generator<ExportLine> {
  const ingested = context.ingestion.exportLinesInHour(hourStart);
  let next = 0;
  for (const line of context.dataset.eventsInHour(hourStart)) {
    while (next < ingested.length && (ingested[next] as ExportLine).server_upload_time < line.server_upload_time)
      yield ingested[next++] as ExportLine;
    yield line;
  }
  yield* ingested.slice(next);
}

export function countExportLinesInHour(context: SandboxContext, hourStart: number): number {
  return context.dataset.countEventsInHour(hourStart) + context.ingestion.exportLinesInHour(hourStart).length;
}

/** Amplitude's file naming: `<app>/<app>_<YYYY-MM-DD>_<H>#<part>.json.gz`. */
function partFileName(appId: number, hourStart: number, part: number): string {
  const date = new Date(hourStart);
  return `${appId}/${appId}_${date.toISOString().slice(0, 10)}_${date.getUTCHours()}#${part}.json.gz`;
}

/** fflate's streaming zip, its output collected for the generator to hand on. */
class ZipWriter {
  private readonly output: Uint8Array[] = [];
  private failure: Error | undefined;
  private readonly zip = new Zip((error, chunk) => {
    if (error) this.failure = error;
    else this.output.push(chunk);
  });

  addFile(name: string, mtime: number): ZipPassThrough {
    const file = new ZipPassThrough(name);
    file.mtime = mtime;
    this.zip.add(file);
    return file;
  }

  end(): void {
    this.zip.end();
  }

  drain(): Uint8Array[] {
    if (this.failure) throw this.failure;
    return this.output.splice(0);
  }
}

/** An hour's lines, taken a part at a time. */
class HourLines {
  private next: IteratorResult<ExportLine>;

  constructor(private readonly lines: Iterator<ExportLine>) {
    this.next = lines.next();
  }

  get exhausted(): boolean {
    return this.next.done === true;
  }

  /** Up to `maxLines` more lines as JSON-lines text, in chunks of about 64 KiB. */
  *text(maxLines: number): Generator<string> {
    let chunk = '';
    for (let taken = 0; taken < maxLines && !this.next.done; taken++) {
      chunk += `${JSON.stringify(this.next.value)}\n`;
      this.next = this.lines.next();
      if (chunk.length >= TEXT_CHUNK_CHARS) {
        yield chunk;
        chunk = '';
      }
    }
    if (chunk !== '') yield chunk;
  }
}

/** Node's zlib compresses off the main thread, in step with the generation feeding it. */
function gzipped(text: Iterable<string>): Readable {
  return pipeline(Readable.from(text), createGzip(GZIP_OPTIONS), () => {
    // Errors reach the reader of the returned stream.
  });
}

async function* zipChunks(context: SandboxContext, hours: readonly number[]): AsyncGenerator<Uint8Array> {
  const zip = new ZipWriter();
  const { appId } = context.dataset;
  for (const hourStart of hours) {
    const lines = new HourLines(exportLinesInHour(context, hourStart));
    for (let part = 0; !lines.exhausted; part++) {
      const file = zip.addFile(partFileName(appId, hourStart, part), hourStart);
      for await (const compressed of gzipped(lines.text(context.options.exportEventsPerFile))) {
        file.push(compressed as Buffer);
        yield* zip.drain();
      }
      file.push(new Uint8Array(0), true);
      yield* zip.drain();
    }
  }
  zip.end();
  yield* zip.drain();
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
  if (context.exportTimeouts.take()) return sendText(res, 504, TIMEOUT_MESSAGE);
  const hours = Array.from({ length: hourCount }, (_, offset) => start + offset * HOUR_MS);
  const firstHourWithData = hours.findIndex((hourStart) => countExportLinesInHour(context, hourStart) > 0);
  if (firstHourWithData === -1) return sendText(res, 404, 'No data for the requested time range');
  res.writeHead(200, {
    'content-type': 'application/zip',
    'content-disposition': `attachment; filename="export_${url.searchParams.get('start')}_${url.searchParams.get('end')}.zip"`,
  });
  const { fileBytesPerSecond } = context.options;
  await pipeToResponse(
    res,
    Readable.from(zipChunks(context, hours.slice(firstHourWithData))),
    ...(Number.isFinite(fileBytesPerSecond) ? [throttle(fileBytesPerSecond)] : []),
  );
}
