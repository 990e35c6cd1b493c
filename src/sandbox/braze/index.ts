/**
 * A faithful local Braze REST API on loopback: Bearer keys with permissions, `/users/track` with its size cap,
 * per-object errors and `X-RateLimit-*` fixed-window limit, export by ids, alias/identify/merge/delete under the
 * limit they share, partner cohorts, fault injection, an independent data-point counter, a log of recorded custom
 * events, a Currents sender and unauthenticated inspection and control endpoints.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { z } from 'zod';
import { BodyTooLargeError, closeServer, createRng, FaultInjector, listen, readBody, sendJson, type SandboxFaults } from '../http-util.js';
import { audienceOf } from './currents/audience.js';
import { sendCurrents, type CurrentsSendRequest } from './currents/send-request.js';
import type { CurrentsSendReport } from './currents/sender.js';
import { EventLog, type EventFilter, type LoggedEvent } from './event-log.js';
import { isPlainObject, type Reply } from './json-values.js';
import { PartnerCohorts } from './partner-cohorts.js';
import { ProfileStore, type DataPointKind, type Profile } from './profiles.js';
import { FixedWindowRateLimit, type RateLimit } from './rate-window.js';
import { compactSeed, loadSeed, type BrazeSeedUser } from './seed.js';
import { handleTrack, type ObjectLimit } from './track.js';
import { deleteUsers, exportedProfile, exportIds, identify, merge, newAliases } from './users.js';

export type { EventFilter, LoggedEvent } from './event-log.js';
export type { CurrentsEvent, CurrentsEventUser } from './currents/events.js';
export type { CurrentsSendRequest } from './currents/send-request.js';
export type { CurrentsSendReport, CurrentsSenderOptions } from './currents/sender.js';
export type { BrazeSeedUser } from './seed.js';
export type { ObjectLimit } from './track.js';
export type { Profile } from './profiles.js';

export const ALL_PERMISSIONS = [
  'users.track',
  'users.export.ids',
  'users.alias.new',
  'users.identify',
  'users.merge',
  'users.delete',
] as const;

export interface BrazeSandboxOptions {
  port?: number;
  host?: string;
  apiKeys: Array<{ key: string; permissions?: string[] }>;
  /** Read once and kept compactly (a bare external_id costs one array slot), so it may be a large generator. */
  initialUsers?: Iterable<BrazeSeedUser>;
  /** The workspace's `/users/track` limit (default 3,000 requests per 3 s). */
  rateLimit?: RateLimit;
  /** The limit `/users/alias/new`, `/users/identify`, `/users/merge` and `/users/delete` share (default 20,000 per minute). */
  identityRateLimit?: RateLimit;
  /** Default: 75 objects per array. */
  objectLimit?: ObjectLimit;
  /** Longest string array kept (default 500); older values are dropped from the front. */
  maxArrayLength?: number;
  /** External ids whose writes are rejected per object ("blacklisted"). */
  blockedExternalIds?: string[];
  partner?: { name: string; partnerApiKey: string; dataImportKeys: string[] };
  faults?: SandboxFaults;
  faultSeed?: number;
  /** Fraction of partner-cohort requests answered 423 Locked. */
  partnerLockedRate?: number;
}

/** Which limit: `/users/track`'s, or the one the identity endpoints share. */
export type RateLimitedEndpoints = 'track' | 'identity';

export interface BrazeCohortView {
  cohortId: string;
  name: string;
  /** Sorted external_ids (braze_id for anonymous members). */
  members: string[];
}

