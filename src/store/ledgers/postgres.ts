/**
 * The ledgers that make sends idempotent and count them: each request's outcome by its key, the data points each day
 * spent, and the cohort downloads of each month. On PostgreSQL; the same contract as src/store/ledgers/sqlite.ts.
 */
import { POSTGRES_DIALECT } from '../dialect.js';
import { type PostgresDb } from '../postgres-db.js';
import { downloadReservationStatements, reservationParameters, toReservationResult, type ReservationRow } from './download-reservation.js';
import { attributePatches, DAY, MONTH, requireFormat, requireKey, requirePoints, requireValidPoints } from '../shared.js';
import {
  type CohortDownloadReservation,
  type DataPointEntry,
  type JsonObject,
  type OutcomeTotals,
  type RequestOutcome,
  type ReservationResult,
  type SendingRequest,
  type SentRequest,
  type Ledgers,
} from '../store.js';

const RESERVATION = downloadReservationStatements(POSTGRES_DIALECT);

const RECORD_REQUESTS_SENDING = `WITH sending AS (
    SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::text[]) AS t(run_id, request_key, points, day, sync_id)
  ), outcomes AS (
    INSERT INTO request_outcomes (run_id, request_key, accepted, rejected, data_points, completed)
    SELECT run_id, request_key, 0, 0, points, false FROM sending ON CONFLICT DO NOTHING
  )
  INSERT INTO data_points (run_id, page_key, day, sync_id, points)
  SELECT run_id, request_key, day, sync_id, points FROM sending ON CONFLICT DO NOTHING`;

// Completes (or inserts) each request's outcome; only those not completed before ("fresh") change the snapshots, the
// failures and the data points, and their positions are returned. Snapshot rows are written in key order, so
// overlapping writers cannot deadlock.
const RECORD_SENT_REQUESTS = `WITH sent AS (
    SELECT * FROM unnest($1::text[], $2::text[], $3::int[], $4::int[], $5::bigint[], $6::text[], $7::text[], $15::text[]) WITH ORDINALITY
      AS t(run_id, request_key, accepted, rejected, points, day, sync_id, scope, n)
  ), completed AS (
    INSERT INTO request_outcomes AS o (run_id, request_key, accepted, rejected, data_points, completed)
    SELECT run_id, request_key, accepted, rejected, points, true FROM sent
    ON CONFLICT (run_id, request_key) DO UPDATE
    SET accepted = excluded.accepted, rejected = excluded.rejected, data_points = excluded.data_points, completed = true
    WHERE NOT o.completed
    RETURNING o.run_id, o.request_key
  ), fresh AS (
    SELECT sent.* FROM sent JOIN completed USING (run_id, request_key)
  ), added AS (
    INSERT INTO snapshot_members (sync_id, member_key)
    SELECT fresh.sync_id, a.k FROM unnest($8::int[], $9::text[]) AS a(n, k) JOIN fresh ON fresh.n = a.n ORDER BY 1, 2
    ON CONFLICT DO NOTHING
  ), removed AS (
    DELETE FROM snapshot_members m USING unnest($10::int[], $11::text[]) AS x(n, k) JOIN fresh ON fresh.n = x.n
    WHERE m.sync_id = fresh.sync_id AND m.member_key = x.k
  ), attribute_patches AS (
    -- Each fresh request's patch per user (a null removes the attribute), merged into one per user and scope since a
    -- row cannot be updated twice in one statement: of an attribute two requests changed, the later request wins.
    -- Written in key order, so overlapping writers cannot deadlock.
    INSERT INTO user_attribute_snapshots AS s (member_key, scope, attributes)
    SELECT p.k, fresh.scope, jsonb_object_agg(e.key, e.value ORDER BY p.n)
    FROM unnest($16::int[], $17::text[], $18::jsonb[]) AS p(n, k, v) JOIN fresh ON fresh.n = p.n CROSS JOIN jsonb_each(p.v) AS e
    GROUP BY p.k, fresh.scope ORDER BY 1, 2
    ON CONFLICT (member_key, scope) DO UPDATE SET attributes = jsonb_strip_nulls(s.attributes || excluded.attributes)
  ), failed AS (
    -- Of a member repeated in one batch the last reason wins, as row by row.
    INSERT INTO member_failures (run_id, member_key, reason)
    SELECT DISTINCT ON (fresh.run_id, f.k) fresh.run_id, f.k, f.e
    FROM unnest($12::int[], $13::text[], $14::text[]) WITH ORDINALITY AS f(n, k, e, i) JOIN fresh ON fresh.n = f.n
    ORDER BY fresh.run_id, f.k, f.i DESC
    ON CONFLICT (run_id, member_key) DO UPDATE SET reason = excluded.reason
  ), points AS (
    INSERT INTO data_points (run_id, page_key, day, sync_id, points) SELECT run_id, request_key, day, sync_id, points FROM fresh
    ON CONFLICT (run_id, page_key) DO UPDATE SET points = excluded.points
  )
  SELECT n FROM fresh`;

