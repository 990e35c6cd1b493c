/**
 * What Amplitude knows about each user beyond the seeded dataset: users first seen through ingestion or
 * identify, and property updates (kept as full copies, only for the users that changed).
 */
import type { Dataset } from '../dataset.js';
import { applyUserProperties, type UserProperties } from './user-properties.js';

export interface UserIds {
  userId?: string | null;
  deviceId?: string | null;
}

export interface Profile {
  /** The dataset index, or undefined for users Amplitude first saw through the sandbox's APIs. */
  index: number | undefined;
  userId: string | null;
  deviceId: string | null;
  properties: UserProperties;
}

interface SeenUser {
  userId: string | null;
  deviceId: string | null;
  amplitudeId: number;
}

export class ProfileStore {
  /** `user:<id>` / `device:<id>` → the canonical key of the user they belong to. */
  private readonly aliases = new Map<string, string>();
  private readonly newUsers = new Map<string, SeenUser>();
  private readonly propertyOverrides = new Map<string, UserProperties>();

  constructor(private readonly dataset: Dataset) {}

  find(ids: UserIds): Profile | undefined {
    const key = this.canonicalKey(ids);
    return key === undefined ? undefined : this.profileOf(key);
  }

  /** Records that Amplitude has seen these ids (as on any ingested event), creating the user if new. */
  markSeen(ids: UserIds): string {
    const key = this.canonicalKey(ids) ?? this.createUser(ids);
    for (const alias of aliasesOf(ids)) this.aliases.set(alias, key);
    return key;
  }

  updateProperties(ids: UserIds, userProperties: UserProperties): void {
    const key = this.markSeen(ids);
    const current = this.profileOf(key).properties;
    this.propertyOverrides.set(key, applyUserProperties(current, userProperties));
  }

  /** Amplitude's numeric id of the user a canonical key (from `markSeen`) names. */
  amplitudeIdOf(key: string): number {
    return this.newUsers.get(key)?.amplitudeId ?? Number(this.dataset.identity(datasetIndex(key)).amplitudeId);
  }

  /** Current properties of a dataset user (overrides included), for the cohort CSV. */
  propertiesAt(index: number): UserProperties {
    return this.propertyOverrides.get(datasetKey(index)) ?? this.dataset.user(index).properties;
  }

  private canonicalKey(ids: UserIds): string | undefined {
    for (const alias of aliasesOf(ids)) {
      const key = this.aliases.get(alias);
      if (key !== undefined) return key;
    }
    const index =
      (ids.userId ? this.dataset.indexOfUserId(ids.userId) : undefined) ??
      (ids.deviceId ? this.dataset.indexOfDeviceId(ids.deviceId) : undefined);
    return index === undefined ? undefined : datasetKey(index);
  }

  private createUser(ids: UserIds): string {
    const key = aliasesOf(ids)[0];
    if (key === undefined) throw new Error('a user needs a user_id or a device_id');
    const amplitudeId = this.dataset.firstUnusedAmplitudeId + this.newUsers.size;
    this.newUsers.set(key, { userId: ids.userId ?? null, deviceId: ids.deviceId ?? null, amplitudeId });
    return key;
  }

  private profileOf(key: string): Profile {
    const seen = this.newUsers.get(key);
    if (seen) return { index: undefined, userId: seen.userId, deviceId: seen.deviceId, properties: this.propertyOverrides.get(key) ?? {} };
    const user = this.dataset.user(datasetIndex(key));
    return { index: user.index, userId: user.userId, deviceId: user.deviceId, properties: this.propertiesAt(user.index) };
  }
}

const DATASET_PREFIX = 'dataset:';
const datasetKey = (index: number) => `${DATASET_PREFIX}${index}`;
const datasetIndex = (key: string) => Number(key.slice(DATASET_PREFIX.length));

function aliasesOf(ids: UserIds): string[] {
  return [...(ids.userId ? [`user:${ids.userId}`] : []), ...(ids.deviceId ? [`device:${ids.deviceId}`] : [])];
}
