/**
 * The embedded StateStore on SQLite (better-sqlite3): WAL mode so readers never block the writer, waits for another
 * process's write lock on timers (so several processes on one host share the file without stalling each other's
 * event loop), and set-based SQL for the diff.
 */
import { mkdirSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import { jsonText } from '../ingress/bounds.js';
import { applyMigrations, currentSchemaVersion } from './migrations.js';
import {
  DAY,
  FIRST_KEY,
  MONTH,
  checkpointColumns,
  chunks,
  nextRateWindow,
  pageLimit,
  plannedPages,
  planPagesSql,
  profileFetchCountsSql,
  profileFetchQueueSql,
  pendingIngressSql,
  ingressBacklogSql,
  PENDING_INGRESS_STREAMS,
  DEAD_LETTER_COUNTS,
  deadLettersSql,
  NO_POSITION,
  toStoredDeadLetter,
  type DeadLetterRow,
  type IngressBacklogRow,
  toIngressBacklog,
  toSpooledItem,
  type SpooledRow,
  requireFormat,
  requireKey,
  requirePageSize,
  requirePoints,
  requireValidPoints,
  STAGING_TABLES,
  toPage,
  toKeyedPage,
  toPageRange,
  toProfileFetch,
  toProfileQueueEntry,
  toStagedEvent,
  toUserActivity,
  toStagedMember,
  toStagedRow,
  toStagedTraitChange,
  toStagingCheckpoint,
  USER_TABLES,
  attributePatches,
  snapshotAttributes,
  yieldToEventLoop,
  type ProfileFetchRow,
  type ProfileQueueRow,
  type RateWindowRow,
  type StagedRow,
} from './shared.js';
import {
  MAX_ROWS_PER_TRANSACTION,
  type AmplitudeDeviceId,
  type AttributeSnapshot,
  type CohortDownloadReservation,
  type DataPointEntry,
  type DiffCounts,
  type DiffKind,
  type DiffPageOptions,
  type EventClaim,
  type DeadLetter,
  type DeadLetterCount,
  type DeadLetterPosition,
  type DeadLetterReplay,
  type SpooledDeadLetter,
  type StoredDeadLetter,
  type IngressBacklog,
  type IngressItem,
  type JsonObject,
  type SpooledItem,
  type MemberFailure,
  type MembershipMark,
  type MembershipState,
  type Page,
  type PageOptions,
  type OutcomeTotals,
  type PageRange,
  type PlanKind,
  type PlannedPages,
  type ProfileFetch,
  type ProfileFetchCounts,
  type ProfileQueueEntry,
  type RateSlotGrant,
  type RateSlotRequest,
  type ReasonCount,
  type ReservationResult,
  type RunFinish,
  type RunRecord,
  type RunStart,
  type RequestOutcome,
  type RunStatus,
  type SendingRequest,
  type SentRequest,
  type SnapshotMember,
  type StagedEvent,
  type StagedMember,
  type StagedTraitChange,
  type StagingCheckpoint,
  type StateStore,
  type StoreInspection,
  type SyncLease,
  type SyncLeaseHold,
  type SyncLeaseClaim,
  type UserActivity,
  type VendorRateReport,
} from './store.js';

/**
 * SQLite's own busy handler sleeps on the event loop: it may only wait this long. Longer waits for another process's
 * write lock happen in `settle`, on timers, so a receiver or worker keeps answering while it waits.
 */
const BLOCKING_BUSY_TIMEOUT_MS = 5;
/** `PRAGMA synchronous` reads FULL as 2. */
const SYNCHRONOUS_FULL = 2;
/** How long an operation waits for the write lock, in all, unless the store is opened with another timeout. */
export const DEFAULT_SQLITE_TIMEOUT_MS = 5 * 60_000;
/** Placeholders of planPagesSql; the cast keeps the page number an integer division. */
const PLAN_PLACEHOLDERS = { runId: '?', pageSize: 'CAST(? AS INTEGER)' };

interface RunRow {
  runId: string;
  syncId: string;
  kind: string;
  status: RunStatus;
  startedAt: string;
  finishedAt: string | null;
  sourceVersion: string | null;
  stats: string | null;
}

const RUN_COLUMNS =
  'run_id AS runId, sync_id AS syncId, kind, status, started_at AS startedAt, finished_at AS finishedAt, source_version AS sourceVersion, stats';
/** The latest run to finish successfully whose `column` is the parameter. */
const lastSucceededRun = (column: 'sync_id' | 'kind') =>
  `SELECT ${RUN_COLUMNS} FROM runs WHERE ${column} = ? AND status = 'succeeded' ORDER BY finished_at DESC LIMIT 1`;
/** A page of staged trait changes, optionally bounded above by `through`. */
const stagedTraitPage = (through: string) =>
  `SELECT user_key AS userKey, changes FROM staged_traits WHERE run_id = ? AND user_key > ? ${through} ORDER BY user_key LIMIT ?`;

export interface SqliteStoreOptions {
  /** How long one operation may wait for another process's write lock before it fails. */
  timeoutMs?: number;
  /** Every commit reaches the disk before it returns (a receiver's acknowledgement must survive an OS crash). */
  durableCommits?: boolean;
}

export function openSqliteStateStore(path: string, options: SqliteStoreOptions = {}): SqliteStateStore {
  if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true });
  const db = new Database(path);
  try {
    db.pragma('journal_mode = WAL');
    db.pragma(`busy_timeout = ${BLOCKING_BUSY_TIMEOUT_MS}`);
    // NORMAL is safe with WAL (a power loss can lose the last commits, never corrupt the file); FULL loses none.
    db.pragma(`synchronous = ${options.durableCommits ? 'FULL' : 'NORMAL'}`);
    applyMigrationsWhenFree(db, options.timeoutMs ?? DEFAULT_SQLITE_TIMEOUT_MS);
  } catch (error) {
    db.close();
    throw error;
  }
  // Said as the connection has it, not as it was asked for.
  const durable = db.pragma('synchronous', { simple: true }) === SYNCHRONOUS_FULL ? ', every commit synced to disk' : '';
  return new SqliteStateStore(db, `SQLite ${path}${durable}`, options.timeoutMs ?? DEFAULT_SQLITE_TIMEOUT_MS);
}

/** Migrations at start-up may wait for another process's write lock as long as any operation (nothing else runs yet). */
function applyMigrationsWhenFree(db: Database.Database, timeoutMs: number): void {
  for (const deadline = Date.now() + timeoutMs; ;) {
    try {
      applyMigrations(db);
      return;
    } catch (error) {
      if (!isBusy(error) || Date.now() > deadline) throw error;
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20);
    }
  }
}

export class SqliteStateStore implements StateStore, StoreInspection {
  readonly #db: Database.Database;
  readonly #sql;
  readonly #timeoutMs: number;

  constructor(
    db: Database.Database,
    readonly description: string,
    timeoutMs = DEFAULT_SQLITE_TIMEOUT_MS,
  ) {
    this.#db = db;
    this.#sql = prepareStatements(db);
    this.#timeoutMs = timeoutMs;
  }

  schemaVersion(): Promise<number> {
    return this.#settle(() => currentSchemaVersion(this.#db));
  }

