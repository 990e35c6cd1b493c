/** Zod schemas for every Amplitude response body the client reads, and the types derived from them. */
import { z } from 'zod';
import type { JsonObject } from '../store/store.js';

const epochSeconds = z.number();

export const cohortSchema = z.looseObject({
  id: z.string(),
  appId: z.union([z.number(), z.string()]).optional(),
  name: z.string(),
  description: z.string().nullish(),
  size: z.number(),
  lastComputed: epochSeconds,
  lastMod: epochSeconds.optional(),
  createdAt: epochSeconds.optional(),
  archived: z.boolean().optional(),
  published: z.boolean().optional(),
});
export type AmplitudeCohort = z.output<typeof cohortSchema>;

export const cohortListSchema = z.object({ cohorts: z.array(cohortSchema) });

export const cohortExportRequestSchema = z.object({ request_id: z.string(), cohort_id: z.string() });

export const cohortExportStatusSchema = z.object({ request_id: z.string(), async_status: z.string() });

/** `GET /api/2/useractivity`: only the user's metadata is read; events are requested with `limit=1`. */
export const userActivitySchema = z.object({
  userData: z.looseObject({ device_ids: z.array(z.string()).nullish() }),
});

const stringMap = z.record(z.string(), z.unknown());

const recommendationSchema = z.looseObject({
  rec_id: z.string(),
  child_rec_id: z.string().nullish(),
  items: z.array(z.unknown()),
  is_control: z.boolean(),
  recommendation_source: z.string().nullish(),
  last_updated: z.number().nullish(),
});

/** Both documented shapes: `cohort_ids`/`propensities` and the guide's `cohort_memberships`/`predictions`. */
export const userProfileSchema = z.object({
  userData: z.looseObject({
    user_id: z.string().nullish(),
    device_id: z.string().nullish(),
    amp_props: stringMap.nullish(),
    cohort_ids: z.array(z.string()).nullish(),
    cohort_memberships: z.array(z.string()).nullish(),
    recommendations: z.array(recommendationSchema).nullish(),
    propensities: z.array(z.looseObject({})).nullish(),
    predictions: z.array(z.looseObject({})).nullish(),
  }),
});

export interface AmplitudeRecommendation {
  recId: string;
  items: unknown[];
  isControl: boolean;
}

export interface AmplitudeUserProfile {
  /** \`userData\` exactly as Amplitude answered it (key order and all), for serving it again. */
  answer: JsonObject;
  userId: string | null;
  deviceId: string | null;
  /** User properties; computations arrive here too, as strings keyed by their id. */
  properties: Record<string, unknown>;
  /** Only cohorts synced to the Profile API destination; null unless requested. */
  cohortIds: string[] | null;
  recommendations: AmplitudeRecommendation[] | null;
}

export const UNKNOWN_USER_MESSAGE = 'User id and device id not seen before';

export const profileErrorSchema = z.object({ error: z.string() });

/** One line of the Export API's JSON-lines files. */
export const exportedEventSchema = z.looseObject({
  $insert_id: z.string().nullish(),
  amplitude_id: z.number(),
  user_id: z.string().nullish(),
  device_id: z.string().nullish(),
  event_type: z.string(),
  event_time: z.string(),
  server_upload_time: z.string(),
  event_properties: stringMap.nullish(),
  user_properties: stringMap.nullish(),
  groups: stringMap.nullish(),
  uuid: z.string().nullish(),
  /** The SDK or integration that sent the event, e.g. "Braze" for Currents forwarded into Amplitude. */
  library: z.string().nullish(),
});
export type ExportedEvent = z.output<typeof exportedEventSchema>;

/** An event for HTTP V2 or Batch ingestion (`time` in ms since epoch). */
export interface AmplitudeEvent {
  event_type: string;
  user_id?: string;
  device_id?: string;
  time?: number;
  insert_id?: string;
  event_properties?: Record<string, unknown>;
  user_properties?: Record<string, unknown>;
  [field: string]: unknown;
}

export const ingestSuccessSchema = z.looseObject({
  code: z.number(),
  events_ingested: z.number(),
});

const indexesByField = z.record(z.string(), z.array(z.number().int().nonnegative()));

/** A 400: either request-level (only `error`) or naming the offending events by index. */
export const ingestBadRequestSchema = z.looseObject({
  error: z.string().optional(),
  missing_field: z.string().nullish(),
  events_with_invalid_fields: indexesByField.optional(),
  events_with_missing_fields: indexesByField.optional(),
  silenced_events: z.array(z.number().int().nonnegative()).optional(),
});
export type IngestBadRequest = z.output<typeof ingestBadRequestSchema>;

/** A 429 of HTTP V2 or Batch: the users and devices over their rate (events per second), and the events throttled. */
export const ingestThrottledSchema = z.looseObject({
  throttled_users: z.record(z.string(), z.number()).optional(),
  throttled_devices: z.record(z.string(), z.number()).optional(),
  throttled_events: z.array(z.number().int().nonnegative()).optional(),
});
export type IngestThrottled = z.output<typeof ingestThrottledSchema>;

const amplitudeIdSchema = z.union([z.number().int().nonnegative(), z.string().regex(/^\d+$/)]);

/** A User Privacy API deletion job: a user is listed as an object, or (as some answers have it) as a bare id. */
export const deletionJobSchema = z.looseObject({
  day: z.string().regex(/^\d{4}-\d{2}-\d{2}$/),
  status: z.enum(['staging', 'submitted', 'done']),
  amplitude_ids: z.array(
    z.union([
      amplitudeIdSchema,
      z.looseObject({ amplitude_id: amplitudeIdSchema, requested_on_day: z.string().nullish(), requester: z.string().nullish() }),
    ]),
  ),
});
export type RawDeletionJob = z.output<typeof deletionJobSchema>;

export const deletionJobListSchema = z.array(deletionJobSchema);

export interface DeletionJob {
  /** The day (YYYY-MM-DD, UTC) the job is scheduled to run. */
  day: string;
  /** `staging` still takes changes, `submitted` will run as it is, `done` ran: the users' data is deleted. */
  status: RawDeletionJob['status'];
  /** Amplitude's ids are numbers; ours are their decimal strings. */
  amplitudeIds: Array<{ amplitudeId: string; requestedOnDay?: string; requester?: string }>;
}
