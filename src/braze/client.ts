/**
 * Braze REST client: `/users/track` within the object limit, with Braze's per-object `errors[]` mapped back to
 * the exact objects sent; export by ids; the partner cohort import API. Every response is validated, every
 * failure classified (see `src/http.ts`), and the workspace's rate-limit headers are reported to the caller.
 */
import { z } from 'zod';
import { NonRetryableVendorError, type PartialResult } from '../errors.js';
import { vendorUrl, VendorHttp, type ResponseHeaders, type VendorResponse } from '../http.js';

export interface BrazeObjectLimit {
  /** `per_array`: each of attributes/events/purchases holds up to `max`; `combined`: all arrays together. */
  mode: 'per_array' | 'combined';
  max: number;
}

export interface BrazeClientConfig {
  restEndpoint: string;
  apiKey: string;
  objectLimit?: BrazeObjectLimit;
  requestTimeoutMs?: number;
  partner?: { name: string; partnerApiKey: string; dataImportKey: string };
}

export type TrackObject = Record<string, unknown>;

export interface TrackPayload {
  attributes?: TrackObject[];
  events?: TrackObject[];
  purchases?: TrackObject[];
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
  rateLimit: RateLimitState | undefined;
}

export interface UserAlias {
  aliasName: string;
  aliasLabel: string;
}

export interface PartnerCohortChange {
  userIds?: string[];
  deviceIds?: string[];
  aliases?: UserAlias[];
  shouldRemove: boolean;
}

export const PARTNER_IDS_PER_REQUEST = 1_000;
const EXPORT_IDS_PER_REQUEST = 50;
const TRACK_ARRAYS = ['attributes', 'events', 'purchases'] as const;

const trackResponseSchema = z.looseObject({
  message: z.string(),
  errors: z.array(z.looseObject({ type: z.string(), input_array: z.enum(TRACK_ARRAYS).optional(), index: z.number().int().nonnegative().optional() })).optional(),
});

const exportedUserSchema = z.looseObject({
  external_id: z.string().nullish(),
  braze_id: z.string().nullish(),
  user_aliases: z.array(z.looseObject({ alias_name: z.string(), alias_label: z.string() })).nullish(),
  custom_attributes: z.record(z.string(), z.unknown()).nullish(),
});
export type BrazeExportedUser = z.output<typeof exportedUserSchema>;

const exportResponseSchema = z.looseObject({ message: z.string(), users: z.array(exportedUserSchema), invalid_user_ids: z.array(z.string()).optional() });
const anySuccessSchema = z.unknown();

export class BrazeClient {
  readonly objectLimit: BrazeObjectLimit;
  private readonly http: VendorHttp;

  constructor(private readonly config: BrazeClientConfig) {
    this.objectLimit = config.objectLimit ?? { mode: 'per_array', max: 75 };
    const partner = config.partner;
    this.http = new VendorHttp({
      vendor: 'braze',
      timeoutMs: config.requestTimeoutMs,
      secrets: [config.apiKey, ...(partner ? [partner.partnerApiKey, partner.dataImportKey] : [])],
    });
  }

  /** One `/users/track` request, which must fit the object limit: callers split their objects first. */
  async track(payload: TrackPayload): Promise<TrackResult> {
    if (!fitsObjectLimit(payload, this.objectLimit)) {
      throw new Error(`a /users/track request must fit the ${this.objectLimit.mode} limit of ${this.objectLimit.max} objects; split it first`);
    }
    const { response, body } = await this.http.requestJson(
      { method: 'POST', url: this.url('/users/track'), headers: this.auth(), body: JSON.stringify(payload) },
      [200, 201],
      trackResponseSchema,
    );
    const rejectedByArray = new Map<string, Map<number, string>>();
    for (const error of body.errors ?? []) {
      if (error.input_array === undefined || error.index === undefined) {
        // A 2xx error Braze did not pin to an object: treating the request as delivered would drop data silently.
        throw new NonRetryableVendorError({ vendor: 'braze', endpoint: response.endpoint, status: response.status, vendorMessage: error.type }, 'reported an error for no object');
      }
      const rejected = rejectedByArray.get(error.input_array) ?? new Map<number, string>();
      rejected.set(error.index, error.type);
      rejectedByArray.set(error.input_array, rejected);
    }
    const partial = (name: (typeof TRACK_ARRAYS)[number]): PartialResult<TrackObject> => {
      const result: PartialResult<TrackObject> = { accepted: [], rejected: [] };
      const rejected = rejectedByArray.get(name);
      (payload[name] ?? []).forEach((object, index) => {
        const reason = rejected?.get(index);
        if (reason === undefined) result.accepted.push(object);
        else result.rejected.push({ object, index, reason });
      });
      return result;
    };
    return { attributes: partial('attributes'), events: partial('events'), purchases: partial('purchases'), rateLimit: rateLimitState(response.headers) };
  }

