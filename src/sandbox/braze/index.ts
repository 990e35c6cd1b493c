/**
 * A faithful local Braze REST API on loopback: Bearer keys with permissions, `/users/track` with its size cap,
 * per-object errors and `X-RateLimit-*` fixed-window limit, export by ids, alias/identify/delete, partner
 * cohorts, fault injection, an independent data-point counter and inspection endpoints for tests.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { BodyTooLargeError, closeServer, createRng, FaultInjector, InvalidJsonError, listen, readJsonBody, sendJson, type SandboxFaults } from '../http-util.js';
import { PartnerCohorts } from './partner-cohorts.js';
import { isPlainObject, ProfileStore, type DataPointKind, type Profile, type UserAlias } from './profiles.js';
import { handleTrack, type ObjectLimit } from './track.js';

export const ALL_PERMISSIONS = ['users.track', 'users.export.ids', 'users.alias.new', 'users.identify', 'users.merge', 'users.delete'] as const;

export interface BrazeSeedUser {
  external_id?: string;
  user_aliases?: UserAlias[];
  custom_attributes?: Record<string, unknown>;
}

export interface BrazeSandboxOptions {
  port?: number;
  host?: string;
  apiKeys: Array<{ key: string; permissions?: string[] }>;
  initialUsers?: Iterable<BrazeSeedUser>;
  /** The workspace's `/users/track` limit (default 3,000 requests per 3 s). */
  rateLimit?: { requests: number; windowMs: number };
  objectLimit?: ObjectLimit;
  maxArrayLength?: number;
  blockedExternalIds?: string[];
  partner?: { name: string; partnerApiKey: string; dataImportKeys: string[] };
  faults?: SandboxFaults;
  faultSeed?: number;
  /** Fraction of partner-cohort requests answered 423 Locked. */
  partnerLockedRate?: number;
}

export interface BrazeSandboxControl {
  user(externalId: string): Profile | undefined;
  users(): Iterable<Profile>;
  cohort(cohortId: string): { cohortId: string; name: string; members: string[] } | undefined;
  dataPoints(): { total: number; byKind: Partial<Record<DataPointKind, number>> };
  requestCounts(): Record<string, number>;
  setFaults(faults: SandboxFaults): void;
  setRateLimit(limit: { requests: number; windowMs: number }): void;
  /** External ids whose writes Braze rejects per object ("blacklisted"). */
  setBlockedExternalIds(ids: readonly string[]): void;
  reset(): void;
}

export interface BrazeSandbox {
  url: string;
  control: BrazeSandboxControl;
  close(): Promise<void>;
}

const BODY_LIMIT_BYTES = 4 * 1024 * 1024;
const EXPORT_IDS_MAX = 50;

