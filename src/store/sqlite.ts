/**
 * The embedded StateStore on SQLite (better-sqlite3): WAL mode so readers never block the writer, waits for another
 * process's write lock on timers (so several processes on one host share the file without stalling each other's
 * event loop), and set-based SQL for the diff. Each concern of the store is in src/store/<concern>/sqlite.ts.
 */
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import { SqliteActivityIndex } from './activity-index/sqlite.js';
import { composeStore } from './compose.js';
import { SqliteIngress } from './ingress/sqlite.js';
import { SqliteLedgers } from './ledgers/sqlite.js';
import { applyMigrations, currentSchemaVersion } from './migrations.js';
import { SqliteRateWindows } from './rate-windows/sqlite.js';
import { SqliteRuns } from './runs/sqlite.js';
import { SqliteSnapshots } from './snapshots/sqlite.js';
import { DEFAULT_SQLITE_TIMEOUT_MS, isBusy, SqliteDb } from './sqlite-db.js';
import { SqliteStaging } from './staging/sqlite.js';
import type { InspectableStore, StoreHandle } from './store.js';
import { SqliteProfiles } from './profiles/sqlite.js';
import { SqlitePrivacy } from './privacy/sqlite.js';
import { SqliteAliases } from './aliases/sqlite.js';
import { SqliteOperatorView } from './operator/sqlite.js';

export { DEFAULT_SQLITE_TIMEOUT_MS };

/**
 * SQLite's own busy handler sleeps on the event loop: it may only wait this long. Longer waits for another process's
 * write lock happen in `SqliteDb.settle`, on timers, so a receiver or worker keeps answering while it waits.
 */
const BLOCKING_BUSY_TIMEOUT_MS = 5;
/** `PRAGMA synchronous` reads FULL as 2. */
const SYNCHRONOUS_FULL = 2;

export interface SqliteStoreOptions {
  /** How long one operation may wait for another process's write lock before it fails. */
  timeoutMs?: number;
  /** Every commit reaches the disk before it returns (a receiver's acknowledgement must survive an OS crash). */
  durableCommits?: boolean;
}

export function openSqliteStateStore(path: string, options: SqliteStoreOptions = {}): InspectableStore {
  if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true });
  const db = new Database(path);
  try {
    db.pragma('journal_mode = WAL');
    db.pragma(`busy_timeout = ${BLOCKING_BUSY_TIMEOUT_MS}`);
    // NORMAL is safe with WAL (a power loss can lose the last commits, never corrupt the file); FULL loses none.
    db.pragma(`synchronous = ${options.durableCommits ? 'FULL' : 'NORMAL'}`);
    applyMigrationsWhenFree(db, options.timeoutMs ?? DEFAULT_SQLITE_TIMEOUT_MS);
  } catch (error) {
    db.close();
    throw error;
  }
  // Said as the connection has it, not as it was asked for.
  const durable = db.pragma('synchronous', { simple: true }) === SYNCHRONOUS_FULL ? ', every commit synced to disk' : '';
  return composeSqliteStore(new SqliteDb(db, options.timeoutMs), `SQLite ${path}${durable}`);
}

/** The store on one SQLite connection: its concerns side by side (src/store/<concern>/sqlite.ts). */
function composeSqliteStore(db: SqliteDb, description: string): InspectableStore {
  const writeProbe = db.handle.prepare(
    `INSERT INTO rate_windows (limiter_key, window_start_ms, used) VALUES ('write-probe', 0, 0) ON CONFLICT DO NOTHING`,
  );
  const handle: StoreHandle = {
    description,
    schemaVersion: () => db.settle(() => currentSchemaVersion(db.handle)),
    probeWrite: () =>
      db.settle(() => {
        db.handle.exec('BEGIN IMMEDIATE');
        try {
          writeProbe.run();
        } finally {
          db.handle.exec('ROLLBACK');
        }
      }),
    close: () => db.settle(() => void db.handle.close()),
  };
  return composeStore(
    handle,
    new SqliteRuns(db),
    new SqliteLedgers(db),
    new SqliteRateWindows(db),
    new SqliteStaging(db),
    new SqliteSnapshots(db),
    new SqliteActivityIndex(db),
    new SqliteIngress(db),
    new SqliteProfiles(db),
    new SqlitePrivacy(db),
    new SqliteAliases(db),
    new SqliteOperatorView(db),
  ) satisfies InspectableStore;
}

/** Migrations at start-up may wait for another process's write lock as long as any operation (nothing else runs yet). */
function applyMigrationsWhenFree(db: Database.Database, timeoutMs: number): void {
  for (const deadline = Date.now() + timeoutMs; ;) {
    try {
      applyMigrations(db);
      return;
    } catch (error) {
      if (!isBusy(error) || Date.now() > deadline) throw error;
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20);
    }
  }
}
