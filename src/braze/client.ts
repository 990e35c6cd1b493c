/**
 * Braze REST client: `/users/track` within the object limit, with Braze's per-object `errors[]` mapped back to
 * the exact objects sent; export by ids; deleting and identifying users; the partner cohort import API. Every
 * response is validated, every failure classified (see `src/http.ts`), and the workspace's rate-limit headers are
 * reported to the caller.
 */
import { NonRetryableVendorError, type PartialResult } from '../errors.js';
import { vendorUrl, VendorHttp, type ResponseHeaders, type VendorAnswerHook } from '../http.js';
import {
  chunkTrackPayload,
  DEFAULT_OBJECT_LIMIT,
  fitsObjectLimit,
  PARTNER_IDS_PER_REQUEST,
  splitPartnerCohortChanges,
  type BrazeObjectLimit,
  type PartnerCohortChange,
  type TrackObject,
  type TrackPayload,
  type UserAlias,
} from './batching.js';
import {
  deleteResponseSchema,
  exportResponseSchema,
  identifyResponseSchema,
  TRACK_ARRAYS,
  trackResponseSchema,
  type BrazeExportedUser,
  type TrackArray,
} from './schemas.js';

export { chunkTrackPayload, fitsObjectLimit, PARTNER_IDS_PER_REQUEST, splitPartnerCohortChanges };
export type { BrazeExportedUser, BrazeObjectLimit, PartnerCohortChange, TrackObject, TrackPayload, UserAlias };

export interface BrazeClientConfig {
  restEndpoint: string;
  apiKey: string;
  objectLimit?: BrazeObjectLimit;
  requestTimeoutMs?: number;
  /** The longest wait Braze's answers may impose (`Retry-After`, `X-RateLimit-Reset`). */
  maxWaitMs?: number;
  /** Told of every request's answer (see `VendorHttpConfig.onAnswer`). */
  onAnswer?: VendorAnswerHook;
  partner?: { name: string; partnerApiKey: string; dataImportKey: string };
}

export interface RateLimitState {
  limit: number;
  remaining: number;
  resetAtMs: number;
}

export interface TrackResult {
  attributes: PartialResult<TrackObject>;
  events: PartialResult<TrackObject>;
  purchases: PartialResult<TrackObject>;
  /** From the last response's `X-RateLimit-*` headers; undefined when Braze sent none. */
  rateLimit: RateLimitState | undefined;
}

/** Braze's cap on the users one export, delete or identify request names. */
const USERS_PER_REQUEST = 50;
const PING_EXTERNAL_ID = 'ampbraze-doctor-probe';

export class BrazeClient {
  readonly objectLimit: BrazeObjectLimit;
  private readonly http: VendorHttp;

  constructor(private readonly config: BrazeClientConfig) {
    this.objectLimit = config.objectLimit ?? DEFAULT_OBJECT_LIMIT;
    const partner = config.partner;
    this.http = new VendorHttp({
      vendor: 'braze',
      timeoutMs: config.requestTimeoutMs,
      maxWaitMs: config.maxWaitMs,
      onAnswer: config.onAnswer,
      secrets: [config.apiKey, ...(partner ? [partner.partnerApiKey, partner.dataImportKey] : [])],
    });
  }

  /** One `/users/track` request, which must fit the object limit (see `trackAll` for any size). */
  async track(payload: TrackPayload): Promise<TrackResult> {
    if (!fitsObjectLimit(payload, this.objectLimit)) {
      throw new Error(
        `a /users/track request must fit the ${this.objectLimit.mode} limit of ${this.objectLimit.max} objects; split it first`,
      );
    }
    const { response, body } = await this.http.requestJson(
      { method: 'POST', url: this.url('/users/track'), headers: this.auth(), body: JSON.stringify(payload) },
      [200, 201, 202],
      trackResponseSchema,
    );
    const rejectedByArray = new Map<TrackArray, Map<number, string>>();
    for (const error of body.errors ?? []) {
      const sent = error.input_array === undefined ? undefined : payload[error.input_array];
      if (error.input_array === undefined || error.index === undefined || sent === undefined || error.index >= sent.length) {
        // An error Braze did not pin to an object we sent: calling the rest delivered would drop data silently.
        throw new NonRetryableVendorError(
          { vendor: 'braze', endpoint: response.endpoint, status: response.status, vendorMessage: error.type },
          'reported an error for no object sent',
        );
      }
      const rejected = rejectedByArray.get(error.input_array) ?? new Map<number, string>();
      rejected.set(error.index, error.type);
      rejectedByArray.set(error.input_array, rejected);
    }
    const partial = (name: TrackArray): PartialResult<TrackObject> => {
      const rejected = rejectedByArray.get(name);
      // The usual answer rejects nothing: what was sent is what was accepted.
      if (rejected === undefined) return { accepted: payload[name] ?? [], rejected: [] };
      const result: PartialResult<TrackObject> = { accepted: [], rejected: [] };
      (payload[name] ?? []).forEach((object, index) => {
        const reason = rejected.get(index);
        if (reason === undefined) result.accepted.push(object);
        else result.rejected.push({ object, index, reason });
      });
      return result;
    };
    return {
      attributes: partial('attributes'),
      events: partial('events'),
      purchases: partial('purchases'),
      rateLimit: this.rateLimitOf(response.headers, response.endpoint),
    };
  }