const INSERT_REQUEST_OUTCOME =
  'INSERT INTO request_outcomes (run_id, request_key, accepted, rejected, data_points) VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING';

const INSERT_DATA_POINTS =
  'INSERT INTO data_points (run_id, page_key, day, sync_id, points) VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING';

/** Each request's attribute snapshot changes as one patch per user (a null unsets), tagged with its 1-based position. */
function attributePatchesOf(requests: readonly SentRequest[]): [positions: number[], patches: Array<[string, JsonObject]>] {
  const positions: number[] = [];
  const patches: Array<[string, JsonObject]> = [];
  requests.forEach(({ snapshot: { attributes } }, index) => {
    if (!attributes) return;
    const unset = attributes.unset.map((row) => ({ ...row, value: null }));
    for (const [memberKey, patch] of attributePatches([...attributes.set, ...unset])) {
      positions.push(index + 1);
      patches.push([requireKey(memberKey), patch]);
    }
  });
  return [positions, patches];
}

export class PostgresLedgers implements Ledgers {
  readonly #db: PostgresDb;

  constructor(db: PostgresDb) {
    this.#db = db;
  }

  async addDataPoints(entry: DataPointEntry): Promise<boolean> {
    requireFormat('day', entry.day, DAY, 'YYYY-MM-DD');
    requirePoints(entry.points);
    const { rowCount } = await this.#db.query(INSERT_DATA_POINTS, [entry.runId, entry.pageKey, entry.day, entry.syncId, entry.points]);
    return rowCount === 1;
  }

