/**
 * The state store every worker shares: last-sent snapshots, per-run staging and the plan (diff) between
 * them, and the run, data-point, download-quota and failure ledgers. Every method is async and keeps nothing
 * in process memory, so a networked implementation (PostgreSQL) can serve many workers on many hosts.
 *
 * Keys are strings compared byte-wise (UTF-8), which is the order every page is returned in. Bulk methods
 * work in transactions of at most MAX_ROWS_PER_TRANSACTION rows and yield to the event loop between them,
 * so activity heartbeats keep flowing.
 */

export const MAX_ROWS_PER_TRANSACTION = 5_000;

export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };
export type JsonObject = { [key: string]: JsonValue };

/** One member of a cohort as read from Amplitude, keyed by the identifier we send to Braze. */
export interface StagedMember {
  /** The identifier sent to Braze, e.g. `ext:user-42` or `alias:…`. */
  memberKey: string;
  amplitudeId: string;
  userId?: string;
  deviceId?: string;
  props?: JsonObject;
}

export interface SnapshotMember {
  memberKey: string;
}

export interface MembershipState {
  inSnapshot: boolean;
  /** Epoch seconds: when the newest change applied to this member was computed; undefined if none was. */
  markedAt?: number;
}

export interface MembershipMark {
  memberKey: string;
  /** Epoch seconds. */
  computedTime: number;
}

/** How far a run has read its source; stored atomically with the staged rows it covers. */
export interface StagingCheckpoint {
  rowsConsumed: number;
  bytesConsumed: number;
  /** The last source key consumed, for a source read in key order (keyset paging); absent for others. */
  afterKey?: string;
}

/** One user's attribute changes staged by a trait run: what Braze should get. */
export interface StagedTraitChange {
  /** `user_id:<id>`, as in the activity index. */
  userKey: string;
  /** Braze attribute name → the value to write; null unsets it. */
  changes: JsonObject;
}

export interface PageOptions {
  /** Return keys strictly after this one (exclusive); omit for the first page. */
  afterKey?: string;
  /** At most MAX_ROWS_PER_TRANSACTION; larger values are capped. */
  limit: number;
}

export interface DiffPageOptions extends PageOptions {
  /** Return keys up to and including this one; omit for no upper bound. */
  throughKey?: string;
}

export interface Page<T> {
  items: T[];
  /** The `afterKey` for the next page; undefined when this page was the last. */
  nextAfterKey: string | undefined;
}

/** `enter`: staged but not in the snapshot. `leave`: in the snapshot but not staged. */
export type DiffKind = 'enter' | 'leave';
/** What a planned page holds: membership changes, events to send, or users' attribute changes. */
export type PlanKind = DiffKind | 'event' | 'trait';

export interface DiffCounts {
  enter: number;
  leave: number;
}

/** Changes of one kind and how many pages of the planned size they fill. */
export interface PlannedChanges {
  changes: number;
  pages: number;
}

export type PlannedPages = Record<DiffKind, PlannedChanges>;

/** The key range of one planned page: keys after `afterKey` (from the start when undefined) through `throughKey`. */
export interface PageRange {
  afterKey: string | undefined;
  throughKey: string;
}

export interface AttributeSnapshot {
  memberKey: string;
  attribute: string;
  /** The last value Braze accepted, as JSON text. */
  value: string;
}

/** What a request Braze accepted did to the attribute snapshot of a scope (see `StateStore.attributeSnapshots`). */
export interface AttributeSnapshotChanges {
  scope: string;
  /** Values written. */
  set: readonly AttributeSnapshot[];
  /** Attributes unset: they leave the snapshot. */
  unset: ReadonlyArray<{ memberKey: string; attribute: string }>;
}

export type RunStatus = 'running' | 'succeeded' | 'failed' | 'cancelled';

export interface RunStart {
  runId: string;
  syncId: string;
  /** The sync kind, e.g. `cohort`. */
  kind: string;
  startedAt: Date;
}

export interface RunFinish {
  runId: string;
  status: Exclude<RunStatus, 'running'>;
  finishedAt: Date;
  stats: JsonObject;
  /** What the run synced, e.g. the cohort's `lastComputed`, so an unchanged source can be skipped. */
  sourceVersion?: string;
}

export interface RunRecord {
  runId: string;
  syncId: string;
  kind: string;
  status: RunStatus;
  startedAt: Date;
  finishedAt: Date | undefined;
  sourceVersion: string | undefined;
  stats: JsonObject | undefined;
}

export interface DataPointEntry {
  /** `YYYY-MM-DD` (UTC). */
  day: string;
  syncId: string;
  runId: string;
  /** Identifies the page within the run, so a retried page is counted once. */
  pageKey: string;
  points: number;
}

export interface CohortDownloadReservation {
  /** `YYYY-MM` (UTC). */
  month: string;
  limit: number;
  cohortId: string;
  runId: string;
}

export interface ReservationResult {
  ok: boolean;
  /** Downloads reserved in the month, including this one when `ok`. */
  used: number;
}

