/** The seeded hashing behind the dataset: every user, membership and event is drawn from hashes of small integers. */

/** A fast 32-bit integer hash of a tuple of 32-bit integers (murmur3 finaliser per part). */
export function hash32(...parts: number[]): number {
  let hash = 0x9e3779b9;
  for (const part of parts) {
    hash = Math.imul(hash ^ (part >>> 0), 0x85ebca6b);
    hash ^= hash >>> 13;
    hash = Math.imul(hash, 0xc2b2ae35);
    hash ^= hash >>> 16;
  }
  return hash >>> 0;
}

/** FNV-1a, to turn a string (cohort id, salt) into a hash input. */
export function hashString(text: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) hash = Math.imul(hash ^ text.charCodeAt(i), 0x01000193);
  return hash >>> 0;
}

export const toUnit = (hash: number) => hash / 4294967296;
/** Two hex digits per byte value: the dataset formats ids for every one of millions of events. */
const HEX_BYTES = Array.from({ length: 256 }, (_, byte) => byte.toString(16).padStart(2, '0'));

/** The last `digits` (≤ 8) hex digits of a 32-bit value. */
export function hex(value: number, digits: number): string {
  const eight =
    HEX_BYTES[(value >>> 24) & 255]! + HEX_BYTES[(value >>> 16) & 255]! + HEX_BYTES[(value >>> 8) & 255]! + HEX_BYTES[value & 255]!;
  return digits === 8 ? eight : eight.slice(8 - digits);
}
export const pick = <T>(rng: () => number, values: readonly T[]): T => values[Math.floor(rng() * values.length)] as T;

export function uuidFrom(hashes: [number, number, number], tail: string): string {
  const [a, b, c] = hashes;
  return `${hex(a, 8)}-${hex(b, 4)}-4${hex(b >>> 16, 3)}-${'89ab'[c & 3]}${hex(c, 3)}-${tail}`;
}

const DAY_MS = 86_400_000;
const pad2 = (value: number) => (value < 10 ? `0${value}` : `${value}`);
const pad3 = (value: number) => (value < 10 ? `00${value}` : value < 100 ? `0${value}` : `${value}`);
let cachedDay = Number.NaN;
let cachedDayPrefix = '';

/** Amplitude's `YYYY-MM-DD HH:MM:SS.ffffff` (UTC); the date part is cached, as most times in a row share it. */
export function formatAmplitudeTime(ms: number): string {
  const day = Math.floor(ms / DAY_MS);
  if (day !== cachedDay) {
    cachedDay = day;
    cachedDayPrefix = `${new Date(day * DAY_MS).toISOString().slice(0, 10)} `;
  }
  const inDay = ms - day * DAY_MS;
  const seconds = Math.floor(inDay / 1000);
  const clock = `${pad2(Math.floor(seconds / 3600))}:${pad2(Math.floor(seconds / 60) % 60)}:${pad2(seconds % 60)}`;
  return `${cachedDayPrefix}${clock}.${pad3(inDay % 1000)}000`;
}
