/** The privacy workflows as the client API and the CLI start and schedule them, and how an erasure is requested. */
import { randomUUID } from 'node:crypto';
import { ScheduleOverlapPolicy } from '@temporalio/client';
import type { SyncKind } from '../../src/sync-kind.js';
import type { ErasureIdentities, StateStore } from '../../src/store/store.js';
import {
  forgetUsersInputSchema,
  forgetUsersWorkflowId,
  PRIVACY_SYNC_ID,
  privacySearchAttributes,
  privacySyncInputSchema,
  type ForgetUsersInput,
  type ForgetUsersOptions,
  type PrivacySyncInput,
  type PrivacySyncOptions,
} from './input.js';
import { privacyProgressQuery, type forgetUsers, type privacySync, type PrivacyProgress } from './workflow.js';

export const FORGET_USERS: SyncKind<typeof forgetUsers, ForgetUsersInput, ForgetUsersOptions, PrivacyProgress> = {
  workflowType: 'forgetUsers',
  inputSchema: forgetUsersInputSchema,
  progressQuery: privacyProgressQuery,
  run: (options, input) => ({ input, workflowId: forgetUsersWorkflowId(options) }),
  summary: (options) =>
    `Erasure ${options.requestId}: every copy in the store${options.deleteInBraze ? ', Braze' : ''}${options.deleteInAmplitude ? ', Amplitude' : ''}`,
  searchAttributes: privacySearchAttributes,
};

export const PRIVACY_SYNC: SyncKind<typeof privacySync, PrivacySyncInput, PrivacySyncOptions, PrivacyProgress> = {
  workflowType: 'privacySync',
  inputSchema: privacySyncInputSchema,
  progressQuery: privacyProgressQuery,
  run: (_options, input) => ({ input, workflowId: PRIVACY_SYNC_ID }),
  summary: (options) =>
    `Amplitude's deletion jobs (${options.lookbackDays} days back) → forgotten here${options.deleteInBraze ? ' and in Braze' : ''}`,
  searchAttributes: privacySearchAttributes,
  schedule: {
    cadences: ['hourly', 'daily'],
    overlap: ScheduleOverlapPolicy.SKIP,
    ids: () => ({ scheduleId: `${PRIVACY_SYNC_ID}-schedule`, workflowId: PRIVACY_SYNC_ID }),
    note: (_options, cadence) => `${cadence}: forget the users of Amplitude's deletion jobs`,
  },
};

/** The ids of an erasure request, each list without blanks or repeats. */
export function erasureIdentities(given: Partial<ErasureIdentities>): ErasureIdentities {
  const clean = (ids: readonly string[] | undefined) => [...new Set((ids ?? []).map((id) => id.trim()).filter((id) => id.length > 0))];
  return { userIds: clean(given.userIds), deviceIds: clean(given.deviceIds), amplitudeIds: clean(given.amplitudeIds) };
}

/**
 * Saves who an erasure is about in the store and resolves with the request's id: `forgetUsers` takes the id, so the
 * users' ids never enter a workflow's input or history. Refuses an empty request.
 */
export async function saveErasureRequest(store: StateStore, given: Partial<ErasureIdentities>): Promise<string> {
  const identities = erasureIdentities(given);
  if (identities.userIds.length + identities.deviceIds.length + identities.amplitudeIds.length === 0)
    throw new RangeError('An erasure needs at least one user id, device id or Amplitude id');
  const requestId = randomUUID();
  await store.saveErasureRequest(requestId, identities, Date.now());
  return requestId;
}

/**
 * Reads ids from a file, one per line: `user_id:…`, `device_id:…`, `amplitude_id:…`, or a bare user id (a list of
 * users Braze deleted is a list of external ids). Blank lines and lines starting with `#` are skipped.
 */
export function identitiesFromLines(text: string): ErasureIdentities {
  const identities: ErasureIdentities = { userIds: [], deviceIds: [], amplitudeIds: [] };
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const prefixed = /^(user_id|device_id|amplitude_id):(.*)$/.exec(line);
    const [kind, id] = prefixed ? [prefixed[1], prefixed[2]!] : ['user_id', line];
    const list = kind === 'device_id' ? identities.deviceIds : kind === 'amplitude_id' ? identities.amplitudeIds : identities.userIds;
    list.push(id);
  }
  return identities;
}
