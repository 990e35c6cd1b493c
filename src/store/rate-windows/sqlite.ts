/**
 * The shared rate windows every worker takes its vendor slots from: fixed windows per limiter key, a vendor's block,
 * and the limit the vendor reported. On SQLite; the rule and its SQL are in rule.ts, shared with PostgreSQL.
 */
import { numbered, SQLITE_DIALECT } from '../dialect.js';
import { type SqliteDb } from '../sqlite-db.js';
import { type RateSlotGrant, type RateSlotRequest, type VendorRateReport, type RateWindows } from '../store.js';
import { acquireParameters, rateWindowStatements, toRateSlotGrant, type AcquiredRow } from './rule.js';

export class SqliteRateWindows implements RateWindows {
  readonly #db: SqliteDb;
  readonly #sql;

  constructor(db: SqliteDb) {
    this.#db = db;
    const statements = rateWindowStatements(SQLITE_DIALECT);
    this.#sql = {
      acquire: db.handle.prepare<Record<number, unknown>, AcquiredRow>(statements.acquire),
      insertMissing: db.handle.prepare<Record<number, unknown>>(statements.insertMissing),
      block: db.handle.prepare<Record<number, unknown>>(statements.block),
      adoptVendorLimit: db.handle.prepare<Record<number, unknown>>(statements.adoptVendorLimit),
    };
  }

  acquireRateSlots(request: RateSlotRequest): Promise<RateSlotGrant> {
    const parameters = numbered(acquireParameters(request));
    return this.#db.settle(() => {
      let row = this.#sql.acquire.get(parameters);
      if (!row) {
        this.#sql.insertMissing.run(numbered([request.key]));
        row = this.#sql.acquire.get(parameters)!;
      }
      return toRateSlotGrant(row, request);
    });
  }

  blockRateLimit(key: string, untilMs: number): Promise<void> {
    return this.#db.settle(() => void this.#sql.block.run(numbered([key, untilMs])));
  }

  adoptVendorRateLimit(report: VendorRateReport): Promise<void> {
    const { key, vendorLimit, windowStartMs, windowCap = null } = report;
    return this.#db.settle(() => void this.#sql.adoptVendorLimit.run(numbered([key, windowStartMs, vendorLimit, windowCap])));
  }
}
