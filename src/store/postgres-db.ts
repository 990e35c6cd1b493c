/**
 * The PostgreSQL pool every PostgreSQL concern of the store shares (`pg`), and how work runs on it: statements and
 * transactions are run again after a serialization failure or deadlock, never surfaced to callers; a connection
 * whose state is unknown after a failure is dropped, not returned to the pool.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type pg from 'pg';
import { chunks } from './shared.js';

/** A server's error code; a driver's own failures carry none, or a system code such as ECONNRESET. */
const SQLSTATE = /^[0-9A-Z]{5}$/;
/** SQLSTATEs after which the whole transaction can simply run again. */
const RETRYABLE = new Set(['40001', '40P01']);
const MAX_ATTEMPTS = 8;

export class PostgresDb {
  constructor(readonly pool: pg.Pool) {}

  query(text: string, values: unknown[] = []): Promise<pg.QueryResult> {
    return retrying(() => this.pool.query(text, values));
  }

  async rows<Row extends pg.QueryResultRow>(text: string, values: unknown[] = []): Promise<Row[]> {
    return (await retrying(() => this.pool.query<Row>(text, values))).rows;
  }

  async one<Row extends pg.QueryResultRow>(text: string, values: unknown[] = []): Promise<Row> {
    const [row] = await this.rows<Row>(text, values);
    if (!row) throw new Error(`expected one row from: ${text}`);
    return row;
  }

  /** Runs `work` in one transaction on one connection, again from the start after a serialization failure or deadlock. */
  transaction<T>(work: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    return retrying(async () => {
      const client = await this.pool.connect();
      let broken: Error | undefined;
      try {
        await client.query('BEGIN');
        const result = await work(client);
        await client.query('COMMIT');
        return result;
      } catch (error) {
        // Without a SQLSTATE the failure was the connection's (a timeout, a reset): its state is unknown, drop it.
        if (!SQLSTATE.test(String((error as { code?: unknown }).code))) broken = error as Error;
        else await client.query('ROLLBACK').catch((rollbackError: Error) => (broken = rollbackError));
        throw error;
      } finally {
        client.release(broken);
      }
    });
  }
}

/** Retries `work` after serialization failures and deadlocks, with jittered, growing pauses, a bounded number of times. */
async function retrying<T>(work: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await work();
    } catch (error) {
      if (attempt >= MAX_ATTEMPTS || !RETRYABLE.has((error as { code?: string }).code ?? '')) throw error;
      await sleep(Math.random() * Math.min(1_000, 5 * 2 ** attempt));
    }
  }
}

/** Chunks of at most MAX_ROWS_PER_TRANSACTION, none empty: a statement with nothing to write is not sent. */
export function batches<T>(items: readonly T[]): (readonly T[])[] {
  return chunks(items).filter((chunk) => chunk.length > 0);
}
