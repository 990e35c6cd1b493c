/**
 * A faithful local Amplitude: one loopback HTTP server for every Amplitude API the sync uses (cohorts, export,
 * profile, HTTP V2/Batch, identify), over a seeded Dataset, with the vendor's limits and failure modes.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Dataset, ExportLine, SandboxCohort } from '../dataset.js';
import { closeServer, FaultInjector, listen, sendJson } from '../http-util.js';
import { CohortExports } from './cohort-exports.js';
import { CohortWebhooks, type CohortWebhookDestination, type CohortWebhookReport } from './cohort-webhooks.js';
import { EventStreamWebhooks, type EventStreamDestination, type EventStreamReport } from './event-stream-webhooks.js';
import { recomputeCohort, type MembershipChange } from './control-api.js';
import { sendApiError, setFaults, type Exchange, type SandboxContext } from './context.js';
import { UserDeletions, type DeletionJobView } from './deletions.js';
import { countExportLinesInHour, exportLinesInHour } from './export-api.js';
import { Ingestion, type IngestedEvent } from './ingestion.js';
import { ConcurrencyGate, Countdown, FixedWindowCounter, SlidingWindowLimit } from './limits.js';
import { resolveOptions, type AmplitudeFaults, type AmplitudeSandboxOptions } from './options.js';
import { ProfileStore, type UserIds } from './profiles.js';
import { matchRoute } from './routes.js';
import type { UserProperties } from './user-properties.js';

export type { AmplitudeFaults, AmplitudeSandboxOptions } from './options.js';
export type { IngestedEvent } from './ingestion.js';
export type { CohortWebhookDestination, CohortWebhookReport } from './cohort-webhooks.js';
export type { EventStreamDestination, EventStreamReport } from './event-stream-webhooks.js';
export type { MembershipChange } from './control-api.js';
export type { DeletionJobView } from './deletions.js';

export interface AmplitudeSandboxControl {
  readonly dataset: Dataset;
  ingestedEvents(): IngestedEvent[];
  downloadRequestsThisMonth(): number;
  /** User Profile API requests so far: answered, and refused (429) for the per-minute limit. */
  profileRequestTotals(): { answered: number; refused: number };
  /** User Activity requests answered or refused in the current hour. */
  userLookupsThisHour(): number;
  /** Replaces every fault, `exportTimeouts` included. */
  setFaults(faults: AmplitudeFaults): void;
  /** What the Export API serves for the hour starting at `hourStartMs`: dataset and ingested lines, in file order. */
  exportedEvents(hourStartMs: number): Iterable<ExportLine>;
  /** How many lines `exportedEvents` would give, without building them. */
  exportedEventCount(hourStartMs: number): number;
  /** Makes every pre-signed `/s3/…` link issued so far expired (the `/file` links stay valid). */
  expireExportLinksNow(): void;
  /** Applies to jobs already running too: 0 completes them all, Infinity never completes. */
  setExportJobDurationMs(ms: number): void;
  /** The Export API's size limit from now on (a request estimated above it gets a 400). */
  setExportMaxBytes(bytes: number): void;
  /** A user's current properties (seeded, then updated by identify and events); undefined if never seen. */
  userProperties(ids: UserIds): UserProperties | undefined;
  /** Where cohort webhooks go from now on (`undefined`: nowhere). Throws a ZodError for an invalid destination. */
  configureCohortWebhooks(destination: CohortWebhookDestination | undefined): void;
  /**
   * Recomputes a cohort (`lastComputed` moves on) and posts its enter/leave webhook batches; resolves once they were
   * acknowledged or given up. Throws for an unknown cohort or user.
   */
  recomputeCohort(cohortId: string, change: MembershipChange): Promise<{ cohort: SandboxCohort; webhook: CohortWebhookReport }>;
  /** Every cohort webhook post so far. */
  cohortWebhookReport(): CohortWebhookReport;
  /** Where the Webhooks streaming destination sends from now on (`undefined`: nowhere). Throws a ZodError for an invalid one. */
  configureEventStream(destination: EventStreamDestination | undefined): void;
  /** Everything the streaming destination sent so far. */
  eventStreamReport(): EventStreamReport;
  /** Resolves once every streaming delivery so far was acknowledged, dropped or expired. */
  eventStreamSettled(): Promise<void>;
  /** Every User Privacy API deletion job, in day order, as `GET /api/2/deletions/users` lists them. */
  deletionJobs(): DeletionJobView[];
  /** Moves the deletion jobs' clock `days` ahead; the users of jobs done by then are deleted. */
  advanceDeletionClock(days: number): void;
}

export interface AmplitudeSandbox {
  /** e.g. `http://127.0.0.1:PORT`: the API, Profile API and ingestion base URL alike. */
  url: string;
  close(): Promise<void>;
  control: AmplitudeSandboxControl;
}

const HTTP_V2_RATE_WINDOW_MS = 1_000;
/** Batch averages the per-id rate over 30 s. */
const BATCH_RATE_WINDOW_MS = 30_000;