export interface RateSlotRequest {
  /** One limit, e.g. `braze:/users/track`. */
  key: string;
  requested: number;
  /** Requests allowed per fixed window of `windowMs` (windows start at multiples of `windowMs`). */
  limit: number;
  windowMs: number;
  nowMs: number;
}

export interface RateSlotGrant {
  /** Slots granted now (0 to `requested`). */
  granted: number;
  /** When the caller may ask again if it got fewer than it requested. */
  retryAtMs: number;
  /** The window's grants so far, these included: the slots granted are numbered up to this, from 1 in each window. */
  usedThrough: number;
  /** The limit per window the vendor last reported for this key, once it has (see `adoptVendorRateLimit`). */
  vendorLimit?: number;
}

/** What a vendor's rate-limit headers said, as a limit shared by every worker takes it. */
export interface VendorRateReport {
  key: string;
  /** The vendor's limit per window: every window from now on grants at most this (and the configured limit). */
  vendorLimit: number;
  /** The window the report is about, and how many grants it may make in all (others write to the vendor too). */
  windowStartMs: number;
  windowCap?: number;
}

export interface RequestOutcome {
  runId: string;
  /** Unique within the run; outcomes sharing a prefix (e.g. a page) can be summed. */
  requestKey: string;
  accepted: number;
  rejected: number;
  dataPoints: number;
}

export interface OutcomeTotals {
  requests: number;
  accepted: number;
  rejected: number;
  dataPoints: number;
}

/** A vendor request of a run's page, about to be sent. */
export interface SendingRequest {
  syncId: string;
  runId: string;
  /** Unique within the run, one per send (a resend gets a key of its own); keys sharing a prefix can be summed. */
  requestKey: string;
  /** `YYYY-MM-DD` (UTC): the day its data points count against. */
  day: string;
  /** What the request costs if the vendor processes all of it. */
  dataPoints: number;
}

/** What a sent request did: its snapshot change, the members refused, and the data points it actually cost. */
export interface SentRequest extends SendingRequest {
  /**
   * Members the vendor accepted, entering (`added`) or leaving (`removed`) the sync's snapshot, and the attribute
   * values it accepted (`attributes`, applied to that scope's attribute snapshot).
   */
  snapshot: { added?: readonly string[]; removed?: readonly string[]; attributes?: AttributeSnapshotChanges };
  /** Members the vendor refused, with its reason. */
  rejected: readonly MemberFailure[];
  /** Objects the vendor accepted, when not the snapshot change's size (a kind whose snapshot is kept elsewhere). */
  accepted?: number;
}

/** A user's latest activity: when their latest event happened and the user properties it carried. */
export interface UserActivity {
  /** `user_id:<id>` for identified users, `device_id:<id>` or `amplitude_id:<id>` for anonymous ones. */
  userKey: string;
  lastEventMs: number;
  properties: JsonObject;
}

/** A user's values fetched from Amplitude's User Profile API for one trait sync. */
export interface ProfileFetch {
  /** `user_id:<id>`, as in the activity index. */
  userKey: string;
  fetchedAtMs: number;
  /** What the sync took from the profile (e.g. computations and recommendations by id). */
  values: JsonObject;
}

/** An identified user whose profile a trait sync should fetch (see `StateStore.profileFetchQueue`). */
export interface ProfileQueueEntry {
  userKey: string;
  lastEventMs: number;
  /** When the sync last fetched this user; undefined if never. */
  fetchedAtMs?: number;
}

/** Of the identified users active in a window: how many there are, and how many a trait sync fetched (ever, and lately). */
export interface ProfileFetchCounts {
  audience: number;
  fetched: number;
  fetchedSince: number;
}

/**
 * An item the receiver acknowledged into a stream's spool (`currents`, or a cohort's webhook stream): a 2xx to the
 * sender means it is here, so a receiver killed at any instant loses nothing.
 */
export interface IngressItem {
  /** What names a delivery: a redelivery with the same key is a duplicate (the Currents event `id`, …). */
  dedupeKey: string;
  /** Items of one partition (the user or device they concern) are processed in arrival order. */
  partitionKey: string;
  body: JsonObject;
}

export interface SpooledItem extends IngressItem {
  /** Arrival order within the store. */
  seq: number;
  receivedAtMs: number;
}

/** An item that cannot be processed, kept with the reason instead of blocking its stream or being lost. */
export interface DeadLetter {
  dedupeKey: string;
  reason: string;
  /** What arrived, as it arrived (a malformed item need not be an object). */
  body: JsonValue;
}

/** A dead letter of an item that had been spooled (a worker could not process it): its spool row, marked done. */
export interface SpooledDeadLetter extends DeadLetter {
  seq: number;
  partitionKey: string;
}

/** A kept dead letter, as listed. */
export interface StoredDeadLetter extends DeadLetter {
  stream: string;
  atMs: number;
  /** Set when the item had been spooled: a replay spools it again as it was; else it goes through the door again. */
  partitionKey?: string;
}

