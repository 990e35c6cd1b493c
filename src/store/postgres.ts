/**
 * The StateStore on PostgreSQL (`pg` pool), for workers on many hosts. It behaves exactly as the SQLite store:
 * bulk writes are multi-row `unnest` statements of at most MAX_ROWS_PER_TRANSACTION rows, ledgers are
 * idempotent through their primary keys, and everything counted against a limit is read and written under a
 * row or advisory lock. Serialization failures and deadlocks are retried (src/store/postgres-db.ts), never
 * surfaced to callers. Each concern of the store is in src/store/<concern>/postgres.ts.
 */
import pg from 'pg';
import { PostgresActivityIndex } from './activity-index/postgres.js';
import { composeStore } from './compose.js';
import { PostgresIngress } from './ingress/postgres.js';
import { PostgresLedgers } from './ledgers/postgres.js';
import { latestVersionOf, MIGRATIONS, requireKnownSchema, type Migration } from './migrations.js';
import { PostgresDb } from './postgres-db.js';
import { PostgresRateWindows } from './rate-windows/postgres.js';
import { PostgresRuns } from './runs/postgres.js';
import { PostgresSnapshots } from './snapshots/postgres.js';
import { PostgresStaging } from './staging/postgres.js';
import type { InspectableStore, StoreHandle } from './store.js';
import { PostgresProfiles } from './profiles/postgres.js';
import { PostgresPrivacy } from './privacy/postgres.js';
import { PostgresAliases } from './aliases/postgres.js';
import { PostgresOperatorView } from './operator/postgres.js';

type TextParser = (value: string) => unknown;

/** Any constant shared by every build: the key of the session lock held while migrating. */
const MIGRATION_LOCK = 0x616d7062;
const WRITE_PROBE = `INSERT INTO rate_windows (limiter_key, window_start_ms, used) VALUES ('write-probe', 0, 0) ON CONFLICT DO NOTHING`;

/** `PostgreSQL host:port/dbname`: where the store is, without user or password. */
export function describePostgresUrl(url: string): string {
  const parsed = new URL(url);
  const host = parsed.hostname || parsed.searchParams.get('host') || 'localhost';
  return `PostgreSQL ${host}:${parsed.port || '5432'}${decodeURIComponent(parsed.pathname) || '/'}`;
}

/**
 * Runs every parameterised query as a named prepared statement: PostgreSQL parses and plans each of our few dozen
 * statements once per connection instead of on every call (hundreds a second while pages are applied).
 */
class PreparingClient extends pg.Client {
  override query(...args: unknown[]): never {
    const [text, values] = args;
    const prepared = typeof text === 'string' && Array.isArray(values) && args.length === 2;
    const query = (...callArgs: unknown[]) => (super.query as (this: pg.Client, ...queryArgs: unknown[]) => never).apply(this, callArgs);
    return prepared ? query({ name: statementName(text), text, values }) : query(...args);
  }
}

const statementNames = new Map<string, string>();
function statementName(text: string): string {
  let name = statementNames.get(text);
  if (name === undefined) statementNames.set(text, (name = `ampbraze_${statementNames.size}`));
  return name;
}

export interface PostgresStoreOptions {
  /** How long one statement may run (and a connection take to open) before it fails. */
  timeoutMs?: number;
}

/** A worker's statements: planning a two-million-member cohort takes seconds, never this long. */
export const DEFAULT_POSTGRES_TIMEOUT_MS = 5 * 60_000;
/** Opening a connection takes milliseconds; a server that does not answer in this long is down for our purposes. */
const MAX_CONNECT_TIMEOUT_MS = 10_000;
/** The driver's own deadline comes this long after the server's `statement_timeout`, for a server that never answers. */
const CLIENT_TIMEOUT_MARGIN_MS = 1_000;

