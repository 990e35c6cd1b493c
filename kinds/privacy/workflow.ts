/**
 * `forgetUsers` (id `forget-<request>`): one erasure whose ids wait in the store, so that neither its input nor its
 * history names anyone. `privacySync` (id `privacy-sync`, daily on a schedule): forgets the users of Amplitude's
 * deletion jobs, each once. Both report counts only.
 */
import { defineQuery, setHandler } from '@temporalio/workflow';
import type { ErasureReport } from '../../src/privacy/erasure.js';
import { parseWorkflowInput, syncActivities } from '../../workflows/engine.js';
import type { ForgottenJobs, PrivacyActivities } from './activities.js';
import { forgetUsersInputSchema, privacySyncInputSchema, type ForgetUsersInput, type PrivacySyncInput } from './input.js';

const forgetting = syncActivities<PrivacyActivities>('forgetUsers').streaming;
const syncing = syncActivities<PrivacyActivities>('privacySync').streaming;

export interface PrivacyProgress {
  phase: 'forgetting' | 'done';
}

export const privacyProgressQuery = defineQuery<PrivacyProgress>('progress');

export async function forgetUsers(input: ForgetUsersInput): Promise<ErasureReport & { freedSpace: string }> {
  const options = parseWorkflowInput(forgetUsersInputSchema, input, 'forgetUsers');
  const progress: PrivacyProgress = { phase: 'forgetting' };
  setHandler(privacyProgressQuery, () => progress);
  const report = await forgetting.forgetRequestedUsers(options);
  progress.phase = 'done';
  return report;
}

export async function privacySync(input: PrivacySyncInput = {}): Promise<ForgottenJobs> {
  const options = parseWorkflowInput(privacySyncInputSchema, input, 'privacySync');
  const progress: PrivacyProgress = { phase: 'forgetting' };
  setHandler(privacyProgressQuery, () => progress);
  const result = await syncing.forgetAmplitudeDeletions(options);
  progress.phase = 'done';
  return result;
}