/** Where a listing of dead letters goes on from (the last one listed). */
export type DeadLetterPosition = Pick<StoredDeadLetter, 'atMs' | 'stream' | 'dedupeKey'>;

export interface DeadLetterCount {
  stream: string;
  count: number;
  oldestAtMs: number;
}

/** A dead letter to replay: removed from the dead letters, and its item spooled (again, if it was processed). */
export interface DeadLetterReplay {
  dedupeKey: string;
  item: IngressItem;
}

export interface IngressBacklog {
  /** Items not yet processed, of which `deferred` wait for a backoff to end. */
  pending: number;
  deferred: number;
  /** When the oldest unprocessed item arrived. */
  oldestReceivedAtMs: number | undefined;
  /** Items kept as dead letters (refused at the door, or by a worker) and not replayed or discarded. */
  deadLetters: number;
}

/** One Amplitude event staged to go to Braze: the Braze event object, keyed by the Amplitude event. */
export interface StagedEvent {
  /** `insert:<$insert_id>` (or `uuid:<uuid>` where it is missing): unique per Amplitude event. */
  eventKey: string;
  body: JsonObject;
}

/** Events one request is about to send, claimed in the sent-event ledger just before it goes. */
export interface EventClaim {
  runId: string;
  requestKey: string;
  eventKeys: readonly string[];
  nowMs: number;
}

export interface SyncLeaseClaim {
  syncId: string;
  /** The run claiming (or renewing) the lease: unique per run, the same across its retries and continue-as-new. */
  holder: string;
  /** The holder's workflow id, so a refused claimant can name the run in progress. */
  workflowId: string;
  /** `round`: held for one short round at a time (a webhook stream), which other runs wait for rather than skip. */
  hold: SyncLeaseHold;
  ttlMs: number;
  nowMs: number;
}

export type SyncLeaseHold = 'run' | 'round';

export type SyncLease = { held: true } | { held: false; holder: string; workflowId: string; hold: SyncLeaseHold; expiresAtMs: number };

export interface AmplitudeDeviceId {
  amplitudeId: string;
  /** Null when Amplitude knows no device for the user. */
  deviceId: string | null;
}

export interface MemberFailure {
  memberKey: string;
  /** The vendor's reason, verbatim. */
  reason: string;
}

export interface ReasonCount {
  reason: string;
  count: number;
}

/** Where the store is, whether it is reachable and migrated, and closing it. */
export interface StoreHandle {
  /** Human-readable location, e.g. `SQLite data/state.db` (never a credential). */
  readonly description: string;
  schemaVersion(): Promise<number>;
  /** Throws unless the store takes writes (a write in a transaction that is rolled back). */
  probeWrite(): Promise<void>;
  close(): Promise<void>;
}

/** The run ledger (each run of each sync, how it ended, what it synced), the per-sync lease that keeps two runs of one sync from sending at once, and why members failed in a run. */
export interface RunsAndLeases {
  /** Records a run as running; a retried start of the same run is a no-op. */
  startRun(run: RunStart): Promise<void>;
  finishRun(finish: RunFinish): Promise<void>;
  /** The latest run of a kind (e.g. `event`) to finish successfully, of any sync: tells whether that kind still runs (the event sync feeds the activity index). */
  lastSucceededRunOfKind(kind: string): Promise<RunRecord | undefined>;
  /** Newest first. */
  recentRuns(options: { syncId?: string; limit: number }): Promise<RunRecord[]>;

  /**
   * One run per sync, whatever its workflow id: takes the lease when it is free or expired, renews it for the
   * holder that has it, and otherwise refuses, naming the holder. A holder whose lease expired and was taken by
   * another run is refused too (fenced) and must stop.
   */
  claimSyncLease(claim: SyncLeaseClaim): Promise<SyncLease>;
  /** Frees the lease if `holder` still has it. */
  releaseSyncLease(syncId: string, holder: string): Promise<void>;

  /** Records why members failed in a run; a member recorded again keeps the latest reason. */
  recordFailures(runId: string, failures: readonly MemberFailure[]): Promise<void>;
  failureCountsByReason(runId: string): Promise<ReasonCount[]>;
}

/** What was spent: vendor requests before they go and with what they did (each counted once), data points per day, cohort downloads per month. */
export interface Ledgers {
  /**
   * Records requests before they are sent: from then on their data points count as spent (and as sent requests),
   * because the vendor bills what it receives and a request cut off by a crash may have arrived. Idempotent.
   */
  recordRequestsSending(requests: readonly SendingRequest[]): Promise<void>;
  /**
   * Records what sent requests did, in one transaction: each one's snapshot change, failures, outcome and actual
   * data points (replacing what `recordRequestsSending` counted; 0 for a request the vendor refused unprocessed,
   * such as a 429). Resolves, per request, with false for one recorded before (a retried attempt): it adds nothing.
   */
  recordSentRequests(requests: readonly SentRequest[]): Promise<boolean[]>;
  /** Sums the outcomes of a run's requests whose key starts with `keyPrefix`. */
  requestOutcomeTotals(runId: string, keyPrefix: string): Promise<OutcomeTotals>;
  dataPointsOnDay(day: string, syncId?: string): Promise<number>;

