/**
 * The privacy workflows' I/O: an erasure request forgotten (its ids read from the store, the request deleted), and
 * Amplitude's deletion jobs forgotten user by user, each once (the erasure of an Amplitude id is recorded under a hash
 * of it, in the same transaction as the erasure, so reruns and other workers skip it). Results are counts only.
 */
import { ApplicationFailure, heartbeat } from '@temporalio/activity';
import { FailureType } from '../../src/failure-types.js';
import { eraseUsers, type ErasureReport } from '../../src/privacy/erasure.js';
import type { WorkerContext } from '../../src/worker-context.js';
import { LOOKAHEAD_DAYS, type ForgetUsersOptions, type PrivacySyncOptions } from './input.js';

const DAY_MS = 86_400_000;

export interface ForgottenJobs {
  /** Deletion jobs Amplitude listed in the range. */
  jobs: number;
  /** Amplitude ids in them, and how many this run forgot (the others were forgotten before). */
  amplitudeIds: number;
  forgotten: number;
  alreadyForgotten: number;
  /** Rows removed per table, over all the users this run forgot. */
  removed: Record<string, number>;
  brazeDeleted: number;
  freedSpace?: string;
}

export function createPrivacyActivities(context: WorkerContext) {
  const { store } = context;

  return {
    /** Forgets the users of a saved erasure request, deletes the request, and clears the freed space. */
    forgetRequestedUsers: async (input: ForgetUsersOptions): Promise<ErasureReport & { freedSpace: string }> => {
      const identities = await store.erasureRequest(input.requestId);
      if (!identities) {
        throw ApplicationFailure.create({
          type: FailureType.ErasureRequestMissing,
          nonRetryable: true,
          message: `The store holds no erasure request ${input.requestId}: it was done already, or never saved (save the ids first: ampbraze forget)`,
        });
      }
      const report = await eraseUsers(context, identities, {
        erasureKey: `forget:${input.requestId}`,
        source: 'ampbraze forget',
        deleteInBraze: input.deleteInBraze,
        deleteInAmplitude: input.deleteInAmplitude,
        requester: input.requester,
        onProgress: () => heartbeat(),
      });
      await store.deleteErasureRequest(input.requestId);
      return { ...report, freedSpace: await store.clearFreedSpace() };
    },

    /** Forgets every user of Amplitude's deletion jobs in the range who was not forgotten before. */
    forgetAmplitudeDeletions: async (input: PrivacySyncOptions): Promise<ForgottenJobs> => {
      const now = Date.now();
      const jobs = await context.amplitude.listDeletionJobs({
        startDay: dayOf(now - input.lookbackDays * DAY_MS),
        endDay: dayOf(now + LOOKAHEAD_DAYS * DAY_MS),
      });
      const result: ForgottenJobs = { jobs: jobs.length, amplitudeIds: 0, forgotten: 0, alreadyForgotten: 0, removed: {}, brazeDeleted: 0 };
      for (const job of jobs) {
        for (const { amplitudeId } of job.amplitudeIds) {
          result.amplitudeIds += 1;
          heartbeat();
          const report = await eraseUsers(
            context,
            { userIds: [], deviceIds: [], amplitudeIds: [amplitudeId] },
            {
              erasureKey: `amplitude-deletion:${context.suppression.key.hashId('amplitude_id', amplitudeId)}`,
              source: `Amplitude deletion job of ${job.day}`,
              deleteInBraze: input.deleteInBraze,
              deleteInAmplitude: false,
              requester: 'amplitude-braze-sync',
              onProgress: () => heartbeat(),
            },
          );
          if (!report.done) {
            result.alreadyForgotten += 1;
            continue;
          }
          result.forgotten += 1;
          result.brazeDeleted += report.braze?.deleted ?? 0;
          for (const [table, n] of Object.entries(report.removed)) result.removed[table] = (result.removed[table] ?? 0) + n;
        }
      }
      if (result.forgotten > 0) result.freedSpace = await store.clearFreedSpace();
      return result;
    },
  };
}

export type PrivacyActivities = ReturnType<typeof createPrivacyActivities>;

function dayOf(ms: number): string {
  return new Date(ms).toISOString().slice(0, 10);
}
