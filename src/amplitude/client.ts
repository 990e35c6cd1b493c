/**
 * Amplitude client: cohort list and the async export (request → poll → file, inline or via a short-lived
 * pre-signed link, optionally gzipped), the User Profile API, the Export API (a zip of gzipped JSON lines,
 * streamed), HTTP V2 / Batch ingestion with event-index errors mapped back to the exact events, and the User
 * Privacy API's deletion requests and jobs.
 */
import type { Readable } from 'node:stream';
import { NonRetryableVendorError, RateLimitedError, RetryableVendorError, type PartialResult } from '../errors.js';
import { redirectProblem, vendorUrl, VendorHttp, type VendorAnswerHook } from '../http.js';
import { parseCohortMembers, type CohortMember } from './cohort-csv.js';
import { exportArchiveLines } from './export-archive.js';
import { gunzipIfCompressed } from './gzip.js';
import type { JsonObject } from '../store/store.js';
import {
  cohortExportRequestSchema,
  cohortExportStatusSchema,
  cohortListSchema,
  deletionJobListSchema,
  deletionJobSchema,
  exportedEventSchema,
  ingestBadRequestSchema,
  ingestSuccessSchema,
  ingestThrottledSchema,
  profileErrorSchema,
  UNKNOWN_USER_MESSAGE,
  userActivitySchema,
  userProfileSchema,
  type AmplitudeCohort,
  type AmplitudeEvent,
  type AmplitudeUserProfile,
  type DeletionJob,
  type ExportedEvent,
  type IngestBadRequest,
  type IngestThrottled,
  type RawDeletionJob,
} from './schemas.js';

export interface AmplitudeClientConfig {
  apiKey: string;
  secretKey: string;
  /** Cohorts, Dashboard REST and Export APIs. */
  apiUrl: string;
  profileApiUrl: string;
  ingestUrl: string;
  requestTimeoutMs?: number;
  /** The longest wait Amplitude's answers may impose (`Retry-After`). */
  maxWaitMs?: number;
  /** Told of every request's answer (see `VendorHttpConfig.onAnswer`). */
  onAnswer?: VendorAnswerHook;
}

export interface ProfileOptions {
  ampProps?: boolean;
  propensities?: boolean;
  computations?: boolean;
  compIds?: string[];
  recommendations?: boolean;
  recIds?: string[];
  cohortIds?: boolean;
}

export type IngestApi = 'httpapi' | 'batch';

export interface IngestResult extends PartialResult<AmplitudeEvent> {
  /** Events of the users and devices Amplitude throttled: not ingested; send them again after the wait. */
  throttled: Array<{ object: AmplitudeEvent; index: number }>;
  retryThrottledAfterMs: number;
}

interface IndexedEvent {
  event: AmplitudeEvent;
  /** Its position in the events the caller gave. */
  index: number;
}

/** HTTP V2 averages a device's or user's event rate over 30 s: a throttled id waits that long without a Retry-After. */
const THROTTLE_WINDOW_MS = 30_000;

/** Export jobs and zipped event exports can be slow to start answering. */
const SLOW_REQUEST_TIMEOUT_MS = 180_000;

/** Amplitude deletes at most this many users (amplitude_ids and user_ids together) per request. */
const DELETION_IDS_PER_REQUEST = 100;
/** The longest range of days Amplitude lists deletion jobs for. */
const DELETION_RANGE_MONTHS = 6;

export class AmplitudeClient {
  private readonly http: VendorHttp;
  private readonly basicCredentials: string;

  constructor(private readonly config: AmplitudeClientConfig) {
    this.basicCredentials = Buffer.from(`${config.apiKey}:${config.secretKey}`).toString('base64');
    this.http = new VendorHttp({
      vendor: 'amplitude',
      timeoutMs: config.requestTimeoutMs,
      maxWaitMs: config.maxWaitMs,
      onAnswer: config.onAnswer,
      secrets: [config.apiKey, config.secretKey, this.basicCredentials],
    });
  }

  async listCohorts(): Promise<AmplitudeCohort[]> {
    const { body } = await this.http.requestJson(
      { method: 'GET', url: this.api('/api/3/cohorts'), headers: this.basicAuth() },
      [200],
      cohortListSchema,
    );
    return body.cohorts;
  }

