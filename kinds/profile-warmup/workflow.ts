/**
 * `profileWarmup` (id `profile-warmup-<audience>`): before a Braze send whose messages read Amplitude profiles through
 * Connected Content, refreshes the audience's profiles in the store — newest activity first, within the shared User
 * Profile API budget — so the receiver answers them from the store. Reports how much of the audience is fresh.
 * Carries counts and a numeric cursor, never a user; continues as new before its history grows large.
 */
import { ContinueAsNew, continueAsNew, defineQuery, setHandler, workflowInfo } from '@temporalio/workflow';
import type { RunRef } from '../../activities/sync-lease.js';
import type { AudienceCursor } from '../../src/store/store.js';
import { durationMs } from '../../src/sync-input.js';
import { parseWorkflowInput, syncActivities } from '../../workflows/engine.js';
import type { ProfileWarmupActivities } from './activities.js';
import {
  profileWarmupId,
  profileWarmupInputSchema,
  savedListAudience,
  type ProfileWarmupInput,
  type ProfileWarmupOptions,
} from './input.js';

const { streaming, jobWait, quick, lastWords } = syncActivities<ProfileWarmupActivities>('profileWarmup');

/** Where a run continued as new goes on. */
export interface WarmupState {
  audienceId: string;
  members: number;
  /** Profiles fetched at or after this are fresh (the warm-up's start less `freshWithin`). */
  freshSinceMs: number;
  resumeAfter?: AudienceCursor;
  fetched: number;
  unknown: number;
}

export interface ProfileWarmupProgress {
  phase: 'staging' | 'warming' | 'done';
  members: number;
  fetched: number;
  unknown: number;
}

export interface ProfileWarmupResult {
  warmupId: string;
  members: number;
  /** Profiles fetched by this warm-up (Profile API requests). */
  fetched: number;
  /** Members whose profile is fresh now (fetched within `freshWithin` of the start, or by this warm-up). */
  fresh: number;
  /** Of the fresh ones, users Amplitude has not seen. */
  unknown: number;
  /** `fresh / members`, 0 for an empty audience. */
  freshShare: number;
}

export const profileWarmupProgressQuery = defineQuery<ProfileWarmupProgress>('progress');

/** Fetch calls per run before it continues as new (each records a handful of events). */
const CALLS_PER_RUN = 200;

export async function profileWarmup(input: ProfileWarmupInput, continued?: WarmupState): Promise<ProfileWarmupResult> {
  const options = parseWorkflowInput(profileWarmupInputSchema, input, 'profileWarmup');
  const { workflowId, firstExecutionRunId, runStartTime } = workflowInfo();
  const run: RunRef = { syncId: profileWarmupId(options), runId: `${workflowId}/${firstExecutionRunId}`, workflowId };
  const progress: ProfileWarmupProgress = {
    phase: continued ? 'warming' : 'staging',
    members: continued?.members ?? 0,
    fetched: continued?.fetched ?? 0,
    unknown: continued?.unknown ?? 0,
  };
  setHandler(profileWarmupProgressQuery, () => progress);

  const audienceId = options.list !== undefined ? savedListAudience(options.list) : `warmup:${run.runId}`;
  const freshSinceMs = continued?.freshSinceMs ?? runStartTime.getTime() - durationMs(options.freshWithin);
  const finish = { run, audienceId, freshSinceMs, keepAudience: options.list !== undefined };
  let state: WarmupState;
  try {
    // A cohort's export can take minutes to prepare: its wait heartbeats, like a cohort sync's.
    const stage = options.cohortId !== undefined ? jobWait : streaming;
    state = continued ?? {
      audienceId,
      members: await stage.stageWarmupAudience({ run, audienceId, cohortId: options.cohortId, activeWithinDays: options.activeWithinDays }),
      freshSinceMs,
      fetched: 0,
      unknown: 0,
    };
    progress.phase = 'warming';
    progress.members = state.members;
    await warm(options, state, run, progress);
  } catch (error) {
    // The run's own audience goes, and the audience is free for the next warm-up at once (not when continuing as new).
    if (!(error instanceof ContinueAsNew)) await lastWords.finishWarmup(finish);
    throw error;
  }

  const counts = await quick.finishWarmup(finish);
  progress.phase = 'done';
  return {
    warmupId: run.syncId,
    members: counts.members,
    fetched: state.fetched,
    fresh: counts.fresh,
    unknown: counts.unknown,
    freshShare: counts.members === 0 ? 0 : counts.fresh / counts.members,
  };
}

/** Fetch calls until the audience is read through or `maxFetches` is reached; continues as new every CALLS_PER_RUN. */
async function warm(options: ProfileWarmupOptions, state: WarmupState, run: RunRef, progress: ProfileWarmupProgress): Promise<void> {
  for (let calls = 0; ; calls++) {
    const remaining = (options.maxFetches ?? Infinity) - state.fetched;
    if (remaining <= 0) break;
    if (calls === CALLS_PER_RUN) await continueAsNew<typeof profileWarmup>(options, state);
    const page = await streaming.warmProfiles({
      run,
      audienceId: state.audienceId,
      freshSinceMs: state.freshSinceMs,
      after: state.resumeAfter,
      maxFetches: Math.min(remaining, Number.MAX_SAFE_INTEGER),
    });
    state.fetched += page.fetched;
    state.unknown += page.unknown;
    state.resumeAfter = page.resumeAfter;
    progress.fetched = state.fetched;
    progress.unknown = state.unknown;
    if (page.done) break;
  }
}