  /** Atomically reserves one cohort download in the month, refused at `limit`; idempotent per (runId, cohortId). */
  reserveCohortDownload(reservation: CohortDownloadReservation): Promise<ReservationResult>;
}

/** Vendor rate limits shared by every worker: fixed windows of slots, blocks until a vendor's reset, and what the vendor reported. */
export interface RateWindows {
  /**
   * Atomically grants up to `requested` slots of a fixed-window rate limit shared by every worker. Windows only
   * move forward: a caller whose `nowMs` falls before the stored window counts against the stored window.
   */
  acquireRateSlots(request: RateSlotRequest): Promise<RateSlotGrant>;
  /** Blocks a limit for everyone until `untilMs`, because the vendor reported it exhausted. */
  blockRateLimit(key: string, untilMs: number): Promise<void>;
  /**
   * Adopts a vendor's report: its limit for every window from now on, and a cap on the window it is about, which
   * only lowers what that window may grant, and only while it is the current one.
   */
  adoptVendorRateLimit(report: VendorRateReport): Promise<void>;
}

/** A run's staged source rows (members, events, trait changes) with their checkpoint, and its plan of numbered pages. */
export interface Staging {
  /** Stages rows and records the checkpoint after them in the same transaction. The first row for a key wins. */
  stageChunk(runId: string, rows: readonly StagedMember[], checkpoint: StagingCheckpoint): Promise<void>;
  stagingCheckpoint(runId: string): Promise<StagingCheckpoint | undefined>;
  stagedCount(runId: string): Promise<number>;
  /** Removes the run's staged rows, events and trait changes, staging checkpoint and planned pages. */
  clearStaging(runId: string): Promise<void>;

  /** Keys of the diff in key order (`enter`: staged but not in the snapshot; `leave`: the other way round). */
  diffPage(runId: string, syncId: string, options: DiffPageOptions & { kind: DiffKind }): Promise<Page<string>>;

  /**
   * Cuts the run's diff (as it stands now) into numbered pages of `pageSize` changes per kind and records each
   * page's key range, so pages can be applied in any order and in parallel, by number. Replaces an earlier plan
   * of the run. A page's range stays valid while its changes are committed: a retried page reads what is left.
   */
  planPages(runId: string, syncId: string, pageSize: number): Promise<PlannedPages>;
  /** The key range of a planned page (0-based), or undefined past the last page. */
  plannedPage(runId: string, kind: PlanKind, page: number): Promise<PageRange | undefined>;

  /**
   * Stages a chunk of a run's events (the first body for a key wins), records the users' activity (a user's
   * latest event by event time wins, so an hour processed late never overwrites newer values), and records the
   * checkpoint after them, in one transaction.
   */
  stageEvents(
    runId: string,
    chunk: { events: readonly StagedEvent[]; activity: readonly UserActivity[] },
    checkpoint: StagingCheckpoint,
  ): Promise<void>;
  stagedEventCount(runId: string): Promise<number>;
  /** Cuts the run's staged events not yet in the sent-event ledger into numbered pages (kind `event`). */
  planEventPages(runId: string, pageSize: number): Promise<{ events: number; pages: number }>;
  /** Staged events of the run not in the sent-event ledger, in key order. */
  unsentEvents(runId: string, options: DiffPageOptions): Promise<Page<StagedEvent>>;

  /**
   * Stages users' attribute changes (a user staged again replaces its changes) and records the checkpoint after them,
   * in transactions of at most MAX_ROWS_PER_TRANSACTION rows, the checkpoint with the last.
   */
  stageTraitChanges(runId: string, rows: readonly StagedTraitChange[], checkpoint: StagingCheckpoint): Promise<void>;
  /** Cuts the run's staged users into numbered pages of `pageSize` users in key order (kind `trait`); replaces an earlier plan of the run. */
  planTraitPages(runId: string, pageSize: number): Promise<{ users: number; pages: number }>;
  /** Staged users of the run with their changes, in key order. */
  stagedTraitChanges(runId: string, options: DiffPageOptions): Promise<Page<StagedTraitChange>>;
}

/** What Braze accepted, per sync (membership) and per workspace (attribute values), and when each member's newest real-time change was computed. */
export interface Snapshots {
  /**
   * For these members of a membership sync: whether each is in the last-sent snapshot, and the computed time of the
   * newest real-time change applied to it (see `recordMembershipMarks`). Members with neither are omitted.
   */
  membershipStates(syncId: string, memberKeys: readonly string[]): Promise<Map<string, MembershipState>>;
  /** Records the computed time of each member's newest applied change; an older time never replaces a newer one. */
  recordMembershipMarks(syncId: string, marks: readonly MembershipMark[]): Promise<void>;

