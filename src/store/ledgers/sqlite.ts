/**
 * The ledgers that make sends idempotent and count them: each request's outcome by its key, the data points each day
 * spent, and the cohort downloads of each month. On SQLite; the same contract as src/store/ledgers/postgres.ts.
 */
import type Database from 'better-sqlite3';
import { numbered, SQLITE_DIALECT } from '../dialect.js';
import { attributePatchesJson, type SqliteDb } from '../sqlite-db.js';
import { downloadReservationStatements, reservationParameters, toReservationResult, type ReservationRow } from './download-reservation.js';
import { DAY, MONTH, requireFormat, requireKey, requirePoints, requireValidPoints } from '../shared.js';
import {
  type CohortDownloadReservation,
  type DataPointEntry,
  type OutcomeTotals,
  type ReservationResult,
  type RequestOutcome,
  type SendingRequest,
  type SentRequest,
  type Ledgers,
} from '../store.js';

export class SqliteLedgers implements Ledgers {
  readonly #db: SqliteDb;
  readonly #sql;
  // Made once: better-sqlite3 builds a wrapper (and its BEGIN/COMMIT statements) per `transaction()` call.
  readonly #recordSending;
  readonly #recordSent;

  constructor(db: SqliteDb) {
    this.#db = db;
    this.#sql = prepareStatements(db.handle);
    this.#recordSending = db.handle.transaction((requests: readonly SendingRequest[]) => {
      for (const request of requests) {
        this.#sql.insertPendingOutcome.run(request.runId, requireKey(request.requestKey), request.dataPoints);
        this.#sql.insertDataPoints.run(request.runId, request.requestKey, request.day, request.syncId, request.dataPoints);
      }
    });
    this.#recordSent = db.handle.transaction((requests: readonly SentRequest[]): boolean[] =>
      requests.map((request) => this.#recordOneSent(request)),
    );
  }

  addDataPoints(entry: DataPointEntry): Promise<boolean> {
    return this.#db.settle(() => {
      requireFormat('day', entry.day, DAY, 'YYYY-MM-DD');
      requirePoints(entry.points);
      return this.#sql.insertDataPoints.run(entry.runId, entry.pageKey, entry.day, entry.syncId, entry.points).changes === 1;
    });
  }

  dataPointsOnDay(day: string, syncId?: string): Promise<number> {
    return this.#db.settle(() => {
      requireFormat('day', day, DAY, 'YYYY-MM-DD');
      const row = syncId === undefined ? this.#sql.dataPointsOnDay.get(day) : this.#sql.dataPointsOnDayForSync.get(day, syncId);
      return row?.total ?? 0;
    });
  }

  reserveCohortDownload(reservation: CohortDownloadReservation): Promise<ReservationResult> {
    const parameters = reservationParameters(reservation);
    const reserve = this.#db.handle.transaction((): ReservationResult => {
      this.#sql.reserveDownload.run(numbered(parameters));
      return toReservationResult(this.#sql.reservationOutcome.get(numbered(parameters.slice(0, 3)))!);
    });
    return this.#db.settle(() => {
      requireFormat('month', reservation.month, MONTH, 'YYYY-MM');
      // IMMEDIATE: the count and the insert happen under the write lock, so concurrent workers cannot overspend.
      return reserve.immediate();
    });
  }

  cohortDownloadsInMonth(month: string): Promise<number> {
    return this.#db.settle(() => {
      requireFormat('month', month, MONTH, 'YYYY-MM');
      return this.#downloadsIn(month);
    });
  }

  recordRequestOutcome(outcome: RequestOutcome): Promise<boolean> {
    return this.#db.settle(
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
    return this.#db.settle(() => this.#sql.requestOutcomeTotals.get(runId, keyPrefix, `${keyPrefix}\uffff`)!);
  }

  recordRequestsSending(requests: readonly SendingRequest[]): Promise<void> {
    return this.#db.settle(() => {
      requests.forEach(requireValidPoints);
      this.#recordSending(requests);
    });
  }

  recordSentRequests(requests: readonly SentRequest[]): Promise<boolean[]> {
    return this.#db.settle(() => {
      requests.forEach(requireValidPoints);
      return this.#recordSent(requests);
    });
  }

  #recordOneSent(request: SentRequest): boolean {
    const { added = [], removed = [], attributes } = request.snapshot;
    const accepted = request.accepted ?? added.length + removed.length;
    const first =
      this.#sql.completeOutcome.run(request.runId, requireKey(request.requestKey), accepted, request.rejected.length, request.dataPoints)
        .changes > 0;
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
  }

  #downloadsIn(month: string): number {
    return this.#sql.downloadsInMonth.get(month)?.count ?? 0;
  }
}

