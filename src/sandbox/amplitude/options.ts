/** The Amplitude sandbox's options and their defaults (the vendor's documented limits). */
import type { Dataset } from '../dataset.js';
import type { SandboxFaults } from '../http-util.js';

export interface AmplitudeFaults extends SandboxFaults {
  /** The next this many Export API requests (past the range checks) are answered 504. */
  exportTimeouts?: number;
}

export interface AmplitudeSandboxOptions {
  /** 0 (the default) picks a free port. */
  port?: number;
  host?: string;
  apiKey: string;
  secretKey: string;
  dataset: Dataset;
  /** How long a cohort export stays "JOB INPROGRESS" (Infinity: never completes). */
  exportJobDurationMs?: number;
  monthlyDownloadQuota?: number;
  /** Shared by every `/api/*` request, including a file still streaming. */
  maxConcurrentRequests?: number;
  perCohortRequestsPer10Min?: number;
  maxCohortSize?: number;
  /** Estimated files above this size are served through a 302 to a pre-signed `/s3/…` link. */
  inlineFileMaxBytes?: number;
  presignedUrlTtlMs?: number;
  gzipFiles?: boolean;
  /** Serve cohort files and event exports no faster than this (default: unthrottled), e.g. to catch a worker mid-download. */
  fileBytesPerSecond?: number;
  /** Prefix every CSV value with a tab, as group cohorts do. */
  tabPrefixValues?: boolean;
  /** Repeat the `amplitude_id` header column, as one consumer saw with `props=1`. */
  duplicateAmplitudeIdHeader?: boolean;
  profileRequestsPerMinute?: number;
  /** The User Activity / User Search limits: queries per hour and concurrent requests. */
  userLookupsPerHour?: number;
  userLookupConcurrency?: number;
  /** Unknown users on the Profile API: the body is always the error; the status is undocumented. */
  unknownProfileStatus?: 200 | 404;
  /** HTTP V2 per user/device limit. */
  eventsPerSecondPerId?: number;
  /** Batch per user/device limit, averaged over 30 s. */
  batchEventsPerSecondPerId?: number;
  /** Export API requests whose estimated size exceeds this get a 400. */
  exportMaxBytes?: number;
  /** An Export API hour with more events is split into files `#0`, `#1`, … of this many events (default 50,000). */
  exportEventsPerFile?: number;
  /** User Privacy API deletion requests (POST) per second (default 1). */
  deletionRequestsPerSecond?: number;
  faults?: AmplitudeFaults;
  faultSeed?: number;
}

export type ResolvedOptions = Required<Omit<AmplitudeSandboxOptions, 'port' | 'host' | 'dataset' | 'faults' | 'faultSeed'>>;

export function resolveOptions(options: AmplitudeSandboxOptions): ResolvedOptions {
  return {
    apiKey: options.apiKey,
    secretKey: options.secretKey,
    exportJobDurationMs: options.exportJobDurationMs ?? 1_500,
    monthlyDownloadQuota: options.monthlyDownloadQuota ?? 500,
    maxConcurrentRequests: options.maxConcurrentRequests ?? 5,
    perCohortRequestsPer10Min: options.perCohortRequestsPer10Min ?? 60,
    maxCohortSize: options.maxCohortSize ?? 2_000_000,
    inlineFileMaxBytes: options.inlineFileMaxBytes ?? 64 * 1024,
    presignedUrlTtlMs: options.presignedUrlTtlMs ?? 60_000,
    gzipFiles: options.gzipFiles ?? false,
    fileBytesPerSecond: options.fileBytesPerSecond ?? Infinity,
    tabPrefixValues: options.tabPrefixValues ?? false,
    duplicateAmplitudeIdHeader: options.duplicateAmplitudeIdHeader ?? false,
    profileRequestsPerMinute: options.profileRequestsPerMinute ?? 600,
    userLookupsPerHour: options.userLookupsPerHour ?? 360,
    userLookupConcurrency: options.userLookupConcurrency ?? 10,
    unknownProfileStatus: options.unknownProfileStatus ?? 200,
    eventsPerSecondPerId: options.eventsPerSecondPerId ?? 30,
    batchEventsPerSecondPerId: options.batchEventsPerSecondPerId ?? 1_000,
    exportMaxBytes: options.exportMaxBytes ?? 4 * 1024 ** 3,
    exportEventsPerFile: options.exportEventsPerFile ?? 50_000,
    deletionRequestsPerSecond: options.deletionRequestsPerSecond ?? 1,
  };
}