  /**
   * The last values Braze accepted per member and attribute, for the given members (absent members are omitted), in a
   * scope: the Braze workspace (e.g. `braze-workspace:ab12cd`), whose users' attributes every sync writing to it shares.
   */
  attributeSnapshots(scope: string, memberKeys: readonly string[]): Promise<Map<string, Map<string, string>>>;
}

/** The activity index (who is active, their latest properties), profile fetches, device ids looked up, and the sent-event ledger. */
export interface ActivityIndex {
  /** Records users' activity as it streams in: of each user the latest event by event time wins, as when staged. */
  recordActivity(users: readonly UserActivity[]): Promise<void>;
  /** The recorded activity of these users (users never seen, or pruned, are absent). */
  userActivities(userKeys: readonly string[]): Promise<Map<string, UserActivity>>;
  /** Users active at or after `sinceMs`, in key order. */
  activeUsers(options: PageOptions & { sinceMs: number }): Promise<Page<UserActivity>>;
  /**
   * Deletes up to `limit` users last active before `beforeMs`, with their attribute snapshot rows in every scope and their
   * profile fetches of every sync, in one transaction: both cover the activity window only, so a user who returns gets
   * their profile fetched and their values sent afresh. Resolves with how many users it deleted.
   */
  pruneInactiveUsers(beforeMs: number, limit: number): Promise<number>;

  /**
   * The identified users (`user_id:` keys) of the activity index active at or after `sinceMs`, in the order a trait sync
   * should fetch their profiles (Amplitude's User Profile API allows 600 requests a minute per organisation, so a pass
   * spans runs): first those it never fetched or that were active since their fetch, in key order; then the rest, stalest
   * fetch first (ties in key order). At most `limit` (capped at MAX_ROWS_PER_TRANSACTION).
   */
  profileFetchQueue(syncId: string, options: { sinceMs: number; limit: number }): Promise<ProfileQueueEntry[]>;
  /** Records what a trait sync fetched; a user recorded again (or repeated in `fetches`, the last wins) replaces its fetch. */
  recordProfileFetches(syncId: string, fetches: readonly ProfileFetch[]): Promise<void>;
  /** The recorded fetches of these users by a trait sync (users never fetched are absent). */
  profileFetches(syncId: string, userKeys: readonly string[]): Promise<Map<string, ProfileFetch>>;
  /**
   * Of the identified users active at or after `sinceMs`: how many there are, how many the sync ever fetched, and how
   * many it fetched at or after `fetchedSinceMs`.
   */
  profileFetchCounts(syncId: string, options: { sinceMs: number; fetchedSinceMs: number }): Promise<ProfileFetchCounts>;

  /** The device ids looked up before for these Amplitude users (users never looked up are absent). */
  knownDeviceIds(amplitudeIds: readonly string[]): Promise<Map<string, string | null>>;
  recordDeviceIds(entries: readonly AmplitudeDeviceId[]): Promise<void>;
  /**
   * Claims events for a request about to be sent; resolves, per claim, with the keys it got (an event claimed
   * before, by any run, is never claimed again). Claimed events are never sent again unless released.
   */
  claimEvents(claims: readonly EventClaim[]): Promise<string[][]>;
  /** Releases a request's claims: Braze answered it with an error status, so none of its events arrived. */
  releaseEventClaims(runId: string, requestKey: string): Promise<void>;
  /** Events the run claimed whose request has no recorded answer: they may or may not have reached Braze. */
  unconfirmedEventCount(runId: string): Promise<number>;
  /**
   * Settles the run's claims of requests named `keyPrefix…` that have no recorded answer (cut off with their worker):
   * `release` frees them, so that they are sent again (at-least-once delivery); `keep` keeps them claimed, never to be
   * sent again, and moves them to the run `<runId>#unconfirmed`, so that each is reported once (at-most-once).
   * Resolves with how many events it settled.
   */
  settleUnconfirmedClaims(runId: string, keyPrefix: string, how: 'release' | 'keep'): Promise<number>;
  /** Deletes up to `limit` sent-event ledger entries older than `beforeMs`; resolves with how many it deleted. */
  pruneSentEvents(beforeMs: number, limit: number): Promise<number>;
}

/** What the receiver acknowledged, per stream, until processed; and the dead letters of what could not be. */
/** What one pushed batch became at the door: items to spool and what the door refused, for one stream. */
export interface AdmittedBatch {
  stream: string;
  items: readonly IngressItem[];
  letters: readonly DeadLetter[];
}