  /**
   * Any number of objects: sent as sequential requests within the object limit, with rejections indexed into
   * the caller's arrays. A failing request throws; the requests before it were delivered.
   */
  async trackAll(payload: TrackPayload): Promise<TrackResult> {
    const merged: TrackResult = {
      attributes: { accepted: [], rejected: [] },
      events: { accepted: [], rejected: [] },
      purchases: { accepted: [], rejected: [] },
      rateLimit: undefined,
    };
    for (const chunk of chunkTrackPayload(payload, this.objectLimit)) {
      const result = await this.track(chunk.payload);
      for (const name of TRACK_ARRAYS) {
        merged[name].accepted.push(...result[name].accepted);
        for (const rejected of result[name].rejected)
          merged[name].rejected.push({ ...rejected, index: chunk.callerIndexes[name][rejected.index]! });
      }
      merged.rateLimit = result.rateLimit;
    }
    return merged;
  }

  /** Profiles by external id and/or alias, ≤50 identifiers per request (larger inputs are batched). */
  async exportUsersByIds(query: {
    externalIds?: readonly string[];
    userAliases?: readonly UserAlias[];
    fieldsToExport?: readonly string[];
  }): Promise<{ users: BrazeExportedUser[]; invalidUserIds: string[] }> {
    const identifiers = [
      ...(query.externalIds ?? []).map((externalId) => ({ externalId })),
      ...(query.userAliases ?? []).map((alias) => ({ alias: brazeAlias(alias) })),
    ];
    const users: BrazeExportedUser[] = [];
    const invalidUserIds: string[] = [];
    for (let i = 0; i < identifiers.length; i += USERS_PER_REQUEST) {
      const batch = identifiers.slice(i, i + USERS_PER_REQUEST);
      const externalIds = batch.flatMap((id) => ('externalId' in id ? [id.externalId] : []));
      const aliases = batch.flatMap((id) => ('alias' in id ? [id.alias] : []));
      const { body } = await this.http.requestJson(
        {
          method: 'POST',
          url: this.url('/users/export/ids'),
          headers: this.auth(),
          body: JSON.stringify({
            ...(externalIds.length > 0 && { external_ids: externalIds }),
            ...(aliases.length > 0 && { user_aliases: aliases }),
            ...(query.fieldsToExport && { fields_to_export: query.fieldsToExport }),
          }),
        },
        [200, 201],
        exportResponseSchema,
      );
      users.push(...body.users);
      invalidUserIds.push(...(body.invalid_user_ids ?? []));
    }
    return { users, invalidUserIds };
  }

  /**
   * Deletes the profiles of these external ids, or of these aliases: one request of at most 50, billed no data
   * points. `deleted` counts the profiles Braze found (it deletes them asynchronously).
   */
  async deleteUsers(
    target: { externalIds: readonly string[] } | { userAliases: readonly UserAlias[] },
  ): Promise<{ deleted: number; rateLimit: RateLimitState | undefined }> {
    const [field, users] =
      'externalIds' in target ? ['external_ids', target.externalIds] : ['user_aliases', target.userAliases.map(brazeAlias)];
    assertFitsOneRequest('/users/delete', users.length);
    const { response, body } = await this.http.requestJson(
      { method: 'POST', url: this.url('/users/delete'), headers: this.auth(), body: JSON.stringify({ [field]: users }) },
      [200, 201, 202],
      deleteResponseSchema,
    );
    return { deleted: body.deleted, rateLimit: this.rateLimitOf(response.headers, response.endpoint) };
  }

  /**
   * Gives alias-only profiles their external ids, one request of at most 50. With `merge_behavior` "merge", an
   * alias profile whose external id Braze already knows is merged into that profile: the attributes it lacks, the
   * events and the purchases move over (unless it already has an alias with the same label: then nothing happens).
   */
  async identifyAliases(
    entries: ReadonlyArray<{ externalId: string; alias: UserAlias }>,
  ): Promise<{ aliasesProcessed: number; rateLimit: RateLimitState | undefined }> {
    assertFitsOneRequest('/users/identify', entries.length);
    const { response, body } = await this.http.requestJson(
      {
        method: 'POST',
        url: this.url('/users/identify'),
        headers: this.auth(),
        body: JSON.stringify({
          aliases_to_identify: entries.map(({ externalId, alias }) => ({
            external_id: externalId,
            user_alias: brazeAlias(alias),
          })),
          merge_behavior: 'merge',
        }),
      },
      [200, 201, 202],
      identifyResponseSchema,
    );
    return { aliasesProcessed: body.aliases_processed, rateLimit: this.rateLimitOf(response.headers, response.endpoint) };
  }

