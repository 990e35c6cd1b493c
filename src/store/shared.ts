/** Validation, paging and rate-window rules every StateStore implementation shares, so the stores cannot drift apart. */
import {
  MAX_ROWS_PER_TRANSACTION,
  type AudienceCursor,
  type CachedProfile,
  type DiffCounts,
  type JsonObject,
  type JsonValue,
  type IngressBacklog,
  type SpooledItem,
  type StoredDeadLetter,
  type Page,
  type PageRange,
  type PlanKind,
  type PlannedPages,
  type ProfileFetch,
  type ProfileQueueEntry,
  type SendingRequest,
  type StagedEvent,
  type StagedMember,
  type StagedTraitChange,
  type StagingCheckpoint,
  type UserActivity,
  type RunRecord,
  type RunStatus,
} from './store.js';

export const DAY = /^\d{4}-\d{2}-\d{2}$/;
export const MONTH = /^\d{4}-\d{2}$/;
/** Sorts before every non-empty key, so it stands for "from the start" in keyset paging. */
export const FIRST_KEY = '';

export function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** Splits into chunks of at most MAX_ROWS_PER_TRANSACTION; an empty input gives one empty chunk. */
export function chunks<T>(items: readonly T[]): (readonly T[])[] {
  const result: (readonly T[])[] = [];
  for (let start = 0; start < items.length; start += MAX_ROWS_PER_TRANSACTION)
    result.push(items.slice(start, start + MAX_ROWS_PER_TRANSACTION));
  return result.length > 0 ? result : [[]];
}

export function pageLimit(limit: number): number {
  if (!Number.isInteger(limit) || limit < 1) throw new RangeError(`limit must be a whole number >= 1, got ${limit}`);
  return Math.min(limit, MAX_ROWS_PER_TRANSACTION);
}

export function toPage<T extends { memberKey: string }>(items: T[], limit: number): Page<T> {
  return { items, nextAfterKey: items.length === limit ? items.at(-1)?.memberKey : undefined };
}

/** A page of items keyed some other way than by member. */
export function toKeyedPage<T>(items: T[], limit: number, keyOf: (item: T) => string): Page<T> {
  const last = items.at(-1);
  return { items, nextAfterKey: items.length === limit && last !== undefined ? keyOf(last) : undefined };
}

export function toStagedEvent(row: { eventKey: string; body: string }): StagedEvent {
  return { eventKey: row.eventKey, body: JSON.parse(row.body) as JsonObject };
}

export function toStagedTraitChange(row: { userKey: string; changes: string }): StagedTraitChange {
  return { userKey: row.userKey, changes: JSON.parse(row.changes) as JsonObject };
}

/** A checkpoint's columns, in the order both stores' upserts take them. */
export function checkpointColumns(runId: string, checkpoint: StagingCheckpoint): [string, number, number, string | null] {
  return [runId, checkpoint.rowsConsumed, checkpoint.bytesConsumed, checkpoint.afterKey ?? null];
}

/** A checkpoint row as both stores keep it: `afterKey` NULL when the source is not read in key order. */
export function toStagingCheckpoint(row: { rowsConsumed: number; bytesConsumed: number; afterKey: string | null }): StagingCheckpoint {
  const checkpoint: StagingCheckpoint = { rowsConsumed: row.rowsConsumed, bytesConsumed: row.bytesConsumed };
  if (row.afterKey !== null) checkpoint.afterKey = row.afterKey;
  return checkpoint;
}

export function toUserActivity(row: { userKey: string; lastEventMs: number; properties: string }): UserActivity {
  return { userKey: row.userKey, lastEventMs: Number(row.lastEventMs), properties: JSON.parse(row.properties) as JsonObject };
}

/** A profile fetch as both stores keep it: values as JSON text. */
export interface ProfileFetchRow {
  userKey: string;
  fetchedAtMs: number;
  values: string;
}