export interface IngressSpool {
  /**
   * Keeps each batch's dead letters and spools its items (an item whose key its stream has seen before is a duplicate),
   * every batch in one transaction: the receiver commits the batches of concurrent requests together.
   */
  admitIngress(batches: readonly AdmittedBatch[], receivedAtMs: number): Promise<Array<{ spooled: number; duplicates: number }>>;
  /** A stream's saved settings (what its workflow starts with when the receiver wakes it), if any were saved. */
  streamSettings(stream: string): Promise<JsonObject | undefined>;
  /** Saves a stream's settings, replacing what was saved. */
  saveStreamSettings(stream: string, settings: JsonObject, atMs: number): Promise<void>;
  deleteStreamSettings(stream: string): Promise<void>;
  /** Every saved settings whose stream name starts with `prefix`, in name order. */
  streamSettingsNamed(prefix: string): Promise<Array<{ stream: string; settings: JsonObject }>>;
  /** Adds items to a stream's spool in one transaction; an item whose key the stream has seen before is a duplicate. */
  spoolIngress(stream: string, items: readonly IngressItem[], receivedAtMs: number): Promise<{ spooled: number; duplicates: number }>;
  /**
   * The stream's oldest unprocessed items, in arrival order, up to `limit` (capped at MAX_ROWS_PER_TRANSACTION): none
   * deferred past `nowMs`, and none behind an earlier deferred item of its partition, so each partition keeps its order.
   */
  pendingIngress(stream: string, options: { nowMs: number; limit: number }): Promise<SpooledItem[]>;
  /** Marks items processed; they stay (to recognise redeliveries) until pruned. */
  completeIngress(stream: string, seqs: readonly number[], doneAtMs: number): Promise<void>;
  /** Deletes items without a trace (an erased user's, which must not be kept even to recognise a redelivery). */
  discardIngress(stream: string, seqs: readonly number[]): Promise<void>;
  /** Holds back every unprocessed item of these partitions until `notBeforeMs` (a vendor throttled them). */
  deferIngress(stream: string, partitionKeys: readonly string[], notBeforeMs: number): Promise<void>;
  /** Keeps items with their reason; a spooled item (with `seq`) is marked processed too. A repeated key keeps the first. */
  deadLetterIngress(stream: string, letters: ReadonlyArray<DeadLetter | SpooledDeadLetter>, atMs: number): Promise<void>;
  ingressBacklog(stream: string, nowMs: number): Promise<IngressBacklog>;
  /** The streams with unprocessed items, by name. */
  pendingIngressStreams(): Promise<string[]>;
  /** Oldest first, of one stream or all, after `after` (capped at MAX_ROWS_PER_TRANSACTION). */
  deadLetters(options: { stream?: string; after?: DeadLetterPosition; limit: number }): Promise<StoredDeadLetter[]>;
  /** How many dead letters each stream keeps, by stream. */
  deadLetterCounts(): Promise<DeadLetterCount[]>;
  /**
   * In one transaction per chunk: removes the dead letters and spools their items; an item whose key the stream
   * holds already (processed, or still pending) takes the replayed body and is pending again. Returns how many.
   */
  replayDeadLetters(stream: string, replays: readonly DeadLetterReplay[], atMs: number): Promise<number>;
  /** Deletes these dead letters of a stream for good; returns how many there were. */
  discardDeadLetters(stream: string, dedupeKeys: readonly string[]): Promise<number>;
  /** Deletes up to `limit` items of any stream processed before `beforeMs`; returns how many. */
  pruneIngress(beforeMs: number, limit: number): Promise<number>;
}

/** Reads and writes that no sync makes, only tests (to set up and check state): every store implements them. */
export interface StoreInspection {
  /** Applies the members a run has sent (added) and removed; idempotent. */
  commitSnapshot(syncId: string, changes: { added?: readonly string[]; removed?: readonly string[] }): Promise<void>;
  snapshotMembers(syncId: string, options: PageOptions): Promise<Page<SnapshotMember>>;
  snapshotCount(syncId: string): Promise<number>;
  /** Records values Braze accepted in a scope (see `attributeSnapshots`); of repeated (member, attribute) pairs the last wins. */
  upsertAttributeSnapshots(scope: string, rows: readonly AttributeSnapshot[]): Promise<void>;
  diffCounts(runId: string, syncId: string): Promise<DiffCounts>;
  /** Users staged, and the attribute changes they carry in all. */
  stagedTraitCounts(runId: string): Promise<{ users: number; attributes: number }>;
  lastSuccessfulRun(syncId: string): Promise<RunRecord | undefined>;

  /** Counts a page's data points once per (runId, pageKey); returns false when the page was already counted. */
  addDataPoints(entry: DataPointEntry): Promise<boolean>;
  cohortDownloadsInMonth(month: string): Promise<number>;

  /** Records what one vendor request achieved; false if that request was recorded already. */
  recordRequestOutcome(outcome: RequestOutcome): Promise<boolean>;
  failuresForRun(runId: string, options: PageOptions): Promise<Page<MemberFailure>>;
}

/** The state store every worker and receiver shares: one interface per concern, each implemented for SQLite and PostgreSQL. */
/** A User Profile API answer kept in the store (see `ProfileCache`). */
export interface CachedProfile {
  /** `user_id:<id>` or `device_id:<id>`: the identity it was asked for. */
  userKey: string;
  fetchedAtMs: number;
  /**
   * Amplitude's \`userData\` as it answered a fetch of everything but user properties (computations in \`amp_props\`,
   * recommendations, cohort ids, propensities), in its own key order; null: Amplitude had not seen the user.
   */
  userData: JsonObject | null;
}