  /** A cheap credential check (needs `users.export.ids`): export one id that cannot exist. */
  async ping(): Promise<void> {
    await this.exportUsersByIds({ externalIds: [PING_EXTERNAL_ID], fieldsToExport: ['external_id'] });
  }

  /** Creates the partner cohort, or renames it (Braze: call on the first export and on every rename). */
  async createOrRenamePartnerCohort(cohort: { cohortId: string; name: string; createdAt: string }): Promise<void> {
    await this.partnerRequest('/cohorts', { cohort_id: cohort.cohortId, name: cohort.name, created_at: cohort.createdAt });
  }

  /** Adds or removes members, as sequential requests of at most 1,000 ids each. */
  async updatePartnerCohortUsers(update: { cohortId: string; changes: readonly PartnerCohortChange[] }): Promise<{ requests: number }> {
    const requests = splitPartnerCohortChanges(update.changes);
    for (const changes of requests) {
      await this.partnerRequest('/cohorts/users', {
        cohort_id: update.cohortId,
        cohort_changes: changes.map((change) => ({
          ...(change.userIds && { user_ids: change.userIds }),
          ...(change.deviceIds && { device_ids: change.deviceIds }),
          ...(change.aliases && { aliases: change.aliases.map(brazeAlias) }),
          should_remove: change.shouldRemove,
        })),
      });
    }
    return { requests: requests.length };
  }

  private async partnerRequest(path: string, body: Record<string, unknown>): Promise<void> {
    const partner = this.config.partner;
    if (!partner) throw new Error('the Braze partner cohort API needs BRAZE_PARTNER_NAME, BRAZE_PARTNER_API_KEY and BRAZE_DATA_IMPORT_KEY');
    const response = await this.http.send({
      method: 'POST',
      url: this.url(`/partners/${encodeURIComponent(partner.name)}${path}`),
      endpoint: `POST /partners/{partner}${path}`,
      // The keys travel in the body, as the partner API requires; VendorHttp keeps them out of any error.
      body: JSON.stringify({ partner_api_key: partner.partnerApiKey, client_secret: partner.dataImportKey, ...body }),
    });
    if (response.status < 200 || response.status >= 300) throw await this.http.failure(response);
    // Braze documents no success body for the partner endpoints: the status is the whole answer.
    await response.body.dump();
  }

  /** Braze's rate-limit headers, with a reset further ahead than anyone should wait brought back to VENDOR_MAX_WAIT. */
  private rateLimitOf(headers: ResponseHeaders, endpoint: string): RateLimitState | undefined {
    const state = rateLimitState(headers);
    const latestResetMs = Date.now() + this.http.maxWaitMs;
    if (!state || state.resetAtMs <= latestResetMs) return state;
    this.http.reportCappedWait(endpoint, state.resetAtMs - Date.now());
    return { ...state, resetAtMs: latestResetMs };
  }

  private url(path: string): URL {
    return vendorUrl(this.config.restEndpoint, path);
  }

  private auth(): Record<string, string> {
    return { authorization: `Bearer ${this.config.apiKey}` };
  }
}

/** An alias as Braze spells it. */
function brazeAlias(alias: UserAlias): { alias_name: string; alias_label: string } {
  return { alias_name: alias.aliasName, alias_label: alias.aliasLabel };
}

function assertFitsOneRequest(path: string, users: number): void {
  if (users > USERS_PER_REQUEST)
    throw new Error(`a ${path} request names at most ${USERS_PER_REQUEST} users, not ${users}; split it first`);
}

/** Braze's `X-RateLimit-*` headers (reset in epoch seconds), or undefined when it sent none. */
export function rateLimitState(headers: ResponseHeaders): RateLimitState | undefined {
  const read = (name: string) => {
    const value = headers[name];
    const first = Array.isArray(value) ? value[0] : value;
    return first === undefined ? NaN : Number(first);
  };
  const limit = read('x-ratelimit-limit');
  const remaining = read('x-ratelimit-remaining');
  const reset = read('x-ratelimit-reset');
  if ([limit, remaining, reset].some(Number.isNaN)) return undefined;
  return { limit, remaining, resetAtMs: reset * 1000 };
}
