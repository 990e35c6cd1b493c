/**
 * The rate-window rule, written once as SQL that both stores run (src/store/dialect.ts). One statement takes the
 * slots: the row is locked only while it runs, so hundreds of acquisitions a second from many workers do not queue
 * behind each other's round trips. Its SET expressions all read the row as it was.
 *
 * Windows only move forward: a caller whose clock read is older than the stored window (it waited for the lock, or
 * its host's clock lags) counts against that window instead of resetting it. A blocked limit grants nothing. What
 * the vendor reported lowers the limit, never raises it; a window's cap lasts as long as that window.
 */
import type { SqlDialect } from '../dialect.js';
import type { RateSlotGrant, RateSlotRequest } from '../store.js';

/** What an acquisition reads back from the row it updated. */
export interface AcquiredRow {
  granted: number;
  used: number;
  windowStartMs: number;
  blockedUntilMs: number;
  vendorLimit: number | null;
}

export interface RateWindowStatements {
  /** Parameters: the key, the caller's window start, slots requested, the limit, now. No row: the key is new. */
  acquire: string;
  /** Parameter: the key. Creates its row, so that `acquire` finds one. */
  insertMissing: string;
  /** Parameters: the key, blocked until. */
  block: string;
  /** Parameters: the key, the window start, the vendor's limit, the window's cap (or null). */
  adoptVendorLimit: string;
}

export function rateWindowStatements({ least, greatest, param }: SqlDialect): RateWindowStatements {
  const [windowStart, requested, limit, now] = [2, 3, 4, 5].map((n) => param(n, 'number'));
  const vendorLimit = `coalesce(w.vendor_limit, ${limit})`;
  const grantable = `CASE WHEN w.blocked_until_ms > ${now} THEN 0
    WHEN ${windowStart} > w.window_start_ms THEN ${least}(${requested}, ${limit}, ${vendorLimit})
    ELSE ${greatest}(0, ${least}(${requested}, ${least}(${limit}, ${vendorLimit}, coalesce(w.window_cap, ${limit})) - w.used)) END`;
  const movesOn = `w.blocked_until_ms <= ${now} AND ${windowStart} > w.window_start_ms`;
  return {
    acquire: `UPDATE rate_windows AS w SET
        last_granted = ${grantable},
        used = CASE WHEN ${movesOn} THEN 0 ELSE w.used END + ${grantable},
        window_cap = CASE WHEN ${movesOn} THEN NULL ELSE w.window_cap END,
        window_start_ms = CASE WHEN w.blocked_until_ms > ${now} THEN w.window_start_ms ELSE ${greatest}(w.window_start_ms, ${windowStart}) END
      WHERE w.limiter_key = ${param(1)}
      RETURNING last_granted AS granted, used, window_start_ms AS "windowStartMs", blocked_until_ms AS "blockedUntilMs",
        vendor_limit AS "vendorLimit"`,
    insertMissing: `INSERT INTO rate_windows (limiter_key, window_start_ms, used) VALUES (${param(1)}, 0, 0) ON CONFLICT DO NOTHING`,
    block: `INSERT INTO rate_windows AS w (limiter_key, window_start_ms, used, blocked_until_ms) VALUES (${param(1)}, 0, 0, ${param(2, 'number')})
      ON CONFLICT (limiter_key) DO UPDATE SET blocked_until_ms = ${greatest}(w.blocked_until_ms, excluded.blocked_until_ms)`,
    adoptVendorLimit: `INSERT INTO rate_windows AS w (limiter_key, window_start_ms, used, vendor_limit, window_cap)
      VALUES (${param(1)}, ${param(2, 'number')}, 0, ${param(3, 'number')}, ${param(4, 'number')})
      ON CONFLICT (limiter_key) DO UPDATE SET vendor_limit = excluded.vendor_limit,
        window_cap = CASE WHEN w.window_start_ms = excluded.window_start_ms AND excluded.window_cap IS NOT NULL
          THEN ${least}(coalesce(w.window_cap, excluded.window_cap), excluded.window_cap) ELSE w.window_cap END`,
  };
}

/** The parameters of `acquire`. */
export function acquireParameters({ key, requested, limit, windowMs, nowMs }: RateSlotRequest): [string, number, number, number, number] {
  return [key, nowMs - (nowMs % windowMs), requested, limit, nowMs];
}

/** What the caller is told: the slots granted, and when to come back for more. */
export function toRateSlotGrant(row: AcquiredRow, { windowMs, nowMs }: RateSlotRequest): RateSlotGrant {
  const { granted, used, windowStartMs, blockedUntilMs, vendorLimit } = row;
  const known = vendorLimit === null ? {} : { vendorLimit };
  if (blockedUntilMs > nowMs) return { granted: 0, retryAtMs: blockedUntilMs, usedThrough: used, ...known };
  return { granted, retryAtMs: windowStartMs + windowMs, usedThrough: used, ...known };
}