  /** Starts an export job (each call spends one of the monthly downloads). */
  async requestCohortExport(
    cohortId: string,
    options: { props?: boolean; propKeys?: string[] } = {},
  ): Promise<{ requestId: string; cohortId: string }> {
    const query = new URLSearchParams({ props: options.props ? '1' : '0' });
    for (const key of options.propKeys ?? []) query.append('propKeys', key);
    const { body } = await this.http.requestJson(
      {
        method: 'GET',
        url: this.api(`/api/5/cohorts/request/${encodeURIComponent(cohortId)}`, query),
        endpoint: 'GET /api/5/cohorts/request/:id',
        headers: this.basicAuth(),
      },
      [200, 202],
      cohortExportRequestSchema,
    );
    return { requestId: body.request_id, cohortId: body.cohort_id };
  }

  /** 202 while the job runs, 200 once complete: Amplitude documents no failure status, so we key off the code. */
  async getCohortExportStatus(requestId: string): Promise<'in_progress' | 'completed'> {
    const { response } = await this.http.requestJson(
      {
        method: 'GET',
        url: this.api(`/api/5/cohorts/request-status/${encodeURIComponent(requestId)}`),
        endpoint: 'GET /api/5/cohorts/request-status/:id',
        headers: this.basicAuth(),
      },
      [200, 202],
      cohortExportStatusSchema,
    );
    return response.status === 200 ? 'completed' : 'in_progress';
  }

  /**
   * The decoded CSV bytes. `/file` answers inline or with a 302 to a pre-signed link valid for about a minute;
   * an expired link is retryable, because the retry asks `/file` for a fresh one.
   */
  async openCohortFile(requestId: string): Promise<Readable> {
    const fileEndpoint = 'GET /api/5/cohorts/request/:id/file';
    let response = await this.http.send({
      method: 'GET',
      url: this.api(`/api/5/cohorts/request/${encodeURIComponent(requestId)}/file`),
      endpoint: fileEndpoint,
      headers: this.basicAuth(),
      timeoutMs: SLOW_REQUEST_TIMEOUT_MS,
    });
    if (response.status >= 300 && response.status < 400) {
      const location = response.headers.location;
      await response.body.dump();
      if (typeof location !== 'string' || !URL.canParse(location, this.config.apiUrl)) {
        throw this.http.invalidResponse(response, 'a redirect without a usable Location');
      }
      const link = new URL(location, this.config.apiUrl);
      const refused = await redirectProblem(link, this.config.apiUrl);
      if (refused) throw this.http.invalidResponse(response, `${refused} (not followed)`);
      // The pre-signed link carries its own authorization: never send our Basic credentials to it.
      response = await this.http.send({
        method: 'GET',
        url: link,
        endpoint: 'GET <pre-signed cohort file link>',
        timeoutMs: SLOW_REQUEST_TIMEOUT_MS,
      });
      if (response.status === 403) {
        await response.body.dump();
        throw new RetryableVendorError(
          { vendor: 'amplitude', endpoint: response.endpoint, status: 403 },
          'pre-signed link expired before the download started (retrying fetches a fresh one)',
        );
      }
    }
    if (response.status !== 200) throw await this.http.failure(response);
    return await gunzipIfCompressed(this.http.bodyChunks(response));
  }

  /** Cohort members streamed from the export file, one row in memory at a time. */
  async *streamCohortMembers(requestId: string): AsyncGenerator<CohortMember> {
    const file = await this.openCohortFile(requestId);
    try {
      yield* parseCohortMembers(file);
    } catch (error) {
      throw error instanceof RetryableVendorError || error instanceof NonRetryableVendorError
        ? error
        : new RetryableVendorError(
            { vendor: 'amplitude', endpoint: 'GET /api/5/cohorts/request/:id/file' },
            `cohort file could not be read (${(error as Error).message}; retryable)`,
          );
    }
  }

  /**
   * The device ids Amplitude knows for a user, from the Dashboard REST User Activity API (limited to 360
   * lookups per hour per project). Empty for a user Amplitude does not know.
   */
  async getUserDeviceIds(amplitudeId: string): Promise<string[]> {
    const query = new URLSearchParams({ user: amplitudeId, limit: '1' });
    const request = {
      method: 'GET',
      url: this.api('/api/2/useractivity', query),
      endpoint: 'GET /api/2/useractivity',
      headers: this.basicAuth(),
    } as const;
    const response = await this.http.send(request);
    if (response.status === 404) {
      await response.body.dump();
      return [];
    }
    if (response.status !== 200) throw await this.http.failure(response);
    return (await this.http.readJson(response, userActivitySchema)).userData.device_ids ?? [];
  }

