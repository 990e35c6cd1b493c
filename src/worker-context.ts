/**
 * What activities need from the worker process: vendor clients built from the worker's own credentials and
 * the state store. Workflows never see any of it — they carry references, not secrets.
 */
import { hostname } from 'node:os';
import { AmplitudeClient } from './amplitude/client.js';
import { BrazeClient } from './braze/client.js';
import { loadCurrentsConfig, type AmplitudeConfig, type AppConfig, type CurrentsConfig } from './config.js';
import { UsageCounter } from './operator/usage-counter.js';
import { SuppressionList, suppressionKeyOf } from './privacy/suppression.js';
import { SharedRateLimiter } from './rate-limiter.js';
import { RequestLedger } from './request-ledger.js';
import { openStateStore } from './store/index.js';
import type { StateStore } from './store/store.js';

export interface WorkerContext {
  workerIdentity: string;
  amplitude: AmplitudeClient;
  amplitudeProfileApiAvailable: boolean;
  /** The User Activity API's limit (device-id lookups), shared through the store by every worker. */
  amplitudeUserLookups: SharedRateLimiter;
  /** The project's share of the User Profile API limit, shared through the store by every worker and sync. */
  amplitudeProfiles: SharedRateLimiter;
  braze: BrazeClient;
  brazePartnerConfigured: boolean;
  /** `/users/track` requests in flight per page activity. */
  brazeConcurrency: number;
  /** The workspace's `/users/track` limit, shared through the store by every worker. */
  brazeLimiter: SharedRateLimiter;
  brazeObjectsPerRequest: number;
  cohortDownloadsPerMonth: number;
  cohortExportMaxWaitMs: number;
  activeWindowDays: number;
  sentEventLedgerDays: number;
  activityIndexMaxAgeMs: number;
  /** The scope of the attribute snapshot: the Braze workspace. */
  brazeWorkspace: string;
  /** Every vendor request of every page goes through it (shared by the worker's pages, so records batch up). */
  requestLedger: RequestLedger;
  /** Forwarding Braze Currents events to Amplitude: which API, which event types, when the backlog warns. */
  currents: CurrentsConfig;
  /** Erased users: every sync and stream leaves them out before it stages or sends anything. */
  suppression: SuppressionList;
  /** Braze's identity endpoints (alias, identify, merge, delete) share one limit, kept in the store for every worker. */
  brazeIdentityLimiter: SharedRateLimiter;
  /** Amplitude's User Privacy API takes about one request a second, shared through the store by every worker. */
  amplitudeDeletionLimiter: SharedRateLimiter;
  /** Vendor answers and rows staged and sent, counted for `ampbraze usage`, `ampbraze syncs` and `/metrics`. */
  usage: UsageCounter;
  store: StateStore;
}

export const BRAZE_CONCURRENCY = 8;

export async function createWorkerContext(
  config: Pick<AppConfig, 'amplitude' | 'braze' | 'store'> & Partial<Pick<AppConfig, 'currents'>>,
): Promise<WorkerContext> {
  const { amplitude, braze } = config;
  const store = await openStateStore(config.store);
  const usage = new UsageCounter(store);
  // Whoever closes the worker's store (the worker, a test, the demo), its last usage counts are written first.
  const closeStore = store.close.bind(store);
  store.close = async () => {
    await usage.close();
    await closeStore();
  };
  return {
    workerIdentity: `${process.pid}@${hostname()}`,
    amplitude: amplitudeClientOf(amplitude, usage),
    amplitudeProfileApiAvailable: amplitude.profileApiUrl !== undefined,
    amplitudeUserLookups: new SharedRateLimiter(
      store,
      `amplitude:${new URL(amplitude.apiUrl).host}:/api/2/useractivity`,
      amplitude.userLookupRate,
    ),
    amplitudeProfiles: profileApiLimiter(store, amplitude),
    braze: new BrazeClient({
      restEndpoint: braze.restEndpoint,
      apiKey: braze.apiKey.reveal(),
      objectLimit: { mode: braze.objectLimit.mode, max: braze.objectLimit.maxObjects },
      maxWaitMs: braze.maxWaitMs,
      onAnswer: usage.vendorAnswer,
      partner: braze.partner && {
        name: braze.partner.name,
        partnerApiKey: braze.partner.partnerApiKey.reveal(),
        dataImportKey: braze.partner.dataImportKey.reveal(),
      },
    }),
    brazePartnerConfigured: braze.partner !== undefined,
    brazeConcurrency: BRAZE_CONCURRENCY,
    // Keyed by endpoint host: workers syncing into one workspace share its limit.
    brazeLimiter: new SharedRateLimiter(store, `braze:${new URL(braze.restEndpoint).host}:/users/track`, braze.rateLimit, {
      adoptsVendorLimit: true,
    }),
    brazeObjectsPerRequest: braze.objectLimit.maxObjects,
    cohortDownloadsPerMonth: amplitude.cohortDownloadsPerMonth,
    cohortExportMaxWaitMs: amplitude.exportMaxWaitMs,
    activeWindowDays: amplitude.activeWindowDays,
    sentEventLedgerDays: amplitude.sentEventLedgerDays,
    activityIndexMaxAgeMs: amplitude.activityIndexMaxAgeMs,
    brazeWorkspace: braze.workspace,
    currents: config.currents ?? loadCurrentsConfig({}),
    requestLedger: new RequestLedger(store),
    suppression: new SuppressionList(store, suppressionKeyOf(amplitude)),
    brazeIdentityLimiter: new SharedRateLimiter(store, `braze:${new URL(braze.restEndpoint).host}:identity-endpoints`, {
      requests: 20_000,
      windowMs: 60_000,
    }),
    amplitudeDeletionLimiter: new SharedRateLimiter(store, `amplitude:${new URL(amplitude.apiUrl).host}:/api/2/deletions/users`, {
      requests: 1,
      windowMs: 1_000,
    }),
    usage,
    store,
  };
}

/** The Amplitude client of a process (a worker, or a receiver that serves Connected Content). */
export function amplitudeClientOf(amplitude: AmplitudeConfig, usage: UsageCounter): AmplitudeClient {
  return new AmplitudeClient({
    apiKey: amplitude.apiKey.reveal(),
    secretKey: amplitude.secretKey.reveal(),
    apiUrl: amplitude.apiUrl,
    // Without a Profile API (EU), calls fail with a clear error; the doctor reports it as skipped.
    profileApiUrl: amplitude.profileApiUrl ?? amplitude.apiUrl,
    ingestUrl: amplitude.ingestUrl,
    maxWaitMs: amplitude.maxWaitMs,
    onAnswer: usage.vendorAnswer,
  });
}

/** The project's share of the User Profile API limit: one budget for every worker, sync and receiver, kept in the store. */
export function profileApiLimiter(store: StateStore, amplitude: AmplitudeConfig): SharedRateLimiter {
  return new SharedRateLimiter(
    store,
    `amplitude:${new URL(amplitude.profileApiUrl ?? amplitude.apiUrl).host}:/v1/userprofile`,
    amplitude.profileRate,
  );
}
