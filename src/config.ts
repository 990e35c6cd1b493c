/**
 * Configuration from the environment (plus a `.env` file in the working directory), validated with zod.
 * Each component loads only the section it needs, and every loader reports all of its problems in one
 * ConfigError. Credentials stay wrapped in `Secret`, which prints as `***` (string, JSON, console) until a
 * client calls `reveal()`.
 */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { inspect } from 'node:util';
import { z } from 'zod';
import type { RateLimit } from './rate-limiter.js';

export type Env = Readonly<Record<string, string | undefined>>;

const REDACTED = '***';

export const DEFAULT_TASK_QUEUE = 'amplitude-braze-sync';

export class Secret {
  readonly #value: string;

  constructor(value: string) {
    this.#value = value;
  }

  reveal(): string {
    return this.#value;
  }

  toString(): string {
    return REDACTED;
  }

  toJSON(): string {
    return REDACTED;
  }

  [inspect.custom](): string {
    return REDACTED;
  }
}

export interface ConfigProblem {
  variable: string;
  message: string;
}

export class ConfigError extends Error {
  override readonly name = 'ConfigError';

  constructor(readonly problems: readonly ConfigProblem[]) {
    super(formatConfigError(problems));
  }
}

export function formatConfigError(problems: readonly ConfigProblem[]): string {
  const heading = `Invalid configuration (${problems.length} problem${problems.length === 1 ? '' : 's'}):`;
  return [heading, ...problems.map(({ variable, message }) => `  ${variable}: ${message}`)].join('\n');
}

/** `process.env` after merging `.env` from the working directory; variables that are already set win. */
export function environment(): Env {
  if (existsSync('.env')) process.loadEnvFile('.env');
  return process.env;
}

// ---------------------------------------------------------------------------------------------------------
// Sections

export interface TemporalConfig {
  address: string;
  namespace: string;
  taskQueue: string;
  apiKey: Secret | undefined;
  /** Undefined for a plaintext connection. */
  tls: TemporalTlsConfig | undefined;
  /** gRPC headers from `TEMPORAL_GRPC_META_<NAME>`; their values may carry credentials. */
  grpcMetadata: Record<string, Secret>;
  /** Where a worker serves its metrics (the SDK's and `ampbraze_data_points`) for Prometheus; off if undefined. */
  workerPrometheusAddress: string | undefined;
  /** Activities (pages, staging, exports) one worker runs at once, across all runs. */
  workerMaxConcurrentActivities: number;
  /** On SIGTERM/SIGINT, how long running activities may take to finish before they are cancelled (and retried elsewhere). */
  workerShutdownGraceMs: number;
}

export interface TemporalTlsConfig {
  clientCert: { certPath: string; keyPath: string } | undefined;
  serverCaCertPath: string | undefined;
  serverName: string | undefined;
}

export type AmplitudeRegion = 'us' | 'eu';

export interface AmplitudeConfig {
  apiKey: Secret;
  secretKey: Secret;
  region: AmplitudeRegion;
  /** Cohorts, Dashboard REST and Export APIs. */
  apiUrl: string;
  /** User Profile API; undefined in the EU (the API is US-only) unless AMPLITUDE_PROFILE_API_URL is set. */
  profileApiUrl: string | undefined;
  /** HTTP V2, Batch and Identify APIs. */
  ingestUrl: string;
  cohortDownloadsPerMonth: number;
  /** The User Activity API's limit (device ids of anonymous cohort members), shared by every worker. */
  userLookupRate: RateLimit;
  /** This project's share of the organisation's User Profile API limit (600/min), shared by every worker and sync. */
  profileRate: RateLimit;
  /** How long a cohort export may stay "JOB INPROGRESS" before the run fails. */
  exportMaxWaitMs: number;
  /** Users whose last event is older than this many days leave the activity index (and their properties with them). */
  activeWindowDays: number;
  /** How long the sent-event ledger remembers an event forwarded to Braze (reruns within it never resend it). */
  sentEventLedgerDays: number;
  /** A trait sync refuses an activity index no event sync has fed for longer than this (a stale audience). */
  activityIndexMaxAgeMs: number;
  /** The longest wait an answer of Amplitude's may impose (a `Retry-After` further ahead is cut to this). */
  maxWaitMs: number;
  /**
   * The key of the erased users' suppression list (`PRIVACY_HASH_KEY`); unset, one is derived from the secret key.
   * Every worker needs the same one: set it before the Amplitude secret key is ever rotated.
   */
  privacyHashKey?: Secret;
}

