/**
 * Amplitude's Cohort Webhooks, default payload ("Amplitude cohort format"): one batch of users who entered
 * (`in_cohort: true`) or left a cohort in the computation of `computed_time` (epoch seconds, sent as a string),
 * named by a `message_id` that stays the same when Amplitude retries. The receiver spools one membership change per
 * user; `cohortStream` applies them.
 */
import { z } from 'zod';

export const cohortWebhookBatchSchema = z.looseObject({
  cohort_id: z.string().trim().min(1),
  cohort_name: z.string(),
  in_cohort: z.boolean(),
  computed_time: z.union([z.string().regex(/^\d+$/, 'must be epoch seconds'), z.number().int().nonnegative()]).transform(Number),
  message_id: z.string().min(1),
  users: z.array(z.unknown()),
});
export type CohortWebhookBatch = z.output<typeof cohortWebhookBatchSchema>;

export const cohortWebhookUserSchema = z.looseObject({
  user_id: z.string().min(1),
  user_properties: z.record(z.string(), z.unknown()).optional(),
});

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
  dataPoints: number;
  brazeRequests: number;
}

export function noCohortStreamCounts(): CohortStreamCounts {
  return { added: 0, removed: 0, unchanged: 0, superseded: 0, failed: 0, dataPoints: 0, brazeRequests: 0 };
}

/** The query of the webhook URL: which target the cohort's changes go to, as `cohortSync` names them. */
export const webhookTargetQuerySchema = z.strictObject({
  target: z.enum(['attribute', 'partner_cohort']).optional(),
  attribute: z.string().optional(),
});
