/**
 * The shared rate windows every worker takes its vendor slots from: fixed windows per limiter key, a vendor's block,
 * and the limit the vendor reported. On PostgreSQL; the rule and its SQL are in rule.ts, shared with SQLite.
 */
import { POSTGRES_DIALECT } from '../dialect.js';
import { type PostgresDb } from '../postgres-db.js';
import { type RateSlotGrant, type RateSlotRequest, type VendorRateReport, type RateWindows } from '../store.js';
import { acquireParameters, rateWindowStatements, toRateSlotGrant, type AcquiredRow } from './rule.js';

const SQL = rateWindowStatements(POSTGRES_DIALECT);

export class PostgresRateWindows implements RateWindows {
  readonly #db: PostgresDb;

  constructor(db: PostgresDb) {
    this.#db = db;
  }

  async acquireRateSlots(request: RateSlotRequest): Promise<RateSlotGrant> {
    const take = () => this.#db.rows<AcquiredRow>(SQL.acquire, acquireParameters(request));
    let [row] = await take();
    if (!row) {
      await this.#db.query(SQL.insertMissing, [request.key]);
      [row] = await take();
    }
    return toRateSlotGrant(row!, request);
  }

  async blockRateLimit(key: string, untilMs: number): Promise<void> {
    await this.#db.query(SQL.block, [key, untilMs]);
  }

  async adoptVendorRateLimit(report: VendorRateReport): Promise<void> {
    const { key, vendorLimit, windowStartMs, windowCap } = report;
    await this.#db.query(SQL.adoptVendorLimit, [key, windowStartMs, vendorLimit, windowCap ?? null]);
  }
}
