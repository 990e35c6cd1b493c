/**
 * Braze's partner cohort import: cohorts created/renamed by the partner, membership changed by external_id,
 * alias or device_id. Users are never created, unknown ids are skipped silently, a device_id that belongs to an
 * identified user is ignored, and more than 1,000 ids in one request is a 400.
 */
import { isPlainObject, type ProfileStore } from './profiles.js';

export interface PartnerCohort {
  cohortId: string;
  name: string;
  createdAt: string;
  /** braze_ids of members. */
  members: Set<string>;
}

export const MAX_PARTNER_IDS = 1_000;

type PartnerResult = { status: number; body: Record<string, unknown> };

export class PartnerCohorts {
  readonly cohorts = new Map<string, PartnerCohort>();
  /** device_id → braze_id of anonymous profiles known by device (seeded or created elsewhere). */
  readonly anonymousDevices = new Map<string, string>();

  constructor(private readonly store: ProfileStore) {}

  upsertCohort(body: Record<string, unknown>): PartnerResult {
    if (typeof body.cohort_id !== 'string' || body.cohort_id === '') return error('cohort_id must be a valid string');
    if (typeof body.name !== 'string' || body.name.trim() === '') return error('name must be a non-empty string');
    if (typeof body.created_at !== 'string' || Number.isNaN(Date.parse(body.created_at))) return error('created_at must be a valid time as an ISO-8601 string');
    const existing = this.cohorts.get(body.cohort_id);
    if (existing) existing.name = body.name;
    else this.cohorts.set(body.cohort_id, { cohortId: body.cohort_id, name: body.name, createdAt: body.created_at, members: new Set() });
    return { status: 201, body: { message: 'success' } };
  }

  changeUsers(body: Record<string, unknown>): PartnerResult {
    if (typeof body.cohort_id !== 'string' || body.cohort_id === '') return error('cohort_id must be a valid string');
    const cohort = this.cohorts.get(body.cohort_id);
    if (!cohort) return error(`cohort_id ${body.cohort_id} does not exist`);
    if (!Array.isArray(body.cohort_changes)) return error('cohort_changes must be an array');
    const changes = body.cohort_changes.filter(isPlainObject);
    const idCount = changes.reduce((n, c) => n + lengthOf(c.user_ids) + lengthOf(c.device_ids) + lengthOf(c.aliases), 0);
    if (idCount > MAX_PARTNER_IDS) return error('Only 1,000 user_ids, device_ids, and aliases are allowed per request');

    for (const change of changes) {
      const remove = change.should_remove === true;
      for (const brazeId of this.resolve(change)) {
        if (remove) cohort.members.delete(brazeId);
        else cohort.members.add(brazeId);
        // Every assignment to an existing user is billed, whether or not it changed anything.
        this.store.count('cohort_assignment');
      }
    }
    return { status: 201, body: { message: 'success' } };
  }

  private *resolve(change: Record<string, unknown>): Generator<string> {
    for (const id of stringsOf(change.user_ids)) {
      const profile = this.store.byExternal(id);
      if (profile) yield profile.brazeId;
    }
    for (const alias of Array.isArray(change.aliases) ? change.aliases.filter(isPlainObject) : []) {
      if (typeof alias.alias_name !== 'string' || typeof alias.alias_label !== 'string') continue;
      const profile = this.store.byUserAlias({ alias_name: alias.alias_name, alias_label: alias.alias_label });
      if (profile) yield profile.brazeId;
    }
    // Only anonymous profiles match by device_id: an identified user's device is ignored.
    for (const deviceId of stringsOf(change.device_ids)) {
      const brazeId = this.anonymousDevices.get(deviceId);
      const profile = brazeId === undefined ? undefined : this.store.byBraze(brazeId);
      if (profile && profile.externalId === undefined) yield profile.brazeId;
    }
  }
}

function error(message: string): PartnerResult {
  return { status: 400, body: { message } };
}

function lengthOf(value: unknown): number {
  return Array.isArray(value) ? value.length : 0;
}

function stringsOf(value: unknown): string[] {
  return Array.isArray(value) ? value.filter((v): v is string => typeof v === 'string') : [];
}
