/** The state one Amplitude sandbox shares across its handlers, and the per-request exchange they receive. */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Dataset } from '../dataset.js';
import { sendJson, type FaultInjector } from '../http-util.js';
import type { CohortExports } from './cohort-exports.js';
import type { CohortWebhooks } from './cohort-webhooks.js';
import type { UserDeletions } from './deletions.js';
import type { EventStreamWebhooks } from './event-stream-webhooks.js';
import type { Ingestion } from './ingestion.js';
import type { Countdown, FixedWindowCounter, SlidingWindowLimit } from './limits.js';
import type { AmplitudeFaults, ResolvedOptions } from './options.js';
import type { ProfileStore } from './profiles.js';

export interface SandboxContext {
  options: ResolvedOptions;
  dataset: Dataset;
  /** The sandbox's own base URL (for pre-signed links); known once the server listens. */
  baseUrl: string;
  faults: FaultInjector;
  /** The `exportTimeouts` fault, apart from the faults every endpoint shares. */
  exportTimeouts: Countdown;
  cohortExports: CohortExports;
  /** The Cohort Webhooks destination, when one is configured. */
  cohortWebhooks: CohortWebhooks;
  /** The Webhooks streaming destination (events and users as they are ingested), when one is configured. */
  eventStream: EventStreamWebhooks;
  profiles: ProfileStore;
  ingestion: Ingestion;
  /** Profile API requests per minute, org-wide. */
  profileRequests: FixedWindowCounter;
  /** Every User Profile API request so far: answered, and refused for the per-minute limit (429). */
  profileRequestTotals: { answered: number; refused: number };
  /** Answered User Profile API requests per minute (epoch minute → count): what a benchmark compares with the limit. */
  profileRequestsByMinute: Map<number, number>;
  /** User Activity requests per hour, project-wide. */
  userLookupRequests: FixedWindowCounter;
  /** The User Privacy API's deletion jobs. */
  deletions: UserDeletions;
  /** Deletion requests (POST) in the last second. */
  deletionRequests: SlidingWindowLimit;
}

export interface Exchange {
  req: IncomingMessage;
  res: ServerResponse;
  url: URL;
  context: SandboxContext;
}

export function setFaults(context: SandboxContext, { exportTimeouts = 0, ...shared }: AmplitudeFaults): void {
  context.faults.setFaults(shared);
  context.exportTimeouts.set(exportTimeouts);
}

export function currentFaults(context: SandboxContext): AmplitudeFaults {
  const exportTimeouts = context.exportTimeouts.remaining;
  return { ...context.faults.current, ...(exportTimeouts > 0 ? { exportTimeouts } : {}) };
}

const ERROR_TYPES: Record<number, string> = {
  400: 'bad_request',
  401: 'unauthorized',
  403: 'forbidden',
  404: 'not_found',
  429: 'too_many_requests',
};

/** The error shape Amplitude's cohort endpoints document: `{"error":{http_code,type,message}}`. */
export function sendApiError(res: ServerResponse, status: number, message: string): void {
  sendJson(res, status, { error: { http_code: status, type: ERROR_TYPES[status] ?? 'error', message } });
}