export function toProfileFetch(row: ProfileFetchRow): ProfileFetch {
  return { userKey: row.userKey, fetchedAtMs: Number(row.fetchedAtMs), values: JSON.parse(row.values) as JsonObject };
}

/** A row of `profileFetchQueueSql`: `fetchedAtMs` NULL for a user never fetched. */
export interface ProfileQueueRow {
  userKey: string;
  lastEventMs: number;
  fetchedAtMs: number | null;
}

export function toProfileQueueEntry(row: ProfileQueueRow): ProfileQueueEntry {
  const entry: ProfileQueueEntry = { userKey: row.userKey, lastEventMs: Number(row.lastEventMs) };
  if (row.fetchedAtMs !== null) entry.fetchedAtMs = Number(row.fetchedAtMs);
  return entry;
}

export function requireKey(memberKey: string): string {
  // An empty key equals FIRST_KEY, so keyset paging (`member_key > afterKey`) would never return it.
  if (memberKey === '') throw new RangeError('memberKey must not be empty');
  return memberKey;
}

export function requireFormat(name: string, value: string, pattern: RegExp, format: string): void {
  if (!pattern.test(value)) throw new RangeError(`${name} must be ${format}, got "${value}"`);
}

export function requirePageSize(pageSize: number): void {
  if (!Number.isInteger(pageSize) || pageSize < 1) throw new RangeError(`pageSize must be a whole number >= 1, got ${pageSize}`);
}

/** A plan's page counts from its change counts. */
export function plannedPages(counts: DiffCounts, pageSize: number): PlannedPages {
  return {
    enter: { changes: counts.enter, pages: Math.ceil(counts.enter / pageSize) },
    leave: { changes: counts.leave, pages: Math.ceil(counts.leave / pageSize) },
  };
}

/** Where the rows a plan numbers come from. */
export interface PlanSource {
  /** The table and its alias, e.g. `staged_events s`. */
  from: string;
  /** The key pages are cut along, e.g. `s.event_key`. */
  key: string;
  /** Which of the table's rows the plan covers. */
  where: string;
}

/**
 * The statement every plan kind uses, in both dialects: numbers the source's rows in key order and records the last
 * key of every `pageSize` rows as a page of `kind`. `runId` and `pageSize` are the dialect's placeholders for them
 * (the first two parameters); `where` may use more.
 */
export function planPagesSql(kind: PlanKind, source: PlanSource, placeholders: { runId: string; pageSize: string }): string {
  return `INSERT INTO plan_pages (run_id, kind, page_no, through_key)
    SELECT ${placeholders.runId}, '${kind}', page_no, max(page_key) FROM (
      SELECT ${source.key} AS page_key, (row_number() OVER (ORDER BY ${source.key}) - 1) / ${placeholders.pageSize} AS page_no
      FROM ${source.from} WHERE ${source.where}
    ) pages GROUP BY page_no`;
}

/** Every table staging a run's rows, with its key: `clearStaging` empties each, a chunk at a time in key order. */
export const STAGING_TABLES = [
  { table: 'staged_members', key: 'member_key' },
  { table: 'staged_events', key: 'event_key' },
  { table: 'staged_traits', key: 'user_key' },
] as const;

/**
 * Every table keeping rows of an activity-index user besides the index itself, with the column holding the user's key:
 * pruning a user deletes their rows from each, in its transaction, through an index on that column.
 */
export const USER_TABLES = [
  { table: 'user_attribute_snapshots', key: 'member_key' },
  { table: 'profile_fetches', key: 'user_key' },
  { table: 'amplitude_profiles', key: 'user_key' },
] as const;

/**
 * Attribute snapshot changes as one patch per user: attribute -> the value's snapshot text, or null to remove it.
 * Of a (user, attribute) pair changed twice, the last change wins, as row by row.
 */
