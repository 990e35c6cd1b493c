/**
 * Which Braze identifier addresses a cohort member, by the configured priority with fallback. The result is a
 * member key (`ext:…`, `alias:<label>:<name>`, `dev:…`): the unit of the staged plan and the last-sent snapshot.
 */
import type { CohortSyncOptions, Identifier } from '../../kinds/cohort-sync/input.js';

export interface CohortMemberIds {
  amplitudeId: string;
  userId: string | null;
  /** Undefined: not looked up yet (the cohort file carries none); null: Amplitude knows no device. */
  deviceId?: string | null;
}

/** The skip reason of members whose device_id lookup did not fit in the User Activity API's limit this run. */
export const DEFERRED_DEVICE_LOOKUP = "device_id not looked up yet (Amplitude's User Activity API limit): the next run looks it up";

/** `needsDeviceId`: the member's turn came to `device_id`, which has to be looked up first. */
export type MemberResolution = { memberKey: string } | { skipReason: string } | { needsDeviceId: true };

export type BrazeAddress =
  | { kind: 'external_id'; externalId: string }
  | { kind: 'user_alias'; aliasLabel: string; aliasName: string }
  | { kind: 'device_id'; deviceId: string };

type IdentifierOptions = Pick<CohortSyncOptions, 'identifiers' | 'aliasLabel' | 'aliasNameFrom'>;

export function resolveMember(member: CohortMemberIds, options: IdentifierOptions): MemberResolution {
  for (const identifier of options.identifiers) {
    if (identifier === 'device_id' && member.deviceId === undefined) return { needsDeviceId: true };
    const key = keyFor(identifier, member, options);
    if (key) return { memberKey: key };
  }
  return { skipReason: skipReasonFor(member, options.identifiers) };
}

function keyFor(identifier: Identifier, member: CohortMemberIds, options: IdentifierOptions): string | undefined {
  switch (identifier) {
    case 'user_id':
      return member.userId ? `ext:${member.userId}` : undefined;
    case 'user_alias': {
      const name = options.aliasNameFrom === 'user_id' ? member.userId : member.amplitudeId;
      return name ? `alias:${options.aliasLabel}:${name}` : undefined;
    }
    case 'device_id':
      return member.deviceId ? `dev:${member.deviceId}` : undefined;
  }
}

function skipReasonFor(member: CohortMemberIds, identifiers: readonly Identifier[]): string {
  const anonymity = member.userId ? 'member' : 'anonymous member (no user_id)';
  return `${anonymity} has no ${identifiers.join(' / ')} to address in Braze`;
}

/** Parses a member key back into the Braze identifier it stands for. */
export function addressOf(memberKey: string): BrazeAddress {
  if (memberKey.startsWith('ext:')) return { kind: 'external_id', externalId: memberKey.slice(4) };
  if (memberKey.startsWith('dev:')) return { kind: 'device_id', deviceId: memberKey.slice(4) };
  if (memberKey.startsWith('alias:')) {
    const rest = memberKey.slice(6);
    const separator = rest.indexOf(':');
    if (separator > 0) return { kind: 'user_alias', aliasLabel: rest.slice(0, separator), aliasName: rest.slice(separator + 1) };
  }
  throw new Error(`not a member key: ${memberKey}`);
}