export interface BrazeConfig {
  restEndpoint: string;
  apiKey: Secret;
  appId: string | undefined;
  /** Native partner cohorts; set only when partner name, partner API key and data import key are all set. */
  partner: BrazePartnerConfig | undefined;
  objectLimit: BrazeObjectLimit;
  /** The workspace's `/users/track` limit, shared by every worker. */
  rateLimit: RateLimit;
  /** The longest wait an answer of Braze's may impose (`Retry-After`, `X-RateLimit-Reset` further ahead are cut to this). */
  maxWaitMs: number;
  /**
   * Names the workspace whose attribute values the store remembers (every trait sync writing to it shares
   * them): `<REST endpoint host>:<BRAZE_WORKSPACE or "default">`. Set BRAZE_WORKSPACE when one store serves
   * several workspaces of one Braze instance.
   */
  workspace: string;
}

export interface BrazePartnerConfig {
  name: string;
  partnerApiKey: Secret;
  /** The customer's Data Import Key, sent as `client_secret`. */
  dataImportKey: Secret;
}

export interface BrazeObjectLimit {
  /** `per_array`: each of attributes/events/purchases holds up to `maxObjects`; `combined`: all together. */
  mode: 'per_array' | 'combined';
  maxObjects: number;
}

export type StoreConfig = (
  | {
      kind: 'sqlite';
      /** A file path, or `:memory:`. */
      path: string;
    }
  | {
      kind: 'postgres';
      /** `postgres://user:password@host:port/dbname`: it can hold a password. */
      url: Secret;
    }
) & {
  /** How long one store operation may wait (SQLite: for the write lock; PostgreSQL: a statement, a connection). */
  timeoutMs?: number;
  /** Every commit on disk before it returns (SQLite; PostgreSQL commits are): what a receiver acknowledges. */
  durableCommits?: boolean;
};

export interface AppConfig {
  temporal: TemporalConfig;
  amplitude: AmplitudeConfig;
  braze: BrazeConfig;
  store: StoreConfig;
  currents: CurrentsConfig;
}

/** How the worker forwards Braze Currents events (spooled by the receiver) to Amplitude. */
export interface CurrentsConfig {
  /** HTTP V2 keeps each device's events in order; Batch suits backfills. */
  api: 'httpapi' | 'batch';
  /** Currents event types (or prefixes such as `users.messages.email`) to forward; empty: all. */
  include: string[];
  exclude: string[];
  /** The oldest unforwarded event's age above which the backlog is a warning (progress, doctor). */
  backlogWarnAgeMs: number;
  /** Dead letters (of every stream the receiver takes) past which `doctor` warns. */
  deadLetterWarnCount: number;
}

/** Profiles served to Braze Connected Content from the store. */
export interface ConnectedContentConfig {
  /** Braze sends it as a bearer token, as basic auth's password, or in place of Amplitude's key (`Api-Key …`). */
  token: Secret;
  /** A kept profile older than this is answered and refreshed in the background. */
  maxAgeMs: number;
  /** `Cache-Control: max-age` of an answer from a profile (Braze caches GET answers; its `:cache_max_age`). */
  cacheSeconds: number;
  /** How long a fetch of a user never fetched may keep Braze waiting before the fallback is answered. */
  fetchTimeoutMs: number;
  /** The body answered when no profile can be had now; unset: Amplitude's answer for a user it has not seen. */
  fallbackBody: string | undefined;
}

/** The receiver: HTTP pushes (Braze Currents, Amplitude cohort webhooks) acknowledged into the store's spool. */
export interface ReceiverConfig {
  host: string;
  port: number;
  /** Larger bodies are refused with 413. */
  bodyLimitBytes: number;
  /** A request must arrive whole within this; a connection idle this long is closed. */
  requestTimeoutMs: number;
  idleTimeoutMs: number;
  maxConnections: number;
  /** Items of one stream not yet processed past which the receiver answers 503 (the senders retry). */
  maxBacklog: number;
  /** How long a store operation may take before the receiver answers 503 (and `/readyz` waits at most 2 s). */
  storeTimeoutMs: number;
  /** The bearer token Braze Currents sends; unset: `/currents` is not served. */
  currentsToken: Secret | undefined;
  /** The bearer token Amplitude's cohort webhooks send (a custom header); unset: not served. */
  amplitudeWebhookToken: Secret | undefined;
  /** The bearer token Amplitude's Webhooks streaming destination sends (a custom header); unset: not served. */
  amplitudeStreamToken: Secret | undefined;
  /** Braze Connected Content's profile lookups (`/connected-content/userprofile`); unset: not served. */
  connectedContent: ConnectedContentConfig | undefined;
  /** The daily data-point budget (all syncs together) the cohort streams it starts pause at. */
  cohortStreamMaxDataPointsPerDay: number | undefined;
  /** The bearer token of `/status` (the usage page) and `/metrics` (Prometheus); unset: neither is served. */
  statusToken: Secret | undefined;
  /** What `/status` charts use against. */
  quotas: UsageQuotas;
}