  /** A user's profile, or null for a user Amplitude has not seen. */
  async getUserProfile(user: { userId: string } | { deviceId: string }, options: ProfileOptions): Promise<AmplitudeUserProfile | null> {
    const query = new URLSearchParams('userId' in user ? { user_id: user.userId } : { device_id: user.deviceId });
    const flag = (name: string, on: boolean | undefined) => on && query.set(name, 'true');
    flag('get_amp_props', options.ampProps);
    flag('get_computations', options.computations);
    flag('get_recs', options.recommendations);
    flag('get_cohort_ids', options.cohortIds);
    flag('get_propensity', options.propensities);
    if (options.compIds?.length) query.set('comp_id', options.compIds.join(','));
    if (options.recIds?.length) query.set('rec_id', options.recIds.join(','));
    const response = await this.http.send({
      method: 'GET',
      url: vendorUrl(this.config.profileApiUrl, '/v1/userprofile', query),
      endpoint: 'GET /v1/userprofile',
      headers: { authorization: `Api-Key ${this.config.secretKey}` },
    });
    const text = await this.http.readText(response);
    // The unknown-user answer's status is undocumented: recognise it by its body.
    const error = profileErrorSchema.safeParse(safeJson(text));
    if (error.success && error.data.error === UNKNOWN_USER_MESSAGE) return null;
    if (response.status !== 200) throw this.http.classify(response, text);
    const answer = safeJson(text);
    const { userData } = this.http.parse(response, userProfileSchema, answer);
    return {
      answer: (answer as { userData: JsonObject }).userData,
      userId: userData.user_id ?? null,
      deviceId: userData.device_id ?? null,
      properties: userData.amp_props ?? {},
      cohortIds: userData.cohort_ids ?? userData.cohort_memberships ?? null,
      recommendations: userData.recommendations?.map((r) => ({ recId: r.rec_id, items: r.items, isControl: r.is_control })) ?? null,
    };
  }

  /**
   * Events uploaded in [start, end] (hour resolution, UTC), streamed from the zip without holding it in memory.
   * `onDownload` hears of every chunk of the download, which comes whole before the first event.
   */
  async *exportEvents(start: Date, end: Date, options: { onDownload?: (bytes: number) => void } = {}): AsyncGenerator<ExportedEvent> {
    const query = new URLSearchParams({ start: exportHour(start), end: exportHour(end) });
    const response = await this.http.send({
      method: 'GET',
      url: this.api('/api/2/export', query),
      headers: this.basicAuth(),
      timeoutMs: SLOW_REQUEST_TIMEOUT_MS,
    });
    if (response.status === 404) {
      await response.body.dump(); // no data in the range
      return;
    }
    if (response.status !== 200) throw await this.http.failure(response);
    const chunks = this.http.bodyChunks(response);
    async function* reported() {
      for await (const chunk of chunks) {
        options.onDownload?.(chunk.length);
        yield chunk;
      }
    }
    for await (const line of exportArchiveLines(reported())) {
      yield this.http.parse(response, exportedEventSchema, safeJson(line));
    }
  }

