/** `POST /identify` (form body; GET with the same query also works): user property updates, not events. */
import { BodyTooLargeError, readBody, sendText } from '../http-util.js';
import type { Exchange } from './context.js';
import type { UserIds } from './profiles.js';
import { InvalidUserPropertiesError, validateUserProperties, type UserProperties } from './user-properties.js';

const MAX_BODY_BYTES = 1024 * 1024;

interface Identification {
  ids: UserIds;
  userProperties: UserProperties;
}

/** Validates every identification first, so a bad one rejects the request without partial updates. */
function parseIdentifications(json: string): Identification[] | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(json);
  } catch {
    return undefined;
  }
  const items: unknown[] = Array.isArray(parsed) ? parsed : [parsed];
  const identifications: Identification[] = [];
  for (const item of items) {
    if (typeof item !== 'object' || item === null) return undefined;
    const { user_id: userId, device_id: deviceId, user_properties: userProperties = {} } = item as Record<string, unknown>;
    const validId = (value: unknown) => typeof value === 'string' && value.length > 0;
    if (!validId(userId) && !validId(deviceId)) return undefined;
    try {
      validateUserProperties(userProperties);
    } catch (error) {
      if (error instanceof InvalidUserPropertiesError) return undefined;
      throw error;
    }
    identifications.push({
      ids: { userId: validId(userId) ? (userId as string) : null, deviceId: validId(deviceId) ? (deviceId as string) : null },
      userProperties,
    });
  }
  return identifications;
}

export async function identify({ req, res, url, context }: Exchange): Promise<void> {
  let form = url.searchParams;
  if (req.method === 'POST') {
    try {
      form = new URLSearchParams((await readBody(req, MAX_BODY_BYTES)).toString('utf8'));
    } catch (error) {
      if (error instanceof BodyTooLargeError) return sendText(res, 413, 'request_too_large');
      throw error;
    }
  }
  if (form.get('api_key') !== context.options.apiKey) return sendText(res, 400, 'invalid_api_key');
  const identificationJson = form.get('identification');
  if (!identificationJson) return sendText(res, 400, 'missing_event');
  const identifications = parseIdentifications(identificationJson);
  if (!identifications) return sendText(res, 400, 'invalid_event');
  for (const { ids, userProperties } of identifications) {
    context.profiles.updateProperties(ids, userProperties);
    // The streaming destination forwards Identify calls as they are (the Identify user format).
    context.eventStream.userIdentified({ user_id: ids.userId ?? null, device_id: ids.deviceId ?? null, user_properties: userProperties });
  }
  sendText(res, 200, 'success');
}