export const AMPLITUDE_REGION_URLS: Record<AmplitudeRegion, Pick<AmplitudeConfig, 'apiUrl' | 'profileApiUrl' | 'ingestUrl'>> = {
  us: { apiUrl: 'https://amplitude.com', profileApiUrl: 'https://profile-api.amplitude.com', ingestUrl: 'https://api2.amplitude.com' },
  eu: { apiUrl: 'https://analytics.eu.amplitude.com', profileApiUrl: undefined, ingestUrl: 'https://api.eu.amplitude.com' },
};

// ---------------------------------------------------------------------------------------------------------
// Variable schemas (inputs are trimmed, and empty values count as unset)

const QUOTED_KEY_CONSEQUENCE = {
  Temporal: 'Temporal would reject it as unauthenticated',
  Amplitude: 'Amplitude would reject it as an invalid key',
  Braze: 'Braze answers 401 for a quoted key',
} as const;

function secret(vendor: keyof typeof QUOTED_KEY_CONSEQUENCE, requiredHint: string) {
  return z
    .string({ error: `is required (${requiredHint})` })
    .refine((value) => !/^(["']).*\1$/s.test(value), `is wrapped in quotes; remove them (${QUOTED_KEY_CONSEQUENCE[vendor]})`)
    .transform((value) => new Secret(value));
}

function isHttpUrl(value: string): boolean {
  try {
    const { protocol } = new URL(value);
    return protocol === 'http:' || protocol === 'https:';
  } catch {
    return false;
  }
}

const httpUrl = z
  .string()
  .refine(isHttpUrl, 'must be an http(s) URL such as https://example.com')
  .transform((value) => value.replace(/\/+$/, ''));

const booleanFlag = z.stringbool({ error: 'must be true or false' });

const wholeNumberAtLeastOne = z
  .string()
  .regex(/^\d+$/, 'must be a whole number')
  .transform(Number)
  .refine((value) => value >= 1, 'must be at least 1');

const HOST_AND_PORT = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(:\d{1,5})?$/;

const TEMPORAL_TLS_SETTINGS = [
  'TEMPORAL_TLS_CLIENT_CERT_PATH',
  'TEMPORAL_TLS_CLIENT_KEY_PATH',
  'TEMPORAL_TLS_SERVER_CA_CERT_PATH',
  'TEMPORAL_TLS_SERVER_NAME',
] as const;

const GRPC_METADATA_PREFIX = 'TEMPORAL_GRPC_META_';

const WINDOW_UNIT_MS: Record<string, number> = { ms: 1, s: 1_000, m: 60_000, min: 60_000, h: 3_600_000 };

/** `30m`, `3s`, `1h` (a bare unit means one of it) in milliseconds; undefined when it is not a duration. */
export function durationMs(text: string): number | undefined {
  const match = /^(\d*)\s*(ms|s|min|m|h)$/.exec(text.trim());
  const ms = match ? Number(match[1] || 1) * WINDOW_UNIT_MS[match[2]!]! : Number.NaN;
  return ms >= 1 ? ms : undefined;
}

/** `<requests>/<window>`, e.g. `3000/3s` or `360/1h`. */
const rateLimit = z.string().transform((value, ctx): RateLimit => {
  const [requestsText = '', windowText = '', ...rest] = value.split('/');
  const requests = /^\s*\d+\s*$/.test(requestsText) ? Number(requestsText) : 0;
  const windowMs = durationMs(windowText);
  if (rest.length > 0 || requests < 1 || windowMs === undefined) {
    ctx.addIssue('must be <requests>/<window>, e.g. 3000/3s (units: ms, s, m, h)');
    return z.NEVER;
  }
  return { requests, windowMs };
});

/** `<n><unit>`, e.g. `30m`, in milliseconds. */
const duration = z.string().transform((value, ctx): number => {
  const ms = durationMs(value);
  if (ms === undefined) {
    ctx.addIssue('must be a duration such as 30m (units: ms, s, m, h)');
    return z.NEVER;
  }
  return ms;
});

/** Read by the Amplitude and the Braze sections alike: one setting for every vendor answer. */
const vendorMaxWait = { VENDOR_MAX_WAIT: duration.prefault('1h') };

const temporalVariables = z.object({
  TEMPORAL_ADDRESS: z.string().regex(HOST_AND_PORT, 'must be host:port without a scheme, e.g. localhost:7233').default('localhost:7233'),
  TEMPORAL_NAMESPACE: z.string().default('default'),
  TEMPORAL_TASK_QUEUE: z.string().default(DEFAULT_TASK_QUEUE),
  WORKER_PROMETHEUS_ADDRESS: z
    .string()
    .regex(/^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):\d{1,5}$/, 'must be host:port to listen on, e.g. 0.0.0.0:9464')
    .optional(),
  WORKER_MAX_CONCURRENT_ACTIVITIES: wholeNumberAtLeastOne.prefault('20'),
  WORKER_SHUTDOWN_GRACE: duration.prefault('30s'),
  TEMPORAL_API_KEY: secret('Temporal', 'an API key').optional(),
  TEMPORAL_TLS: booleanFlag.optional(),
  TEMPORAL_TLS_CLIENT_CERT_PATH: z.string().optional(),
  TEMPORAL_TLS_CLIENT_KEY_PATH: z.string().optional(),
  TEMPORAL_TLS_SERVER_CA_CERT_PATH: z.string().optional(),
  TEMPORAL_TLS_SERVER_NAME: z.string().optional(),
  TEMPORAL_TLS_DISABLE_HOST_VERIFICATION: booleanFlag
    .refine(
      (disabled) => !disabled,
      "is not supported by Temporal's TypeScript SDK; set TEMPORAL_TLS_SERVER_NAME to the name in the server certificate, or TEMPORAL_TLS_SERVER_CA_CERT_PATH to its CA",
    )
    .optional(),
});

const amplitudeVariables = z.object({
  AMPLITUDE_API_KEY: secret('Amplitude', "the project's API key"),
  AMPLITUDE_SECRET_KEY: secret('Amplitude', "the project's secret key"),
  AMPLITUDE_REGION: z
    .string()
    .transform((value) => value.toLowerCase())
    .pipe(z.enum(['us', 'eu'], { error: 'must be "us" or "eu"' }))
    .default('us'),
  AMPLITUDE_API_URL: httpUrl.optional(),
  AMPLITUDE_PROFILE_API_URL: httpUrl.optional(),
  AMPLITUDE_INGEST_URL: httpUrl.optional(),
  AMPLITUDE_COHORT_DOWNLOAD_QUOTA: wholeNumberAtLeastOne.default(500),
  AMPLITUDE_USER_LOOKUP_RATE: rateLimit.prefault('360/1h'),
  AMPLITUDE_PROFILE_RATE: rateLimit.prefault('300/1m'),
  AMPLITUDE_EXPORT_MAX_WAIT: duration.prefault('30m'),
  ACTIVE_WINDOW_DAYS: wholeNumberAtLeastOne.default(90),
  EVENT_LEDGER_DAYS: wholeNumberAtLeastOne.default(30),
  ACTIVITY_INDEX_MAX_AGE: duration.prefault('6h'),
  PRIVACY_HASH_KEY: z
    .string()
    .min(16, 'must be at least 16 characters (a random secret)')
    .transform((value) => new Secret(value))
    .optional(),
  ...vendorMaxWait,
});

const eventTypeList = z.string().transform((value) =>
  value
    .split(',')
    .map((name) => name.trim())
    .filter((name) => name.length > 0),
);

const currentsVariables = z.object({
  CURRENTS_AMPLITUDE_API: z.enum(['httpapi', 'batch'], { error: 'must be "httpapi" or "batch"' }).default('httpapi'),
  CURRENTS_EVENT_TYPES: eventTypeList.prefault(''),
  CURRENTS_EXCLUDE_EVENT_TYPES: eventTypeList.prefault(''),
  CURRENTS_BACKLOG_WARN_AGE: duration.prefault('15m'),
  DEAD_LETTER_WARN_COUNT: z.string().regex(/^\d+$/, 'must be a whole number').transform(Number).default(0),
});

const receiverVariables = z.object({
  RECEIVER_HOST: z.string().default('0.0.0.0'),
  RECEIVER_PORT: z.coerce.number({ error: 'must be a port number' }).int().min(0).max(65_535).default(8780),
  RECEIVER_BODY_LIMIT: wholeNumberAtLeastOne.default(5 * 1024 * 1024),
  RECEIVER_REQUEST_TIMEOUT: duration.prefault('30s'),
  RECEIVER_IDLE_TIMEOUT: duration.prefault('30s'),
  RECEIVER_MAX_CONNECTIONS: wholeNumberAtLeastOne.default(1_000),
  RECEIVER_MAX_BACKLOG: wholeNumberAtLeastOne.default(1_000_000),
  RECEIVER_STORE_TIMEOUT: duration.prefault('10s'),
  CURRENTS_TOKEN: z
    .string()
    .min(16, 'must be at least 16 characters (a random secret)')
    .transform((value) => new Secret(value))
    .optional(),
  AMPLITUDE_WEBHOOK_TOKEN: z
    .string()
    .min(16, 'must be at least 16 characters (a random secret)')
    .transform((value) => new Secret(value))
    .optional(),
  AMPLITUDE_STREAM_TOKEN: z
    .string()
    .min(16, 'must be at least 16 characters (a random secret)')
    .transform((value) => new Secret(value))
    .optional(),
  CONNECTED_CONTENT_TOKEN: z
    .string()
    .min(16, 'must be at least 16 characters (a random secret)')
    .transform((value) => new Secret(value))
    .optional(),
  STATUS_TOKEN: z
    .string()
    .min(16, 'must be at least 16 characters (a random secret)')
    .transform((value) => new Secret(value))
    .optional(),
  CONNECTED_CONTENT_MAX_AGE: duration.prefault('1h'),
  CONNECTED_CONTENT_CACHE_SECONDS: wholeNumberAtLeastOne.default(300),
  CONNECTED_CONTENT_FETCH_TIMEOUT: duration.prefault('1500ms'),
  CONNECTED_CONTENT_FALLBACK: z
    .string()
    .refine((value) => {
      try {
        const parsed: unknown = JSON.parse(value);
        return typeof parsed === 'object' && parsed !== null;
      } catch {
        return false;
      }
    }, 'must be a JSON object or array (the body answered when a profile cannot be fetched)')
    .optional(),
  COHORT_STREAM_MAX_DATA_POINTS_PER_DAY: wholeNumberAtLeastOne.optional(),
});

const brazeRestEndpoint = z
  .string({ error: "is required (your instance's REST endpoint, e.g. https://rest.iad-01.braze.com)" })
  .pipe(httpUrl)
  .superRefine((url, ctx) => {
    const host = new URL(url).hostname;
    if (host.startsWith('sdk.')) {
      ctx.addIssue(`is an SDK endpoint, not a REST endpoint: use https://${host.replace(/^sdk\./, 'rest.')}`);
    }
  });

const brazeObjectLimit = z.string().transform((value, ctx): BrazeObjectLimit => {
  const match = /^(per_array|combined):(\d+)$/.exec(value);
  const maxObjects = Number(match?.[2]);
  if (!match || maxObjects < 1 || maxObjects > 75) {
    ctx.addIssue('must be per_array:<1-75> or combined:<1-75>, e.g. per_array:75 (combined:50 on "MAU CY 24-25" contracts)');
    return z.NEVER;
  }
  return { mode: match[1] as BrazeObjectLimit['mode'], maxObjects };
});

const brazeVariables = z.object({
  BRAZE_REST_ENDPOINT: brazeRestEndpoint,
  BRAZE_API_KEY: secret('Braze', 'a REST API key with the users.track and users.export.ids permissions'),
  BRAZE_APP_ID: z.string().optional(),
  BRAZE_DATA_IMPORT_KEY: secret('Braze', 'the Data Import Key').optional(),
  BRAZE_PARTNER_API_KEY: secret('Braze', 'the partner API key').optional(),
  BRAZE_PARTNER_NAME: z
    .string()
    .regex(/^[A-Za-z0-9_-]+$/, 'must be the partner slug used in /partners/<name>/ (letters, digits, "-" and "_")')
    .optional(),
  BRAZE_OBJECT_LIMIT: brazeObjectLimit.prefault('per_array:75'),
  BRAZE_RATE_LIMIT: rateLimit.prefault('3000/3s'),
  BRAZE_WORKSPACE: z
    .string()
    .regex(/^[A-Za-z0-9_-]+$/, 'must be a short name (letters, digits, "-" and "_")')
    .default('default'),
  ...vendorMaxWait,
});

const POSTGRES_URL = /^postgres(ql)?:\/\//i;

const storeVariables = z.object({
  STATE_DB: z
    .string()
    .refine((value) => !POSTGRES_URL.test(value), 'is a PostgreSQL URL: set it as STATE_STORE_URL instead (STATE_DB is a SQLite file path)')
    .default('data/state.db'),
  STATE_STORE_URL: z
    .string()
    .refine(
      (value) => POSTGRES_URL.test(value) && URL.canParse(value),
      'must be a PostgreSQL URL such as postgres://user:password@host:5432/dbname',
    )
    .transform((value) => new Secret(value))
    .optional(),
  STATE_STORE_TIMEOUT: duration.optional(),
});

// ---------------------------------------------------------------------------------------------------------
// Loaders

type SetVariables = Record<string, string>;

function setVariables(env: Env): SetVariables {
  const set: SetVariables = {};
  for (const [name, value] of Object.entries(env)) {
    const trimmed = value?.trim();
    if (trimmed) set[name] = trimmed;
  }
  return set;
}

/** Parses one section and throws every field problem plus `combinationProblems` together. */
function parseVariables<Schema extends z.ZodType>(
  schema: Schema,
  set: SetVariables,
  combinationProblems: ConfigProblem[] = [],
): z.output<Schema> {
  const result = schema.safeParse(set);
  const fieldProblems = result.success
    ? []
    : result.error.issues.map((issue) => ({ variable: String(issue.path[0]), message: issue.message }));
  const problems = [...fieldProblems, ...combinationProblems];
  if (!result.success || problems.length > 0) throw new ConfigError(problems);
  return result.data;
}

function grpcHeaderName(variable: string): string | undefined {
  return variable.startsWith(GRPC_METADATA_PREFIX)
    ? variable.slice(GRPC_METADATA_PREFIX.length).toLowerCase().replaceAll('_', '-')
    : undefined;
}

function temporalCombinationProblems(set: SetVariables): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  const pair = ['TEMPORAL_TLS_CLIENT_CERT_PATH', 'TEMPORAL_TLS_CLIENT_KEY_PATH'] as const;
  for (const [present, missing] of [pair, [pair[1], pair[0]]] as const) {
    if (set[present] && !set[missing])
      problems.push({ variable: missing, message: `is required when ${present} is set (mTLS needs both)` });
  }
  const tls = booleanFlag.safeParse(set.TEMPORAL_TLS);
  const tlsSettings = TEMPORAL_TLS_SETTINGS.filter((name) => set[name]);
  if (tls.success && !tls.data && tlsSettings.length > 0) {
    problems.push({
      variable: 'TEMPORAL_TLS',
      message: `is false, but ${tlsSettings.join(', ')} ${tlsSettings.length === 1 ? 'is' : 'are'} set: enable TLS or unset them`,
    });
  }
  if (set.TEMPORAL_API_KEY && Object.keys(set).some((name) => grpcHeaderName(name) === 'authorization')) {
    problems.push({
      variable: `${GRPC_METADATA_PREFIX}AUTHORIZATION`,
      message: 'cannot be combined with TEMPORAL_API_KEY (both set the authorization header)',
    });
  }
  return problems;
}

export function loadTemporalConfig(env: Env = environment()): TemporalConfig {
  const set = setVariables(env);
  const values = parseVariables(temporalVariables, set, temporalCombinationProblems(set));
  const certPath = values.TEMPORAL_TLS_CLIENT_CERT_PATH;
  const keyPath = values.TEMPORAL_TLS_CLIENT_KEY_PATH;
  // As in @temporalio/envconfig: an API key or any TLS setting implies TLS unless TEMPORAL_TLS says otherwise.
  const tlsEnabled =
    values.TEMPORAL_TLS ?? (values.TEMPORAL_API_KEY !== undefined || TEMPORAL_TLS_SETTINGS.some((name) => values[name] !== undefined));
  const grpcMetadata: Record<string, Secret> = {};
  for (const [name, value] of Object.entries(set)) {
    const header = grpcHeaderName(name);
    if (header) grpcMetadata[header] = new Secret(value);
  }
  return {
    address: values.TEMPORAL_ADDRESS,
    namespace: values.TEMPORAL_NAMESPACE,
    taskQueue: values.TEMPORAL_TASK_QUEUE,
    apiKey: values.TEMPORAL_API_KEY,
    tls: tlsEnabled
      ? {
          clientCert: certPath && keyPath ? { certPath, keyPath } : undefined,
          serverCaCertPath: values.TEMPORAL_TLS_SERVER_CA_CERT_PATH,
          serverName: values.TEMPORAL_TLS_SERVER_NAME,
        }
      : undefined,
    grpcMetadata,
    workerPrometheusAddress: values.WORKER_PROMETHEUS_ADDRESS,
    workerMaxConcurrentActivities: values.WORKER_MAX_CONCURRENT_ACTIVITIES,
    workerShutdownGraceMs: values.WORKER_SHUTDOWN_GRACE,
  };
}

/** The quotas `ampbraze usage` and the receiver's `/status` chart use against: no keys needed to read them. */
export interface UsageQuotas {
  cohortDownloadsPerMonth: number;
  profileRate: RateLimit;
}

export function loadUsageQuotas(env: Env = environment()): UsageQuotas {
  const values = parseVariables(
    amplitudeVariables.pick({ AMPLITUDE_COHORT_DOWNLOAD_QUOTA: true, AMPLITUDE_PROFILE_RATE: true }),
    setVariables(env),
  );
  return { cohortDownloadsPerMonth: values.AMPLITUDE_COHORT_DOWNLOAD_QUOTA, profileRate: values.AMPLITUDE_PROFILE_RATE };
}

export function loadAmplitudeConfig(env: Env = environment()): AmplitudeConfig {
  const values = parseVariables(amplitudeVariables, setVariables(env));
  const regionUrls = AMPLITUDE_REGION_URLS[values.AMPLITUDE_REGION];
  return {
    apiKey: values.AMPLITUDE_API_KEY,
    secretKey: values.AMPLITUDE_SECRET_KEY,
    region: values.AMPLITUDE_REGION,
    apiUrl: values.AMPLITUDE_API_URL ?? regionUrls.apiUrl,
    profileApiUrl: values.AMPLITUDE_PROFILE_API_URL ?? regionUrls.profileApiUrl,
    ingestUrl: values.AMPLITUDE_INGEST_URL ?? regionUrls.ingestUrl,
    cohortDownloadsPerMonth: values.AMPLITUDE_COHORT_DOWNLOAD_QUOTA,
    userLookupRate: values.AMPLITUDE_USER_LOOKUP_RATE,
    profileRate: values.AMPLITUDE_PROFILE_RATE,
    exportMaxWaitMs: values.AMPLITUDE_EXPORT_MAX_WAIT,
    activeWindowDays: values.ACTIVE_WINDOW_DAYS,
    sentEventLedgerDays: values.EVENT_LEDGER_DAYS,
    activityIndexMaxAgeMs: values.ACTIVITY_INDEX_MAX_AGE,
    maxWaitMs: values.VENDOR_MAX_WAIT,
    ...(values.PRIVACY_HASH_KEY && { privacyHashKey: values.PRIVACY_HASH_KEY }),
  };
}

export function loadBrazeConfig(env: Env = environment()): BrazeConfig {
  const values = parseVariables(brazeVariables, setVariables(env));
  const { BRAZE_PARTNER_NAME: name, BRAZE_PARTNER_API_KEY: partnerApiKey, BRAZE_DATA_IMPORT_KEY: dataImportKey } = values;
  return {
    restEndpoint: values.BRAZE_REST_ENDPOINT,
    apiKey: values.BRAZE_API_KEY,
    appId: values.BRAZE_APP_ID,
    partner: name && partnerApiKey && dataImportKey ? { name, partnerApiKey, dataImportKey } : undefined,
    objectLimit: values.BRAZE_OBJECT_LIMIT,
    rateLimit: values.BRAZE_RATE_LIMIT,
    workspace: `${new URL(values.BRAZE_REST_ENDPOINT).host}:${values.BRAZE_WORKSPACE}`,
    maxWaitMs: values.VENDOR_MAX_WAIT,
  };
}

export function loadCurrentsConfig(env: Env = environment()): CurrentsConfig {
  const values = parseVariables(currentsVariables, setVariables(env));
  return {
    api: values.CURRENTS_AMPLITUDE_API,
    include: values.CURRENTS_EVENT_TYPES,
    exclude: values.CURRENTS_EXCLUDE_EVENT_TYPES,
    backlogWarnAgeMs: values.CURRENTS_BACKLOG_WARN_AGE,
    deadLetterWarnCount: values.DEAD_LETTER_WARN_COUNT,
  };
}

export function loadReceiverConfig(env: Env = environment()): ReceiverConfig {
  const values = parseVariables(receiverVariables, setVariables(env));
  const tokens = [values.CURRENTS_TOKEN, values.AMPLITUDE_WEBHOOK_TOKEN, values.AMPLITUDE_STREAM_TOKEN, values.CONNECTED_CONTENT_TOKEN];
  if (![...tokens, values.STATUS_TOKEN].some(Boolean)) {
    throw new ConfigError([
      {
        variable: 'CURRENTS_TOKEN',
        message:
          'AMPLITUDE_WEBHOOK_TOKEN, AMPLITUDE_STREAM_TOKEN, CONNECTED_CONTENT_TOKEN or STATUS_TOKEN is required: the receiver serves only the requests it can authenticate',
      },
    ]);
  }
  return {
    host: values.RECEIVER_HOST,
    port: values.RECEIVER_PORT,
    bodyLimitBytes: values.RECEIVER_BODY_LIMIT,
    requestTimeoutMs: values.RECEIVER_REQUEST_TIMEOUT,
    idleTimeoutMs: values.RECEIVER_IDLE_TIMEOUT,
    maxConnections: values.RECEIVER_MAX_CONNECTIONS,
    maxBacklog: values.RECEIVER_MAX_BACKLOG,
    storeTimeoutMs: values.RECEIVER_STORE_TIMEOUT,
    currentsToken: values.CURRENTS_TOKEN,
    amplitudeWebhookToken: values.AMPLITUDE_WEBHOOK_TOKEN,
    amplitudeStreamToken: values.AMPLITUDE_STREAM_TOKEN,
    connectedContent: values.CONNECTED_CONTENT_TOKEN && {
      token: values.CONNECTED_CONTENT_TOKEN,
      maxAgeMs: values.CONNECTED_CONTENT_MAX_AGE,
      cacheSeconds: values.CONNECTED_CONTENT_CACHE_SECONDS,
      fetchTimeoutMs: values.CONNECTED_CONTENT_FETCH_TIMEOUT,
      fallbackBody: values.CONNECTED_CONTENT_FALLBACK,
    },
    cohortStreamMaxDataPointsPerDay: values.COHORT_STREAM_MAX_DATA_POINTS_PER_DAY,
    statusToken: values.STATUS_TOKEN,
    quotas: loadUsageQuotas(env),
  };
}

export function loadStoreConfig(env: Env = environment()): StoreConfig {
  const set = setVariables(env);
  const both =
    set.STATE_DB && set.STATE_STORE_URL
      ? [{ variable: 'STATE_STORE_URL', message: 'cannot be combined with STATE_DB: set only one store' }]
      : [];
  const values = parseVariables(storeVariables, set, both);
  const where = values.STATE_STORE_URL
    ? { kind: 'postgres' as const, url: values.STATE_STORE_URL }
    : { kind: 'sqlite' as const, path: values.STATE_DB };
  return { ...where, ...(values.STATE_STORE_TIMEOUT && { timeoutMs: values.STATE_STORE_TIMEOUT }) };
}

/** Every section at once; the error lists the problems of all sections. */
export function loadConfig(env: Env = environment()): AppConfig {
  const problems: ConfigProblem[] = [];
  const load = <T>(loader: (env: Env) => T): T | undefined => {
    try {
      return loader(env);
    } catch (error) {
      if (!(error instanceof ConfigError)) throw error;
      problems.push(...error.problems);
      return undefined;
    }
  };
  const temporal = load(loadTemporalConfig);
  const amplitude = load(loadAmplitudeConfig);
  const braze = load(loadBrazeConfig);
  const store = load(loadStoreConfig);
  const currents = load(loadCurrentsConfig);
  if (!temporal || !amplitude || !braze || !store || !currents) throw new ConfigError(problems);
  return { temporal, amplitude, braze, store, currents };
}

// ---------------------------------------------------------------------------------------------------------
// Helpers for consumers

export type Redacted<T> = T extends Secret ? typeof REDACTED : T extends object ? { [K in keyof T]: Redacted<T[K]> } : T;

/** A plain copy of any config section with every secret replaced by `***`, safe to print. */
export function redactedConfig<T>(config: T): Redacted<T> {
  return redact(config) as Redacted<T>;
}

function redact(value: unknown): unknown {
  if (value instanceof Secret) return REDACTED;
  if (value !== null && typeof value === 'object')
    return Object.fromEntries(Object.entries(value).map(([key, inner]) => [key, redact(inner)]));
  return value;
}

/** Structurally the `tls` option of both `Connection.connect` and `NativeConnection.connect`. */
export interface TemporalTlsOptions {
  serverNameOverride?: string;
  serverRootCACertificate?: Buffer;
  clientCertPair?: { crt: Buffer; key: Buffer };
}

export interface TemporalConnectionOptions {
  address: string;
  /** `false` keeps the connection plaintext even with an API key. */
  tls: TemporalTlsOptions | false;
  apiKey?: string;
  metadata?: Record<string, string>;
}

/** Options for `Connection.connect` / `NativeConnection.connect`; reads the TLS files named in the config. */
export async function temporalConnectionOptions(config: TemporalConfig): Promise<TemporalConnectionOptions> {
  const options: TemporalConnectionOptions = { address: config.address, tls: config.tls ? await readTlsFiles(config.tls) : false };
  if (config.apiKey) options.apiKey = config.apiKey.reveal();
  const metadata = Object.entries(config.grpcMetadata);
  if (metadata.length > 0) options.metadata = Object.fromEntries(metadata.map(([header, value]) => [header, value.reveal()]));
  return options;
}

async function readTlsFiles(tls: TemporalTlsConfig): Promise<TemporalTlsOptions> {
  const problems: ConfigProblem[] = [];
  const read = async (variable: string, path: string | undefined): Promise<Buffer | undefined> => {
    if (path === undefined) return undefined;
    try {
      return await readFile(path);
    } catch (error) {
      problems.push({ variable, message: `cannot read "${path}" (${(error as NodeJS.ErrnoException).code ?? String(error)})` });
      return undefined;
    }
  };
  const [crt, key, serverRootCACertificate] = await Promise.all([
    read('TEMPORAL_TLS_CLIENT_CERT_PATH', tls.clientCert?.certPath),
    read('TEMPORAL_TLS_CLIENT_KEY_PATH', tls.clientCert?.keyPath),
    read('TEMPORAL_TLS_SERVER_CA_CERT_PATH', tls.serverCaCertPath),
  ]);
  if (problems.length > 0) throw new ConfigError(problems);
  return { serverNameOverride: tls.serverName, serverRootCACertificate, clientCertPair: crt && key ? { crt, key } : undefined };
}
