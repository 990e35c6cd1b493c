/**
 * The shared rate windows every worker takes its vendor slots from: fixed windows per limiter key, a vendor's block,
 * and the limit the vendor reported. On PostgreSQL; the same contract as src/store/rate-windows/sqlite.ts.
 */
import { type PostgresDb } from '../postgres-db.js';
import { type RateSlotGrant, type RateSlotRequest, type VendorRateReport, type RateWindows } from '../store.js';

// $1 key, $2 the caller's window start, $3 requested, $4 limit, $5 now. What the vendor reported lowers the limit, never
// raises it; a window's cap lasts as long as that window.
const GRANTABLE = `CASE WHEN w.blocked_until_ms > $5::bigint THEN 0
  WHEN $2::bigint > w.window_start_ms THEN least($3::bigint, $4::bigint, coalesce(w.vendor_limit, $4::bigint))
  ELSE greatest(0, least($3::bigint, least($4::bigint, coalesce(w.vendor_limit, $4::bigint), coalesce(w.window_cap, $4::bigint)) - w.used)) END`;

const MOVES_ON = `w.blocked_until_ms <= $5::bigint AND $2::bigint > w.window_start_ms`;

const ACQUIRE_RATE_SLOTS = `UPDATE rate_windows AS w SET
    last_granted = ${GRANTABLE},
    used = CASE WHEN ${MOVES_ON} THEN 0 ELSE w.used END + ${GRANTABLE},
    window_cap = CASE WHEN ${MOVES_ON} THEN NULL ELSE w.window_cap END,
    window_start_ms = CASE WHEN w.blocked_until_ms > $5::bigint THEN w.window_start_ms ELSE greatest(w.window_start_ms, $2::bigint) END
  WHERE w.limiter_key = $1
  RETURNING last_granted AS granted, used, window_start_ms AS "windowStartMs", blocked_until_ms AS "blockedUntilMs",
    vendor_limit AS "vendorLimit"`;

export class PostgresRateWindows implements RateWindows {
  readonly #db: PostgresDb;

  constructor(db: PostgresDb) {
    this.#db = db;
  }

  async acquireRateSlots(request: RateSlotRequest): Promise<RateSlotGrant> {
    const { key, requested, limit, windowMs, nowMs } = request;
    // One statement: the row is locked only while it runs, so hundreds of acquisitions a second from many workers
    // do not queue behind each other's round trips. Its SET expressions all read the row as it was (see
    // nextRateWindow for the same rule in JavaScript): windows only move forward, a blocked limit grants nothing.
    type Row = { granted: number; used: number; windowStartMs: number; blockedUntilMs: number; vendorLimit: number | null };
    const take = () => this.#db.rows<Row>(ACQUIRE_RATE_SLOTS, [key, nowMs - (nowMs % windowMs), requested, limit, nowMs]);
    let [row] = await take();
    if (!row) {
      await this.#db.query('INSERT INTO rate_windows (limiter_key, window_start_ms, used) VALUES ($1, 0, 0) ON CONFLICT DO NOTHING', [key]);
      [row] = await take();
    }
    const { granted, used, windowStartMs, blockedUntilMs, vendorLimit } = row!;
    const known = vendorLimit === null ? {} : { vendorLimit };
    if (blockedUntilMs > nowMs) return { granted: 0, retryAtMs: blockedUntilMs, usedThrough: used, ...known };
    return { granted, retryAtMs: windowStartMs + windowMs, usedThrough: used, ...known };
  }

  async blockRateLimit(key: string, untilMs: number): Promise<void> {
    await this.#db.query(
      `INSERT INTO rate_windows AS w (limiter_key, window_start_ms, used, blocked_until_ms) VALUES ($1, 0, 0, $2)
       ON CONFLICT (limiter_key) DO UPDATE SET blocked_until_ms = greatest(w.blocked_until_ms, excluded.blocked_until_ms)`,
      [key, untilMs],
    );
  }

  async adoptVendorRateLimit(report: VendorRateReport): Promise<void> {
    const { key, vendorLimit, windowStartMs, windowCap } = report;
    await this.#db.query(
      `INSERT INTO rate_windows AS w (limiter_key, window_start_ms, used, vendor_limit, window_cap) VALUES ($1, $2, 0, $3, $4)
       ON CONFLICT (limiter_key) DO UPDATE SET vendor_limit = excluded.vendor_limit,
         window_cap = CASE WHEN w.window_start_ms = excluded.window_start_ms AND excluded.window_cap IS NOT NULL
           THEN least(w.window_cap, excluded.window_cap) ELSE w.window_cap END`,
      [key, windowStartMs, vendorLimit, windowCap ?? null],
    );
  }
}