export async function startBrazeSandbox(options: BrazeSandboxOptions): Promise<BrazeSandbox> {
  const keys = new Map(options.apiKeys.map(({ key, permissions }) => [key, new Set<string>(permissions ?? ALL_PERMISSIONS)]));
  const objectLimit = options.objectLimit ?? { mode: 'per_array', max: 75 };
  let blockedExternalIds = new Set(options.blockedExternalIds ?? []);
  const faults = new FaultInjector(options.faults ?? {}, options.faultSeed ?? 1);
  const lockRng = createRng((options.faultSeed ?? 1) + 1);
  const initialRateLimit = options.rateLimit ?? { requests: 3_000, windowMs: 3_000 };
  let rateLimit = initialRateLimit;
  let window = { index: -1, used: 0 };
  let requests = new Map<string, number>();
  let store: ProfileStore;
  let partner: PartnerCohorts;

  const seed = () => {
    store = new ProfileStore(options.maxArrayLength ?? 500);
    partner = new PartnerCohorts(store);
    for (const user of options.initialUsers ?? []) {
      const profile = store.create({ externalId: user.external_id });
      for (const alias of user.user_aliases ?? []) store.addAlias(profile, alias);
      if (user.custom_attributes) profile.customAttributes = new Map(Object.entries(user.custom_attributes));
    }
    store.dataPoints.clear();
    requests = new Map();
    window = { index: -1, used: 0 };
  };
  // Materialise an iterable seed once, so reset() can replay it.
  if (options.initialUsers && !Array.isArray(options.initialUsers)) options = { ...options, initialUsers: [...options.initialUsers] };
  seed();

  /** Fixed windows, like Braze's 3-second buckets; returns the headers every track response carries. */
  const takeTrackSlot = (now: number): { allowed: boolean; headers: Record<string, string> } => {
    const index = Math.floor(now / rateLimit.windowMs);
    if (index !== window.index) window = { index, used: 0 };
    const allowed = window.used < rateLimit.requests;
    if (allowed) window.used += 1;
    const resetSeconds = Math.ceil(((index + 1) * rateLimit.windowMs) / 1000);
    return {
      allowed,
      headers: {
        'x-ratelimit-limit': String(rateLimit.requests),
        'x-ratelimit-remaining': String(Math.max(0, rateLimit.requests - window.used)),
        'x-ratelimit-reset': String(resetSeconds),
      },
    };
  };

  const authorize = (req: IncomingMessage, res: ServerResponse, permission: string): boolean => {
    const match = /^Bearer (.+)$/.exec(req.headers.authorization ?? '');
    const permissions = match ? keys.get(match[1]!) : undefined;
    if (!permissions) {
      sendJson(res, 401, { message: 'Invalid API Key' });
      return false;
    }
    if (!permissions.has(permission)) {
      sendJson(res, 403, { message: 'Access Denied' });
      return false;
    }
    return true;
  };

  const routes: Record<string, (req: IncomingMessage, res: ServerResponse, body: Record<string, unknown>) => void> = {
    'POST /users/track': (req, res, body) => {
      if (!authorize(req, res, 'users.track')) return;
      const slot = takeTrackSlot(Date.now());
      if (!slot.allowed) return sendJson(res, 429, { message: 'Rate Limited' }, slot.headers);
      const result = handleTrack(body, store, { objectLimit, blockedExternalIds }, new Date());
      sendJson(res, result.status, result.body, slot.headers);
    },
    'POST /users/export/ids': (req, res, body) => {
      if (!authorize(req, res, 'users.export.ids')) return;
      const externalIds = Array.isArray(body.external_ids) ? body.external_ids.filter((id): id is string => typeof id === 'string') : [];
      const aliases = Array.isArray(body.user_aliases) ? body.user_aliases.filter(isAlias) : [];
      if (externalIds.length + aliases.length > EXPORT_IDS_MAX) return sendJson(res, 400, { message: `At most ${EXPORT_IDS_MAX} identifiers per request` });
      const found: Profile[] = [];
      const invalid: string[] = [];
      for (const id of externalIds) {
        const profile = store.byExternal(id);
        if (profile) found.push(profile);
        else invalid.push(id);
      }
      for (const alias of aliases) {
        const profile = store.byUserAlias(alias);
        if (profile) found.push(profile);
      }
      sendJson(res, 201, { message: 'success', users: found.map(exportProfile), invalid_user_ids: invalid });
    },
    'POST /users/alias/new': (req, res, body) => {
      if (!authorize(req, res, 'users.alias.new')) return;
      const entries = Array.isArray(body.user_aliases) ? body.user_aliases.filter(isPlainObject) : [];
      if (entries.length > EXPORT_IDS_MAX) return sendJson(res, 400, { message: `At most ${EXPORT_IDS_MAX} aliases per request` });
      let processed = 0;
      for (const entry of entries) {
        if (!isAlias(entry)) continue;
        const alias = { alias_name: entry.alias_name, alias_label: entry.alias_label };
        if (typeof entry.external_id === 'string') {
          const profile = store.byExternal(entry.external_id); // unknown external_id: silently nothing
          if (profile && store.addAlias(profile, alias)) processed += 1;
        } else if (!store.byUserAlias(alias)) {
          store.create({ alias });
          processed += 1;
        }
      }
      sendJson(res, 201, { message: 'success', aliases_processed: processed });
    },
    'POST /users/identify': (req, res, body) => {
      if (!authorize(req, res, 'users.identify')) return;
      const entries = Array.isArray(body.aliases_to_identify) ? body.aliases_to_identify.filter(isPlainObject) : [];
      let processed = 0;
      for (const entry of entries) {
        const alias = entry.user_alias;
        if (typeof entry.external_id !== 'string' || !isAlias(alias)) continue;
        const aliasProfile = store.byUserAlias(alias);
        if (!aliasProfile) continue;
        const target = store.byExternal(entry.external_id);
        if (!target) store.setExternalId(aliasProfile, entry.external_id); // the alias profile simply receives the id
        else if (!target.aliases.some((a) => a.alias_label === alias.alias_label)) mergeInto(store, aliasProfile, target, alias); // same label: no merge
        processed += 1;
      }
      sendJson(res, 201, { message: 'success', aliases_processed: processed });
    },
    'POST /users/delete': (req, res, body) => {
      if (!authorize(req, res, 'users.delete')) return;
      const ids = Array.isArray(body.external_ids) ? body.external_ids.filter((id): id is string => typeof id === 'string') : [];
      let deleted = 0;
      for (const id of ids) {
        const profile = store.byExternal(id);
        if (profile) {
          store.delete(profile);
          deleted += 1;
        }
      }
      sendJson(res, 201, { message: 'success', deleted });
    },
  };

  const partnerRoute = (path: string, res: ServerResponse, body: Record<string, unknown>): boolean => {
    if (!options.partner || !path.startsWith(`/partners/${options.partner.name}/`)) return false;
    const action = path.slice(`/partners/${options.partner.name}`.length);
    if (action !== '/cohorts' && action !== '/cohorts/users') return false;
    if (body.partner_api_key !== options.partner.partnerApiKey || !options.partner.dataImportKeys.includes(String(body.client_secret))) {
      sendJson(res, 401, { message: 'Invalid partner_api_key or client_secret' });
      return true;
    }
    if ((options.partnerLockedRate ?? 0) > 0 && lockRng() < (options.partnerLockedRate ?? 0)) {
      sendJson(res, 423, { message: 'Resource locked' });
      return true;
    }
    const result = action === '/cohorts' ? partner.upsertCohort(body) : partner.changeUsers(body);
    sendJson(res, result.status, result.body);
    return true;
  };

  const inspect = (method: string, path: string, res: ServerResponse, body: Record<string, unknown>): boolean => {
    if (!path.startsWith('/_sandbox/')) return false;
    const [, , resource, id] = path.split('/').map(decodeURIComponent);
    if (method === 'GET' && resource === 'state') {
      sendJson(res, 200, {
        users: store.size,
        dataPoints: control.dataPoints(),
        requests: control.requestCounts(),
        cohorts: [...partner.cohorts.values()].map((c) => ({ cohort_id: c.cohortId, name: c.name, members: c.members.size })),
      });
    } else if (method === 'GET' && resource === 'users' && id) {
      const profile = store.byExternal(id);
      if (profile) sendJson(res, 200, exportProfile(profile));
      else sendJson(res, 404, { message: 'no such user' });
    } else if (method === 'GET' && resource === 'cohorts' && id) {
      const cohort = control.cohort(id);
      if (cohort) sendJson(res, 200, cohort);
      else sendJson(res, 404, { message: 'no such cohort' });
    } else if (method === 'POST' && resource === 'faults') {
      faults.setFaults(body);
      sendJson(res, 200, faults.current);
    } else if (method === 'POST' && resource === 'rate-limit') {
      control.setRateLimit(body as { requests: number; windowMs: number });
      sendJson(res, 200, rateLimit);
    } else if (method === 'POST' && resource === 'reset') {
      control.reset();
      sendJson(res, 200, { message: 'reset' });
    } else {
      sendJson(res, 404, { message: 'unknown sandbox endpoint' });
    }
    return true;
  };

  const server = createServer((req, res) => {
    const method = req.method ?? 'GET';
    const path = new URL(req.url ?? '/', 'http://sandbox').pathname;
    void (async () => {
      let body: Record<string, unknown> = {};
      if (method === 'POST') {
        try {
          const parsed = await readJsonBody(req, BODY_LIMIT_BYTES);
          if (!isPlainObject(parsed)) return sendJson(res, 400, { message: 'Invalid request body' });
          body = parsed;
        } catch (error) {
          if (error instanceof BodyTooLargeError) return sendJson(res, 413, { message: 'Request Entity Too Large' });
          if (error instanceof InvalidJsonError) return sendJson(res, 400, { message: 'Invalid JSON in request body' });
          throw error;
        }
      }
      if (inspect(method, path, res, body)) return;
      const endpoint = `${method} ${path.startsWith('/partners/') ? path.replace(/^\/partners\/[^/]+/, '/partners/{partner}') : path}`;
      requests.set(endpoint, (requests.get(endpoint) ?? 0) + 1);
      await faults.delay();
      if (faults.maybeFail(res)) return; // an injected 5xx or 429 applies nothing
      if (method === 'POST' && partnerRoute(path, res, body)) return;
      const route = routes[`${method} ${path}`];
      if (route) route(req, res, body);
      else sendJson(res, 404, { message: 'Not Found' });
    })().catch((error: unknown) => {
      if (!res.headersSent) sendJson(res, 500, { message: error instanceof Error ? error.message : 'internal error' });
    });
  });

  const control: BrazeSandboxControl = {
    user: (externalId) => store.byExternal(externalId),
    users: () => store.profiles(),
    cohort: (cohortId) => {
      const cohort = partner.cohorts.get(cohortId);
      if (!cohort) return undefined;
      const members = [...cohort.members].map((brazeId) => store.byBraze(brazeId)?.externalId ?? brazeId).sort();
      return { cohortId: cohort.cohortId, name: cohort.name, members };
    },
    dataPoints: () => ({ total: store.totalDataPoints(), byKind: Object.fromEntries(store.dataPoints) }),
    requestCounts: () => Object.fromEntries(requests),
    setFaults: (next) => faults.setFaults(next),
    setRateLimit: (next) => {
      rateLimit = { ...next };
      window = { index: -1, used: 0 };
    },
    setBlockedExternalIds: (ids) => {
      blockedExternalIds = new Set(ids);
    },
    reset: () => {
      seed();
      rateLimit = initialRateLimit;
      faults.setFaults(options.faults ?? {});
    },
  };

  const url = await listen(server, options.port ?? 0, options.host ?? '127.0.0.1');
  return { url, control, close: () => closeServer(server) };
}

function isAlias(value: unknown): value is UserAlias {
  return isPlainObject(value) && typeof value.alias_name === 'string' && typeof value.alias_label === 'string' && value.alias_name !== '' && value.alias_label !== '';
}

/** identify: only fields that exist solely on the alias profile are copied, then the alias profile is gone. */
function mergeInto(store: ProfileStore, from: Profile, into: Profile, alias: UserAlias): void {
  for (const [key, value] of from.customAttributes ?? []) {
    const target = (into.customAttributes ??= new Map());
    if (!target.has(key)) target.set(key, value);
  }
  store.delete(from);
  store.addAlias(into, alias);
}

function exportProfile(profile: Profile) {
  return {
    external_id: profile.externalId,
    user_aliases: profile.aliases,
    braze_id: profile.brazeId,
    ...(profile.email && { email: profile.email }),
    ...Object.fromEntries(profile.standardAttributes ?? []),
    custom_attributes: Object.fromEntries(profile.customAttributes ?? []),
    custom_events: [...(profile.customEvents ?? [])].map(([name, e]) => ({ name, ...e })),
    total_purchases: profile.purchases ?? 0,
  };
}