export interface BrazeSandboxControl {
  user(externalId: string): Profile | undefined;
  users(): Iterable<Profile>;
  cohort(cohortId: string): BrazeCohortView | undefined;
  dataPoints(): { total: number; byKind: Partial<Record<DataPointKind, number>> };
  /** Custom events recorded on profiles since the last reset, in order, optionally only some names or one user. */
  events(filter?: EventFilter): LoggedEvent[];
  /** By `METHOD /path`, partner paths as `/partners/{partner}/…`. */
  requestCounts(): Record<string, number>;
  /** 429s answered, by endpoint (`POST /users/track`): the workspace limit's and injected ones. */
  rateLimitedCounts(): Record<string, number>;
  /** `/users/track` requests applied after their sender had gone (a killed worker's in-flight requests): no one got the answer. */
  unansweredTrack(): { requests: number; events: number };
  setFaults(faults: SandboxFaults): void;
  setRateLimit(limit: RateLimit, endpoints?: RateLimitedEndpoints): void;
  setBlockedExternalIds(ids: readonly string[]): void;
  /**
   * Posts Currents batches to `request.url`, the given events or ones generated for the current profiles, and
   * resolves when all were acknowledged or given up. Throws a ZodError for an invalid request.
   */
  sendCurrents(request: CurrentsSendRequest): Promise<CurrentsSendReport>;
  /** Back to the initial users, options and zero counters. */
  reset(): void;
}

export interface BrazeSandbox {
  url: string;
  control: BrazeSandboxControl;
  close(): Promise<void>;
}

const BODY_LIMIT_BYTES = 8 * 1024 * 1024;
/** Events one `/_sandbox/event-arrivals` answer lists at most. */
const MAX_LISTED_ARRIVALS = 10_000;

type Handler = (body: Record<string, unknown>) => Reply;