  /**
   * Sends events to HTTP V2 or Batch. A 400's event indexes map back to the exact events, which are rejected while the
   * rest is sent again; a 429 naming throttled users, devices or events hands those events back as `throttled` (to
   * send again after `retryThrottledAfterMs`) while the rest is sent again. A 413, or a 400 about events that names
   * none, splits the events in halves down to the one at fault, which is rejected with Amplitude's answer; a 400
   * about the request itself (a wrong key) is non-retryable.
   */
  async ingestEvents(events: readonly AmplitudeEvent[], options: { api: IngestApi; minIdLength?: number }): Promise<IngestResult> {
    const result: IngestResult = { accepted: [], rejected: [], throttled: [], retryThrottledAfterMs: 0 };
    await this.#ingest(
      events.map((event, index) => ({ event, index })),
      options,
      result,
    );
    return result;
  }

  async #ingest(pending: IndexedEvent[], options: { api: IngestApi; minIdLength?: number }, result: IngestResult): Promise<void> {
    while (pending.length > 0) {
      const response = await this.http.send({
        method: 'POST',
        url: vendorUrl(this.config.ingestUrl, options.api === 'httpapi' ? '/2/httpapi' : '/batch'),
        body: JSON.stringify({
          api_key: this.config.apiKey,
          events: pending.map((p) => p.event),
          ...(options.minIdLength !== undefined && { options: { min_id_length: options.minIdLength } }),
        }),
      });
      const text = await this.http.readText(response);
      if (response.status === 200) {
        this.http.parse(response, ingestSuccessSchema, safeJson(text));
        result.accepted.push(...pending.map((p) => p.event));
        return;
      }
      const notNamed = response.status === 413 || (response.status === 400 && eventsNamedIn(text) === 0 && !isRequestLevel(text));
      if (notNamed && pending.length > 1) {
        // Amplitude refused the request for an event it did not name: halves find it (and send everyone else).
        const half = Math.ceil(pending.length / 2);
        await this.#ingest(pending.slice(0, half), options, result);
        await this.#ingest(pending.slice(half), options, result);
        return;
      }
      if (notNamed) {
        // One event Amplitude cannot take, whatever the request around it: it is refused, not retried for ever.
        const { status, vendorMessage } = this.http.classify(response, text);
        const reason = `${status} ${vendorMessage ?? 'without a message'}, for this event alone`;
        result.rejected.push({ object: pending[0]!.event, index: pending[0]!.index, reason });
        return;
      }
      const offending =
        response.status === 400
          ? offendingEvents(ingestBadRequestSchema.safeParse(safeJson(text)).data)
          : response.status === 429
            ? throttledEvents(ingestThrottledSchema.safeParse(safeJson(text)).data, pending)
            : new Map<number, string>();
      if (offending.size === 0) throw this.http.classify(response, text);
      for (const [sentIndex, reason] of [...offending].sort(([a], [b]) => a - b)) {
        const entry = pending[sentIndex];
        if (!entry) throw this.http.invalidResponse(response, `an event index (${sentIndex}) beyond the ${pending.length} events sent`);
        if (response.status === 400) result.rejected.push({ object: entry.event, index: entry.index, reason });
        else result.throttled.push({ object: entry.event, index: entry.index });
      }
      if (response.status === 429) {
        const limited = this.http.classify(response, text);
        const waitMs = limited instanceof RateLimitedError ? limited.retryAfterMs : THROTTLE_WINDOW_MS;
        result.retryThrottledAfterMs = Math.max(result.retryThrottledAfterMs, waitMs);
      }
      // Each round removes at least one event, so this ends.
      pending = pending.filter((_, sentIndex) => !offending.has(sentIndex));
    }
  }

  /**
   * Asks Amplitude to delete users' data: one request of 1 to 100 ids in all (Amplitude takes about one request per
   * second), scheduled into a job 10–13 days out. A user_id stands for its user's Amplitude id; ids Amplitude does
   * not know are skipped. Deleting does not stop new events: a user who comes back is a new one, with a new id.
   */
  async requestUserDeletions(request: {
    amplitudeIds?: readonly string[];
    userIds?: readonly string[];
    requester: string;
  }): Promise<DeletionJob> {
    const { amplitudeIds = [], userIds = [] } = request;
    const idCount = amplitudeIds.length + userIds.length;
    if (idCount === 0 || idCount > DELETION_IDS_PER_REQUEST) {
      throw new Error(`a deletion request names 1 to ${DELETION_IDS_PER_REQUEST} users in all, not ${idCount}; split it first`);
    }
    const { body } = await this.http.requestJson(
      {
        method: 'POST',
        url: this.api('/api/2/deletions/users'),
        headers: this.basicAuth(),
        body: JSON.stringify({
          ...(amplitudeIds.length > 0 && { amplitude_ids: amplitudeIdsAsSent(amplitudeIds) }),
          ...(userIds.length > 0 && { user_ids: userIds }),
          requester: request.requester,
          ignore_invalid_id: true,
        }),
      },
      [200],
      deletionJobSchema,
    );
    return deletionJobOf(body);
  }

  /** The deletion jobs scheduled for the days from `startDay` to `endDay` (YYYY-MM-DD, both included, six months at most). */
  async listDeletionJobs(range: { startDay: string; endDay: string }): Promise<DeletionJob[]> {
    const { startDay, endDay } = range;
    if (!isDay(startDay) || !isDay(endDay)) throw new Error(`deletion jobs are listed by days as YYYY-MM-DD, not ${startDay} to ${endDay}`);
    if (endDay < startDay) throw new Error(`the deletion jobs' end day ${endDay} is before the start day ${startDay}`);
    if (endDay > monthsAfter(startDay, DELETION_RANGE_MONTHS)) {
      throw new Error(`Amplitude lists deletion jobs for ${DELETION_RANGE_MONTHS} months at most, not ${startDay} to ${endDay}`);
    }
    const { body } = await this.http.requestJson(
      {
        method: 'GET',
        url: this.api('/api/2/deletions/users', new URLSearchParams({ start_day: startDay, end_day: endDay })),
        headers: this.basicAuth(),
      },
      [200],
      deletionJobListSchema,
    );
    return body.map(deletionJobOf);
  }

  private api(path: string, query?: URLSearchParams): URL {
    return vendorUrl(this.config.apiUrl, path, query);
  }

  private basicAuth(): Record<string, string> {
    return { authorization: `Basic ${this.basicCredentials}` };
  }
}