/** Where a page of a warm-up audience ends (members are read newest activity first): numbers, never a user. */
export interface AudienceCursor {
  lastEventMs: number;
  seq: number;
}

export interface ProfileAudienceCounts {
  members: number;
  /** Members whose profile was fetched at or after the time asked about. */
  fresh: number;
  /** Of those, the ones Amplitude has not seen. */
  unknown: number;
}

/**
 * Amplitude User Profile API answers the product fetched (trait syncs, warm-ups, the receiver's Connected Content
 * route), shared by all of them, and the audiences a warm-up refreshes.
 */
export interface ProfileCache {
  cachedProfile(userKey: string): Promise<CachedProfile | undefined>;
  /** Keeps fetched answers; an answer fetched before the one kept already is dropped. */
  keepProfiles(profiles: readonly CachedProfile[]): Promise<void>;
  /** Adds users to an audience (with their last activity, from the activity index); users in it already stay once. */
  addToProfileAudience(audienceId: string, userKeys: readonly string[]): Promise<void>;
  /**
   * Reads up to `limit` members after `after`, newest activity first, and resolves with those whose profile was not
   * fetched at or after `freshSinceMs`, and the cursor of the next page (none after the last).
   */
  profileAudiencePage(
    audienceId: string,
    options: { after?: AudienceCursor; limit: number; freshSinceMs: number },
  ): Promise<{ due: string[]; next?: AudienceCursor }>;
  profileAudienceCounts(audienceId: string, freshSinceMs: number): Promise<ProfileAudienceCounts>;
  deleteProfileAudience(audienceId: string): Promise<void>;
}

/** Who an erasure is about, by the ids Amplitude and Braze know them by. */
export interface ErasureIdentities {
  userIds: string[];
  deviceIds: string[];
  amplitudeIds: string[];
}

/** One erasure, done in one transaction: every copy of the users' data removed, and their ids suppressed. */
export interface Erasure {
  /** Names the erasure: one recorded before is not done again (see `ErasureOutcome`). */
  erasureKey: string;
  /** What asked for it, in a few words (`ampbraze forget`, `Amplitude deletion job 2026-12-20`): no user id. */
  source: string;
  atMs: number;
  identities: ErasureIdentities;
  /** Keyed hashes of the ids to suppress (`user_id:…`, `device_id:…`, `amplitude_id:…`), with the key's fingerprint. */
  suppress: readonly string[];
  keyFingerprint: string;
  /** The one-way hash a ledger keeps in place of a key it must go on counting (member failures, sent events). */
  hashKey: (key: string) => string;
}

/** Rows removed (or, in ledgers, reduced to a hash) per table; nothing when the erasure was recorded before. */
export type ErasureOutcome = { done: true; removed: Record<string, number> } | { done: false };

export interface SuppressionSummary {
  /** Entries not lifted. */
  active: number;
  /** The fingerprints of the keys the active entries were hashed with (one, unless the key was changed). */
  keyFingerprints: string[];
}

/** An amplitude id seen with a user (`user_id:…`) or device (`device_id:…`) key, as the activity index remembers it. */
export interface AmplitudeIdentity {
  amplitudeId: string;
  userKey: string;
  seenAtMs: number;
}

/**
 * Erasure (GDPR/CCPA) and the suppression list: every copy of a user's data removed from every table, the freed
 * space cleared, and keyed hashes of their ids kept so that no sync or stream stages or sends them again.
 */
export interface Privacy {
  /** Keeps who an erasure is about until it is done, so that a workflow can carry the request's id instead. */
  saveErasureRequest(requestId: string, identities: ErasureIdentities, atMs: number): Promise<void>;
  erasureRequest(requestId: string): Promise<ErasureIdentities | undefined>;
  deleteErasureRequest(requestId: string): Promise<void>;

  recordAmplitudeIdentities(identities: readonly AmplitudeIdentity[]): Promise<void>;
  /** The ids given, with the ids seen with them: an Amplitude id's user and devices, a user's Amplitude ids and devices. */
  identitiesSeenWith(identities: ErasureIdentities): Promise<ErasureIdentities>;
  /** Deletes up to `limit` remembered Amplitude ids last seen before `beforeMs` (the activity window). */
  pruneAmplitudeIdentities(beforeMs: number, limit: number): Promise<number>;

  /** The alias member keys (`alias:<label>:<name>`) the store holds for these users: how Braze may know them too. */
  aliasKeysOf(identities: ErasureIdentities): Promise<string[]>;
  /** Removes the users from every table and suppresses their ids, in one transaction, recording the erasure. */
  eraseUsers(erasure: Erasure): Promise<ErasureOutcome>;
  /** Which of these erasures are recorded. */
  erasuresRecorded(erasureKeys: readonly string[]): Promise<Set<string>>;
  /**
   * Clears the space deleted rows occupied (SQLite: VACUUM and a truncating WAL checkpoint; PostgreSQL: VACUUM of the
   * tables that hold user data), so no erased value lingers in free pages. Resolves with what it did, in a line.
   */
  clearFreedSpace(): Promise<string>;