function prepareStatements(db: Database.Database) {
  const reservation = downloadReservationStatements(SQLITE_DIALECT);
  return {
    reserveDownload: db.prepare<Record<number, unknown>>(reservation.reserve),
    reservationOutcome: db.prepare<Record<number, unknown>, ReservationRow>(reservation.outcome),
    completeOutcome: db.prepare<[string, string, number, number, number]>(
      `INSERT INTO request_outcomes (run_id, request_key, accepted, rejected, data_points, completed) VALUES (?, ?, ?, ?, ?, 1)
       ON CONFLICT (run_id, request_key) DO UPDATE
       SET accepted = excluded.accepted, rejected = excluded.rejected, data_points = excluded.data_points, completed = 1
       WHERE completed = 0`,
    ),
    dataPointsOnDay: db.prepare<[string], { total: number }>('SELECT coalesce(sum(points), 0) AS total FROM data_points WHERE day = ?'),
    dataPointsOnDayForSync: db.prepare<[string, string], { total: number }>(
      'SELECT coalesce(sum(points), 0) AS total FROM data_points WHERE day = ? AND sync_id = ?',
    ),

    deleteSnapshotMembers: db.prepare<[string, string]>(
      'DELETE FROM snapshot_members WHERE sync_id = ? AND member_key IN (SELECT value FROM json_each(?))',
    ),
    downloadsInMonth: db.prepare<[string], { count: number }>('SELECT count(*) AS count FROM cohort_downloads WHERE month = ?'),
    insertDataPoints: db.prepare<[string, string, string, string, number]>(
      'INSERT INTO data_points (run_id, page_key, day, sync_id, points) VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING',
    ),
    insertPendingOutcome: db.prepare<[string, string, number]>(
      'INSERT INTO request_outcomes (run_id, request_key, accepted, rejected, data_points, completed) VALUES (?, ?, 0, 0, ?, 0) ON CONFLICT DO NOTHING',
    ),
    // Inserts, or completes a pending row; a row completed before is left alone (no change reported).
    insertRequestOutcome: db.prepare<[string, string, number, number, number]>(
      'INSERT INTO request_outcomes (run_id, request_key, accepted, rejected, data_points) VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING',
    ),

    insertSnapshotMembers: db.prepare<[string, string]>(
      'INSERT INTO snapshot_members (sync_id, member_key) SELECT ?, value FROM json_each(?) WHERE true ON CONFLICT DO NOTHING',
    ),
    mergeAttributePatches: db.prepare<[string, string]>(
      `INSERT INTO user_attribute_snapshots (scope, member_key, attributes)
       SELECT ?, json_extract(value, '$[0]'), json_extract(value, '$[1]') FROM json_each(?) WHERE true
       ON CONFLICT (member_key, scope) DO UPDATE SET attributes = json_patch(attributes, excluded.attributes)`,
    ),

    requestOutcomeTotals: db.prepare<[string, string, string], OutcomeTotals>(
      `SELECT count(*) AS requests, coalesce(sum(accepted), 0) AS accepted, coalesce(sum(rejected), 0) AS rejected,
              coalesce(sum(data_points), 0) AS dataPoints
       FROM request_outcomes WHERE run_id = ? AND request_key >= ? AND request_key < ?`,
    ),
    upsertDataPoints: db.prepare<[string, string, string, string, number]>(
      `INSERT INTO data_points (run_id, page_key, day, sync_id, points) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT (run_id, page_key) DO UPDATE SET points = excluded.points`,
    ),
    upsertFailure: db.prepare<[string, string, string]>(
      `INSERT INTO member_failures (run_id, member_key, reason) VALUES (?, ?, ?)
       ON CONFLICT (run_id, member_key) DO UPDATE SET reason = excluded.reason`,
    ),
  };
}