export async function openPostgresStateStore(url: string, options: PostgresStoreOptions = {}): Promise<InspectableStore> {
  const timeoutMs = options.timeoutMs ?? DEFAULT_POSTGRES_TIMEOUT_MS;
  const poolOf = (config: pg.PoolConfig) =>
    new pg.Pool({
      Client: PreparingClient,
      connectionString: url,
      application_name: 'amplitude-braze-sync',
      connectionTimeoutMillis: Math.min(timeoutMs, MAX_CONNECT_TIMEOUT_MS),
      // Counts and milliseconds are BIGINT; every value we store fits a double exactly.
      types: {
        getTypeParser: (oid, format) => (oid === pg.types.builtins.INT8 ? Number : (pg.types.getTypeParser(oid, format) as TextParser)),
      },
      ...config,
    });
  const description = describePostgresUrl(url);
  // Migrations run without a statement timeout: they may wait for another process's, or rewrite a large table.
  const migrationPool = poolOf({ max: 1 });
  migrationPool.on('error', () => undefined);
  try {
    await applyPostgresMigrations(migrationPool);
  } catch (error) {
    // Say which store failed (never its password): the driver's own message names only a host or a role.
    throw new Error(`${description}: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
  } finally {
    await migrationPool.end();
  }
  const pool = poolOf({ max: 10, statement_timeout: timeoutMs, query_timeout: timeoutMs + CLIENT_TIMEOUT_MARGIN_MS });
  // An idle connection the server dropped: the pool replaces it, and the next query reports any real outage.
  pool.on('error', () => undefined);
  return composePostgresStore(new PostgresDb(pool), description);
}

/**
 * Applies the migrations the database has not seen yet, each in its own transaction, under a session advisory
 * lock: workers starting together wait for the first one instead of racing it. Returns the versions applied.
 */
export async function applyPostgresMigrations(pool: pg.Pool, migrations: readonly Migration[] = MIGRATIONS): Promise<number[]> {
  const latestKnown = latestVersionOf(migrations);
  const client = await pool.connect();
  try {
    await client.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK]);
    try {
      await client.query(
        'CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL)',
      );
      const { rows } = await client.query<{ version: number }>('SELECT version FROM schema_migrations');
      const applied = new Set(rows.map((row) => row.version));
      requireKnownSchema(Math.max(0, ...applied), latestKnown);
      const newlyApplied: number[] = [];
      for (const migration of migrations.filter((m) => !applied.has(m.version))) {
        await client.query('BEGIN');
        try {
          await client.query(migration.postgres);
          await client.query('INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, now())', [
            migration.version,
            migration.name,
          ]);
          await client.query('COMMIT');
        } catch (error) {
          await client.query('ROLLBACK');
          throw error;
        }
        newlyApplied.push(migration.version);
      }
      return newlyApplied;
    } finally {
      await client.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK]);
    }
  } finally {
    client.release();
  }
}

/** The store on one pool: its concerns side by side (src/store/<concern>/postgres.ts). */
function composePostgresStore(db: PostgresDb, description: string): InspectableStore {
  const handle: StoreHandle = {
    description,
    schemaVersion: async () =>
      (await db.one<{ version: number }>('SELECT coalesce(max(version), 0) AS version FROM schema_migrations')).version,
    probeWrite: async () => {
      const client = await db.pool.connect();
      try {
        await client.query('BEGIN');
        await client.query(WRITE_PROBE);
      } finally {
        await client.query('ROLLBACK');
        client.release();
      }
    },
    close: () => db.pool.end(),
  };
  return composeStore(
    handle,
    new PostgresRuns(db),
    new PostgresLedgers(db),
    new PostgresRateWindows(db),
    new PostgresStaging(db),
    new PostgresSnapshots(db),
    new PostgresActivityIndex(db),
    new PostgresIngress(db),
    new PostgresProfiles(db),
    new PostgresPrivacy(db),
    new PostgresAliases(db),
    new PostgresOperatorView(db),
  ) satisfies InspectableStore;
}