  /** Profiles by external id (≤50 per request, batched), e.g. to read back what a sync wrote. */
  async exportUsersByIds(externalIds: readonly string[], fieldsToExport?: readonly string[]): Promise<{ users: BrazeExportedUser[]; invalidUserIds: string[] }> {
    const users: BrazeExportedUser[] = [];
    const invalidUserIds: string[] = [];
    for (let i = 0; i < externalIds.length; i += EXPORT_IDS_PER_REQUEST) {
      const { body } = await this.http.requestJson(
        {
          method: 'POST',
          url: this.url('/users/export/ids'),
          headers: this.auth(),
          body: JSON.stringify({ external_ids: externalIds.slice(i, i + EXPORT_IDS_PER_REQUEST), ...(fieldsToExport && { fields_to_export: fieldsToExport }) }),
        },
        [200, 201],
        exportResponseSchema,
      );
      users.push(...body.users);
      invalidUserIds.push(...(body.invalid_user_ids ?? []));
    }
    return { users, invalidUserIds };
  }

  /** A cheap credential check: export one id that cannot exist. */
  async ping(): Promise<void> {
    await this.exportUsersByIds(['ampbraze-doctor-probe'], ['external_id']);
  }

  /** Creates the partner cohort, or renames it (Braze: call on the first export and on every rename). */
  async createOrRenamePartnerCohort(cohort: { cohortId: string; name: string; createdAt: string }): Promise<void> {
    await this.partnerRequest('/cohorts', { cohort_id: cohort.cohortId, name: cohort.name, created_at: cohort.createdAt });
  }

  /** Adds or removes members; all changes together must hold at most 1,000 ids: callers split first. */
  async updatePartnerCohortUsers(update: { cohortId: string; changes: readonly PartnerCohortChange[] }): Promise<void> {
    const ids = update.changes.reduce((n, c) => n + (c.userIds?.length ?? 0) + (c.deviceIds?.length ?? 0) + (c.aliases?.length ?? 0), 0);
    if (ids > PARTNER_IDS_PER_REQUEST) throw new Error(`a partner cohort request holds at most ${PARTNER_IDS_PER_REQUEST} ids, got ${ids}`);
    await this.partnerRequest('/cohorts/users', {
      cohort_id: update.cohortId,
      cohort_changes: update.changes.map((change) => ({
        ...(change.userIds?.length && { user_ids: change.userIds }),
        ...(change.deviceIds?.length && { device_ids: change.deviceIds }),
        ...(change.aliases?.length && { aliases: change.aliases.map((a) => ({ alias_name: a.aliasName, alias_label: a.aliasLabel })) }),
        should_remove: change.shouldRemove,
      })),
    });
  }

  private async partnerRequest(path: string, body: Record<string, unknown>): Promise<VendorResponse> {
    const partner = this.config.partner;
    if (!partner) throw new Error('the Braze partner cohort API needs BRAZE_PARTNER_NAME, BRAZE_PARTNER_API_KEY and BRAZE_DATA_IMPORT_KEY');
    const { response } = await this.http.requestJson(
      {
        method: 'POST',
        url: this.url(`/partners/${encodeURIComponent(partner.name)}${path}`),
        endpoint: `POST /partners/{partner}${path}`,
        body: JSON.stringify({ partner_api_key: partner.partnerApiKey, client_secret: partner.dataImportKey, ...body }),
      },
      [200, 201, 202, 204],
      anySuccessSchema,
    );
    return response;
  }

  private url(path: string): URL {
    return vendorUrl(this.config.restEndpoint, path);
  }

  private auth(): Record<string, string> {
    return { authorization: `Bearer ${this.config.apiKey}` };
  }
}

export function fitsObjectLimit(payload: TrackPayload, limit: BrazeObjectLimit): boolean {
  const sizes = TRACK_ARRAYS.map((name) => payload[name]?.length ?? 0);
  return limit.mode === 'per_array' ? sizes.every((n) => n <= limit.max) : sizes.reduce((a, b) => a + b, 0) <= limit.max;
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