export async function startBrazeSandbox(options: BrazeSandboxOptions): Promise<BrazeSandbox> {
  const keys = new Map(options.apiKeys.map(({ key, permissions }) => [key, new Set<string>(permissions ?? ALL_PERMISSIONS)]));
  const seed = compactSeed(options.initialUsers ?? []);
  const faults = new FaultInjector(options.faults ?? {}, options.faultSeed ?? 1);
  const lockRng = createRng((options.faultSeed ?? 1) + 1);
  const initialRateLimits: Record<RateLimitedEndpoints, RateLimit> = {
    track: options.rateLimit ?? { requests: 3_000, windowMs: 3_000 },
    identity: options.identityRateLimit ?? { requests: 20_000, windowMs: 60_000 },
  };
  const rateLimits: Record<RateLimitedEndpoints, FixedWindowRateLimit> = {
    track: new FixedWindowRateLimit(initialRateLimits.track),
    identity: new FixedWindowRateLimit(initialRateLimits.identity),
  };
  const objectLimit = options.objectLimit ?? { mode: 'per_array', max: 75 };
  const maxArrayLength = options.maxArrayLength ?? 500;
  let blockedExternalIds = new Set<string>();
  let requests = new Map<string, number>();
  let rateLimited = new Map<string, number>();
  const countRateLimited = (endpoint: string) => rateLimited.set(endpoint, (rateLimited.get(endpoint) ?? 0) + 1);
  let unansweredTrack = { requests: 0, events: 0 };
  /** Bodies of accepted `/users/track` requests, kept on request (a benchmark replays them through a bare client). */
  let trackBodies: { keep: number; bodies: string[] } = { keep: 0, bodies: [] };
  let store = new ProfileStore();
  let eventLog = new EventLog();
  let partner = new PartnerCohorts(store);
  /** Aborts the Currents sends still retrying when the sandbox closes. */
  const closing = new AbortController();

  const rest: Record<string, { permission: string; handle: Handler; rateLimit?: FixedWindowRateLimit }> = {
    '/users/track': {
      permission: 'users.track',
      handle: (body) => handleTrack(body, store, eventLog, { objectLimit, blockedExternalIds, maxArrayLength }, new Date()),
      rateLimit: rateLimits.track,
    },
    '/users/export/ids': { permission: 'users.export.ids', handle: (body) => exportIds(body, store) },
    '/users/alias/new': { permission: 'users.alias.new', handle: (body) => newAliases(body, store), rateLimit: rateLimits.identity },
    '/users/identify': { permission: 'users.identify', handle: (body) => identify(body, store), rateLimit: rateLimits.identity },
    '/users/merge': { permission: 'users.merge', handle: (body) => merge(body, store), rateLimit: rateLimits.identity },
    '/users/delete': { permission: 'users.delete', handle: (body) => deleteUsers(body, store), rateLimit: rateLimits.identity },
  };
  const partnerRoutes: Record<string, Handler> = {
    '/cohorts': (body) => partner.upsertCohort(body),
    '/cohorts/users': (body) => partner.changeUsers(body),
  };

  const respondRest = (req: IncomingMessage, res: ServerResponse, path: string, raw: Buffer, arrivedAtMs: number): void => {
    const route = rest[path];
    if (!route) return sendJson(res, 404, { message: 'Not Found' });
    const match = /^Bearer (.+)$/.exec(req.headers.authorization ?? '');
    const permissions = match ? keys.get(match[1]!) : undefined;
    if (!permissions) return sendJson(res, 401, { message: 'Invalid API Key' });
    if (!permissions.has(route.permission)) return sendJson(res, 403, { message: 'Access Denied' });
    let headers: Record<string, string> = {};
    if (route.rateLimit) {
      const slot = route.rateLimit.take(arrivedAtMs);
      if (!slot.allowed) {
        countRateLimited(`POST ${path}`);
        return sendJson(res, 429, { message: 'Rate Limited' }, slot.headers);
      }
      headers = slot.headers;
    }
    const body = parseObject(raw);
    const reply = body ? route.handle(body) : { status: 400, body: { message: 'Invalid JSON in request body' } };
    if (path === '/users/track' && reply.status < 300 && trackBodies.bodies.length < trackBodies.keep) {
      trackBodies.bodies.push(raw.toString('utf8'));
    }
    // Applied, but the sender closed its end while the request was held (its answer goes nowhere).
    if (path === '/users/track' && reply.status < 300 && body && (req.socket.destroyed || !req.socket.readable)) {
      unansweredTrack.requests += 1;
      unansweredTrack.events += Array.isArray(body.events) ? body.events.length : 0;
    }
    sendJson(res, reply.status, reply.body, headers);
  };

  /** Keys travel in the body: `partner_api_key` and `client_secret` (the workspace's Data Import Key). */
  const respondPartner = (
    res: ServerResponse,
    handler: Handler,
    raw: Buffer,
    keys: { partnerApiKey: string; dataImportKeys: string[] },
  ): void => {
    const body = parseObject(raw);
    if (!body) return sendJson(res, 400, { message: 'Invalid JSON in request body' });
    if (body.partner_api_key !== keys.partnerApiKey || !keys.dataImportKeys.includes(String(body.client_secret))) {
      return sendJson(res, 401, { message: 'Invalid partner_api_key or client_secret' });
    }
    if (lockRng() < (options.partnerLockedRate ?? 0)) return sendJson(res, 423, { message: 'Resource locked' });
    const reply = handler(body);
    sendJson(res, reply.status, reply.body);
  };

  const inspect = (method: string, url: URL, res: ServerResponse, raw: Buffer): void | Promise<void> => {
    const [, , resource, id] = url.pathname.split('/').map(decodeURIComponent);
    const body = raw.length === 0 ? {} : parseObject(raw);
    if (!body) return sendJson(res, 400, { message: 'Invalid JSON in request body' });
    if (method === 'GET' && resource === 'state') {
      const cohorts = [...partner.cohorts.values()].map((c) => ({
        cohort_id: c.cohortId,
        name: c.name,
        members: partner.members(c).length,
      }));
      return sendJson(res, 200, {
        users: store.size,
        events: eventLog.size,
        dataPoints: control.dataPoints(),
        requests: control.requestCounts(),
        trackWindows: rateLimits.track.history(),
        identityWindows: rateLimits.identity.history(),
        cohorts,
      });
    }
    if (method === 'GET' && resource === 'events') {
      const filter = { name: url.searchParams.get('name') ?? undefined, externalId: url.searchParams.get('external_id') ?? undefined };
      return sendJson(res, 200, { events: control.events(filter) });
    }
    if (method === 'GET' && resource === 'event-arrivals') {
      // `?from=N`: the events recorded from the N-th on, with their arrival times (a benchmark's latency probe).
      const from = Math.max(0, Number(url.searchParams.get('from') ?? 0) || 0);
      const arrivals = eventLog.arrivals(from, MAX_LISTED_ARRIVALS);
      return sendJson(res, 200, { from, next: from + arrivals.length, arrivals });
    }
    if (method === 'GET' && resource === 'users' && id) {
      const profile = store.find({ kind: 'external_id', value: id });
      return profile ? sendJson(res, 200, exportedProfile(profile)) : sendJson(res, 404, { message: 'no such user' });
    }
    if (method === 'GET' && resource === 'cohorts' && id) {
      const cohort = control.cohort(id);
      return cohort ? sendJson(res, 200, cohort) : sendJson(res, 404, { message: 'no such cohort' });
    }
    if (method === 'POST' && resource === 'faults') {
      control.setFaults(faultsOf(body));
      return sendJson(res, 200, faults.current);
    }
    // `/_sandbox/rate-limit` sets the /users/track limit, `/_sandbox/rate-limit/identity` the identity endpoints'.
    if (method === 'POST' && resource === 'rate-limit') {
      const endpoints = id ?? 'track';
      if (!isRateLimited(endpoints)) return sendJson(res, 404, { message: 'the limits are track and identity' });
      if (!isPositive(body.requests) || !isPositive(body.windowMs))
        return sendJson(res, 400, { message: 'requests and windowMs must be positive numbers' });
      control.setRateLimit({ requests: body.requests, windowMs: body.windowMs }, endpoints);
      return sendJson(res, 200, rateLimits[endpoints].current);
    }
    if (method === 'POST' && resource === 'track-bodies') {
      if (!isPositive(body.keep)) return sendJson(res, 400, { message: 'keep must be a positive number' });
      trackBodies = { keep: body.keep, bodies: [] };
      return sendJson(res, 200, { keep: body.keep });
    }
    if (method === 'GET' && resource === 'track-bodies') return sendJson(res, 200, { bodies: trackBodies.bodies });
    if (method === 'POST' && resource === 'currents' && id === 'send') return respondCurrentsSend(res, body);
    if (method === 'POST' && resource === 'reset') {
      control.reset();
      return sendJson(res, 200, { message: 'reset' });
    }
    sendJson(res, 404, { message: 'unknown sandbox endpoint' });
  };

  const respond = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    // Braze counts a request against the rate window it arrives in, whatever the processing time after that.
    const arrivedAtMs = Date.now();
    const method = req.method ?? 'GET';
    const url = new URL(req.url ?? '/', 'http://sandbox');
    const path = url.pathname;
    let raw: Buffer;
    try {
      raw = await readBody(req, BODY_LIMIT_BYTES);
    } catch (error) {
      if (error instanceof BodyTooLargeError) return sendJson(res, 413, { message: 'Request Entity Too Large' });
      throw error;
    }
    if (path.startsWith('/_sandbox/')) return inspect(method, url, res, raw);

    const endpoint = `${method} ${path.replace(/^\/partners\/[^/]+/, '/partners/{partner}')}`;
    requests.set(endpoint, (requests.get(endpoint) ?? 0) + 1);
    await faults.delay();
    // Injected failures still carry the rate-limit headers Braze sends on every answer of a limited endpoint.
    const rateLimit = rest[path]?.rateLimit;
    if (rateLimit) for (const [name, value] of Object.entries(rateLimit.peek(Date.now()))) res.setHeader(name, value);
    if (faults.maybeFail(res)) {
      if (res.statusCode === 429) countRateLimited(endpoint);
      return; // an injected 5xx or 429 applies nothing
    }
    if (method !== 'POST') return sendJson(res, 404, { message: 'Not Found' });
    const partnerPrefix = options.partner && `/partners/${options.partner.name}`;
    const partnerHandler =
      partnerPrefix && path.startsWith(`${partnerPrefix}/`) ? partnerRoutes[path.slice(partnerPrefix.length)] : undefined;
    if (options.partner && partnerHandler) return respondPartner(res, partnerHandler, raw, options.partner);
    respondRest(req, res, path, raw, arrivedAtMs);
  };

  /** Answers the report once the send is over; an invalid request gets 400 before anything is sent. */
  const respondCurrentsSend = async (res: ServerResponse, body: Record<string, unknown>): Promise<void> => {
    let report: CurrentsSendReport;
    try {
      report = await control.sendCurrents(body as CurrentsSendRequest);
    } catch (error) {
      if (error instanceof z.ZodError) return sendJson(res, 400, { message: z.prettifyError(error) });
      throw error;
    }
    sendJson(res, 200, report);
  };

  const server = createServer((req, res) => {
    respond(req, res).catch((error: unknown) => {
      if (!res.headersSent) sendJson(res, 500, { message: error instanceof Error ? error.message : 'internal error' });
    });
  });

  const control: BrazeSandboxControl = {
    user: (externalId) => store.find({ kind: 'external_id', value: externalId }),
    users: () => store.profiles(),
    cohort: (cohortId) => {
      const cohort = partner.cohorts.get(cohortId);
      if (!cohort) return undefined;
      const members = partner.members(cohort).map((profile) => profile.externalId ?? profile.brazeId);
      return { cohortId: cohort.cohortId, name: cohort.name, members: members.sort() };
    },
    dataPoints: () => ({ total: store.totalDataPoints(), byKind: Object.fromEntries(store.dataPoints) }),
    events: (filter) => eventLog.list(filter),
    requestCounts: () => Object.fromEntries(requests),
    rateLimitedCounts: () => Object.fromEntries(rateLimited),
    unansweredTrack: () => ({ ...unansweredTrack }),
    setFaults: (next) => faults.setFaults(next),
    setRateLimit: (next, endpoints = 'track') => rateLimits[endpoints].set(next),
    setBlockedExternalIds: (ids) => {
      blockedExternalIds = new Set(ids);
    },
    sendCurrents: (request) => sendCurrents(request, () => audienceOf(store), closing.signal),
    reset: () => {
      store = new ProfileStore();
      loadSeed(store, seed);
      eventLog = new EventLog();
      partner = new PartnerCohorts(store);
      requests = new Map();
      rateLimited = new Map();
      unansweredTrack = { requests: 0, events: 0 };
      trackBodies = { keep: 0, bodies: [] };
      blockedExternalIds = new Set(options.blockedExternalIds ?? []);
      for (const endpoints of RATE_LIMITED_ENDPOINTS) rateLimits[endpoints].set(initialRateLimits[endpoints]);
      faults.setFaults(options.faults ?? {});
    },
  };
  control.reset();

  const url = await listen(server, options.port ?? 0, options.host ?? '127.0.0.1');
  return {
    url,
    control,
    close: () => {
      closing.abort(new Error('the Braze sandbox closed'));
      return closeServer(server);
    },
  };
}

function parseObject(raw: Buffer): Record<string, unknown> | undefined {
  try {
    const parsed: unknown = JSON.parse(raw.toString('utf8'));
    return isPlainObject(parsed) ? parsed : undefined;
  } catch {
    return undefined;
  }
}

function faultsOf(body: Record<string, unknown>): SandboxFaults {
  const numeric = (['serverErrorRate', 'rateLimitBurstEvery', 'rateLimitBurstLength', 'latencyMs'] as const).filter(
    (key) => typeof body[key] === 'number',
  );
  return Object.fromEntries(numeric.map((key) => [key, body[key]]));
}

const RATE_LIMITED_ENDPOINTS: readonly RateLimitedEndpoints[] = ['track', 'identity'];

function isRateLimited(name: string): name is RateLimitedEndpoints {
  return (RATE_LIMITED_ENDPOINTS as readonly string[]).includes(name);
}

function isPositive(value: unknown): value is number {
  return typeof value === 'number' && value > 0;
}