  suppressionSummary(): Promise<SuppressionSummary>;
  /** Of these hashes, those suppressed (not lifted), with when they were erased (epoch ms). */
  suppressedAmong(idHashes: readonly string[]): Promise<Map<string, number>>;
  /** Lifts suppressions, recorded as an erasure record of its own; resolves with how many were active. */
  liftSuppressions(idHashes: readonly string[], record: { erasureKey: string; source: string; atMs: number }): Promise<number>;
}

/** A Braze user alias, as the product addresses anonymous users (`amplitude_device_id` / `amplitude_id` + the id). */
export interface BrazeAliasRef {
  aliasName: string;
  aliasLabel: string;
}

/** An alias to identify: the external id that appeared with its id. */
export interface AliasToIdentify extends BrazeAliasRef {
  externalId: string;
}

/** What became of an identify: done, or refused by Braze with its reason. */
export interface AliasIdentification extends AliasToIdentify {
  identified: boolean;
  reason?: string;
}

/**
 * Anonymous users who sign in: the aliases the product wrote to, marked when a user id appears with their id, and
 * identified once (by whichever worker claims them first) before anything else is written for that user.
 */
export interface AliasIdentities {
  /** Records aliases about to be written to (a repeat is a no-op). */
  recordAliasesWritten(aliases: readonly BrazeAliasRef[], atMs: number): Promise<void>;
  /**
   * Marks the written aliases named by these ids (any label) to be identified to the external id seen with them; an
   * alias marked, identified or refused before is left as it is. Resolves with how many it marked.
   */
  markAliasesToIdentify(links: readonly { aliasName: string; externalId: string }[], atMs: number): Promise<number>;
  /** Claims up to `limit` marked aliases no other worker holds, for `leaseMs`; a claim that lapsed can be taken again. */
  claimAliasesToIdentify(limit: number, nowMs: number, leaseMs: number): Promise<AliasToIdentify[]>;
  /**
   * Records identifies; for each one done, the sync snapshots' alias key becomes the external id's (or, where a
   * sync holds that already, goes), so the merged profile is not written again.
   */
  recordIdentifications(results: readonly AliasIdentification[], atMs: number): Promise<void>;
}

/** What a counted thing is: a vendor's answers, or rows a sync kind staged or sent. */
export type UsageMetric = 'vendor_requests' | 'rows_staged' | 'rows_sent';

/** One day's count of a usage metric for one set of labels (e.g. `{ vendor: 'braze', endpoint: 'POST /users/track', status: '429' }`). */
export interface UsageCount {
  /** `YYYY-MM-DD` (UTC). */
  day: string;
  metric: UsageMetric;
  labels: Record<string, string>;
  count: number;
}

/** A sync's latest run (started since a given time) and when one of its runs last succeeded. */
export interface SyncSummary {
  lastRun: RunRecord;
  lastSucceededAt: Date | undefined;
}

export interface RunOutcomeCount {
  kind: string;
  status: RunStatus;
  count: number;
}

export interface DailyDataPoints {
  day: string;
  syncId: string;
  /** The run that spent them (its id ends with the Temporal run id that opened it). */
  runId: string;
  points: number;
}

/**
 * What an operator reads: the usage counts workers add (vendor answers, rows staged and sent), and views of the run
 * and data-point ledgers by sync, by day and by month. Read by `ampbraze syncs`, `ampbraze usage` and `/metrics`.
 */
export interface OperatorView {
  /** Adds to the day's counts (created at 0). */
  addUsageCounts(counts: readonly UsageCount[]): Promise<void>;
  /** Per day, from `sinceDay` (inclusive). */
  usageCountsSince(sinceDay: string): Promise<UsageCount[]>;
  /** Summed over every day the store keeps: what a Prometheus counter reports. */
  usageCountTotals(): Promise<Array<Omit<UsageCount, 'day'>>>;
  /** The latest run of each sync that started a run at or after `sinceMs`. */
  latestRunOfEachSync(sinceMs: number): Promise<SyncSummary[]>;
  /** Runs by kind and status, all time. */
  runOutcomeCounts(): Promise<RunOutcomeCount[]>;
  /** Data points by day, sync and run, from `sinceDay` (inclusive). */
  dataPointsByDay(sinceDay: string): Promise<DailyDataPoints[]>;
  /** Cohort downloads reserved per month, from `sinceMonth` (inclusive). */
  cohortDownloadsByMonth(sinceMonth: string): Promise<Array<{ month: string; downloads: number }>>;
}

export interface StateStore
  extends
    StoreHandle,
    RunsAndLeases,
    Ledgers,
    RateWindows,
    Staging,
    Snapshots,
    ActivityIndex,
    IngressSpool,
    ProfileCache,
    Privacy,
    AliasIdentities,
    OperatorView {}

/** A store with the reads and writes only tests make. */
export type InspectableStore = StateStore & StoreInspection;
