/**
 * The inputs of the privacy workflows: `forgetUsers` (one erasure, whose ids wait in the store under `requestId`)
 * and `privacySync` (Amplitude's deletion jobs, on a schedule). Neither carries a user id. Free of I/O.
 */
import type { SearchAttributePair } from '@temporalio/common';
import { z } from 'zod';
import { SYNC_KIND } from '../../src/temporal/search-attributes.js';

export const PRIVACY_KIND = 'privacy';
export const PRIVACY_SYNC_ID = 'privacy-sync';

/** Amplitude answers at most six months of deletion jobs a call; jobs are scheduled up to 13 days ahead. */
export const MAX_LOOKBACK_DAYS = 150;
export const LOOKAHEAD_DAYS = 30;

export const forgetUsersInputSchema = z.strictObject({
  /** The erasure request saved in the store (`ampbraze forget`, or `requestErasure` of the client API). */
  requestId: z.uuid(),
  /** Delete the users' Braze profiles (`/users/delete`; no data points). */
  deleteInBraze: z.boolean().default(false),
  /** Ask Amplitude to delete the users (User Privacy API). */
  deleteInAmplitude: z.boolean().default(false),
  /** Who Amplitude records as asking. */
  requester: z.string().min(1).max(200).default('amplitude-braze-sync'),
});
export type ForgetUsersInput = z.input<typeof forgetUsersInputSchema>;
export type ForgetUsersOptions = z.output<typeof forgetUsersInputSchema>;

export const privacySyncInputSchema = z.strictObject({
  /** Delete in Braze the users of Amplitude's deletion jobs too. */
  deleteInBraze: z.boolean().default(false),
  /** Read jobs scheduled from this many days ago (each user is forgotten once, however often a job is read). */
  lookbackDays: z.number().int().min(1).max(MAX_LOOKBACK_DAYS).default(30),
});
export type PrivacySyncInput = z.input<typeof privacySyncInputSchema>;
export type PrivacySyncOptions = z.output<typeof privacySyncInputSchema>;

export const forgetUsersWorkflowId = (options: Pick<ForgetUsersOptions, 'requestId'>) => `forget-${options.requestId}`;

export function privacySearchAttributes(): SearchAttributePair[] {
  return [{ key: SYNC_KIND, value: PRIVACY_KIND }];
}
