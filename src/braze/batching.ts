/**
 * Pure request splitting for Braze's per-request limits, keeping the way back from "index in the request as
 * sent" to "index in the caller's array" — Braze's per-object errors refer to the former.
 */
import { TRACK_ARRAYS, type TrackArray } from './schemas.js';

export type TrackObject = Record<string, unknown>;

export type TrackPayload = Partial<Record<TrackArray, TrackObject[]>>;

export interface BrazeObjectLimit {
  /** `per_array`: each of attributes/events/purchases holds up to `max`; `combined`: all arrays together. */
  mode: 'per_array' | 'combined';
  max: number;
}

export const DEFAULT_OBJECT_LIMIT: BrazeObjectLimit = { mode: 'per_array', max: 75 };

export interface TrackChunk {
  payload: TrackPayload;
  /** For each array, the caller's index of every object in `payload`, in the order sent. */
  callerIndexes: Record<TrackArray, number[]>;
}

export function fitsObjectLimit(payload: TrackPayload, limit: BrazeObjectLimit): boolean {
  const sizes = TRACK_ARRAYS.map((name) => payload[name]?.length ?? 0);
  return limit.mode === 'per_array' ? sizes.every((n) => n <= limit.max) : sizes.reduce((a, b) => a + b, 0) <= limit.max;
}

/** Splits a payload into requests within `limit`, preserving each array's order across requests. */
export function chunkTrackPayload(payload: TrackPayload, limit: BrazeObjectLimit): TrackChunk[] {
  const chunks: TrackChunk[] = [];
  let combinedPosition = 0;
  for (const name of TRACK_ARRAYS) {
    (payload[name] ?? []).forEach((object, index) => {
      const position = limit.mode === 'per_array' ? index : combinedPosition++;
      const chunk = (chunks[Math.floor(position / limit.max)] ??= {
        payload: {},
        callerIndexes: { attributes: [], events: [], purchases: [] },
      });
      (chunk.payload[name] ??= []).push(object);
      chunk.callerIndexes[name].push(index);
    });
  }
  return chunks;
}

export interface UserAlias {
  aliasName: string;
  aliasLabel: string;
}

export interface PartnerCohortChange {
  /** External ids. */
  userIds?: string[];
  deviceIds?: string[];
  aliases?: UserAlias[];
  shouldRemove: boolean;
}

export const PARTNER_IDS_PER_REQUEST = 1_000;

function idCount(change: PartnerCohortChange): number {
  return (change.userIds?.length ?? 0) + (change.deviceIds?.length ?? 0) + (change.aliases?.length ?? 0);
}

/** Ids [start, end) of a change, counting its user ids, then device ids, then aliases. */
function sliceOfChange(change: PartnerCohortChange, start: number, end: number): PartnerCohortChange {
  const userIds = change.userIds ?? [];
  const deviceIds = change.deviceIds ?? [];
  const part = <T>(ids: readonly T[], base: number): T[] => ids.slice(Math.max(0, start - base), Math.max(0, end - base));
  const slice: PartnerCohortChange = { shouldRemove: change.shouldRemove };
  const sliceUserIds = part(userIds, 0);
  const sliceDeviceIds = part(deviceIds, userIds.length);
  const sliceAliases = part(change.aliases ?? [], userIds.length + deviceIds.length);
  if (sliceUserIds.length > 0) slice.userIds = sliceUserIds;
  if (sliceDeviceIds.length > 0) slice.deviceIds = sliceDeviceIds;
  if (sliceAliases.length > 0) slice.aliases = sliceAliases;
  return slice;
}

/** Packs changes, in order, into requests of at most `maxIds` ids counted across all their entries. */
export function splitPartnerCohortChanges(
  changes: readonly PartnerCohortChange[],
  maxIds = PARTNER_IDS_PER_REQUEST,
): PartnerCohortChange[][] {
  const requests: PartnerCohortChange[][] = [];
  let current: PartnerCohortChange[] = [];
  let room = maxIds;
  for (const change of changes) {
    const size = idCount(change);
    for (let start = 0; start < size;) {
      if (room === 0) {
        requests.push(current);
        current = [];
        room = maxIds;
      }
      const end = Math.min(size, start + room);
      current.push(sliceOfChange(change, start, end));
      room -= end - start;
      start = end;
    }
  }
  if (current.length > 0) requests.push(current);
  return requests;
}

/** Splits a list into requests of at most `size` items (identifiers, aliases, objects). */
export function chunk<T>(items: readonly T[], size: number): T[][] {
  const chunks: T[][] = [];
  for (let i = 0; i < items.length; i += size) chunks.push(items.slice(i, i + size));
  return chunks;
}