/**
 * The events of a 429 that Amplitude throttled: those it lists, and every event of a throttled user or device (sent
 * after a throttled one they must not overtake it). Nothing in a throttled request was ingested.
 */
function throttledEvents(body: IngestThrottled | undefined, sent: readonly IndexedEvent[]): Map<number, string> {
  const throttled = new Map<number, string>();
  const users = new Set(Object.keys(body?.throttled_users ?? {}));
  const devices = new Set(Object.keys(body?.throttled_devices ?? {}));
  for (const index of body?.throttled_events ?? []) throttled.set(index, 'throttled');
  sent.forEach(({ event }, index) => {
    if ((event.user_id && users.has(event.user_id)) || (event.device_id && devices.has(event.device_id))) throttled.set(index, 'throttled');
  });
  return throttled;
}

/** How many events a 400's body names by index. */
function eventsNamedIn(text: string): number {
  return offendingEvents(ingestBadRequestSchema.safeParse(safeJson(text)).data).size;
}

/**
 * A 400 about the request rather than its events (a wrong API key, path or body): no event is at fault, so the
 * failure is the operator's to fix and nothing is dead-lettered for it.
 */
const REQUEST_LEVEL_ERRORS = new Set(['Invalid API key', 'Invalid request path', 'Missing request body', 'Invalid JSON request body']);
function isRequestLevel(text: string): boolean {
  const error = (safeJson(text) as { error?: unknown } | undefined)?.error;
  return typeof error === 'string' && REQUEST_LEVEL_ERRORS.has(error);
}

/** Event index → reason, from the 400's `events_with_invalid_fields` / `events_with_missing_fields` maps. */
function offendingEvents(body: IngestBadRequest | undefined): Map<number, string> {
  const reasons = new Map<number, string>();
  for (const [field, indexes] of Object.entries(body?.events_with_invalid_fields ?? {}))
    for (const i of indexes) reasons.set(i, `invalid ${field}`);
  for (const [field, indexes] of Object.entries(body?.events_with_missing_fields ?? {}))
    for (const i of indexes) reasons.set(i, `missing ${field}`);
  for (const i of body?.silenced_events ?? []) reasons.set(i, 'silenced device');
  return reasons;
}

/** Amplitude's ids are JSON numbers: sent as numbers when every one is a whole number a double holds exactly. */
function amplitudeIdsAsSent(amplitudeIds: readonly string[]): Array<number | string> {
  const numbers = amplitudeIds.map(Number);
  return amplitudeIds.every((id, i) => /^\d+$/.test(id) && Number.isSafeInteger(numbers[i])) ? numbers : [...amplitudeIds];
}

function deletionJobOf(job: RawDeletionJob): DeletionJob {
  return {
    day: job.day,
    status: job.status,
    amplitudeIds: job.amplitude_ids.map((entry) =>
      typeof entry === 'object'
        ? {
            amplitudeId: String(entry.amplitude_id),
            ...(entry.requested_on_day && { requestedOnDay: entry.requested_on_day }),
            ...(entry.requester && { requester: entry.requester }),
          }
        : { amplitudeId: String(entry) },
    ),
  };
}

/** A real `YYYY-MM-DD` day (no 30 February). */
function isDay(value: string): boolean {
  return /^\d{4}-\d{2}-\d{2}$/.test(value) && !Number.isNaN(Date.parse(value)) && new Date(value).toISOString().startsWith(value);
}

/** The same day `months` later, or that month's last day when it is shorter (31 August → 28 or 29 February). */
function monthsAfter(day: string, months: number): string {
  const [year, month, date] = day.split('-').map(Number) as [number, number, number];
  const daysInMonth = new Date(Date.UTC(year, month + months, 0)).getUTCDate();
  return new Date(Date.UTC(year, month - 1 + months, Math.min(date, daysInMonth))).toISOString().slice(0, 10);
}

function exportHour(date: Date): string {
  const iso = date.toISOString();
  return `${iso.slice(0, 4)}${iso.slice(5, 7)}${iso.slice(8, 10)}T${iso.slice(11, 13)}`;
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
