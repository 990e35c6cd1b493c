/**
 * The Dashboard REST API's User Activity endpoint, `GET /api/2/useractivity?user=<amplitude_id>`: a user's
 * metadata (device ids among it) and latest events. Its own limits: 10 concurrent requests, 360 per hour.
 */
import { sendJson } from '../http-util.js';
import { sendApiError, type Exchange } from './context.js';

export function userActivity({ res, url, context }: Exchange): void {
  const { dataset, options, userLookupRequests } = context;
  if (userLookupRequests.add('project') > options.userLookupsPerHour) {
    sendApiError(res, 429, `User Activity and User Search rate limit exceeded: ${options.userLookupsPerHour} queries per hour`);
    return;
  }
  const amplitudeId = url.searchParams.get('user');
  if (!amplitudeId) {
    sendApiError(res, 400, 'Missing required parameter: user (an Amplitude ID)');
    return;
  }
  const index = dataset.indexOfAmplitudeId(amplitudeId);
  if (index === undefined) {
    // Amplitude does not document this answer; a missing user reads as 404 here.
    sendApiError(res, 404, `User ${amplitudeId} not found`);
    return;
  }
  const user = dataset.user(index);
  sendJson(res, 200, {
    userData: {
      user_id: user.userId,
      canonical_amplitude_id: Number(user.amplitudeId),
      merged_amplitude_ids: [],
      device_ids: [user.deviceId],
      last_used: user.lastSeenAt.toISOString().replace('T', ' ').slice(0, 19),
      properties: user.properties,
    },
    events: [],
  });
}
