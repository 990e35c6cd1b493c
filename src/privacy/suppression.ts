/**
 * The suppression list as every sync and stream checks it: erased users are found by a keyed one-way hash of their
 * ids (HMAC-SHA256 under the workers' privacy key), so the store never holds an erased id, and a check costs nothing
 * while the list is empty.
 */
import { createHmac } from 'node:crypto';
import { ApplicationFailure } from '@temporalio/common';
import { FailureType } from '../failure-types.js';
import type { Privacy } from '../store/store.js';

export type IdKind = 'user_id' | 'device_id' | 'amplitude_id';

/** The ids a record names its user by; any may be absent. */
export interface SubjectIds {
  userId?: string | null;
  deviceId?: string | null;
  amplitudeId?: string | number | null;
}

export interface Suppressed {
  /** The skip reason: `suppressed: erased on 2026-12-07`. */
  reason: string;
  /** The hash that matched: what a ledger may record in place of the user. */
  idHash: string;
}

export class SuppressionKey {
  readonly #secret: Buffer;
  /** Names the key without revealing it: stored with every entry, so a worker with another key refuses to run. */
  readonly fingerprint: string;

  constructor(secret: string) {
    this.#secret = Buffer.from(secret, 'utf8');
    this.fingerprint = this.#hmac('key fingerprint').slice(0, 16);
  }

  hashId(kind: IdKind, id: string): string {
    return this.#hmac(`${kind}:${id}`);
  }

  /** The hash a ledger keeps in place of a key naming a user (a member key, an event key). */
  hashKey(key: string): string {
    return this.#hmac(`key:${key}`);
  }

  /** Every hash of the subject's ids. */
  hashesOf(ids: SubjectIds): string[] {
    const hashes: string[] = [];
    if (ids.userId) hashes.push(this.hashId('user_id', ids.userId));
    if (ids.deviceId) hashes.push(this.hashId('device_id', ids.deviceId));
    if (ids.amplitudeId !== undefined && ids.amplitudeId !== null && ids.amplitudeId !== '')
      hashes.push(this.hashId('amplitude_id', String(ids.amplitudeId)));
    return hashes;
  }

  #hmac(text: string): string {
    return createHmac('sha256', this.#secret).update(text).digest('base64url');
  }
}

/** The workers' key: `PRIVACY_HASH_KEY`, or one derived from the Amplitude secret key every worker has. */
export function suppressionKeyOf(amplitude: { secretKey: { reveal(): string }; privacyHashKey?: { reveal(): string } }): SuppressionKey {
  const configured = amplitude.privacyHashKey?.reveal();
  return new SuppressionKey(
    configured ?? createHmac('sha256', amplitude.secretKey.reveal()).update('amplitude-braze-sync suppression list').digest('base64url'),
  );
}

export function suppressedReason(erasedAtMs: number): string {
  return `suppressed: erased on ${new Date(erasedAtMs).toISOString().slice(0, 10)}`;
}

export class SuppressionList {
  constructor(
    private readonly store: Pick<Privacy, 'suppressionSummary' | 'suppressedAmong'>,
    readonly key: SuppressionKey,
  ) {}

  /** Of these items, those whose user is suppressed, with why; read from the store on every call (any worker may add). */
  async check<T>(items: readonly T[], idsOf: (item: T) => SubjectIds): Promise<Map<T, Suppressed>> {
    const found = new Map<T, Suppressed>();
    if (items.length === 0 || !(await this.isActive())) return found;
    const hashesOf = new Map<T, string[]>();
    // One hash per distinct id: a chunk of events names the same users many times.
    const memo = new Map<string, string[]>();
    for (const item of items) {
      const ids = idsOf(item);
      const memoKey = `${ids.userId ?? ''}\u0000${ids.deviceId ?? ''}\u0000${ids.amplitudeId ?? ''}`;
      let hashes = memo.get(memoKey);
      if (!hashes) memo.set(memoKey, (hashes = this.key.hashesOf(ids)));
      hashesOf.set(item, hashes);
    }
    const suppressed = await this.store.suppressedAmong([...new Set([...memo.values()].flat())]);
    if (suppressed.size === 0) return found;
    for (const [item, hashes] of hashesOf) {
      const idHash = hashes.find((hash) => suppressed.has(hash));
      if (idHash !== undefined) found.set(item, { reason: suppressedReason(suppressed.get(idHash)!), idHash });
    }
    return found;
  }

  /** Whether anyone is suppressed; throws when the list was hashed with another key than this worker's. */
  async isActive(): Promise<boolean> {
    const summary = await this.store.suppressionSummary();
    const foreign = summary.keyFingerprints.filter((fingerprint) => fingerprint !== this.key.fingerprint);
    if (foreign.length > 0) {
      throw ApplicationFailure.create({
        type: FailureType.SuppressionKeyChanged,
        nonRetryable: true,
        message:
          `The suppression list of erased users was hashed with another PRIVACY_HASH_KEY (fingerprint ${foreign.join(', ')}; ` +
          `this worker's is ${this.key.fingerprint}): with this key no erased user would be recognised. Give every worker the key the list was made with.`,
      });
    }
    return summary.active > 0;
  }
}

/** The ids a record names its user by, read from its JSON fields (`user_id`, `device_id`, `amplitude_id`). */
export function subjectIdsOfJson(record: unknown): SubjectIds {
  if (typeof record !== 'object' || record === null) return {};
  const { user_id: userId, device_id: deviceId, amplitude_id: amplitudeId } = record as Record<string, unknown>;
  return {
    userId: typeof userId === 'string' ? userId : undefined,
    deviceId: typeof deviceId === 'string' ? deviceId : undefined,
    amplitudeId: typeof amplitudeId === 'string' || typeof amplitudeId === 'number' ? amplitudeId : undefined,
  };
}

/** Passes a source's items through in order, each with why its user is suppressed (checked a batch at a time). */
export async function* withSuppression<T>(
  list: SuppressionList,
  source: AsyncIterable<T>,
  idsOf: (item: T) => SubjectIds,
  batchSize = 2_000,
): AsyncGenerator<[T, Suppressed | undefined]> {
  let batch: T[] = [];
  const release = async function* () {
    const suppressed = await list.check(batch, idsOf);
    for (const item of batch) yield [item, suppressed.get(item)] as [T, Suppressed | undefined];
    batch = [];
  };
  for await (const item of source) {
    batch.push(item);
    if (batch.length === batchSize) yield* release();
  }
  yield* release();
}