  probeWrite(): Promise<void> {
    return this.#settle(() => {
      this.#db.exec('BEGIN IMMEDIATE');
      try {
        this.#sql.writeProbe.run();
      } finally {
        this.#db.exec('ROLLBACK');
      }
    });
  }

  close(): Promise<void> {
    return this.#settle(() => void this.#db.close());
  }

  async commitSnapshot(syncId: string, changes: { added?: readonly string[]; removed?: readonly string[] }): Promise<void> {
    await this.#inTransactions(changes.added ?? [], (chunk) => {
      for (const memberKey of chunk) this.#sql.insertSnapshotMember.run(syncId, requireKey(memberKey));
    });
    await this.#inTransactions(changes.removed ?? [], (chunk) => {
      for (const memberKey of chunk) this.#sql.deleteSnapshotMember.run(syncId, memberKey);
    });
  }

  async snapshotMembers(syncId: string, options: PageOptions): Promise<Page<SnapshotMember>> {
    const limit = pageLimit(options.limit);
    const rows = this.#sql.snapshotPage.all(syncId, options.afterKey ?? FIRST_KEY, limit);
    await yieldToEventLoop();
    return toPage(rows, limit);
  }

  snapshotCount(syncId: string): Promise<number> {
    return this.#settle(() => this.#sql.snapshotCount.get(syncId)?.count ?? 0);
  }

  async membershipStates(syncId: string, memberKeys: readonly string[]): Promise<Map<string, MembershipState>> {
    const states = new Map<string, MembershipState>();
    for (const chunk of chunks(memberKeys)) {
      for (const row of this.#sql.membershipStates.all({ syncId, keys: JSON.stringify(chunk) })) {
        states.set(row.memberKey, { inSnapshot: row.inSnapshot === 1, ...(row.markedAt !== null && { markedAt: row.markedAt }) });
      }
      await yieldToEventLoop();
    }
    return states;
  }

  async recordMembershipMarks(syncId: string, marks: readonly MembershipMark[]): Promise<void> {
    await this.#inTransactions(marks, (chunk) => {
      for (const { memberKey, computedTime } of chunk) this.#sql.upsertMembershipMark.run(syncId, requireKey(memberKey), computedTime);
    });
  }

  async attributeSnapshots(scope: string, memberKeys: readonly string[]): Promise<Map<string, Map<string, string>>> {
    const snapshots = new Map<string, Map<string, string>>();
    for (const chunk of chunks(memberKeys)) {
      for (const { memberKey, attributes } of this.#sql.attributeSnapshots.all(scope, JSON.stringify(chunk))) {
        const values = snapshotAttributes(JSON.parse(attributes) as JsonObject);
        if (values.size > 0) snapshots.set(memberKey, values);
      }
      await yieldToEventLoop();
    }
    return snapshots;
  }

  async upsertAttributeSnapshots(scope: string, rows: readonly AttributeSnapshot[]): Promise<void> {
    await this.#inTransactions(rows, (chunk) => void this.#sql.mergeAttributePatches.run(scope, attributePatchesJson(chunk)));
  }

  async stageChunk(runId: string, rows: readonly StagedMember[], checkpoint: StagingCheckpoint): Promise<void> {
    await this.#stageInTransactions(runId, rows, checkpoint, (member) => {
      const row = toStagedRow(member);
      this.#sql.insertStaged.run(runId, row.memberKey, row.amplitudeId, row.userId, row.deviceId, row.props);
    });
  }

  stagingCheckpoint(runId: string): Promise<StagingCheckpoint | undefined> {
    return this.#settle(() => {
      const row = this.#sql.checkpoint.get(runId);
      return row && toStagingCheckpoint(row);
    });
  }

  stagedCount(runId: string): Promise<number> {
    return this.#settle(() => this.#sql.stagedCount.get(runId)?.count ?? 0);
  }

  async clearStaging(runId: string): Promise<void> {
    for (const deleteChunk of this.#sql.deleteStagedChunks) {
      while (deleteChunk.run(runId, runId, MAX_ROWS_PER_TRANSACTION).changes === MAX_ROWS_PER_TRANSACTION) await yieldToEventLoop();
    }
    this.#sql.deleteCheckpoint.run(runId);
    this.#sql.deletePlan.run(runId);
  }

  diffPage(runId: string, syncId: string, options: DiffPageOptions & { kind: 'enter' }): Promise<Page<StagedMember>>;
  diffPage(runId: string, syncId: string, options: DiffPageOptions & { kind: 'leave' }): Promise<Page<SnapshotMember>>;
  async diffPage(
    runId: string,
    syncId: string,
    options: DiffPageOptions & { kind: DiffKind },
  ): Promise<Page<StagedMember> | Page<SnapshotMember>> {
    const limit = pageLimit(options.limit);
    const afterKey = options.afterKey ?? FIRST_KEY;
    const { throughKey } = options;
    let rows;
    if (options.kind === 'leave') {
      rows =
        throughKey === undefined
          ? this.#sql.leavePage.all(syncId, afterKey, runId, limit)
          : this.#sql.leaveRange.all(syncId, afterKey, throughKey, runId, limit);
    } else {
      const staged =
        throughKey === undefined
          ? this.#sql.enterPage.all(runId, afterKey, syncId, limit)
          : this.#sql.enterRange.all(runId, afterKey, throughKey, syncId, limit);
      rows = staged.map(toStagedMember);
    }
    await yieldToEventLoop();
    return toPage(rows, limit);
  }

  diffCounts(runId: string, syncId: string): Promise<DiffCounts> {
    return this.#settle(() => ({
      enter: this.#sql.enterCount.get(runId, syncId)?.count ?? 0,
      leave: this.#sql.leaveCount.get(syncId, runId)?.count ?? 0,
    }));
  }

  planPages(runId: string, syncId: string, pageSize: number): Promise<PlannedPages> {
    requirePageSize(pageSize);
    const plan = this.#db.transaction((): PlannedPages => {
      this.#sql.deletePlan.run(runId);
      this.#sql.planEnterPages.run(runId, pageSize, runId, syncId);
      this.#sql.planLeavePages.run(runId, pageSize, syncId, runId);
      const counts = {
        enter: this.#sql.enterCount.get(runId, syncId)?.count ?? 0,
        leave: this.#sql.leaveCount.get(syncId, runId)?.count ?? 0,
      };
      return plannedPages(counts, pageSize);
    });
    return this.#settle(() => plan());
  }

  plannedPage(runId: string, kind: PlanKind, page: number): Promise<PageRange | undefined> {
    return this.#settle(() => toPageRange(this.#sql.plannedPage.all(runId, kind, page - 1, page), page));
  }

  async stageEvents(
    runId: string,
    chunk: { events: readonly StagedEvent[]; activity: readonly UserActivity[] },
    checkpoint: StagingCheckpoint,
  ): Promise<void> {
    const apply = this.#db.transaction(() => {
      for (const event of chunk.events) this.#sql.insertStagedEvent.run(runId, requireKey(event.eventKey), JSON.stringify(event.body));
      for (const user of chunk.activity)
        this.#sql.upsertActivity.run(requireKey(user.userKey), user.lastEventMs, JSON.stringify(user.properties));
      this.#sql.upsertCheckpoint.run(...checkpointColumns(runId, checkpoint));
    });
    await this.#settle(() => apply.immediate());
    await yieldToEventLoop();
  }

  stagedEventCount(runId: string): Promise<number> {
    return this.#settle(() => this.#sql.stagedEventCount.get(runId)?.count ?? 0);
  }

  async planEventPages(runId: string, pageSize: number): Promise<{ events: number; pages: number }> {
    const { count, pages } = await this.#planRunPages(runId, pageSize, this.#sql.planEventPages, this.#sql.unsentEventCount);
    return { events: count, pages };
  }

  async unsentEvents(runId: string, options: DiffPageOptions): Promise<Page<StagedEvent>> {
    const limit = pageLimit(options.limit);
    const afterKey = options.afterKey ?? FIRST_KEY;
    const rows =
      options.throughKey === undefined
        ? this.#sql.unsentEvents.all(runId, afterKey, limit)
        : this.#sql.unsentEventRange.all(runId, afterKey, options.throughKey, limit);
    await yieldToEventLoop();
    return toKeyedPage(rows.map(toStagedEvent), limit, (event) => event.eventKey);
  }

  claimEvents(claims: readonly EventClaim[]): Promise<string[][]> {
    const claim = this.#db.transaction(() =>
      claims.map(({ runId, requestKey, eventKeys, nowMs }) =>
        eventKeys.filter((key) => this.#sql.claimEvent.run(requireKey(key), runId, requestKey, nowMs).changes === 1),
      ),
    );
    return this.#settle(() => claim.immediate());
  }

  releaseEventClaims(runId: string, requestKey: string): Promise<void> {
    return this.#settle(() => void this.#sql.releaseEventClaims.run(runId, requestKey));
  }

  unconfirmedEventCount(runId: string): Promise<number> {
    return this.#settle(() => this.#sql.unconfirmedEventCount.get(runId)?.count ?? 0);
  }

  async activeUsers(options: PageOptions & { sinceMs: number }): Promise<Page<UserActivity>> {
    const limit = pageLimit(options.limit);
    const rows = this.#sql.activeUsers.all(options.afterKey ?? FIRST_KEY, options.sinceMs, limit);
    await yieldToEventLoop();
    return toKeyedPage(rows.map(toUserActivity), limit, (user) => user.userKey);
  }

  pruneInactiveUsers(beforeMs: number, limit: number): Promise<number> {
    const prune = this.#db.transaction((): number => {
      const userKeys = JSON.stringify(this.#sql.inactiveUsers.all(beforeMs, pageLimit(limit)).map((user) => user.userKey));
      for (const deleteUsersRows of this.#sql.deleteUsersRows) deleteUsersRows.run(userKeys);
      return this.#sql.deleteActivity.run(userKeys).changes;
    });
    // IMMEDIATE: the users read are deleted under the same write lock.
    return this.#settle(() => prune.immediate());
  }

  pruneSentEvents(beforeMs: number, limit: number): Promise<number> {
    return this.#settle(() => this.#sql.pruneSentEvents.run(beforeMs, pageLimit(limit)).changes);
  }

  async stageTraitChanges(runId: string, rows: readonly StagedTraitChange[], checkpoint: StagingCheckpoint): Promise<void> {
    await this.#stageInTransactions(
      runId,
      rows,
      checkpoint,
      (row) => void this.#sql.upsertStagedTrait.run(runId, requireKey(row.userKey), JSON.stringify(row.changes)),
    );
  }

  stagedTraitCounts(runId: string): Promise<{ users: number; attributes: number }> {
    return this.#settle(() => this.#sql.stagedTraitCounts.get(runId)!);
  }

  async planTraitPages(runId: string, pageSize: number): Promise<{ users: number; pages: number }> {
    const { count, pages } = await this.#planRunPages(runId, pageSize, this.#sql.planTraitPages, this.#sql.stagedTraitUsers);
    return { users: count, pages };
  }

  async stagedTraitChanges(runId: string, options: DiffPageOptions): Promise<Page<StagedTraitChange>> {
    const limit = pageLimit(options.limit);
    const afterKey = options.afterKey ?? FIRST_KEY;
    const rows =
      options.throughKey === undefined
        ? this.#sql.stagedTraits.all(runId, afterKey, limit)
        : this.#sql.stagedTraitRange.all(runId, afterKey, options.throughKey, limit);
    await yieldToEventLoop();
    return toKeyedPage(rows.map(toStagedTraitChange), limit, (change) => change.userKey);
  }

  async profileFetchQueue(syncId: string, options: { sinceMs: number; limit: number }): Promise<ProfileQueueEntry[]> {
    const rows = this.#sql.profileFetchQueue.all({ syncId, sinceMs: options.sinceMs, limit: pageLimit(options.limit) });
    await yieldToEventLoop();
    return rows.map(toProfileQueueEntry);
  }

  async recordProfileFetches(syncId: string, fetches: readonly ProfileFetch[]): Promise<void> {
    await this.#inTransactions(fetches, (chunk) => {
      for (const profile of chunk)
        this.#sql.upsertProfileFetch.run(syncId, requireKey(profile.userKey), profile.fetchedAtMs, JSON.stringify(profile.values));
    });
  }

  async profileFetches(syncId: string, userKeys: readonly string[]): Promise<Map<string, ProfileFetch>> {
    const fetches = new Map<string, ProfileFetch>();
    for (const chunk of chunks(userKeys)) {
      for (const row of this.#sql.profileFetches.all(syncId, JSON.stringify(chunk))) fetches.set(row.userKey, toProfileFetch(row));
      await yieldToEventLoop();
    }
    return fetches;
  }

  profileFetchCounts(syncId: string, options: { sinceMs: number; fetchedSinceMs: number }): Promise<ProfileFetchCounts> {
    return this.#settle(() => this.#sql.profileFetchCounts.get({ syncId, ...options })!);
  }

  async spoolIngress(
    stream: string,
    items: readonly IngressItem[],
    receivedAtMs: number,
  ): Promise<{ spooled: number; duplicates: number }> {
    // One transaction: the sender's batch is in the store as a whole, or not at all (and it sends it again).
    const spool = this.#db.transaction(() =>
      items.reduce((spooled, { dedupeKey, partitionKey, body }) => {
        const inserted = this.#sql.spoolItem.run(stream, requireKey(dedupeKey), partitionKey, receivedAtMs, JSON.stringify(body));
        return spooled + inserted.changes;
      }, 0),
    );
    const spooled = await this.#settle(() => spool.immediate());
    return { spooled, duplicates: items.length - spooled };
  }

  pendingIngress(stream: string, options: { nowMs: number; limit: number }): Promise<SpooledItem[]> {
    return this.#settle(() =>
      this.#sql.pendingIngress.all({ stream, nowMs: options.nowMs, limit: pageLimit(options.limit) }).map(toSpooledItem),
    );
  }

  async completeIngress(stream: string, seqs: readonly number[], doneAtMs: number): Promise<void> {
    await this.#inTransactions(seqs, (chunk) => void this.#sql.completeIngress.run(doneAtMs, stream, JSON.stringify(chunk)));
  }

  async deferIngress(stream: string, partitionKeys: readonly string[], notBeforeMs: number): Promise<void> {
    await this.#inTransactions(partitionKeys, (chunk) => void this.#sql.deferIngress.run(notBeforeMs, stream, JSON.stringify(chunk)));
  }

  async deadLetterIngress(stream: string, letters: ReadonlyArray<DeadLetter | SpooledDeadLetter>, atMs: number): Promise<void> {
    await this.#inTransactions(letters, (chunk) => {
      for (const letter of chunk) {
        const partitionKey = 'seq' in letter ? letter.partitionKey : null;
        this.#sql.insertDeadLetter.run(stream, requireKey(letter.dedupeKey), letter.reason, jsonText(letter.body), atMs, partitionKey);
        if ('seq' in letter) this.#sql.completeIngress.run(atMs, stream, JSON.stringify([letter.seq]));
      }
    });
  }

  ingressBacklog(stream: string, nowMs: number): Promise<IngressBacklog> {
    return this.#settle(() => toIngressBacklog(this.#sql.ingressBacklog.get({ stream, nowMs })!));
  }

  pendingIngressStreams(): Promise<string[]> {
    return this.#settle(() => this.#sql.pendingIngressStreams.all().map((row) => row.stream));
  }

  deadLetters(options: { stream?: string; after?: DeadLetterPosition; limit: number }): Promise<StoredDeadLetter[]> {
    const { stream = null, after } = options;
    const position = after ? { afterAtMs: after.atMs, afterStream: after.stream, afterKey: after.dedupeKey } : NO_POSITION;
    return this.#settle(() => this.#sql.deadLetters.all({ stream, ...position, limit: pageLimit(options.limit) }).map(toStoredDeadLetter));
  }

  deadLetterCounts(): Promise<DeadLetterCount[]> {
    return this.#settle(() => this.#sql.deadLetterCounts.all());
  }

  async replayDeadLetters(stream: string, replays: readonly DeadLetterReplay[], atMs: number): Promise<number> {
    let replayed = 0;
    await this.#inTransactions(replays, (chunk) => {
      for (const { dedupeKey, item } of chunk) {
        const spool = [stream, requireKey(item.dedupeKey), item.partitionKey, atMs, JSON.stringify(item.body)] as const;
        this.#sql.respoolItem.run(...spool);
        replayed += this.#sql.deleteDeadLetter.run(stream, dedupeKey).changes;
      }
    });
    return replayed;
  }

  async discardDeadLetters(stream: string, dedupeKeys: readonly string[]): Promise<number> {
    let discarded = 0;
    await this.#inTransactions(dedupeKeys, (chunk) => {
      for (const key of chunk) discarded += this.#sql.deleteDeadLetter.run(stream, key).changes;
    });
    return discarded;
  }

  pruneIngress(beforeMs: number, limit: number): Promise<number> {
    return this.#settle(() => this.#sql.pruneIngress.run(beforeMs, pageLimit(limit)).changes);
  }

  startRun(run: RunStart): Promise<void> {
    return this.#settle(() => void this.#sql.insertRun.run(run.runId, run.syncId, run.kind, run.startedAt.toISOString()));
  }

  finishRun(finish: RunFinish): Promise<void> {
    return this.#settle(() => {
      const { changes } = this.#sql.finishRun.run(
        finish.status,
        finish.finishedAt.toISOString(),
        finish.sourceVersion ?? null,
        JSON.stringify(finish.stats),
        finish.runId,
      );
      if (changes === 0) throw new Error(`finishRun: run "${finish.runId}" was never started`);
    });
  }

  lastSuccessfulRun(syncId: string): Promise<RunRecord | undefined> {
    return this.#settle(() => {
      const row = this.#sql.lastSuccessfulRun.get(syncId);
      return row && toRunRecord(row);
    });
  }

  lastSucceededRunOfKind(kind: string): Promise<RunRecord | undefined> {
    return this.#settle(() => {
      const row = this.#sql.lastSucceededRunOfKind.get(kind);
      return row && toRunRecord(row);
    });
  }

  recentRuns(options: { syncId?: string; limit: number }): Promise<RunRecord[]> {
    return this.#settle(() => {
      const limit = pageLimit(options.limit);
      const rows = options.syncId === undefined ? this.#sql.recentRuns.all(limit) : this.#sql.recentRunsOfSync.all(options.syncId, limit);
      return rows.map(toRunRecord);
    });
  }

  addDataPoints(entry: DataPointEntry): Promise<boolean> {
    return this.#settle(() => {
      requireFormat('day', entry.day, DAY, 'YYYY-MM-DD');
      requirePoints(entry.points);
      return this.#sql.insertDataPoints.run(entry.runId, entry.pageKey, entry.day, entry.syncId, entry.points).changes === 1;
    });
  }

  dataPointsOnDay(day: string, syncId?: string): Promise<number> {
    return this.#settle(() => {
      requireFormat('day', day, DAY, 'YYYY-MM-DD');
      const row = syncId === undefined ? this.#sql.dataPointsOnDay.get(day) : this.#sql.dataPointsOnDayForSync.get(day, syncId);
      return row?.total ?? 0;
    });
  }

  reserveCohortDownload(reservation: CohortDownloadReservation): Promise<ReservationResult> {
    const { month, limit, cohortId, runId } = reservation;
    const reserve = this.#db.transaction((): ReservationResult => {
      const earlier = this.#sql.findReservation.get(runId, cohortId);
      if (earlier) return { ok: true, used: this.#downloadsIn(earlier.month) };
      const used = this.#downloadsIn(month);
      if (used >= limit) return { ok: false, used };
      this.#sql.insertReservation.run(runId, cohortId, month, new Date().toISOString());
      return { ok: true, used: used + 1 };
    });
    return this.#settle(() => {
      requireFormat('month', month, MONTH, 'YYYY-MM');
      // IMMEDIATE: the count and the insert happen under the write lock, so concurrent workers cannot overspend.
      return reserve.immediate();
    });
  }

  cohortDownloadsInMonth(month: string): Promise<number> {
    return this.#settle(() => {
      requireFormat('month', month, MONTH, 'YYYY-MM');
      return this.#downloadsIn(month);
    });
  }

  async knownDeviceIds(amplitudeIds: readonly string[]): Promise<Map<string, string | null>> {
    const known = new Map<string, string | null>();
    for (const chunk of chunks(amplitudeIds)) {
      for (const { amplitudeId, deviceId } of this.#sql.knownDeviceIds.all(JSON.stringify(chunk))) known.set(amplitudeId, deviceId);
      await yieldToEventLoop();
    }
    return known;
  }

  async recordDeviceIds(entries: readonly AmplitudeDeviceId[]): Promise<void> {
    const lookedUpAt = new Date().toISOString();
    await this.#inTransactions(entries, (chunk) => {
      for (const { amplitudeId, deviceId } of chunk) this.#sql.upsertDeviceId.run(amplitudeId, deviceId, lookedUpAt);
    });
  }

  async recordFailures(runId: string, failures: readonly MemberFailure[]): Promise<void> {
    await this.#inTransactions(failures, (chunk) => {
      for (const failure of chunk) this.#sql.upsertFailure.run(runId, requireKey(failure.memberKey), failure.reason);
    });
  }

  async failuresForRun(runId: string, options: PageOptions): Promise<Page<MemberFailure>> {
    const limit = pageLimit(options.limit);
    const rows = this.#sql.failurePage.all(runId, options.afterKey ?? FIRST_KEY, limit);
    await yieldToEventLoop();
    return toPage(rows, limit);
  }

  failureCountsByReason(runId: string): Promise<ReasonCount[]> {
    return this.#settle(() => this.#sql.failureCounts.all(runId));
  }

  recordRequestOutcome(outcome: RequestOutcome): Promise<boolean> {
    return this.#settle(
      () =>
        this.#sql.insertRequestOutcome.run(
          outcome.runId,
          requireKey(outcome.requestKey),
          outcome.accepted,
          outcome.rejected,
          outcome.dataPoints,
        ).changes > 0,
    );
  }

  requestOutcomeTotals(runId: string, keyPrefix: string): Promise<OutcomeTotals> {
    // Keys are compared byte-wise: every key with the prefix sorts in [prefix, prefix + U+FFFF).
    return this.#settle(() => this.#sql.requestOutcomeTotals.get(runId, keyPrefix, `${keyPrefix}\uffff`)!);
  }

  recordRequestsSending(requests: readonly SendingRequest[]): Promise<void> {
    const record = this.#db.transaction(() => {
      for (const request of requests) {
        this.#sql.insertPendingOutcome.run(request.runId, requireKey(request.requestKey), request.dataPoints);
        this.#sql.insertDataPoints.run(request.runId, request.requestKey, request.day, request.syncId, request.dataPoints);
      }
    });
    return this.#settle(() => {
      requests.forEach(requireValidPoints);
      record();
    });
  }

  recordSentRequests(requests: readonly SentRequest[]): Promise<boolean[]> {
    const record = this.#db.transaction((): boolean[] =>
      requests.map((request) => {
        const { added = [], removed = [], attributes } = request.snapshot;
        const accepted = request.accepted ?? added.length + removed.length;
        const first =
          this.#sql.completeOutcome.run(
            request.runId,
            requireKey(request.requestKey),
            accepted,
            request.rejected.length,
            request.dataPoints,
          ).changes > 0;
        if (!first) return false;
        // One statement per list, not per member: a request carries up to a few hundred members.
        if (added.length > 0) this.#sql.insertSnapshotMembers.run(request.syncId, JSON.stringify(added.map(requireKey)));
        if (removed.length > 0) this.#sql.deleteSnapshotMembers.run(request.syncId, JSON.stringify(removed));
        if (attributes && attributes.set.length + attributes.unset.length > 0) {
          const unset = attributes.unset.map((row) => ({ ...row, value: null }));
          this.#sql.mergeAttributePatches.run(attributes.scope, attributePatchesJson([...attributes.set, ...unset]));
        }
        for (const failure of request.rejected) this.#sql.upsertFailure.run(request.runId, requireKey(failure.memberKey), failure.reason);
        this.#sql.upsertDataPoints.run(request.runId, request.requestKey, request.day, request.syncId, request.dataPoints);
        return true;
      }),
    );
    return this.#settle(() => {
      requests.forEach(requireValidPoints);
      return record();
    });
  }

  claimSyncLease(claim: SyncLeaseClaim): Promise<SyncLease> {
    const { syncId, holder, workflowId, hold, ttlMs, nowMs } = claim;
    const take = this.#db.transaction((): SyncLease => {
      const lease = this.#sql.syncLease.get(syncId);
      if (lease && lease.holder !== holder && lease.expiresAtMs > nowMs) return { held: false, ...lease };
      this.#sql.upsertSyncLease.run(syncId, holder, workflowId, hold, nowMs + ttlMs);
      return { held: true };
    });
    // IMMEDIATE: two claimants cannot both read the lease as free.
    return this.#settle(() => take.immediate());
  }

  releaseSyncLease(syncId: string, holder: string): Promise<void> {
    return this.#settle(() => void this.#sql.deleteSyncLease.run(syncId, holder));
  }

  acquireRateSlots(request: RateSlotRequest): Promise<RateSlotGrant> {
    const acquire = this.#db.transaction((): RateSlotGrant => {
      const { grant, next } = nextRateWindow(this.#sql.rateWindow.get(request.key), request);
      if (next) this.#sql.upsertRateWindow.run(request.key, next.windowStartMs, next.used, next.blockedUntilMs, next.windowCap);
      return grant;
    });
    // IMMEDIATE: read and update under the write lock, so workers never share out more than the limit.
    return this.#settle(() => acquire.immediate());
  }

  blockRateLimit(key: string, untilMs: number): Promise<void> {
    return this.#settle(() => void this.#sql.blockRateWindow.run(key, untilMs));
  }

  adoptVendorRateLimit(report: VendorRateReport): Promise<void> {
    const { key, vendorLimit, windowStartMs, windowCap = null } = report;
    return this.#settle(() => void this.#sql.adoptVendorRateLimit.run({ key, vendorLimit, windowStartMs, windowCap }));
  }

  #downloadsIn(month: string): number {
    return this.#sql.downloadsInMonth.get(month)?.count ?? 0;
  }

  /** Replaces the run's plan with the pages `plan` numbers; `count` counts the rows they cover. */
  #planRunPages(
    runId: string,
    pageSize: number,
    plan: Database.Statement<[string, number, string]>,
    count: Database.Statement<[string], { count: number }>,
  ): Promise<{ count: number; pages: number }> {
    const replace = this.#db.transaction(() => {
      this.#sql.deletePlan.run(runId);
      plan.run(runId, pageSize, runId);
      const rows = count.get(runId)?.count ?? 0;
      return { count: rows, pages: Math.ceil(rows / pageSize) };
    });
    return this.#settle(() => {
      requirePageSize(pageSize);
      return replace();
    });
  }

  /**
   * Stages rows in transactions of at most MAX_ROWS_PER_TRANSACTION. Only the last carries the checkpoint: rows
   * committed before a crash are staged again, to the same effect.
   */
  async #stageInTransactions<T>(runId: string, rows: readonly T[], checkpoint: StagingCheckpoint, stage: (row: T) => void): Promise<void> {
    await this.#inTransactions(rows, (chunk, isLast) => {
      for (const row of chunk) stage(row);
      if (isLast) this.#sql.upsertCheckpoint.run(...checkpointColumns(runId, checkpoint));
    });
  }

  /** Applies `apply` to chunks of at most MAX_ROWS_PER_TRANSACTION items, one transaction each (at least one). */
  async #inTransactions<T>(items: readonly T[], apply: (chunk: readonly T[], isLast: boolean) => void): Promise<void> {
    const all = chunks(items);
    for (const [index, chunk] of all.entries()) {
      await this.#settle(() => this.#db.transaction(() => apply(chunk, index === all.length - 1)).immediate());
      await yieldToEventLoop();
    }
  }

  /**
   * Runs one synchronous unit of SQLite work (a statement, or a transaction, which a failure rolls back) so that any
   * error arrives as a rejected promise. While another process holds the write lock, it tries again on a timer
   * until the store's timeout: the event loop is never blocked for longer than SQLite's own short busy wait.
   */
  async #settle<T>(work: () => T): Promise<T> {
    for (let deadline = Date.now() + this.#timeoutMs, pauseMs = 2; ; pauseMs = Math.min(pauseMs * 2, 50)) {
      try {
        return work();
      } catch (error) {
        if (!isBusy(error) || Date.now() > deadline) throw error;
      }
      await sleep(pauseMs * (0.5 + Math.random()));
    }
  }
}