export function attributePatches(
  changes: readonly { memberKey: string; attribute: string; value: string | null }[],
): Map<string, JsonObject> {
  const patches = new Map<string, JsonObject>();
  for (const { memberKey, attribute, value } of changes) {
    const patch = patches.get(memberKey) ?? {};
    patch[attribute] = value;
    patches.set(memberKey, patch);
  }
  return patches;
}

/** A stored attribute snapshot object as attribute -> snapshot text (nulls a patch left are no value; no values, no user). */
export function snapshotAttributes(attributes: JsonObject): Map<string, string> {
  const values = new Map<string, string>();
  for (const [attribute, value] of Object.entries(attributes)) if (typeof value === 'string') values.set(attribute, value);
  return values;
}

/** Identified users' keys (`user_id:…`) as a range an index can walk: ';' is the byte after ':'. */
const identified = (column: string) => `${column} >= 'user_id:' AND ${column} < 'user_id;'`;

/**
 * The statement of `StateStore.profileFetchQueue` in both dialects, given the dialect's placeholders. The users due
 * (never fetched, or active since) walk the activity index in key order, probing the sync's fetches; only if they do not
 * fill the limit do the rest walk the sync's fetches stalest first, probing the activity index.
 */
export function profileFetchQueueSql({ syncId, sinceMs, limit }: { syncId: string; sinceMs: string; limit: string }): string {
  return `WITH due AS (
      SELECT a.user_key, a.last_event_ms, f.fetched_at_ms
      FROM user_activity a LEFT JOIN profile_fetches f ON f.sync_id = ${syncId} AND f.user_key = a.user_key
      WHERE ${identified('a.user_key')} AND a.last_event_ms >= ${sinceMs} AND (f.fetched_at_ms IS NULL OR a.last_event_ms > f.fetched_at_ms)
      ORDER BY a.user_key LIMIT ${limit}
    ), stale AS (
      SELECT f.user_key, a.last_event_ms, f.fetched_at_ms
      FROM profile_fetches f JOIN user_activity a ON a.user_key = f.user_key
      WHERE f.sync_id = ${syncId} AND ${identified('f.user_key')} AND a.last_event_ms >= ${sinceMs} AND a.last_event_ms <= f.fetched_at_ms
      ORDER BY f.fetched_at_ms, f.user_key LIMIT ${limit} - (SELECT count(*) FROM due)
    )
    -- The due first, in key order; then the rest, stalest first.
    SELECT 0 AS part, 0 AS part_order, user_key AS "userKey", last_event_ms AS "lastEventMs", fetched_at_ms AS "fetchedAtMs" FROM due
    UNION ALL
    SELECT 1, fetched_at_ms, user_key, last_event_ms, fetched_at_ms FROM stale
    ORDER BY part, part_order, "userKey"`;
}

/** The statement of `StateStore.pendingIngress` in both dialects, given the dialect's placeholders. */
export function pendingIngressSql({ stream, nowMs, limit }: { stream: string; nowMs: string; limit: string }): string {
  return `SELECT s.seq, s.dedupe_key AS "dedupeKey", s.partition_key AS "partitionKey", s.received_at_ms AS "receivedAtMs", s.body
    FROM ingress_spool s
    WHERE s.stream = ${stream} AND s.done_at_ms IS NULL AND s.not_before_ms <= ${nowMs}
      AND NOT EXISTS (
        SELECT 1 FROM ingress_spool d
        WHERE d.stream = s.stream AND d.partition_key = s.partition_key AND d.done_at_ms IS NULL AND d.seq < s.seq AND d.not_before_ms > ${nowMs}
      )
    ORDER BY s.seq LIMIT ${limit}`;
}

export const PENDING_INGRESS_STREAMS = 'SELECT DISTINCT stream FROM ingress_spool WHERE done_at_ms IS NULL ORDER BY stream';

