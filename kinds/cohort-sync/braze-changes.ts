/**
 * Turns one page of membership changes into Braze requests within the vendor's limits: `/users/track`
 * attribute-array `add`/`remove` (≤ the object limit per request, users never created), or partner cohort
 * changes (≤1,000 ids per request). Each request knows its data-point price and maps Braze's answer back to
 * the exact members it carried.
 */
import { chunk } from '../../src/braze/batching.js';
import { PARTNER_IDS_PER_REQUEST } from '../../src/braze/client.js';
import { attributeValueDataPoints, partnerCohortChangeDataPoints } from '../../src/braze/data-points.js';
import type { PageRequest, SentChange } from '../../src/braze/page-request.js';
import type { BrazeAddress } from '../../src/cohort/identifiers.js';

export interface CohortChangeTarget {
  target: 'attribute' | 'partner_cohort';
  cohortId: string;
  attributeName: string;
  kind: 'enter' | 'leave';
}

/** One request of a page; `size` is how many members it carries. */
export interface CohortChangeRequest extends PageRequest {
  size: number;
}

export interface Member {
  memberKey: string;
  address: BrazeAddress;
}

export function cohortPageRequests(
  members: readonly Member[],
  change: CohortChangeTarget,
  objectsPerRequest: number,
): CohortChangeRequest[] {
  return change.target === 'attribute'
    ? chunk(members, objectsPerRequest).map((group) => attributeRequest(group, change))
    : chunk(members, PARTNER_IDS_PER_REQUEST).map((group) => partnerRequest(group, change));
}

function attributeRequest(members: Member[], change: CohortChangeTarget): CohortChangeRequest {
  const operation = change.kind === 'enter' ? { add: [change.cohortId] } : { remove: [change.cohortId] };
  // Every object writes the same one-value operation, so each costs the same.
  const pointsPerObject = attributeValueDataPoints(operation);
  return {
    firstKey: members[0]!.memberKey,
    size: members.length,
    dataPoints: pointsPerObject * members.length,
    async send(braze) {
      // Built when sent, not when the page is planned: a page's requests would otherwise all be alive at once.
      const objects = members.map(({ address }) => {
        const object = trackIdentifier(address);
        object._update_existing_only = true;
        object[change.attributeName] = operation;
        return object;
      });
      const { attributes } = await braze.track({ attributes: objects });
      const rejectedIndexes = new Map(attributes.rejected.map((r) => [r.index, r.reason]));
      const sent: SentChange = { accepted: [], rejected: [], dataPoints: 0 };
      members.forEach((member, index) => {
        const reason = rejectedIndexes.get(index);
        if (reason === undefined) {
          sent.accepted.push(member.memberKey);
          sent.dataPoints += pointsPerObject;
        } else {
          sent.rejected.push({ memberKey: member.memberKey, reason });
        }
      });
      return sent;
    },
  };
}

function partnerRequest(members: Member[], change: CohortChangeTarget): CohortChangeRequest {
  const entry = { userIds: [] as string[], deviceIds: [] as string[], aliases: [] as Array<{ aliasName: string; aliasLabel: string }> };
  for (const { address } of members) {
    if (address.kind === 'external_id') entry.userIds.push(address.externalId);
    else if (address.kind === 'device_id') entry.deviceIds.push(address.deviceId);
    else entry.aliases.push({ aliasName: address.aliasName, aliasLabel: address.aliasLabel });
  }
  const dataPoints = partnerCohortChangeDataPoints(members.length);
  return {
    firstKey: members[0]!.memberKey,
    size: members.length,
    dataPoints,
    async send(braze) {
      await braze.updatePartnerCohortUsers({ cohortId: change.cohortId, changes: [{ ...entry, shouldRemove: change.kind === 'leave' }] });
      // The partner API answers per request, not per id: unknown ids are skipped silently by Braze.
      return { accepted: members.map((m) => m.memberKey), rejected: [], dataPoints };
    },
  };
}

function trackIdentifier(address: BrazeAddress): Record<string, unknown> {
  switch (address.kind) {
    case 'external_id':
      return { external_id: address.externalId };
    case 'user_alias':
      return { user_alias: { alias_name: address.aliasName, alias_label: address.aliasLabel } };
    case 'device_id':
      throw new Error('device_id is not a /users/track identifier'); // rejected by input validation
  }
}
