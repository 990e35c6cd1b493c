/**
 * What Amplitude knows about each user beyond the seeded dataset: users first seen through ingestion or
 * identify, property updates (kept as full copies, only for the users that changed), and users deleted through
 * the User Privacy API, whose ids then name nobody (a later event makes a new user, with a new Amplitude id).
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
  /** Users first seen through the sandbox's APIs, by canonical key. */
  private readonly newUsers = new Map<string, SeenUser>();
  private readonly propertyOverrides = new Map<string, UserProperties>();
  /** Canonical keys of the dataset users deleted so far. */
  private readonly deletedDatasetUsers = new Set<string>();
  private nextAmplitudeId: number;

  constructor(private readonly dataset: Dataset) {
    this.nextAmplitudeId = dataset.firstUnusedAmplitudeId;
  }

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

  /** The Amplitude id of the user these ids name, if Amplitude knows one. */
  amplitudeIdOfUser(ids: UserIds): number | undefined {
    const key = this.canonicalKey(ids);
    return key === undefined ? undefined : this.amplitudeIdOf(key);
  }

  /** Whether a (not deleted) user has this Amplitude id. */
  hasAmplitudeId(amplitudeId: number): boolean {
    const key = this.keyOfAmplitudeId(amplitudeId);
    return key !== undefined && !this.deletedDatasetUsers.has(key);
  }

  /** Deletes the user's data: its ids are free again, and its properties gone. */
  delete(amplitudeId: number): void {
    const key = this.keyOfAmplitudeId(amplitudeId);
    if (key === undefined) return;
    if (key.startsWith(DATASET_PREFIX)) this.deletedDatasetUsers.add(key);
    else this.newUsers.delete(key);
    this.propertyOverrides.delete(key);
    // A scan of every alias: deletions are rare, and a reverse index would cost memory on every ingested user.
    for (const [alias, owner] of this.aliases) if (owner === key) this.aliases.delete(alias);
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
    if (index === undefined) return undefined;
    const key = datasetKey(index);
    return this.deletedDatasetUsers.size > 0 && this.deletedDatasetUsers.has(key) ? undefined : key;
  }

  private createUser(ids: UserIds): string {
    if (aliasesOf(ids).length === 0) throw new Error('a user needs a user_id or a device_id');
    const amplitudeId = this.nextAmplitudeId++;
    const key = newUserKey(amplitudeId);
    this.newUsers.set(key, { userId: ids.userId ?? null, deviceId: ids.deviceId ?? null, amplitudeId });
    return key;
  }

  private keyOfAmplitudeId(amplitudeId: number): string | undefined {
    const index = this.dataset.indexOfAmplitudeId(String(amplitudeId));
    if (index !== undefined) return datasetKey(index);
    return this.newUsers.has(newUserKey(amplitudeId)) ? newUserKey(amplitudeId) : undefined;
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
const newUserKey = (amplitudeId: number) => `new:${amplitudeId}`;

function aliasesOf(ids: UserIds): string[] {
  return [...(ids.userId ? [`user:${ids.userId}`] : []), ...(ids.deviceId ? [`device:${ids.deviceId}`] : [])];
}
