/**
 * The User Privacy API, `/api/2/deletions/users`: POST schedules users for deletion by Amplitude id and/or user_id
 * (at most 100 in all, about one request per second), GET lists the jobs scheduled for a range of days (six months
 * at most). A user_id stands for its user's Amplitude id, which is what the jobs list.
 */
import { z } from 'zod';
import { BodyTooLargeError, InvalidJsonError, readJsonBody, sendJson } from '../http-util.js';
import { sendApiError, type Exchange } from './context.js';
import { DAY_MS, formatDay } from './deletions.js';

const MAX_IDS_PER_REQUEST = 100;
const MAX_RANGE_MONTHS = 6;
const MAX_BODY_BYTES = 1024 * 1024;
const DAY_PARAMETER = /^\d{4}-\d{2}-\d{2}$/;

/** Amplitude documents `True`/`False` for its flags, and takes JSON booleans too. */
const flagSchema = z.union([z.boolean(), z.enum(['true', 'false', 'True', 'False']).transform((flag) => flag.toLowerCase() === 'true')]);

const deletionRequestSchema = z.object({
  amplitude_ids: z.array(z.union([z.number().int().nonnegative(), z.string().regex(/^\d+$/).transform(Number)])).optional(),
  user_ids: z.array(z.string().min(1)).optional(),
  requester: z.string().optional(),
  ignore_invalid_id: flagSchema.optional(),
  delete_from_org: flagSchema.optional(),
});

export async function requestDeletions({ req, res, context }: Exchange): Promise<void> {
  const { deletionRequestsPerSecond } = context.options;
  if (!context.deletionRequests.tryTake(deletionRequestsPerSecond)) {
    return sendApiError(res, 429, `Too many deletion requests: at most ${deletionRequestsPerSecond} per second`);
  }
  let body: unknown;
  try {
    body = await readJsonBody(req, MAX_BODY_BYTES);
  } catch (error) {
    if (error instanceof BodyTooLargeError || error instanceof InvalidJsonError) return sendApiError(res, 400, error.message);
    throw error;
  }
  const parsed = deletionRequestSchema.safeParse(body);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    return sendApiError(res, 400, `Invalid request body: ${issue?.path.join('.') || 'body'} ${issue?.message ?? 'is invalid'}`);
  }
  const { amplitude_ids: amplitudeIds = [], user_ids: userIds = [], requester } = parsed.data;
  const idCount = amplitudeIds.length + userIds.length;
  if (idCount === 0) return sendApiError(res, 400, 'Request must include amplitude_ids or user_ids');
  if (idCount > MAX_IDS_PER_REQUEST) {
    return sendApiError(
      res,
      400,
      `Too many ids: ${idCount} given, at most ${MAX_IDS_PER_REQUEST} amplitude_ids and user_ids in all per request`,
    );
  }

  const { profiles } = context;
  const knownAmplitudeIds = amplitudeIds.filter((amplitudeId) => profiles.hasAmplitudeId(amplitudeId));
  const byUserId = new Map(userIds.map((userId) => [userId, profiles.amplitudeIdOfUser({ userId })]));
  const knownUserIds = userIds.filter((userId) => byUserId.get(userId) !== undefined);
  // Amplitude skips invalid ids of an org-wide deletion whatever ignore_invalid_id says.
  const ignoreInvalid = parsed.data.ignore_invalid_id === true || parsed.data.delete_from_org === true;
  if (!ignoreInvalid && (knownAmplitudeIds.length < amplitudeIds.length || knownUserIds.length < userIds.length)) {
    const invalid = [
      ...amplitudeIds.filter((amplitudeId) => !knownAmplitudeIds.includes(amplitudeId)),
      ...userIds.filter((userId) => !knownUserIds.includes(userId)),
    ];
    return sendApiError(res, 400, `Invalid ids (users not in this project): ${invalid.join(', ')}`);
  }
  const toDelete = new Set([...knownAmplitudeIds, ...knownUserIds.map((userId) => byUserId.get(userId)!)]);
  const job = context.deletions.schedule([...toDelete], requester);
  sendJson(res, 200, userIds.length > 0 ? { ...job, user_ids: knownUserIds } : job);
}

export function listDeletionJobs({ res, url, context }: Exchange): void {
  const start = parseDay(url.searchParams.get('start_day'));
  const end = parseDay(url.searchParams.get('end_day'));
  if (start === undefined || end === undefined) return sendApiError(res, 400, 'start_day and end_day are required, as YYYY-MM-DD');
  if (end < start) return sendApiError(res, 400, 'end_day must not be before start_day');
  if (end > monthsLater(start, MAX_RANGE_MONTHS)) return sendApiError(res, 400, 'The time range cannot exceed six months');
  sendJson(res, 200, context.deletions.list(start, end));
}

/** Epoch ms of a `YYYY-MM-DD` day's UTC midnight, or undefined. */
function parseDay(value: string | null): number | undefined {
  if (value === null || !DAY_PARAMETER.test(value)) return undefined;
  const ms = Date.parse(`${value}T00:00:00Z`);
  return !Number.isNaN(ms) && formatDay(ms) === value ? ms : undefined;
}

/** The same day `months` later, or that month's last day when it is shorter (31 August → 28 or 29 February). */
function monthsLater(dayMs: number, months: number): number {
  const day = new Date(dayMs);
  const [year, month] = [day.getUTCFullYear(), day.getUTCMonth() + months];
  const daysInMonth = new Date(Date.UTC(year, month + 1, 0)).getUTCDate();
  return Date.UTC(year, month, 1) + (Math.min(day.getUTCDate(), daysInMonth) - 1) * DAY_MS;
}
