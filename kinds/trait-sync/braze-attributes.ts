/**
 * Turns one page of users' attribute changes into `/users/track` attribute objects (≤ the object limit per
 * request), each addressing its user by external_id and creating users Braze does not have yet, priced under
 * the legacy rules (one data point per attribute set or unset). Braze's per-object errors map back to the user.
 */
import { attributeObjectDataPoints } from '../../src/braze/data-points.js';
import type { PageRequest, SentChange } from '../../src/braze/page-request.js';
import type { AttributeSnapshot, JsonObject, SentRequest, StagedTraitChange } from '../../src/store/store.js';
import { snapshotValue } from './values.js';

const USER_ID_KEY = 'user_id:';

/** The Braze external_id of an activity-index user key, or undefined for anonymous users (no user id). */
export function externalIdOf(userKey: string): string | undefined {
  return userKey.startsWith(USER_ID_KEY) ? userKey.slice(USER_ID_KEY.length) : undefined;
}

/** The activity-index user key of a user id (as a cohort file gives it). */
export function userKeyOfUserId(userId: string): string {
  return `${USER_ID_KEY}${userId}`;
}

export function traitPageRequests(changes: readonly StagedTraitChange[], objectsPerRequest: number): PageRequest[] {
  const requests: PageRequest[] = [];
  for (let i = 0; i < changes.length; i += objectsPerRequest) requests.push(attributesRequest(changes.slice(i, i + objectsPerRequest)));
  return requests;
}

function attributesRequest(users: readonly StagedTraitChange[]): PageRequest {
  // Braze creates the users it does not have yet (by user id only), as Amplitude's own trait sync does.
  const objects = users.map((user) => ({ external_id: externalIdOf(user.userKey)!, ...user.changes, _update_existing_only: false }));
  const pointsPerObject = objects.map(attributeObjectDataPoints);
  return {
    firstKey: users[0]!.userKey,
    dataPoints: pointsPerObject.reduce((sum, points) => sum + points, 0),
    async send(braze): Promise<SentChange> {
      const { attributes } = await braze.track({ attributes: objects });
      const rejectedAt = new Map(attributes.rejected.map((rejected) => [rejected.index, rejected.reason]));
      const sent: SentChange = { accepted: [], rejected: [], dataPoints: 0 };
      users.forEach((user, index) => {
        const reason = rejectedAt.get(index);
        if (reason === undefined) {
          sent.accepted.push(user.userKey);
          sent.dataPoints += pointsPerObject[index]!;
        } else {
          sent.rejected.push({ memberKey: user.userKey, reason });
        }
      });
      return sent;
    },
  };
}

/** What the accepted users' writes change in the workspace's attribute snapshot: values set, attributes unset. */
export function acceptedSnapshot(
  scope: string,
  accepted: readonly string[],
  changesOf: ReadonlyMap<string, JsonObject>,
): NonNullable<SentRequest['snapshot']['attributes']> {
  const set: AttributeSnapshot[] = [];
  const unset: Array<{ memberKey: string; attribute: string }> = [];
  for (const memberKey of accepted) {
    for (const [attribute, value] of Object.entries(changesOf.get(memberKey) ?? {})) {
      if (value === null) unset.push({ memberKey, attribute });
      else set.push({ memberKey, attribute, value: snapshotValue(value) });
    }
  }
  return { scope, set, unset };
}
