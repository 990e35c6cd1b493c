/**
 * The cohort-download reservation, written once as SQL that both stores run (src/store/dialect.ts), under a lock
 * that makes concurrent reservations of one month take turns (each store its own). A run reserves one download for
 * its cohort: a reservation it made before stands (in whichever month it was made); otherwise one more fits only
 * under the month's limit.
 */
import type { SqlDialect } from '../dialect.js';
import type { CohortDownloadReservation, ReservationResult } from '../store.js';

export interface ReservationRow {
  /** The month of the run's reservation, null when it has none. */
  reservedMonth: string | null;
  /** Downloads reserved in that month, or in the month asked for. */
  used: number;
}

export function downloadReservationStatements({ param, now }: SqlDialect): { reserve: string; outcome: string } {
  const [runId, cohortId, month] = [param(1), param(2), param(3)];
  return {
    reserve: `INSERT INTO cohort_downloads (run_id, cohort_id, month, reserved_at)
      SELECT ${runId}, ${cohortId}, ${month}, ${now}
      WHERE NOT EXISTS (SELECT 1 FROM cohort_downloads WHERE run_id = ${runId} AND cohort_id = ${cohortId})
        AND (SELECT count(*) FROM cohort_downloads WHERE month = ${month}) < ${param(4, 'number')}
      ON CONFLICT DO NOTHING`,
    outcome: `SELECT r.month AS "reservedMonth", (SELECT count(*) FROM cohort_downloads d WHERE d.month = coalesce(r.month, ${month})) AS used
      FROM (SELECT (SELECT month FROM cohort_downloads WHERE run_id = ${runId} AND cohort_id = ${cohortId}) AS month) AS r`,
  };
}

/** The parameters of both statements (`outcome` reads the first three). */
export function reservationParameters({ runId, cohortId, month, limit }: CohortDownloadReservation): [string, string, string, number] {
  return [runId, cohortId, month, limit];
}

export function toReservationResult({ reservedMonth, used }: ReservationRow): ReservationResult {
  return { ok: reservedMonth !== null, used };
}