function hasValidBasicAuth(req: IncomingMessage, apiKey: string, secretKey: string): boolean {
  const header = req.headers.authorization;
  if (!header?.startsWith('Basic ')) return false;
  return Buffer.from(header.slice('Basic '.length), 'base64').toString('utf8') === `${apiKey}:${secretKey}`;
}

export async function startAmplitudeSandbox(options: AmplitudeSandboxOptions): Promise<AmplitudeSandbox> {
  const resolved = resolveOptions(options);
  const profiles = new ProfileStore(options.dataset);
  const eventStream = new EventStreamWebhooks();
  const context: SandboxContext = {
    options: resolved,
    dataset: options.dataset,
    baseUrl: '',
    faults: new FaultInjector({}, options.faultSeed ?? 1),
    exportTimeouts: new Countdown(),
    cohortExports: new CohortExports(),
    cohortWebhooks: new CohortWebhooks(options.dataset),
    eventStream,
    profiles,
    ingestion: new Ingestion(
      profiles,
      {
        httpapi: { eventsPerSecondPerId: resolved.eventsPerSecondPerId, windowMs: HTTP_V2_RATE_WINDOW_MS },
        batch: { eventsPerSecondPerId: resolved.batchEventsPerSecondPerId, windowMs: BATCH_RATE_WINDOW_MS },
      },
      (line) => eventStream.eventIngested(line),
    ),
    profileRequests: new FixedWindowCounter(60_000),
    profileRequestTotals: { answered: 0, refused: 0 },
    profileRequestsByMinute: new Map(),
    userLookupRequests: new FixedWindowCounter(3_600_000),
    deletions: new UserDeletions(profiles),
    deletionRequests: new SlidingWindowLimit(1_000),
  };
  setFaults(context, options.faults ?? {});
  const gates = {
    dashboard: new ConcurrencyGate(resolved.maxConcurrentRequests),
    'user-lookup': new ConcurrencyGate(resolved.userLookupConcurrency),
  };

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', context.baseUrl);
    const matched = matchRoute(req.method ?? 'GET', url.pathname);
    if (!matched) {
      res.writeHead(404, { 'content-length': 0 }).end();
      return;
    }
    const { route, params } = matched;
    // A job's users are deleted once its day is over: no request after that finds them.
    context.deletions.carryOutDone();
    if (route.guard === 'dashboard' || route.guard === 'user-lookup') {
      if (!hasValidBasicAuth(req, resolved.apiKey, resolved.secretKey)) {
        sendApiError(res, 401, 'Invalid API key or secret key');
        return;
      }
      const gate = gates[route.guard];
      if (!gate.tryAcquire(res)) {
        sendApiError(res, 429, `Too many concurrent requests: the limit is ${gate.limit} concurrent requests`);
        return;
      }
    }
    // After the concurrency gate, so a slow (or failing) request holds its slot as it would at Amplitude.
    if (route.guard !== 'open') {
      await context.faults.delay();
      if (context.faults.maybeFail(res)) return;
    }
    const exchange: Exchange = { req, res, url, context };
    await route.handle(exchange, ...params);
  }

  const server = createServer((req, res) => {
    handle(req, res).catch((error: unknown) => {
      if (res.headersSent) res.destroy();
      else sendJson(res, 500, { error: error instanceof Error ? error.message : String(error) });
    });
  });
  context.baseUrl = await listen(server, options.port ?? 0, options.host ?? '127.0.0.1');

  return {
    url: context.baseUrl,
    close: () => {
      context.cohortWebhooks.close();
      context.eventStream.close();
      return closeServer(server);
    },
    control: {
      dataset: options.dataset,
      ingestedEvents: () => context.ingestion.list(),
      downloadRequestsThisMonth: () => context.cohortExports.monthlyRequests.count(),
      userLookupsThisHour: () => context.userLookupRequests.count('project'),
      profileRequestTotals: () => ({ ...context.profileRequestTotals }),
      setFaults: (faults) => setFaults(context, faults),
      exportedEvents: (hourStartMs) => exportLinesInHour(context, hourStartMs),
      exportedEventCount: (hourStartMs) => countExportLinesInHour(context, hourStartMs),
      expireExportLinksNow: () => context.cohortExports.expireLinksNow(),
      setExportJobDurationMs: (ms) => {
        resolved.exportJobDurationMs = ms;
      },
      setExportMaxBytes: (bytes) => {
        resolved.exportMaxBytes = bytes;
      },
      userProperties: (ids) => profiles.find(ids)?.properties,
      configureCohortWebhooks: (destination) => context.cohortWebhooks.configure(destination),
      recomputeCohort: (cohortId, change) => recomputeCohort(context, cohortId, change),
      cohortWebhookReport: () => context.cohortWebhooks.report(),
      configureEventStream: (destination) => context.eventStream.configure(destination),
      eventStreamReport: () => context.eventStream.sent(),
      eventStreamSettled: () => context.eventStream.settled(),
      deletionJobs: () => context.deletions.list(),
      advanceDeletionClock: (days) => context.deletions.advance(days),
    },
  };
}