/** The statement of `StateStore.ingressBacklog` in both dialects, given the dialect's placeholders. */
export function ingressBacklogSql({ stream, nowMs }: { stream: string; nowMs: string }): string {
  return `SELECT count(*) AS pending, count(*) FILTER (WHERE not_before_ms > ${nowMs}) AS deferred, min(received_at_ms) AS "oldestReceivedAtMs",
      (SELECT count(*) FROM ingress_dead_letters WHERE stream = ${stream}) AS "deadLetters"
    FROM ingress_spool WHERE stream = ${stream} AND done_at_ms IS NULL`;
}

/**
 * The statement of `StateStore.deadLetters` in both dialects: oldest first, of one stream (or all, when the stream
 * is null), after a position (at, stream, key).
 */
export function deadLettersSql(p: { stream: string; afterAtMs: string; afterStream: string; afterKey: string; limit: string }): string {
  return `SELECT stream, dedupe_key AS "dedupeKey", reason, body, at_ms AS "atMs", partition_key AS "partitionKey"
    FROM ingress_dead_letters
    WHERE (${p.stream} IS NULL OR stream = ${p.stream}) AND (at_ms, stream, dedupe_key) > (${p.afterAtMs}, ${p.afterStream}, ${p.afterKey})
    ORDER BY at_ms, stream, dedupe_key LIMIT ${p.limit}`;
}

export const DEAD_LETTER_COUNTS = `SELECT stream, count(*) AS count, min(at_ms) AS "oldestAtMs"
  FROM ingress_dead_letters GROUP BY stream ORDER BY stream`;

/** The start of a dead-letter listing: before every letter. */
export const NO_POSITION = { afterAtMs: -1, afterStream: '', afterKey: '' };

export interface DeadLetterRow {
  stream: string;
  dedupeKey: string;
  reason: string;
  body: string;
  atMs: number | string;
  partitionKey: string | null;
}

export function toStoredDeadLetter(row: DeadLetterRow): StoredDeadLetter {
  const { stream, dedupeKey, reason, partitionKey } = row;
  return {
    stream,
    dedupeKey,
    reason,
    body: JSON.parse(row.body) as JsonValue,
    atMs: Number(row.atMs),
    ...(partitionKey !== null && { partitionKey }),
  };
}

export interface SpooledRow {
  seq: number | string;
  dedupeKey: string;
  partitionKey: string;
  receivedAtMs: number | string;
  body: string;
}

export function toSpooledItem(row: SpooledRow): SpooledItem {
  const { dedupeKey, partitionKey } = row;
  return {
    seq: Number(row.seq),
    dedupeKey,
    partitionKey,
    receivedAtMs: Number(row.receivedAtMs),
    body: JSON.parse(row.body) as JsonObject,
  };
}

export interface IngressBacklogRow {
  pending: number | string;
  deferred: number | string;
  oldestReceivedAtMs: number | string | null;
  deadLetters: number | string;
}

export function toIngressBacklog(row: IngressBacklogRow): IngressBacklog {
  const oldest = row.oldestReceivedAtMs;
  return {
    pending: Number(row.pending),
    deferred: Number(row.deferred),
    oldestReceivedAtMs: oldest === null ? undefined : Number(oldest),
    deadLetters: Number(row.deadLetters),
  };
}

/** The statement of `StateStore.profileFetchCounts` in both dialects, given the dialect's placeholders. */
export function profileFetchCountsSql({
  syncId,
  sinceMs,
  fetchedSinceMs,
}: {
  syncId: string;
  sinceMs: string;
  fetchedSinceMs: string;
}): string {
  return `SELECT count(*) AS audience, count(f.user_key) AS fetched, count(CASE WHEN f.fetched_at_ms >= ${fetchedSinceMs} THEN 1 END) AS "fetchedSince"
    FROM user_activity a LEFT JOIN profile_fetches f ON f.sync_id = ${syncId} AND f.user_key = a.user_key
    WHERE ${identified('a.user_key')} AND a.last_event_ms >= ${sinceMs}`;
}