  async dataPointsOnDay(day: string, syncId?: string): Promise<number> {
    requireFormat('day', day, DAY, 'YYYY-MM-DD');
    const row =
      syncId === undefined
        ? await this.#db.one<{ total: number }>('SELECT coalesce(sum(points), 0)::bigint AS total FROM data_points WHERE day = $1', [day])
        : await this.#db.one<{ total: number }>(
            'SELECT coalesce(sum(points), 0)::bigint AS total FROM data_points WHERE day = $1 AND sync_id = $2',
            [day, syncId],
          );
    return row.total;
  }

  async reserveCohortDownload(reservation: CohortDownloadReservation): Promise<ReservationResult> {
    requireFormat('month', reservation.month, MONTH, 'YYYY-MM');
    const parameters = reservationParameters(reservation);
    return this.#db.transaction(async (client) => {
      // Reservations of one month queue on this lock, so the count and the insert cannot interleave.
      await client.query(`SELECT pg_advisory_xact_lock(hashtext('cohort_downloads:' || $1))`, [reservation.month]);
      await client.query(RESERVATION.reserve, parameters);
      // A new statement sees what a reservation of the same run for another month (under that month's lock) committed.
      const { rows } = await client.query<ReservationRow>(RESERVATION.outcome, parameters.slice(0, 3));
      return toReservationResult(rows[0]!);
    });
  }

  async cohortDownloadsInMonth(month: string): Promise<number> {
    requireFormat('month', month, MONTH, 'YYYY-MM');
    return (await this.#db.one<{ count: number }>('SELECT count(*) AS count FROM cohort_downloads WHERE month = $1', [month])).count;
  }

  async recordRequestOutcome(outcome: RequestOutcome): Promise<boolean> {
    const { runId, requestKey, accepted, rejected, dataPoints } = outcome;
    const { rowCount } = await this.#db.query(INSERT_REQUEST_OUTCOME, [runId, requireKey(requestKey), accepted, rejected, dataPoints]);
    return rowCount === 1;
  }

  // Both ledgers writes are one statement each, whatever the batch: a round trip to the server costs more than the
  // rows (several a request otherwise, hundreds of requests a second).
  async recordRequestsSending(requests: readonly SendingRequest[]): Promise<void> {
    requests.forEach(requireValidPoints);
    if (requests.length === 0) return;
    const column = <K extends keyof SendingRequest>(key: K) => requests.map((request) => request[key]);
    await this.#db.query(RECORD_REQUESTS_SENDING, [
      column('runId'),
      requests.map((r) => requireKey(r.requestKey)),
      column('dataPoints'),
      column('day'),
      column('syncId'),
    ]);
  }

  async recordSentRequests(requests: readonly SentRequest[]): Promise<boolean[]> {
    requests.forEach(requireValidPoints);
    if (requests.length === 0) return [];
    // Members and failures travel as flat lists, each row tagged with its request's 1-based position.
    const tagged = <T>(listOf: (request: SentRequest) => readonly T[]) => {
      const positions: number[] = [];
      const items: T[] = [];
      requests.forEach((request, index) => listOf(request).forEach((item) => (positions.push(index + 1), items.push(item))));
      return [positions, items] as const;
    };
    const [addedAt, added] = tagged((request) => (request.snapshot.added ?? []).map(requireKey));
    const [removedAt, removed] = tagged((request) => request.snapshot.removed ?? []);
    const [failedAt, failures] = tagged((request) => request.rejected);
    const [patchedAt, patches] = attributePatchesOf(requests);
    const rows = await this.#db.rows<{ n: string }>(RECORD_SENT_REQUESTS, [
      requests.map((request) => request.runId),
      requests.map((request) => requireKey(request.requestKey)),
      requests.map(({ snapshot, accepted }) => accepted ?? (snapshot.added?.length ?? 0) + (snapshot.removed?.length ?? 0)),
      requests.map((request) => request.rejected.length),
      requests.map((request) => request.dataPoints),
      requests.map((request) => request.day),
      requests.map((request) => request.syncId),
      addedAt,
      added,
      removedAt,
      removed,
      failedAt,
      failures.map((failure) => requireKey(failure.memberKey)),
      failures.map((failure) => failure.reason),
      requests.map((request) => request.snapshot.attributes?.scope ?? null),
      patchedAt,
      patches.map(([memberKey]) => memberKey),
      patches.map(([, patch]) => JSON.stringify(patch)),
    ]);
    const firstTime = new Set(rows.map((row) => Number(row.n)));
    return requests.map((_, index) => firstTime.has(index + 1));
  }

  requestOutcomeTotals(runId: string, keyPrefix: string): Promise<OutcomeTotals> {
    // Keys are compared byte-wise: every key with the prefix sorts in [prefix, prefix + U+FFFF).
    return this.#db.one<OutcomeTotals>(
      `SELECT count(*) AS requests, coalesce(sum(accepted), 0)::bigint AS accepted, coalesce(sum(rejected), 0)::bigint AS rejected,
              coalesce(sum(data_points), 0)::bigint AS "dataPoints"
       FROM request_outcomes WHERE run_id = $1 AND request_key >= $2 AND request_key < $3`,
      [runId, keyPrefix, `${keyPrefix}\uffff`],
    );
  }
}
