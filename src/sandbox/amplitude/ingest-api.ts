/** `POST /2/httpapi` and `POST /batch`: the same request, with different size and rate limits. */
import { BodyTooLargeError, readBody, sendJson } from '../http-util.js';
import type { Exchange } from './context.js';
import { validateEvents } from './event-validation.js';
import { defaultDeviceId, type IngestEndpoint } from './ingestion.js';

const MAX_EVENTS_PER_REQUEST = 2_000;
const DEFAULT_MIN_ID_LENGTH = 5;
const MAX_BODY_BYTES: Record<IngestEndpoint, number> = { httpapi: 1024 * 1024, batch: 20 * 1024 * 1024 };

const isRecord = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value);

function badRequest(res: Exchange['res'], error: string, extra: Record<string, unknown> = {}): void {
  sendJson(res, 400, { code: 400, error, ...extra });
}

function payloadTooLarge(res: Exchange['res']): void {
  sendJson(res, 413, { code: 413, error: 'Payload too large' });
}

export function eventUpload(endpoint: IngestEndpoint) {
  return async ({ req, res, context }: Exchange): Promise<void> => {
    let body: Buffer;
    try {
      body = await readBody(req, MAX_BODY_BYTES[endpoint]);
    } catch (error) {
      if (error instanceof BodyTooLargeError) return payloadTooLarge(res);
      throw error;
    }
    if (body.length === 0) return badRequest(res, 'Missing request body');
    let payload: unknown;
    try {
      payload = JSON.parse(body.toString('utf8'));
    } catch {
      return badRequest(res, 'Invalid JSON request body');
    }
    if (!isRecord(payload)) return badRequest(res, 'Invalid JSON request body');
    for (const field of ['api_key', 'events']) {
      if (payload[field] === undefined) return badRequest(res, 'Request missing required field', { missing_field: field });
    }
    if (payload.api_key !== context.options.apiKey) return badRequest(res, 'Invalid API key');
    const events = payload.events;
    if (!Array.isArray(events)) return badRequest(res, 'Invalid event JSON');
    if (events.length > MAX_EVENTS_PER_REQUEST) return payloadTooLarge(res);

    const requestOptions = isRecord(payload.options) ? payload.options : {};
    const minIdLength = typeof requestOptions.min_id_length === 'number' ? requestOptions.min_id_length : DEFAULT_MIN_ID_LENGTH;
    const { invalidFields, missingFields } = validateEvents(events, minIdLength);
    if (Object.keys(invalidFields).length > 0 || Object.keys(missingFields).length > 0) {
      return badRequest(res, 'Invalid field values on some events', {
        events_with_invalid_fields: invalidFields,
        events_with_missing_fields: missingFields,
      });
    }

    if (context.ingestion.refusesUnnamed(events as Array<Record<string, unknown>>)) return badRequest(res, 'Invalid event JSON');

    const normalized = (events as Array<Record<string, unknown>>).map((event) => ({
      ...event,
      device_id: event.device_id ?? defaultDeviceId(event.user_id as string),
    }));
    const throttling = context.ingestion.throttling(endpoint, normalized);
    if (throttling) {
      // Nothing in a throttled request is ingested: the client resends the other events as they are.
      return sendJson(res, 429, {
        code: 429,
        error: 'Too many requests for some devices and users',
        eps_threshold: throttling.epsThreshold,
        throttled_devices: throttling.throttledDevices,
        throttled_users: throttling.throttledUsers,
        throttled_events: throttling.throttledEvents,
      });
    }
    const now = Date.now();
    context.ingestion.ingest(endpoint, normalized, now);
    sendJson(res, 200, { code: 200, events_ingested: normalized.length, payload_size_bytes: body.length, server_upload_time: now });
  };
}