/** The range of page `page` from the rows of pages `page - 1` and `page` (the earlier page's last key starts it). */
export function toPageRange(rows: readonly { pageNo: number; throughKey: string }[], page: number): PageRange | undefined {
  const through = rows.find((row) => row.pageNo === page);
  if (!through) return undefined;
  return { afterKey: rows.find((row) => row.pageNo === page - 1)?.throughKey, throughKey: through.throughKey };
}

/** A request's day and data points, checked before any of a batch is written. */
export function requireValidPoints(request: SendingRequest): void {
  requireFormat('day', request.day, DAY, 'YYYY-MM-DD');
  requirePoints(request.dataPoints);
}

export function requirePoints(points: number): void {
  if (!Number.isInteger(points) || points < 0) throw new RangeError(`points must be a whole number >= 0, got ${points}`);
}

/** A staged row as both stores keep it: optional fields as NULL, props as JSON text. */
export interface StagedRow {
  memberKey: string;
  amplitudeId: string;
  userId: string | null;
  deviceId: string | null;
  props: string | null;
}

export function toStagedRow(member: StagedMember): StagedRow {
  return {
    memberKey: requireKey(member.memberKey),
    amplitudeId: member.amplitudeId,
    userId: member.userId ?? null,
    deviceId: member.deviceId ?? null,
    props: member.props === undefined ? null : JSON.stringify(member.props),
  };
}

/** A row of `amplitude_profiles` as both dialects read it. */
export interface CachedProfileRow {
  userKey: string;
  fetchedAtMs: number;
  userData: string | null;
}

export function toCachedProfile(row: CachedProfileRow): CachedProfile {
  return {
    userKey: row.userKey,
    fetchedAtMs: row.fetchedAtMs,
    userData: row.userData === null ? null : (JSON.parse(row.userData) as JsonObject),
  };
}

/** Before the first member of an audience read newest activity first. */
export const FIRST_PAGE: AudienceCursor = { lastEventMs: Number.MAX_SAFE_INTEGER, seq: 0 };

/**
 * The statement of `StateStore.profileAudiencePage` in both dialects, given the dialect's placeholders: members after
 * the cursor, newest activity first (the index walked backwards), each with whether its profile is fresh.
 */
export function audiencePageSql(p: { audienceId: string; lastEventMs: string; seq: string; freshSinceMs: string; limit: string }): string {
  return `SELECT a.user_key AS "userKey", a.last_event_ms AS "lastEventMs", a.seq, (p.fetched_at_ms IS NOT NULL AND p.fetched_at_ms >= ${p.freshSinceMs}) AS fresh
    FROM profile_audiences a LEFT JOIN amplitude_profiles p ON p.user_key = a.user_key
    WHERE a.audience_id = ${p.audienceId} AND (a.last_event_ms < ${p.lastEventMs} OR (a.last_event_ms = ${p.lastEventMs} AND a.seq < ${p.seq}))
    ORDER BY a.last_event_ms DESC, a.seq DESC
    LIMIT ${p.limit}`;
}

/** A run ledger row as either store returns it: times as ISO text (SQLite) or as dates (PostgreSQL). */
export interface RunRow {
  runId: string;
  syncId: string;
  kind: string;
  status: RunStatus;
  startedAt: string | Date;
  finishedAt: string | Date | null;
  sourceVersion: string | null;
  stats: string | null;
}

export function toRunRecord(row: RunRow): RunRecord {
  return {
    runId: row.runId,
    syncId: row.syncId,
    kind: row.kind,
    status: row.status,
    startedAt: new Date(row.startedAt),
    finishedAt: row.finishedAt === null ? undefined : new Date(row.finishedAt),
    sourceVersion: row.sourceVersion ?? undefined,
    stats: row.stats === null ? undefined : (JSON.parse(row.stats) as JsonObject),
  };
}
