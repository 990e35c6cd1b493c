/**
 * Braze's partner cohort import: cohorts created/renamed by the partner, membership changed by external_id,
 * alias or device_id. Users are never created, unknown ids are skipped silently, a device_id that belongs to an
 * identified user is ignored, and more than 1,000 ids in one request is a 400.
 */
import { aliasesOf, badRequest, isPlainObject, stringsOf, success, type Reply } from './json-values.js';
import type { Identifier, Profile, ProfileStore } from './profiles.js';

export interface PartnerCohort {
  cohortId: string;
  name: string;
  createdAt: string;
  /** Deleted users drop out: read members through `PartnerCohorts.members`. */
  members: Set<Profile>;
}

export const MAX_PARTNER_IDS = 1_000;

export class PartnerCohorts {
  readonly cohorts = new Map<string, PartnerCohort>();

  constructor(private readonly store: ProfileStore) {}

  upsertCohort(body: Record<string, unknown>): Reply {
    if (typeof body.cohort_id !== 'string' || body.cohort_id === '') return badRequest('cohort_id must be a valid string');
    if (typeof body.name !== 'string' || body.name.trim() === '') return badRequest('name must be a non-empty string');
    if (typeof body.created_at !== 'string' || Number.isNaN(Date.parse(body.created_at)))
      return badRequest('created_at must be a valid time as an ISO-8601 string');
    const existing = this.cohorts.get(body.cohort_id);
    if (existing) existing.name = body.name;
    else this.cohorts.set(body.cohort_id, { cohortId: body.cohort_id, name: body.name, createdAt: body.created_at, members: new Set() });
    return success();
  }

  /** Current members that still exist. */
  members(cohort: PartnerCohort): Profile[] {
    return [...cohort.members].filter((profile) => this.store.contains(profile));
  }

  changeUsers(body: Record<string, unknown>): Reply {
    if (typeof body.cohort_id !== 'string' || body.cohort_id === '') return badRequest('cohort_id must be a valid string');
    const cohort = this.cohorts.get(body.cohort_id);
    if (!cohort) return badRequest(`cohort_id ${body.cohort_id} does not exist`);
    if (!Array.isArray(body.cohort_changes)) return badRequest('cohort_changes must be an array');
    const changes = body.cohort_changes.filter(isPlainObject);
    const idCount = changes.reduce((n, c) => n + lengthOf(c.user_ids) + lengthOf(c.device_ids) + lengthOf(c.aliases), 0);
    if (idCount > MAX_PARTNER_IDS) return badRequest('Only 1,000 user_ids, device_ids, and aliases are allowed per request');

    for (const change of changes) {
      const remove = change.should_remove === true;
      for (const profile of this.resolve(change)) {
        if (remove) cohort.members.delete(profile);
        else cohort.members.add(profile);
        // Every assignment to an existing user is billed, whether or not it changed anything.
        this.store.count('cohort_assignment');
      }
    }
    return success();
  }

  /** Identified users match by external_id or alias; a device_id matches only an anonymous profile. */
  private *resolve(change: Record<string, unknown>): Generator<Profile> {
    const identifiers: Identifier[] = [
      ...stringsOf(change.user_ids).map((value) => ({ kind: 'external_id' as const, value })),
      ...aliasesOf(change.aliases).map((alias) => ({ kind: 'user_alias' as const, alias })),
    ];
    for (const identifier of identifiers) {
      const profile = this.store.find(identifier);
      if (profile) yield profile;
    }
    for (const value of stringsOf(change.device_ids)) {
      const profile = this.store.find({ kind: 'device_id', value });
      if (profile && !profile.identified) yield profile;
    }
  }
}

function lengthOf(value: unknown): number {
  return Array.isArray(value) ? value.length : 0;
}