/** SQLITE_BUSY and its extended codes: another connection holds the lock; the work can simply run again. */
function isBusy(error: unknown): boolean {
  return error instanceof Database.SqliteError && error.code.startsWith('SQLITE_BUSY');
}

function prepareStatements(db: Database.Database) {
  return {
    spoolItem: db.prepare<[string, string, string, number, string]>(
      'INSERT INTO ingress_spool (stream, dedupe_key, partition_key, received_at_ms, body) VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING',
    ),
    pendingIngress: db.prepare<{ stream: string; nowMs: number; limit: number }, SpooledRow>(
      pendingIngressSql({ stream: '@stream', nowMs: '@nowMs', limit: '@limit' }),
    ),
    completeIngress: db.prepare<[number, string, string]>(
      'UPDATE ingress_spool SET done_at_ms = ? WHERE stream = ? AND seq IN (SELECT value FROM json_each(?)) AND done_at_ms IS NULL',
    ),
    deferIngress: db.prepare<[number, string, string]>(
      `UPDATE ingress_spool SET not_before_ms = ?
       WHERE stream = ? AND partition_key IN (SELECT value FROM json_each(?)) AND done_at_ms IS NULL`,
    ),
    insertDeadLetter: db.prepare<[string, string, string, string, number, string | null]>(
      `INSERT INTO ingress_dead_letters (stream, dedupe_key, reason, body, at_ms, partition_key) VALUES (?, ?, ?, ?, ?, ?)
       ON CONFLICT DO NOTHING`,
    ),
    respoolItem: db.prepare<[string, string, string, number, string]>(
      `INSERT INTO ingress_spool (stream, dedupe_key, partition_key, received_at_ms, body) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT (stream, dedupe_key) DO UPDATE SET partition_key = excluded.partition_key, received_at_ms = excluded.received_at_ms,
         body = excluded.body, not_before_ms = 0, done_at_ms = NULL`,
    ),
    deleteDeadLetter: db.prepare<[string, string]>('DELETE FROM ingress_dead_letters WHERE stream = ? AND dedupe_key = ?'),
    pendingIngressStreams: db.prepare<[], { stream: string }>(PENDING_INGRESS_STREAMS),
    ingressBacklog: db.prepare<{ stream: string; nowMs: number }, IngressBacklogRow>(
      ingressBacklogSql({ stream: '@stream', nowMs: '@nowMs' }),
    ),
    deadLetters: db.prepare<
      { stream: string | null; afterAtMs: number; afterStream: string; afterKey: string; limit: number },
      DeadLetterRow
    >(deadLettersSql({ stream: '@stream', afterAtMs: '@afterAtMs', afterStream: '@afterStream', afterKey: '@afterKey', limit: '@limit' })),
    deadLetterCounts: db.prepare<[], DeadLetterCount>(DEAD_LETTER_COUNTS),
    pruneIngress: db.prepare<[number, number]>(
      'DELETE FROM ingress_spool WHERE seq IN (SELECT seq FROM ingress_spool WHERE done_at_ms < ? LIMIT ?)',
    ),
    writeProbe: db.prepare(
      `INSERT INTO rate_windows (limiter_key, window_start_ms, used) VALUES ('write-probe', 0, 0) ON CONFLICT DO NOTHING`,
    ),
    insertPendingOutcome: db.prepare<[string, string, number]>(
      'INSERT INTO request_outcomes (run_id, request_key, accepted, rejected, data_points, completed) VALUES (?, ?, 0, 0, ?, 0) ON CONFLICT DO NOTHING',
    ),
    // Inserts, or completes a pending row; a row completed before is left alone (no change reported).
    completeOutcome: db.prepare<[string, string, number, number, number]>(
      `INSERT INTO request_outcomes (run_id, request_key, accepted, rejected, data_points, completed) VALUES (?, ?, ?, ?, ?, 1)
       ON CONFLICT (run_id, request_key) DO UPDATE
       SET accepted = excluded.accepted, rejected = excluded.rejected, data_points = excluded.data_points, completed = 1
       WHERE completed = 0`,
    ),
    insertRequestOutcome: db.prepare<[string, string, number, number, number]>(
      'INSERT INTO request_outcomes (run_id, request_key, accepted, rejected, data_points) VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING',
    ),
    requestOutcomeTotals: db.prepare<[string, string, string], OutcomeTotals>(
      `SELECT count(*) AS requests, coalesce(sum(accepted), 0) AS accepted, coalesce(sum(rejected), 0) AS rejected,
              coalesce(sum(data_points), 0) AS dataPoints
       FROM request_outcomes WHERE run_id = ? AND request_key >= ? AND request_key < ?`,
    ),
    rateWindow: db.prepare<[string], RateWindowRow>(
      `SELECT window_start_ms AS windowStartMs, used, blocked_until_ms AS blockedUntilMs, vendor_limit AS vendorLimit,
         window_cap AS windowCap FROM rate_windows WHERE limiter_key = ?`,
    ),
    upsertRateWindow: db.prepare<[string, number, number, number, number | null]>(
      `INSERT INTO rate_windows (limiter_key, window_start_ms, used, blocked_until_ms, window_cap) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT (limiter_key) DO UPDATE SET window_start_ms = excluded.window_start_ms, used = excluded.used,
         window_cap = excluded.window_cap`,
    ),
    adoptVendorRateLimit: db.prepare<{ key: string; vendorLimit: number; windowStartMs: number; windowCap: number | null }>(
      `INSERT INTO rate_windows (limiter_key, window_start_ms, used, vendor_limit, window_cap) VALUES (@key, @windowStartMs, 0, @vendorLimit, @windowCap)
       ON CONFLICT (limiter_key) DO UPDATE SET vendor_limit = excluded.vendor_limit,
         window_cap = CASE WHEN window_start_ms = excluded.window_start_ms AND excluded.window_cap IS NOT NULL
           THEN min(coalesce(window_cap, excluded.window_cap), excluded.window_cap) ELSE window_cap END`,
    ),
    blockRateWindow: db.prepare<[string, number]>(
      `INSERT INTO rate_windows (limiter_key, window_start_ms, used, blocked_until_ms) VALUES (?, 0, 0, ?)
       ON CONFLICT (limiter_key) DO UPDATE SET blocked_until_ms = max(blocked_until_ms, excluded.blocked_until_ms)`,
    ),
    insertSnapshotMember: db.prepare<[string, string]>(
      'INSERT INTO snapshot_members (sync_id, member_key) VALUES (?, ?) ON CONFLICT DO NOTHING',
    ),
    deleteSnapshotMember: db.prepare<[string, string]>('DELETE FROM snapshot_members WHERE sync_id = ? AND member_key = ?'),
    insertSnapshotMembers: db.prepare<[string, string]>(
      'INSERT INTO snapshot_members (sync_id, member_key) SELECT ?, value FROM json_each(?) WHERE true ON CONFLICT DO NOTHING',
    ),
    deleteSnapshotMembers: db.prepare<[string, string]>(
      'DELETE FROM snapshot_members WHERE sync_id = ? AND member_key IN (SELECT value FROM json_each(?))',
    ),
    snapshotPage: db.prepare<[string, string, number], SnapshotMember>(
      'SELECT member_key AS memberKey FROM snapshot_members WHERE sync_id = ? AND member_key > ? ORDER BY member_key LIMIT ?',
    ),
    snapshotCount: db.prepare<[string], { count: number }>('SELECT count(*) AS count FROM snapshot_members WHERE sync_id = ?'),
    membershipStates: db.prepare<[{ syncId: string; keys: string }], { memberKey: string; inSnapshot: number; markedAt: number | null }>(
      `SELECT keys.value AS memberKey, s.member_key IS NOT NULL AS inSnapshot, m.computed_time AS markedAt
       FROM json_each(@keys) AS keys
       LEFT JOIN snapshot_members AS s ON s.sync_id = @syncId AND s.member_key = keys.value
       LEFT JOIN membership_marks AS m ON m.sync_id = @syncId AND m.member_key = keys.value
       WHERE s.member_key IS NOT NULL OR m.member_key IS NOT NULL`,
    ),
    upsertMembershipMark: db.prepare<[string, string, number]>(
      `INSERT INTO membership_marks (sync_id, member_key, computed_time) VALUES (?, ?, ?)
       ON CONFLICT (sync_id, member_key) DO UPDATE SET computed_time = max(computed_time, excluded.computed_time)`,
    ),

    attributeSnapshots: db.prepare<[string, string], { memberKey: string; attributes: string }>(
      `SELECT member_key AS memberKey, attributes FROM user_attribute_snapshots
       WHERE scope = ? AND member_key IN (SELECT value FROM json_each(?))`,
    ),
    // Patches travel as one JSON array of [member, patch]; json_patch merges one (a null removes the attribute).
    mergeAttributePatches: db.prepare<[string, string]>(
      `INSERT INTO user_attribute_snapshots (scope, member_key, attributes)
       SELECT ?, json_extract(value, '$[0]'), json_extract(value, '$[1]') FROM json_each(?) WHERE true
       ON CONFLICT (member_key, scope) DO UPDATE SET attributes = json_patch(attributes, excluded.attributes)`,
    ),

    insertStaged: db.prepare<[string, string, string, string | null, string | null, string | null]>(
      `INSERT INTO staged_members (run_id, member_key, amplitude_id, user_id, device_id, props) VALUES (?, ?, ?, ?, ?, ?)
       ON CONFLICT DO NOTHING`,
    ),
    upsertCheckpoint: db.prepare<[string, number, number, string | null]>(
      `INSERT INTO staging_checkpoints (run_id, rows_consumed, bytes_consumed, after_key) VALUES (?, ?, ?, ?)
       ON CONFLICT (run_id) DO UPDATE SET rows_consumed = excluded.rows_consumed, bytes_consumed = excluded.bytes_consumed, after_key = excluded.after_key`,
    ),
    checkpoint: db.prepare<[string], { rowsConsumed: number; bytesConsumed: number; afterKey: string | null }>(
      'SELECT rows_consumed AS rowsConsumed, bytes_consumed AS bytesConsumed, after_key AS afterKey FROM staging_checkpoints WHERE run_id = ?',
    ),
    stagedCount: db.prepare<[string], { count: number }>('SELECT count(*) AS count FROM staged_members WHERE run_id = ?'),
    deleteStagedChunks: STAGING_TABLES.map(({ table, key }) =>
      db.prepare<[string, string, number]>(
        `DELETE FROM ${table} WHERE run_id = ? AND ${key} IN (SELECT ${key} FROM ${table} WHERE run_id = ? ORDER BY ${key} LIMIT ?)`,
      ),
    ),
    deleteCheckpoint: db.prepare<[string]>('DELETE FROM staging_checkpoints WHERE run_id = ?'),

    // Both sides walk a primary key in key order and probe the other side's primary key.
    enterPage: db.prepare<[string, string, string, number], StagedRow>(
      `SELECT s.member_key AS memberKey, s.amplitude_id AS amplitudeId, s.user_id AS userId, s.device_id AS deviceId, s.props
       FROM staged_members s
       WHERE s.run_id = ? AND s.member_key > ?
         AND NOT EXISTS (SELECT 1 FROM snapshot_members m WHERE m.sync_id = ? AND m.member_key = s.member_key)
       ORDER BY s.member_key LIMIT ?`,
    ),
    leavePage: db.prepare<[string, string, string, number], SnapshotMember>(
      `SELECT m.member_key AS memberKey
       FROM snapshot_members m
       WHERE m.sync_id = ? AND m.member_key > ?
         AND NOT EXISTS (SELECT 1 FROM staged_members s WHERE s.run_id = ? AND s.member_key = m.member_key)
       ORDER BY m.member_key LIMIT ?`,
    ),
    enterRange: db.prepare<[string, string, string, string, number], StagedRow>(
      `SELECT s.member_key AS memberKey, s.amplitude_id AS amplitudeId, s.user_id AS userId, s.device_id AS deviceId, s.props
       FROM staged_members s
       WHERE s.run_id = ? AND s.member_key > ? AND s.member_key <= ?
         AND NOT EXISTS (SELECT 1 FROM snapshot_members m WHERE m.sync_id = ? AND m.member_key = s.member_key)
       ORDER BY s.member_key LIMIT ?`,
    ),
    leaveRange: db.prepare<[string, string, string, string, number], SnapshotMember>(
      `SELECT m.member_key AS memberKey
       FROM snapshot_members m
       WHERE m.sync_id = ? AND m.member_key > ? AND m.member_key <= ?
         AND NOT EXISTS (SELECT 1 FROM staged_members s WHERE s.run_id = ? AND s.member_key = m.member_key)
       ORDER BY m.member_key LIMIT ?`,
    ),
    planEnterPages: db.prepare<[string, number, string, string]>(
      planPagesSql(
        'enter',
        {
          from: 'staged_members s',
          key: 's.member_key',
          where: 's.run_id = ? AND NOT EXISTS (SELECT 1 FROM snapshot_members m WHERE m.sync_id = ? AND m.member_key = s.member_key)',
        },
        PLAN_PLACEHOLDERS,
      ),
    ),
    planLeavePages: db.prepare<[string, number, string, string]>(
      planPagesSql(
        'leave',
        {
          from: 'snapshot_members m',
          key: 'm.member_key',
          where: 'm.sync_id = ? AND NOT EXISTS (SELECT 1 FROM staged_members s WHERE s.run_id = ? AND s.member_key = m.member_key)',
        },
        PLAN_PLACEHOLDERS,
      ),
    ),
    plannedPage: db.prepare<[string, string, number, number], { pageNo: number; throughKey: string }>(
      'SELECT page_no AS pageNo, through_key AS throughKey FROM plan_pages WHERE run_id = ? AND kind = ? AND page_no IN (?, ?)',
    ),
    deletePlan: db.prepare<[string]>('DELETE FROM plan_pages WHERE run_id = ?'),

    insertStagedEvent: db.prepare<[string, string, string]>(
      'INSERT INTO staged_events (run_id, event_key, body) VALUES (?, ?, ?) ON CONFLICT DO NOTHING',
    ),
    // A user's latest event by event time wins; an older one (an hour processed late) changes nothing.
    upsertActivity: db.prepare<[string, number, string]>(
      `INSERT INTO user_activity (user_key, last_event_ms, properties) VALUES (?, ?, ?)
       ON CONFLICT (user_key) DO UPDATE SET last_event_ms = excluded.last_event_ms, properties = excluded.properties
       WHERE excluded.last_event_ms > user_activity.last_event_ms`,
    ),
    stagedEventCount: db.prepare<[string], { count: number }>('SELECT count(*) AS count FROM staged_events WHERE run_id = ?'),
    planEventPages: db.prepare<[string, number, string]>(
      planPagesSql(
        'event',
        {
          from: 'staged_events s',
          key: 's.event_key',
          where: 's.run_id = ? AND NOT EXISTS (SELECT 1 FROM sent_events e WHERE e.event_key = s.event_key)',
        },
        PLAN_PLACEHOLDERS,
      ),
    ),
    unsentEventCount: db.prepare<[string], { count: number }>(
      'SELECT count(*) AS count FROM staged_events s WHERE s.run_id = ? AND NOT EXISTS (SELECT 1 FROM sent_events e WHERE e.event_key = s.event_key)',
    ),
    unsentEvents: db.prepare<[string, string, number], { eventKey: string; body: string }>(
      `SELECT s.event_key AS eventKey, s.body FROM staged_events s
       WHERE s.run_id = ? AND s.event_key > ? AND NOT EXISTS (SELECT 1 FROM sent_events e WHERE e.event_key = s.event_key)
       ORDER BY s.event_key LIMIT ?`,
    ),
    unsentEventRange: db.prepare<[string, string, string, number], { eventKey: string; body: string }>(
      `SELECT s.event_key AS eventKey, s.body FROM staged_events s
       WHERE s.run_id = ? AND s.event_key > ? AND s.event_key <= ? AND NOT EXISTS (SELECT 1 FROM sent_events e WHERE e.event_key = s.event_key)
       ORDER BY s.event_key LIMIT ?`,
    ),
    claimEvent: db.prepare<[string, string, string, number]>(
      'INSERT INTO sent_events (event_key, run_id, request_key, sent_at_ms) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING',
    ),
    releaseEventClaims: db.prepare<[string, string]>('DELETE FROM sent_events WHERE run_id = ? AND request_key = ?'),
    unconfirmedEventCount: db.prepare<[string], { count: number }>(
      `SELECT count(*) AS count FROM sent_events e WHERE e.run_id = ?
       AND NOT EXISTS (SELECT 1 FROM request_outcomes o WHERE o.run_id = e.run_id AND o.request_key = e.request_key AND o.completed = 1)`,
    ),
    activeUsers: db.prepare<[string, number, number], { userKey: string; lastEventMs: number; properties: string }>(
      `SELECT user_key AS userKey, last_event_ms AS lastEventMs, properties FROM user_activity
       WHERE user_key > ? AND last_event_ms >= ? ORDER BY user_key LIMIT ?`,
    ),
    inactiveUsers: db.prepare<[number, number], { userKey: string }>(
      'SELECT user_key AS userKey FROM user_activity WHERE last_event_ms < ? LIMIT ?',
    ),
    deleteActivity: db.prepare<[string]>('DELETE FROM user_activity WHERE user_key IN (SELECT value FROM json_each(?))'),
    // The users' rows in every scope and sync, through each table's index on the user's key.
    deleteUsersRows: USER_TABLES.map(({ table, key }) =>
      db.prepare<[string]>(`DELETE FROM ${table} WHERE ${key} IN (SELECT value FROM json_each(?))`),
    ),
    pruneSentEvents: db.prepare<[number, number]>(
      'DELETE FROM sent_events WHERE event_key IN (SELECT event_key FROM sent_events WHERE sent_at_ms < ? LIMIT ?)',
    ),
    upsertStagedTrait: db.prepare<[string, string, string]>(
      'INSERT INTO staged_traits (run_id, user_key, changes) VALUES (?, ?, ?) ON CONFLICT (run_id, user_key) DO UPDATE SET changes = excluded.changes',
    ),
    stagedTraitUsers: db.prepare<[string], { count: number }>('SELECT count(*) AS count FROM staged_traits WHERE run_id = ?'),
    stagedTraitCounts: db.prepare<[string], { users: number; attributes: number }>(
      'SELECT count(*) AS users, coalesce(sum((SELECT count(*) FROM json_each(t.changes))), 0) AS attributes FROM staged_traits t WHERE t.run_id = ?',
    ),
    planTraitPages: db.prepare<[string, number, string]>(
      planPagesSql('trait', { from: 'staged_traits s', key: 's.user_key', where: 's.run_id = ?' }, PLAN_PLACEHOLDERS),
    ),
    stagedTraits: db.prepare<[string, string, number], { userKey: string; changes: string }>(stagedTraitPage('')),
    stagedTraitRange: db.prepare<[string, string, string, number], { userKey: string; changes: string }>(
      stagedTraitPage('AND user_key <= ?'),
    ),
    // Named parameters: the shared statements use some more than once.
    profileFetchQueue: db.prepare<{ syncId: string; sinceMs: number; limit: number }, ProfileQueueRow>(
      profileFetchQueueSql({ syncId: '@syncId', sinceMs: '@sinceMs', limit: '@limit' }),
    ),
    upsertProfileFetch: db.prepare<[string, string, number, string]>(
      `INSERT INTO profile_fetches (sync_id, user_key, fetched_at_ms, "values") VALUES (?, ?, ?, ?)
       ON CONFLICT (sync_id, user_key) DO UPDATE SET fetched_at_ms = excluded.fetched_at_ms, "values" = excluded."values"`,
    ),
    profileFetches: db.prepare<[string, string], ProfileFetchRow>(
      `SELECT user_key AS userKey, fetched_at_ms AS fetchedAtMs, "values" FROM profile_fetches
       WHERE sync_id = ? AND user_key IN (SELECT value FROM json_each(?))`,
    ),
    profileFetchCounts: db.prepare<{ syncId: string; sinceMs: number; fetchedSinceMs: number }, ProfileFetchCounts>(
      profileFetchCountsSql({ syncId: '@syncId', sinceMs: '@sinceMs', fetchedSinceMs: '@fetchedSinceMs' }),
    ),
    syncLease: db.prepare<[string], { holder: string; workflowId: string; hold: SyncLeaseHold; expiresAtMs: number }>(
      'SELECT holder, workflow_id AS workflowId, hold, expires_at_ms AS expiresAtMs FROM sync_leases WHERE sync_id = ?',
    ),
    upsertSyncLease: db.prepare<[string, string, string, SyncLeaseHold, number]>(
      `INSERT INTO sync_leases (sync_id, holder, workflow_id, hold, expires_at_ms) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT (sync_id) DO UPDATE SET holder = excluded.holder, workflow_id = excluded.workflow_id, hold = excluded.hold,
         expires_at_ms = excluded.expires_at_ms`,
    ),
    deleteSyncLease: db.prepare<[string, string]>('DELETE FROM sync_leases WHERE sync_id = ? AND holder = ?'),
    enterCount: db.prepare<[string, string], { count: number }>(
      `SELECT count(*) AS count FROM staged_members s
       WHERE s.run_id = ? AND NOT EXISTS (SELECT 1 FROM snapshot_members m WHERE m.sync_id = ? AND m.member_key = s.member_key)`,
    ),
    leaveCount: db.prepare<[string, string], { count: number }>(
      `SELECT count(*) AS count FROM snapshot_members m
       WHERE m.sync_id = ? AND NOT EXISTS (SELECT 1 FROM staged_members s WHERE s.run_id = ? AND s.member_key = m.member_key)`,
    ),

    insertRun: db.prepare<[string, string, string, string]>(
      `INSERT INTO runs (run_id, sync_id, kind, status, started_at) VALUES (?, ?, ?, 'running', ?) ON CONFLICT (run_id) DO NOTHING`,
    ),
    finishRun: db.prepare<[string, string, string | null, string, string]>(
      `UPDATE runs SET status = ?, finished_at = ?, source_version = coalesce(?, source_version), stats = ? WHERE run_id = ?`,
    ),
    lastSuccessfulRun: db.prepare<[string], RunRow>(lastSucceededRun('sync_id')),
    lastSucceededRunOfKind: db.prepare<[string], RunRow>(lastSucceededRun('kind')),
    recentRuns: db.prepare<[number], RunRow>(`SELECT ${RUN_COLUMNS} FROM runs ORDER BY started_at DESC, run_id DESC LIMIT ?`),
    recentRunsOfSync: db.prepare<[string, number], RunRow>(
      `SELECT ${RUN_COLUMNS} FROM runs WHERE sync_id = ? ORDER BY started_at DESC, run_id DESC LIMIT ?`,
    ),

    insertDataPoints: db.prepare<[string, string, string, string, number]>(
      'INSERT INTO data_points (run_id, page_key, day, sync_id, points) VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING',
    ),
    upsertDataPoints: db.prepare<[string, string, string, string, number]>(
      `INSERT INTO data_points (run_id, page_key, day, sync_id, points) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT (run_id, page_key) DO UPDATE SET points = excluded.points`,
    ),
    dataPointsOnDay: db.prepare<[string], { total: number }>('SELECT coalesce(sum(points), 0) AS total FROM data_points WHERE day = ?'),
    dataPointsOnDayForSync: db.prepare<[string, string], { total: number }>(
      'SELECT coalesce(sum(points), 0) AS total FROM data_points WHERE day = ? AND sync_id = ?',
    ),

    findReservation: db.prepare<[string, string], { month: string }>(
      'SELECT month FROM cohort_downloads WHERE run_id = ? AND cohort_id = ?',
    ),
    downloadsInMonth: db.prepare<[string], { count: number }>('SELECT count(*) AS count FROM cohort_downloads WHERE month = ?'),
    insertReservation: db.prepare<[string, string, string, string]>(
      'INSERT INTO cohort_downloads (run_id, cohort_id, month, reserved_at) VALUES (?, ?, ?, ?)',
    ),

    knownDeviceIds: db.prepare<[string], AmplitudeDeviceId>(
      'SELECT amplitude_id AS amplitudeId, device_id AS deviceId FROM amplitude_device_ids WHERE amplitude_id IN (SELECT value FROM json_each(?))',
    ),
    upsertDeviceId: db.prepare<[string, string | null, string]>(
      `INSERT INTO amplitude_device_ids (amplitude_id, device_id, looked_up_at) VALUES (?, ?, ?)
       ON CONFLICT (amplitude_id) DO UPDATE SET device_id = excluded.device_id, looked_up_at = excluded.looked_up_at`,
    ),
    upsertFailure: db.prepare<[string, string, string]>(
      `INSERT INTO member_failures (run_id, member_key, reason) VALUES (?, ?, ?)
       ON CONFLICT (run_id, member_key) DO UPDATE SET reason = excluded.reason`,
    ),
    failurePage: db.prepare<[string, string, number], MemberFailure>(
      'SELECT member_key AS memberKey, reason FROM member_failures WHERE run_id = ? AND member_key > ? ORDER BY member_key LIMIT ?',
    ),
    failureCounts: db.prepare<[string], ReasonCount>(
      'SELECT reason, count(*) AS count FROM member_failures WHERE run_id = ? GROUP BY reason ORDER BY count DESC, reason',
    ),
  };
}

/** Attribute snapshot changes (a null value unsets) as the JSON array of [member, patch] the merge statement reads. */
function attributePatchesJson(changes: readonly { memberKey: string; attribute: string; value: string | null }[]): string {
  return JSON.stringify([...attributePatches(changes)].map(([memberKey, patch]) => [requireKey(memberKey), patch]));
}

function toRunRecord(row: RunRow): RunRecord {
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
