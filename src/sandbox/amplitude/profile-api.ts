/** The User Profile API, `GET /v1/userprofile`. */
import { sendJson } from '../http-util.js';
import type { Exchange } from './context.js';
import type { Profile } from './profiles.js';

export const UNKNOWN_USER_ERROR = 'User id and device id not seen before';
export const PROFILE_RATE_LIMIT_ERROR = 'Number of requests per minute exceeds system limit. Contact Support if you need this limit raised';

const isSet = (params: URLSearchParams, name: string) => ['true', '1'].includes(params.get(name) ?? '');

/** A comma-separated filter; undefined when absent (no filtering). */
function listParam(params: URLSearchParams, name: string): Set<string> | undefined {
  const value = params.get(name);
  return value ? new Set(value.split(',').map((item) => item.trim())) : undefined;
}

export function userProfile({ req, res, url, context }: Exchange): void {
  const authorization = req.headers.authorization;
  if (!authorization?.startsWith('Api-Key ')) {
    sendJson(res, 401, { error: 'Missing Api-Key in Authorization header' });
    return;
  }
  if (authorization.slice('Api-Key '.length).trim() !== context.options.secretKey) {
    sendJson(res, 401, { error: 'Invalid Api-Key' });
    return;
  }
  if (context.profileRequests.add('org') > context.options.profileRequestsPerMinute) {
    context.profileRequestTotals.refused += 1;
    sendJson(res, 429, { error: PROFILE_RATE_LIMIT_ERROR });
    return;
  }
  context.profileRequestTotals.answered += 1;
  const minute = Math.floor(Date.now() / 60_000);
  context.profileRequestsByMinute.set(minute, (context.profileRequestsByMinute.get(minute) ?? 0) + 1);
  const params = url.searchParams;
  const userId = params.get('user_id');
  const deviceId = params.get('device_id');
  if (!userId && !deviceId) {
    sendJson(res, 400, { error: 'user_id or device_id is required' });
    return;
  }
  const profile = context.profiles.find({ userId, deviceId });
  if (!profile) {
    sendJson(res, context.options.unknownProfileStatus, { error: UNKNOWN_USER_ERROR });
    return;
  }
  sendJson(res, 200, { userData: userData(profile, params, context.dataset) });
}

function userData(profile: Profile, params: URLSearchParams, dataset: Exchange['context']['dataset']) {
  const user = profile.index === undefined ? undefined : dataset.user(profile.index);
  const wantsProperties = isSet(params, 'get_amp_props');
  const wantsComputations = isSet(params, 'get_computations');
  const computationIds = listParam(params, 'comp_id');
  const computations = Object.entries(user?.computations ?? {}).filter(([id]) => !computationIds || computationIds.has(id));
  const recommendationIds = listParam(params, 'rec_id');
  return {
    user_id: profile.userId,
    device_id: profile.deviceId,
    amp_props:
      wantsProperties || wantsComputations
        ? { ...(wantsProperties ? profile.properties : {}), ...(wantsComputations ? Object.fromEntries(computations) : {}) }
        : null,
    cohort_ids: isSet(params, 'get_cohort_ids') ? (profile.index === undefined ? [] : dataset.cohortIdsOf(profile.index)) : null,
    recommendations: isSet(params, 'get_recs')
      ? (user?.recommendations.filter((recommendation) => !recommendationIds || recommendationIds.has(recommendation.rec_id)) ?? null)
      : null,
    // The sandbox defines no predictions.
    propensities: isSet(params, 'get_propensity') ? [] : null,
  };
}
