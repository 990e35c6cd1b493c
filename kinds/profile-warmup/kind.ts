/** The profile warm-up as the client API and the CLI start, schedule and follow it, and the lists it can warm. */
import { ScheduleOverlapPolicy } from '@temporalio/client';
import type { SyncKind } from '../../src/sync-kind.js';
import type { StateStore } from '../../src/store/store.js';
import {
  audienceName,
  listNameSchema,
  profileWarmupId,
  profileWarmupInputSchema,
  profileWarmupSearchAttributes,
  savedListAudience,
  type ProfileWarmupInput,
  type ProfileWarmupOptions,
} from './input.js';
import { profileWarmupProgressQuery, type profileWarmup, type ProfileWarmupProgress } from './workflow.js';

export const PROFILE_WARMUP: SyncKind<typeof profileWarmup, ProfileWarmupInput, ProfileWarmupOptions, ProfileWarmupProgress> = {
  workflowType: 'profileWarmup',
  inputSchema: profileWarmupInputSchema,
  progressQuery: profileWarmupProgressQuery,
  run: (options, input) => ({ input, workflowId: profileWarmupId(options) }),
  summary: (options) =>
    `Amplitude profiles of ${audienceName(options)} → the store, for Braze Connected Content (fresh within ${options.freshWithin})`,
  searchAttributes: profileWarmupSearchAttributes,
  schedule: {
    cadences: ['hourly', 'daily'],
    overlap: ScheduleOverlapPolicy.SKIP,
    ids: (options) => ({ scheduleId: `${profileWarmupId(options)}-schedule`, workflowId: profileWarmupId(options) }),
    note: (options, cadence) => `${cadence} profile warm-up of ${audienceName(options)}`,
  },
};

/**
 * Saves a list of Amplitude user ids to warm (`{ list: name }`), replacing the list saved under that name. The ids
 * stay in the store, never in a workflow's input or history. Resolves with how many distinct users it holds.
 */
export async function saveProfileList(store: StateStore, name: string, userIds: Iterable<string>): Promise<number> {
  const audienceId = savedListAudience(listNameSchema.parse(name));
  await store.deleteProfileAudience(audienceId);
  const keys = [...new Set([...userIds].map((id) => id.trim()).filter((id) => id.length > 0))].map((id) => `user_id:${id}`);
  await store.addToProfileAudience(audienceId, keys);
  return (await store.profileAudienceCounts(audienceId, 0)).members;
}
