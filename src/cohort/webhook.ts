/**
 * Amplitude's Cohort Webhooks, default payload ("Amplitude cohort format"): one batch of users who entered
 * (`in_cohort: true`) or left a cohort in the computation of `computed_time` (epoch seconds, sent as a string),
 * named by a `message_id` that stays the same when Amplitude retries. The receiver spools one membership change per
 * user; `cohortStream` applies them.
 */
import { z } from 'zod';
import { identifierSchema, utf8Length } from '../ingress/bounds.js';
import { cohortIdSchema } from '../../kinds/cohort-sync/input.js';

/** Amplitude's message ids are short (`<uuid>::enter::0`); with a user id they key the spool's deduplication. */
const MAX_MESSAGE_ID_BYTES = 256;
/** How far ahead of the receiver's clock a computation may be dated: a later one would supersede real changes. */
export const MAX_COMPUTED_TIME_SKEW_SECONDS = 300;

/**
 * A batch's shape. `computed_time` stays as sent: whether its value is usable (a safe integer, not in the future) is
 * decided per batch by `computedTimeProblem`, which dead-letters it rather than refusing the post.
 */
export const cohortWebhookBatchSchema = z.looseObject({
  cohort_id: cohortIdSchema,
  cohort_name: z.string().max(1_024),
  in_cohort: z.boolean(),
  computed_time: z.union([z.string().regex(/^\d+$/, 'must be epoch seconds'), z.number().int().nonnegative()]),
  message_id: identifierSchema.refine((id) => utf8Length(id) <= MAX_MESSAGE_ID_BYTES, `must be at most ${MAX_MESSAGE_ID_BYTES} bytes`),
  users: z.array(z.unknown()),
});
export type CohortWebhookBatch = z.output<typeof cohortWebhookBatchSchema>;

export const cohortWebhookUserSchema = z.looseObject({
  user_id: identifierSchema,
  user_properties: z.record(z.string(), z.unknown()).optional(),
});

/** Why a batch's `computed_time` cannot order its changes (epoch seconds at `nowMs`), or undefined. */
export function computedTimeProblem(computedTime: string | number, nowMs: number): string | undefined {
  const seconds = Number(computedTime);
  if (!Number.isSafeInteger(seconds)) return 'computed_time: must be epoch seconds (a whole number of at most 15 digits)';
  if (seconds > nowMs / 1000 + MAX_COMPUTED_TIME_SKEW_SECONDS) {
    return `computed_time: ${seconds} is more than ${MAX_COMPUTED_TIME_SKEW_SECONDS} s ahead of the receiver's clock`;
  }
  return undefined;
}

/** What the spool keeps of one user of a batch: the change, and when Amplitude computed it. */
export const membershipChangeSchema = z.strictObject({
  user_id: z.string(),
  in_cohort: z.boolean(),
  /** Epoch seconds. */
  computed_time: z.number().int(),
});
export type MembershipChange = z.output<typeof membershipChangeSchema>;

/** What a cohort stream sent: counts only (who changed stays in the store). */
export interface CohortStreamCounts {
  added: number;
  removed: number;
  /** Members already as the change says (in the snapshot, or not): nothing to send. */
  unchanged: number;
  /** Changes computed no later than one applied before (a late or repeated batch): not sent. */
  superseded: number;
  /** Members Braze refused, with its reason in the failure ledger. */
  failed: number;
  /** Changes that could not be applied (unreadable, or for a cohort Amplitude does not list), kept as dead letters. */
  deadLettered: number;
  /** Changes of erased users: deleted from the spool, never sent. */
  suppressed: number;
  /** Aliases of anonymous users who signed in, identified to their external id. */
  identified: number;
  dataPoints: number;
  brazeRequests: number;
}

export function noCohortStreamCounts(): CohortStreamCounts {
  return {
    added: 0,
    removed: 0,
    unchanged: 0,
    superseded: 0,
    failed: 0,
    deadLettered: 0,
    suppressed: 0,
    identified: 0,
    dataPoints: 0,
    brazeRequests: 0,
  };
}

/** The query of the webhook URL: which target the cohort's changes go to, as `cohortSync` names them. */
export const webhookTargetQuerySchema = z.strictObject({
  target: z.enum(['attribute', 'partner_cohort']).optional(),
  attribute: z.string().optional(),
});
