/**
 * The shared rate windows every worker takes its vendor slots from: fixed windows per limiter key, a vendor's block,
 * and the limit the vendor reported. On SQLite; the same contract as src/store/rate-windows/postgres.ts.
 */
import type Database from 'better-sqlite3';
import { type SqliteDb } from '../sqlite-db.js';
import { nextRateWindow, type RateWindowRow } from '../shared.js';
import { type RateSlotGrant, type RateSlotRequest, type VendorRateReport, type RateWindows } from '../store.js';

export class SqliteRateWindows implements RateWindows {
  readonly #db: SqliteDb;
  readonly #sql;

  constructor(db: SqliteDb) {
    this.#db = db;
    this.#sql = prepareStatements(db.handle);
  }

  acquireRateSlots(request: RateSlotRequest): Promise<RateSlotGrant> {
    const acquire = this.#db.handle.transaction((): RateSlotGrant => {
      const { grant, next } = nextRateWindow(this.#sql.rateWindow.get(request.key), request);
      if (next) this.#sql.upsertRateWindow.run(request.key, next.windowStartMs, next.used, next.blockedUntilMs, next.windowCap);
      return grant;
    });
    // IMMEDIATE: read and update under the write lock, so workers never share out more than the limit.
    return this.#db.settle(() => acquire.immediate());
  }

  blockRateLimit(key: string, untilMs: number): Promise<void> {
    return this.#db.settle(() => void this.#sql.blockRateWindow.run(key, untilMs));
  }

  adoptVendorRateLimit(report: VendorRateReport): Promise<void> {
    const { key, vendorLimit, windowStartMs, windowCap = null } = report;
    return this.#db.settle(() => void this.#sql.adoptVendorRateLimit.run({ key, vendorLimit, windowStartMs, windowCap }));
  }
}

function prepareStatements(db: Database.Database) {
  return {
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
    rateWindow: db.prepare<[string], RateWindowRow>(
      `SELECT window_start_ms AS windowStartMs, used, blocked_until_ms AS blockedUntilMs, vendor_limit AS vendorLimit,
         window_cap AS windowCap FROM rate_windows WHERE limiter_key = ?`,
    ),
    upsertRateWindow: db.prepare<[string, number, number, number, number | null]>(
      `INSERT INTO rate_windows (limiter_key, window_start_ms, used, blocked_until_ms, window_cap) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT (limiter_key) DO UPDATE SET window_start_ms = excluded.window_start_ms, used = excluded.used,
         window_cap = excluded.window_cap`,
    ),
  };
}
