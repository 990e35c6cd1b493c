/**
 * Amplitude's User Profile API answer, made again from what the store keeps: the product fetches each profile once with
 * everything but user properties (`PROFILE_FETCH`), and answers any query a Braze template makes — a subset of
 * computations or recommendations, cohort ids, user properties — as Amplitude would, byte for byte, without asking it.
 */
import type { ProfileOptions } from '../amplitude/client.js';
import { UNKNOWN_USER_MESSAGE } from '../amplitude/schemas.js';
import type { JsonObject, JsonValue } from '../store/store.js';

/**
 * What every fetch asks for. User properties are left out: `amp_props` then holds the computations alone (Amplitude
 * returns both in it, and nothing tells them apart), and the properties come from the activity index, as fresh as the
 * last event.
 */
export const PROFILE_FETCH: ProfileOptions = { computations: true, recommendations: true, cohortIds: true, propensities: true };

/** Amplitude's answer for a user it has not seen. */
export const UNKNOWN_USER_ANSWER = JSON.stringify({ error: UNKNOWN_USER_MESSAGE });

/** What a Profile API query asks for, by its own parameters. */
export interface ProfileQuery {
  /** `user_id:<id>`, or `device_id:<id>` when only a device id is given: the key the store keeps the answer under. */
  userKey: string;
  properties: boolean;
  computations: boolean;
  /** Absent: all of them. */
  computationIds?: ReadonlySet<string>;
  recommendations: boolean;
  recommendationIds?: ReadonlySet<string>;
  cohortIds: boolean;
  propensities: boolean;
}

/** The user a stored key names, as the Profile API takes it. */
export function profileIdentityOf(userKey: string): { userId: string } | { deviceId: string } {
  if (userKey.startsWith(USER_ID)) return { userId: userKey.slice(USER_ID.length) };
  if (userKey.startsWith(DEVICE_ID)) return { deviceId: userKey.slice(DEVICE_ID.length) };
  throw new RangeError(`not a profile key: ${userKey}`);
}

const USER_ID = 'user_id:';
const DEVICE_ID = 'device_id:';
/** Amplitude's ids are at most 1,024 bytes; a longer one cannot name a user. */
const MAX_ID_LENGTH = 1_024;

/** The query, or the answer Amplitude gives to one it refuses. */
export function parseProfileQuery(params: URLSearchParams): ProfileQuery | { refused: string } {
  const userId = params.get('user_id');
  const deviceId = params.get('device_id');
  if (!userId && !deviceId) return { refused: 'user_id or device_id is required' };
  if ((userId?.length ?? 0) > MAX_ID_LENGTH || (deviceId?.length ?? 0) > MAX_ID_LENGTH)
    return { refused: 'user_id or device_id is too long' };
  const computationIds = listParam(params, 'comp_id');
  const recommendationIds = listParam(params, 'rec_id');
  return {
    userKey: userId ? `${USER_ID}${userId}` : `${DEVICE_ID}${deviceId}`,
    properties: isSet(params, 'get_amp_props'),
    computations: isSet(params, 'get_computations'),
    ...(computationIds && { computationIds }),
    recommendations: isSet(params, 'get_recs'),
    ...(recommendationIds && { recommendationIds }),
    cohortIds: isSet(params, 'get_cohort_ids'),
    propensities: isSet(params, 'get_propensity'),
  };
}

/**
 * The answer's JSON, from a kept `userData` (null: Amplitude had not seen the user) and, when the query asks for user
 * properties, the user's latest properties.
 */
export function profileAnswer(userData: JsonObject | null, query: ProfileQuery, properties: JsonObject = {}): string {
  if (userData === null) return UNKNOWN_USER_ANSWER;
  const computations = Object.entries(asObject(userData.amp_props) ?? {}).filter(
    ([id]) => !query.computationIds || query.computationIds.has(id),
  );
  const recommendations = Array.isArray(userData.recommendations)
    ? userData.recommendations.filter((rec) => {
        const id = asObject(rec)?.rec_id;
        return !query.recommendationIds || (typeof id === 'string' && query.recommendationIds.has(id));
      })
    : null;
  return JSON.stringify({
    userData: {
      user_id: userData.user_id ?? null,
      device_id: userData.device_id ?? null,
      amp_props:
        query.properties || query.computations
          ? { ...(query.properties ? properties : {}), ...(query.computations ? Object.fromEntries(computations) : {}) }
          : null,
      cohort_ids: query.cohortIds ? (userData.cohort_ids ?? null) : null,
      recommendations: query.recommendations ? recommendations : null,
      propensities: query.propensities ? (userData.propensities ?? null) : null,
    },
  });
}

const isSet = (params: URLSearchParams, name: string) => ['true', '1'].includes(params.get(name) ?? '');

/** A comma-separated filter; undefined when absent (no filtering). */
function listParam(params: URLSearchParams, name: string): Set<string> | undefined {
  const value = params.get(name);
  return value ? new Set(value.split(',').map((item) => item.trim())) : undefined;
}

function asObject(value: JsonValue | undefined): JsonObject | undefined {
  return typeof value === 'object' && value !== null && !Array.isArray(value) ? value : undefined;
}
