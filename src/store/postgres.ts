/**
 * The StateStore on PostgreSQL (`pg` pool), for workers on many hosts. It behaves exactly as the SQLite store:
 * bulk writes are multi-row `unnest` statements of at most MAX_ROWS_PER_TRANSACTION rows, ledgers are
 * idempotent through their primary keys, and everything counted against a limit is read and written under a
 * row or advisory lock. Serialization failures and deadlocks are retried here, never surfaced to callers.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { jsonText } from '../ingress/bounds.js';
import { latestVersionOf, MIGRATIONS, requireKnownSchema, type Migration } from './migrations.js';
import {
  attributePatches,
  DAY,
  FIRST_KEY,
  MONTH,
  checkpointColumns,
  chunks,
  pageLimit,
  plannedPages,
  planPagesSql,
  profileFetchCountsSql,
  profileFetchQueueSql,
  pendingIngressSql,
  ingressBacklogSql,
  PENDING_INGRESS_STREAMS,
  DEAD_LETTER_COUNTS,
  deadLettersSql,
  NO_POSITION,
  toStoredDeadLetter,
  type DeadLetterRow,
  toIngressBacklog,
  toSpooledItem,
  type SpooledRow,
  requireFormat,
  requireKey,
  requirePageSize,
  requirePoints,
  requireValidPoints,
  STAGING_TABLES,
  toPage,
  toKeyedPage,
  toPageRange,
  toProfileFetch,
  toProfileQueueEntry,
  toStagedEvent,
  toUserActivity,
  toStagedMember,
  toStagedRow,
  toStagedTraitChange,
  toStagingCheckpoint,
  snapshotAttributes,
  USER_TABLES,
  yieldToEventLoop,
  type ProfileFetchRow,
  type ProfileQueueRow,
  type StagedRow,
} from './shared.js';
import {
  MAX_ROWS_PER_TRANSACTION,
  type AmplitudeDeviceId,
  type AttributeSnapshot,
  type CohortDownloadReservation,
  type DataPointEntry,
  type DiffCounts,
  type DiffKind,
  type DiffPageOptions,
  type EventClaim,
  type DeadLetter,
  type DeadLetterCount,
  type DeadLetterPosition,
  type DeadLetterReplay,
  type SpooledDeadLetter,
  type StoredDeadLetter,
  type IngressBacklog,
  type IngressItem,
  type JsonObject,
  type SpooledItem,
  type MemberFailure,
  type MembershipMark,
  type MembershipState,
  type OutcomeTotals,
  type Page,
  type PageOptions,
  type PageRange,
  type PlanKind,
  type PlannedPages,
  type ProfileFetch,
  type ProfileFetchCounts,
  type ProfileQueueEntry,
  type RateSlotGrant,
  type RateSlotRequest,
  type ReasonCount,
  type RequestOutcome,
  type ReservationResult,
  type RunFinish,
  type RunRecord,
  type RunStart,
  type RunStatus,
  type SendingRequest,
  type SentRequest,
  type SnapshotMember,
  type StagedEvent,
  type StagedMember,
  type StagedTraitChange,
  type StagingCheckpoint,
  type StateStore,
  type StoreInspection,
  type SyncLease,
  type SyncLeaseHold,
  type SyncLeaseClaim,
  type UserActivity,
  type VendorRateReport,
} from './store.js';

type TextParser = (value: string) => unknown;

/** A server's error code; a driver's own failures carry none, or a system code such as ECONNRESET. */
const SQLSTATE = /^[0-9A-Z]{5}$/;
/** SQLSTATEs after which the whole transaction can simply run again. */
const RETRYABLE = new Set(['40001', '40P01']);
const MAX_ATTEMPTS = 8;
/** Any constant shared by every build: the key of the session lock held while migrating. */
const MIGRATION_LOCK = 0x616d7062;
const WRITE_PROBE = `INSERT INTO rate_windows (limiter_key, window_start_ms, used) VALUES ('write-probe', 0, 0) ON CONFLICT DO NOTHING`;

interface RunRow {
  runId: string;
  syncId: string;
  kind: string;
  status: RunStatus;
  startedAt: Date;
  finishedAt: Date | null;
  sourceVersion: string | null;
  stats: string | null;
}

// Rows are written in key order, so two writers of overlapping keys wait for each other instead of deadlocking.
const INSERT_SNAPSHOT_MEMBERS =
  'INSERT INTO snapshot_members (sync_id, member_key) SELECT $1, k FROM unnest($2::text[]) AS k ORDER BY k ON CONFLICT DO NOTHING';
const DELETE_SNAPSHOT_MEMBERS = 'DELETE FROM snapshot_members WHERE sync_id = $1 AND member_key = ANY($2::text[])';
// One statement cannot update a row twice: of a member repeated in one batch the last reason wins, as row by row.
const UPSERT_FAILURES = `INSERT INTO member_failures (run_id, member_key, reason)
  SELECT DISTINCT ON (k) $1, k, r FROM unnest($2::text[], $3::text[]) WITH ORDINALITY AS t(k, r, n) ORDER BY k, n DESC
  ON CONFLICT (run_id, member_key) DO UPDATE SET reason = excluded.reason`;
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
const UPSERT_CHECKPOINT = `INSERT INTO staging_checkpoints (run_id, rows_consumed, bytes_consumed, after_key) VALUES ($1, $2, $3, $4)
  ON CONFLICT (run_id) DO UPDATE SET rows_consumed = excluded.rows_consumed, bytes_consumed = excluded.bytes_consumed, after_key = excluded.after_key`;
// One statement, so one transaction. Every delete probes an index with `= ANY` of an array: as a join, the generic
// plan of a prepared statement scans the whole table.
const PRUNE_INACTIVE_USERS = `WITH pruned AS (
    DELETE FROM user_activity WHERE user_key = ANY (ARRAY(SELECT user_key FROM user_activity WHERE last_event_ms < $1 LIMIT $2)) RETURNING user_key
  ), ${USER_TABLES.map(({ table, key }) => `${table}_pruned AS (DELETE FROM ${table} WHERE ${key} = ANY (ARRAY(SELECT user_key FROM pruned)))`).join(', ')}
  SELECT count(*) AS count FROM pruned`;
const PROFILE_FETCH_QUEUE = profileFetchQueueSql({ syncId: '$1', sinceMs: '$2', limit: '$3' });
const PENDING_INGRESS = pendingIngressSql({ stream: '$1', nowMs: '$2', limit: '$3' });
const INGRESS_BACKLOG = ingressBacklogSql({ stream: '$1', nowMs: '$2' });
const DEAD_LETTERS = deadLettersSql({
  stream: '$1::text',
  afterAtMs: '$2::bigint',
  afterStream: '$3::text',
  afterKey: '$4::text',
  limit: '$5',
});
const PROFILE_FETCH_COUNTS = profileFetchCountsSql({ syncId: '$1', sinceMs: '$2', fetchedSinceMs: '$3' });
const INSERT_REQUEST_OUTCOME =
  'INSERT INTO request_outcomes (run_id, request_key, accepted, rejected, data_points) VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING';
const INSERT_DATA_POINTS =
  'INSERT INTO data_points (run_id, page_key, day, sync_id, points) VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING';

const DIFF_COUNTS = `SELECT
   (SELECT count(*) FROM staged_members s
    WHERE s.run_id = $1 AND NOT EXISTS (SELECT 1 FROM snapshot_members m WHERE m.sync_id = $2 AND m.member_key = s.member_key)) AS enter,
   (SELECT count(*) FROM snapshot_members m
    WHERE m.sync_id = $2 AND NOT EXISTS (SELECT 1 FROM staged_members s WHERE s.run_id = $1 AND s.member_key = m.member_key)) AS leave`;

// planPagesSql statements: $1 the run, $2 the page size.
const PLAN_PLACEHOLDERS = { runId: '$1', pageSize: '$2' };
const PLAN_ENTER_PAGES = planPagesSql(
  'enter',
  {
    from: 'staged_members s',
    key: 's.member_key',
    where: 's.run_id = $1 AND NOT EXISTS (SELECT 1 FROM snapshot_members m WHERE m.sync_id = $3 AND m.member_key = s.member_key)',
  },
  PLAN_PLACEHOLDERS,
);
const PLAN_LEAVE_PAGES = planPagesSql(
  'leave',
  {
    from: 'snapshot_members m',
    key: 'm.member_key',
    where: 'm.sync_id = $3 AND NOT EXISTS (SELECT 1 FROM staged_members s WHERE s.run_id = $1 AND s.member_key = m.member_key)',
  },
  PLAN_PLACEHOLDERS,
);
const PLAN_EVENT_PAGES = planPagesSql(
  'event',
  {
    from: 'staged_events s',
    key: 's.event_key',
    where: 's.run_id = $1 AND NOT EXISTS (SELECT 1 FROM sent_events e WHERE e.event_key = s.event_key)',
  },
  PLAN_PLACEHOLDERS,
);
const PLAN_TRAIT_PAGES = planPagesSql('trait', { from: 'staged_traits s', key: 's.user_key', where: 's.run_id = $1' }, PLAN_PLACEHOLDERS);

const RUN_COLUMNS = `run_id AS "runId", sync_id AS "syncId", kind, status, started_at AS "startedAt", finished_at AS "finishedAt",
  source_version AS "sourceVersion", stats`;
/** The latest run to finish successfully whose `column` is $1. */
const lastSucceededRun = (column: 'sync_id' | 'kind') =>
  `SELECT ${RUN_COLUMNS} FROM runs WHERE ${column} = $1 AND status = 'succeeded' ORDER BY finished_at DESC LIMIT 1`;

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

export async function openPostgresStateStore(url: string, options: PostgresStoreOptions = {}): Promise<PostgresStateStore> {
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
  return new PostgresStateStore(pool, description);
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

export class PostgresStateStore implements StateStore, StoreInspection {
  readonly #pool: pg.Pool;

  constructor(
    pool: pg.Pool,
    readonly description: string,
  ) {
    this.#pool = pool;
  }

  async schemaVersion(): Promise<number> {
    return (await this.#one<{ version: number }>('SELECT coalesce(max(version), 0) AS version FROM schema_migrations')).version;
  }

  close(): Promise<void> {
    return this.#pool.end();
  }

  async probeWrite(): Promise<void> {
    const client = await this.#pool.connect();
    try {
      await client.query('BEGIN');
      await client.query(WRITE_PROBE);
    } finally {
      await client.query('ROLLBACK');
      client.release();
    }
  }

  async commitSnapshot(syncId: string, changes: { added?: readonly string[]; removed?: readonly string[] }): Promise<void> {
    for (const chunk of batches(changes.added ?? [])) {
      await this.#query(INSERT_SNAPSHOT_MEMBERS, [syncId, chunk.map(requireKey)]);
    }
    for (const chunk of batches(changes.removed ?? [])) {
      await this.#query(DELETE_SNAPSHOT_MEMBERS, [syncId, chunk]);
    }
  }

  async snapshotMembers(syncId: string, options: PageOptions): Promise<Page<SnapshotMember>> {
    const limit = pageLimit(options.limit);
    const rows = await this.#rows<SnapshotMember>(
      'SELECT member_key AS "memberKey" FROM snapshot_members WHERE sync_id = $1 AND member_key > $2 ORDER BY member_key LIMIT $3',
      [syncId, options.afterKey ?? FIRST_KEY, limit],
    );
    return toPage(rows, limit);
  }

  async snapshotCount(syncId: string): Promise<number> {
    return (await this.#one<{ count: number }>('SELECT count(*) AS count FROM snapshot_members WHERE sync_id = $1', [syncId])).count;
  }

  async membershipStates(syncId: string, memberKeys: readonly string[]): Promise<Map<string, MembershipState>> {
    const states = new Map<string, MembershipState>();
    for (const chunk of batches(memberKeys)) {
      const rows = await this.#rows<{ memberKey: string; inSnapshot: boolean; markedAt: string | null }>(
        `SELECT k AS "memberKey", s.member_key IS NOT NULL AS "inSnapshot", m.computed_time AS "markedAt"
         FROM unnest($2::text[]) AS k
         LEFT JOIN snapshot_members AS s ON s.sync_id = $1 AND s.member_key = k
         LEFT JOIN membership_marks AS m ON m.sync_id = $1 AND m.member_key = k
         WHERE s.member_key IS NOT NULL OR m.member_key IS NOT NULL`,
        [syncId, chunk],
      );
      for (const row of rows) {
        states.set(row.memberKey, { inSnapshot: row.inSnapshot, ...(row.markedAt !== null && { markedAt: Number(row.markedAt) }) });
      }
    }
    return states;
  }

  async recordMembershipMarks(syncId: string, marks: readonly MembershipMark[]): Promise<void> {
    for (const chunk of batches(marks)) {
      await this.#query(
        `INSERT INTO membership_marks (sync_id, member_key, computed_time)
         SELECT $1, k, max(t) FROM unnest($2::text[], $3::bigint[]) AS u(k, t) GROUP BY k
         ON CONFLICT (sync_id, member_key) DO UPDATE SET computed_time = greatest(membership_marks.computed_time, excluded.computed_time)`,
        [syncId, chunk.map((mark) => requireKey(mark.memberKey)), chunk.map((mark) => mark.computedTime)],
      );
    }
  }

  async attributeSnapshots(scope: string, memberKeys: readonly string[]): Promise<Map<string, Map<string, string>>> {
    const snapshots = new Map<string, Map<string, string>>();
    for (const chunk of batches(memberKeys)) {
      const rows = await this.#rows<{ memberKey: string; attributes: JsonObject }>(
        'SELECT member_key AS "memberKey", attributes FROM user_attribute_snapshots WHERE scope = $1 AND member_key = ANY($2::text[])',
        [scope, chunk],
      );
      for (const { memberKey, attributes } of rows) {
        const values = snapshotAttributes(attributes);
        if (values.size > 0) snapshots.set(memberKey, values);
      }
    }
    return snapshots;
  }

  async upsertAttributeSnapshots(scope: string, rows: readonly AttributeSnapshot[]): Promise<void> {
    for (const chunk of batches([...attributePatches(rows)])) {
      await this.#query(
        `INSERT INTO user_attribute_snapshots AS s (member_key, scope, attributes)
         SELECT k, $1, v FROM unnest($2::text[], $3::jsonb[]) AS t(k, v) ORDER BY k
         ON CONFLICT (member_key, scope) DO UPDATE SET attributes = jsonb_strip_nulls(s.attributes || excluded.attributes)`,
        [scope, chunk.map(([memberKey]) => requireKey(memberKey)), chunk.map(([, patch]) => JSON.stringify(patch))],
      );
    }
  }

  async stageChunk(runId: string, members: readonly StagedMember[], checkpoint: StagingCheckpoint): Promise<void> {
    await this.#stageInTransactions(runId, members, checkpoint, (client, chunk) =>
      client.query(
        `INSERT INTO staged_members (run_id, member_key, amplitude_id, user_id, device_id, props)
         SELECT $1, k, a, u, d, p FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::text[]) WITH ORDINALITY AS t(k, a, u, d, p, n)
         ORDER BY n ON CONFLICT DO NOTHING`,
        [runId, ...stagedColumns(chunk.map(toStagedRow))],
      ),
    );
  }

  async stagingCheckpoint(runId: string): Promise<StagingCheckpoint | undefined> {
    const [row] = await this.#rows<{ rowsConsumed: number; bytesConsumed: number; afterKey: string | null }>(
      'SELECT rows_consumed AS "rowsConsumed", bytes_consumed AS "bytesConsumed", after_key AS "afterKey" FROM staging_checkpoints WHERE run_id = $1',
      [runId],
    );
    return row && toStagingCheckpoint(row);
  }

  async stagedCount(runId: string): Promise<number> {
    return (await this.#one<{ count: number }>('SELECT count(*) AS count FROM staged_members WHERE run_id = $1', [runId])).count;
  }

  async clearStaging(runId: string): Promise<void> {
    for (const { table, key } of STAGING_TABLES) {
      const deleteChunk = `DELETE FROM ${table} WHERE run_id = $1 AND ${key} IN (SELECT ${key} FROM ${table} WHERE run_id = $1 ORDER BY ${key} LIMIT $2)`;
      while ((await this.#query(deleteChunk, [runId, MAX_ROWS_PER_TRANSACTION])).rowCount === MAX_ROWS_PER_TRANSACTION)
        await yieldToEventLoop();
    }
    await this.#query('DELETE FROM staging_checkpoints WHERE run_id = $1', [runId]);
    await this.#query('DELETE FROM plan_pages WHERE run_id = $1', [runId]);
  }

  diffPage(runId: string, syncId: string, options: DiffPageOptions & { kind: 'enter' }): Promise<Page<StagedMember>>;
  diffPage(runId: string, syncId: string, options: DiffPageOptions & { kind: 'leave' }): Promise<Page<SnapshotMember>>;
  async diffPage(
    runId: string,
    syncId: string,
    options: DiffPageOptions & { kind: DiffKind },
  ): Promise<Page<StagedMember> | Page<SnapshotMember>> {
    const limit = pageLimit(options.limit);
    const { throughKey } = options;
    const values = [
      options.kind === 'leave' ? syncId : runId,
      options.afterKey ?? FIRST_KEY,
      options.kind === 'leave' ? runId : syncId,
      limit,
    ];
    // A planned page's range ends at its last key; the bound is left out (not NULL-tested) so the plan stays a plain range scan.
    const through = (column: string) => (throughKey === undefined ? '' : `AND ${column} <= $${values.push(throughKey)}`);
    // Both sides walk a primary key in key order and probe the other side's primary key.
    if (options.kind === 'leave') {
      const rows = await this.#rows<SnapshotMember>(
        `SELECT m.member_key AS "memberKey" FROM snapshot_members m
         WHERE m.sync_id = $1 AND m.member_key > $2 ${through('m.member_key')}
           AND NOT EXISTS (SELECT 1 FROM staged_members s WHERE s.run_id = $3 AND s.member_key = m.member_key)
         ORDER BY m.member_key LIMIT $4`,
        values,
      );
      return toPage(rows, limit);
    }
    const rows = await this.#rows<StagedRow>(
      `SELECT s.member_key AS "memberKey", s.amplitude_id AS "amplitudeId", s.user_id AS "userId", s.device_id AS "deviceId", s.props
       FROM staged_members s
       WHERE s.run_id = $1 AND s.member_key > $2 ${through('s.member_key')}
         AND NOT EXISTS (SELECT 1 FROM snapshot_members m WHERE m.sync_id = $3 AND m.member_key = s.member_key)
       ORDER BY s.member_key LIMIT $4`,
      values,
    );
    return toPage(rows.map(toStagedMember), limit);
  }

  diffCounts(runId: string, syncId: string): Promise<DiffCounts> {
    return this.#one<DiffCounts>(DIFF_COUNTS, [runId, syncId]);
  }

  async planPages(runId: string, syncId: string, pageSize: number): Promise<PlannedPages> {
    requirePageSize(pageSize);
    return this.#transaction(async (client) => {
      await client.query('DELETE FROM plan_pages WHERE run_id = $1', [runId]);
      await client.query(PLAN_ENTER_PAGES, [runId, pageSize, syncId]);
      await client.query(PLAN_LEAVE_PAGES, [runId, pageSize, syncId]);
      const { rows } = await client.query<DiffCounts>(DIFF_COUNTS, [runId, syncId]);
      return plannedPages(rows[0]!, pageSize);
    });
  }

  async plannedPage(runId: string, kind: PlanKind, page: number): Promise<PageRange | undefined> {
    const rows = await this.#rows<{ pageNo: number; throughKey: string }>(
      'SELECT page_no AS "pageNo", through_key AS "throughKey" FROM plan_pages WHERE run_id = $1 AND kind = $2 AND page_no IN ($3, $4)',
      [runId, kind, page - 1, page],
    );
    return toPageRange(rows, page);
  }

  async stageEvents(
    runId: string,
    chunk: { events: readonly StagedEvent[]; activity: readonly UserActivity[] },
    checkpoint: StagingCheckpoint,
  ): Promise<void> {
    chunk.events.forEach((event) => requireKey(event.eventKey));
    chunk.activity.forEach((user) => requireKey(user.userKey));
    await this.#transaction(async (client) => {
      await client.query(
        `INSERT INTO staged_events (run_id, event_key, body) SELECT $1, k, b FROM unnest($2::text[], $3::text[]) WITH ORDINALITY AS t(k, b, n)
         ORDER BY n ON CONFLICT DO NOTHING`,
        [runId, chunk.events.map((event) => event.eventKey), chunk.events.map((event) => JSON.stringify(event.body))],
      );
      // A user's latest event by event time wins; rows are locked in key order, so concurrent writers cannot deadlock.
      await client.query(
        `INSERT INTO user_activity AS a (user_key, last_event_ms, properties)
         SELECT DISTINCT ON (k) k, t, p FROM unnest($1::text[], $2::bigint[], $3::text[]) AS u(k, t, p) ORDER BY k, t DESC
         ON CONFLICT (user_key) DO UPDATE SET last_event_ms = excluded.last_event_ms, properties = excluded.properties
         WHERE excluded.last_event_ms > a.last_event_ms`,
        [
          chunk.activity.map((user) => user.userKey),
          chunk.activity.map((user) => user.lastEventMs),
          chunk.activity.map((user) => JSON.stringify(user.properties)),
        ],
      );
      await client.query(UPSERT_CHECKPOINT, checkpointColumns(runId, checkpoint));
    });
  }

  async stagedEventCount(runId: string): Promise<number> {
    return Number((await this.#one<{ count: string }>('SELECT count(*) AS count FROM staged_events WHERE run_id = $1', [runId])).count);
  }

  async planEventPages(runId: string, pageSize: number): Promise<{ events: number; pages: number }> {
    const { count, pages } = await this.#planRunPages(
      runId,
      pageSize,
      PLAN_EVENT_PAGES,
      'SELECT count(*) AS count FROM staged_events s WHERE s.run_id = $1 AND NOT EXISTS (SELECT 1 FROM sent_events e WHERE e.event_key = s.event_key)',
    );
    return { events: count, pages };
  }

  async unsentEvents(runId: string, options: DiffPageOptions): Promise<Page<StagedEvent>> {
    const limit = pageLimit(options.limit);
    const values: unknown[] = [runId, options.afterKey ?? FIRST_KEY, limit];
    const through = options.throughKey === undefined ? '' : `AND s.event_key <= $${values.push(options.throughKey)}`;
    const rows = await this.#rows<{ eventKey: string; body: string }>(
      `SELECT s.event_key AS "eventKey", s.body FROM staged_events s
       WHERE s.run_id = $1 AND s.event_key > $2 ${through} AND NOT EXISTS (SELECT 1 FROM sent_events e WHERE e.event_key = s.event_key)
       ORDER BY s.event_key LIMIT $3`,
      values,
    );
    return toKeyedPage(rows.map(toStagedEvent), limit, (event) => event.eventKey);
  }

  async claimEvents(claims: readonly EventClaim[]): Promise<string[][]> {
    if (claims.length === 0) return [];
    // Claims travel as flat lists tagged with their claim's 1-based position; keys are locked in key order, and of
    // a key wanted twice in one batch the earlier claim gets it.
    const positions: number[] = [];
    const keys: string[] = [];
    claims.forEach((claim, index) => claim.eventKeys.forEach((key) => (positions.push(index + 1), keys.push(requireKey(key)))));
    const rows = await this.#rows<{ n: number; eventKey: string }>(
      `WITH wanted AS (
         SELECT c.n, c.k, r.run_id, r.request_key, r.now_ms
         FROM unnest($1::int[], $2::text[]) AS c(n, k)
         JOIN unnest($3::text[], $4::text[], $5::bigint[]) WITH ORDINALITY AS r(run_id, request_key, now_ms, n) ON r.n = c.n
       ), claimed AS (
         INSERT INTO sent_events (event_key, run_id, request_key, sent_at_ms)
         SELECT k, run_id, request_key, now_ms FROM wanted ORDER BY k, n ON CONFLICT DO NOTHING
         RETURNING event_key, run_id, request_key
       )
       SELECT w.n, w.k AS "eventKey" FROM wanted w JOIN claimed c ON c.event_key = w.k AND c.run_id = w.run_id AND c.request_key = w.request_key`,
      [positions, keys, claims.map((claim) => claim.runId), claims.map((claim) => claim.requestKey), claims.map((claim) => claim.nowMs)],
    );
    const claimed = claims.map(() => [] as string[]);
    for (const row of rows) claimed[Number(row.n) - 1]!.push(row.eventKey);
    return claimed;
  }

  async releaseEventClaims(runId: string, requestKey: string): Promise<void> {
    await this.#query('DELETE FROM sent_events WHERE run_id = $1 AND request_key = $2', [runId, requestKey]);
  }

  async unconfirmedEventCount(runId: string): Promise<number> {
    const row = await this.#one<{ count: string }>(
      `SELECT count(*) AS count FROM sent_events e WHERE e.run_id = $1
       AND NOT EXISTS (SELECT 1 FROM request_outcomes o WHERE o.run_id = e.run_id AND o.request_key = e.request_key AND o.completed)`,
      [runId],
    );
    return Number(row.count);
  }

  async activeUsers(options: PageOptions & { sinceMs: number }): Promise<Page<UserActivity>> {
    const limit = pageLimit(options.limit);
    const rows = await this.#rows<{ userKey: string; lastEventMs: number; properties: string }>(
      `SELECT user_key AS "userKey", last_event_ms AS "lastEventMs", properties FROM user_activity
       WHERE user_key > $1 AND last_event_ms >= $2 ORDER BY user_key LIMIT $3`,
      [options.afterKey ?? FIRST_KEY, options.sinceMs, limit],
    );
    return toKeyedPage(rows.map(toUserActivity), limit, (user) => user.userKey);
  }

  async pruneInactiveUsers(beforeMs: number, limit: number): Promise<number> {
    return (await this.#one<{ count: number }>(PRUNE_INACTIVE_USERS, [beforeMs, pageLimit(limit)])).count;
  }

  async pruneSentEvents(beforeMs: number, limit: number): Promise<number> {
    const result = await this.#query(
      'DELETE FROM sent_events WHERE event_key IN (SELECT event_key FROM sent_events WHERE sent_at_ms < $1 LIMIT $2)',
      [beforeMs, pageLimit(limit)],
    );
    return result.rowCount ?? 0;
  }

  async stageTraitChanges(runId: string, rows: readonly StagedTraitChange[], checkpoint: StagingCheckpoint): Promise<void> {
    // One statement cannot update a row twice: of a user repeated in one chunk the last wins, as row by row.
    await this.#stageInTransactions(runId, rows, checkpoint, (client, chunk) =>
      client.query(
        `INSERT INTO staged_traits (run_id, user_key, changes)
         SELECT DISTINCT ON (k) $1, k, c FROM unnest($2::text[], $3::text[]) WITH ORDINALITY AS t(k, c, n) ORDER BY k, n DESC
         ON CONFLICT (run_id, user_key) DO UPDATE SET changes = excluded.changes`,
        [runId, chunk.map((row) => requireKey(row.userKey)), chunk.map((row) => JSON.stringify(row.changes))],
      ),
    );
  }

  stagedTraitCounts(runId: string): Promise<{ users: number; attributes: number }> {
    return this.#one<{ users: number; attributes: number }>(
      `SELECT count(*) AS users, coalesce(sum((SELECT count(*) FROM json_object_keys(t.changes::json))), 0)::bigint AS attributes
       FROM staged_traits t WHERE t.run_id = $1`,
      [runId],
    );
  }

  async planTraitPages(runId: string, pageSize: number): Promise<{ users: number; pages: number }> {
    const { count, pages } = await this.#planRunPages(
      runId,
      pageSize,
      PLAN_TRAIT_PAGES,
      'SELECT count(*) AS count FROM staged_traits WHERE run_id = $1',
    );
    return { users: count, pages };
  }

  async stagedTraitChanges(runId: string, options: DiffPageOptions): Promise<Page<StagedTraitChange>> {
    const limit = pageLimit(options.limit);
    const values: unknown[] = [runId, options.afterKey ?? FIRST_KEY, limit];
    const through = options.throughKey === undefined ? '' : `AND user_key <= $${values.push(options.throughKey)}`;
    const rows = await this.#rows<{ userKey: string; changes: string }>(
      `SELECT user_key AS "userKey", changes FROM staged_traits WHERE run_id = $1 AND user_key > $2 ${through} ORDER BY user_key LIMIT $3`,
      values,
    );
    return toKeyedPage(rows.map(toStagedTraitChange), limit, (change) => change.userKey);
  }

  async profileFetchQueue(syncId: string, options: { sinceMs: number; limit: number }): Promise<ProfileQueueEntry[]> {
    const rows = await this.#rows<ProfileQueueRow>(PROFILE_FETCH_QUEUE, [syncId, options.sinceMs, pageLimit(options.limit)]);
    return rows.map(toProfileQueueEntry);
  }

  async recordProfileFetches(syncId: string, fetches: readonly ProfileFetch[]): Promise<void> {
    for (const chunk of batches(fetches)) {
      // One statement cannot update a row twice: of a user repeated in one batch the last wins, as row by row.
      await this.#query(
        `INSERT INTO profile_fetches (sync_id, user_key, fetched_at_ms, "values")
         SELECT DISTINCT ON (k) $1, k, t, v FROM unnest($2::text[], $3::bigint[], $4::text[]) WITH ORDINALITY AS f(k, t, v, n) ORDER BY k, n DESC
         ON CONFLICT (sync_id, user_key) DO UPDATE SET fetched_at_ms = excluded.fetched_at_ms, "values" = excluded."values"`,
        [
          syncId,
          chunk.map((profile) => requireKey(profile.userKey)),
          chunk.map((profile) => profile.fetchedAtMs),
          chunk.map((profile) => JSON.stringify(profile.values)),
        ],
      );
    }
  }

  async profileFetches(syncId: string, userKeys: readonly string[]): Promise<Map<string, ProfileFetch>> {
    const fetches = new Map<string, ProfileFetch>();
    for (const chunk of batches(userKeys)) {
      const rows = await this.#rows<ProfileFetchRow>(
        `SELECT user_key AS "userKey", fetched_at_ms AS "fetchedAtMs", "values" FROM profile_fetches WHERE sync_id = $1 AND user_key = ANY($2::text[])`,
        [syncId, chunk],
      );
      for (const row of rows) fetches.set(row.userKey, toProfileFetch(row));
    }
    return fetches;
  }

  profileFetchCounts(syncId: string, options: { sinceMs: number; fetchedSinceMs: number }): Promise<ProfileFetchCounts> {
    return this.#one<ProfileFetchCounts>(PROFILE_FETCH_COUNTS, [syncId, options.sinceMs, options.fetchedSinceMs]);
  }

  async spoolIngress(
    stream: string,
    items: readonly IngressItem[],
    receivedAtMs: number,
  ): Promise<{ spooled: number; duplicates: number }> {
    if (items.length === 0) return { spooled: 0, duplicates: 0 };
    // One statement: the sender's batch is in the store as a whole, or not at all (and it sends it again).
    const result = await this.#query(
      `INSERT INTO ingress_spool (stream, dedupe_key, partition_key, received_at_ms, body)
       SELECT $1, k, p, $2, b FROM unnest($3::text[], $4::text[], $5::text[]) WITH ORDINALITY AS t(k, p, b, n) ORDER BY n
       ON CONFLICT DO NOTHING`,
      [
        stream,
        receivedAtMs,
        items.map((item) => requireKey(item.dedupeKey)),
        items.map((item) => item.partitionKey),
        items.map((item) => JSON.stringify(item.body)),
      ],
    );
    const spooled = result.rowCount ?? 0;
    return { spooled, duplicates: items.length - spooled };
  }

  async pendingIngress(stream: string, options: { nowMs: number; limit: number }): Promise<SpooledItem[]> {
    return (await this.#rows<SpooledRow>(PENDING_INGRESS, [stream, options.nowMs, pageLimit(options.limit)])).map(toSpooledItem);
  }

  async completeIngress(stream: string, seqs: readonly number[], doneAtMs: number): Promise<void> {
    for (const chunk of batches(seqs))
      await this.#query('UPDATE ingress_spool SET done_at_ms = $1 WHERE stream = $2 AND seq = ANY($3::bigint[]) AND done_at_ms IS NULL', [
        doneAtMs,
        stream,
        chunk,
      ]);
  }

  async deferIngress(stream: string, partitionKeys: readonly string[], notBeforeMs: number): Promise<void> {
    for (const chunk of batches(partitionKeys))
      await this.#query(
        'UPDATE ingress_spool SET not_before_ms = $1 WHERE stream = $2 AND partition_key = ANY($3::text[]) AND done_at_ms IS NULL',
        [notBeforeMs, stream, chunk],
      );
  }

  async deadLetterIngress(stream: string, letters: ReadonlyArray<DeadLetter | SpooledDeadLetter>, atMs: number): Promise<void> {
    for (const chunk of batches(letters)) {
      await this.#transaction(async (client) => {
        await client.query(
          `INSERT INTO ingress_dead_letters (stream, dedupe_key, reason, body, at_ms, partition_key)
           SELECT $1, k, r, b, $2, p FROM unnest($3::text[], $4::text[], $5::text[], $6::text[]) AS t(k, r, b, p) ON CONFLICT DO NOTHING`,
          [
            stream,
            atMs,
            chunk.map((letter) => requireKey(letter.dedupeKey)),
            chunk.map((letter) => letter.reason),
            chunk.map((letter) => jsonText(letter.body)),
            chunk.map((letter) => ('seq' in letter ? letter.partitionKey : null)),
          ],
        );
        const seqs = chunk.flatMap((letter) => ('seq' in letter ? [letter.seq] : []));
        await client.query(
          'UPDATE ingress_spool SET done_at_ms = $1 WHERE stream = $2 AND seq = ANY($3::bigint[]) AND done_at_ms IS NULL',
          [atMs, stream, seqs],
        );
      });
    }
  }

  async ingressBacklog(stream: string, nowMs: number): Promise<IngressBacklog> {
    return toIngressBacklog(await this.#one(INGRESS_BACKLOG, [stream, nowMs]));
  }

  async pendingIngressStreams(): Promise<string[]> {
    return (await this.#rows<{ stream: string }>(PENDING_INGRESS_STREAMS, [])).map((row) => row.stream);
  }

  async deadLetters(options: { stream?: string; after?: DeadLetterPosition; limit: number }): Promise<StoredDeadLetter[]> {
    const { afterAtMs, afterStream, afterKey } = options.after
      ? { afterAtMs: options.after.atMs, afterStream: options.after.stream, afterKey: options.after.dedupeKey }
      : NO_POSITION;
    const rows = await this.#rows<DeadLetterRow>(DEAD_LETTERS, [
      options.stream ?? null,
      afterAtMs,
      afterStream,
      afterKey,
      pageLimit(options.limit),
    ]);
    return rows.map(toStoredDeadLetter);
  }

  async deadLetterCounts(): Promise<DeadLetterCount[]> {
    return this.#rows<DeadLetterCount>(DEAD_LETTER_COUNTS, []);
  }

  async replayDeadLetters(stream: string, replays: readonly DeadLetterReplay[], atMs: number): Promise<number> {
    let replayed = 0;
    for (const chunk of batches(replays)) {
      replayed += await this.#transaction(async (client) => {
        await client.query(
          `INSERT INTO ingress_spool (stream, dedupe_key, partition_key, received_at_ms, body)
           SELECT $1, k, p, $2, b FROM unnest($3::text[], $4::text[], $5::text[]) AS t(k, p, b)
           ON CONFLICT (stream, dedupe_key) DO UPDATE SET partition_key = excluded.partition_key,
             received_at_ms = excluded.received_at_ms, body = excluded.body, not_before_ms = 0, done_at_ms = NULL`,
          [
            stream,
            atMs,
            chunk.map(({ item }) => requireKey(item.dedupeKey)),
            chunk.map(({ item }) => item.partitionKey),
            chunk.map(({ item }) => JSON.stringify(item.body)),
          ],
        );
        const deleted = await client.query('DELETE FROM ingress_dead_letters WHERE stream = $1 AND dedupe_key = ANY($2::text[])', [
          stream,
          chunk.map(({ dedupeKey }) => dedupeKey),
        ]);
        return deleted.rowCount ?? 0;
      });
    }
    return replayed;
  }

  async discardDeadLetters(stream: string, dedupeKeys: readonly string[]): Promise<number> {
    let discarded = 0;
    for (const chunk of batches(dedupeKeys)) {
      const deleted = await this.#query('DELETE FROM ingress_dead_letters WHERE stream = $1 AND dedupe_key = ANY($2::text[])', [
        stream,
        chunk,
      ]);
      discarded += deleted.rowCount ?? 0;
    }
    return discarded;
  }

  async pruneIngress(beforeMs: number, limit: number): Promise<number> {
    const result = await this.#query(
      'DELETE FROM ingress_spool WHERE seq IN (SELECT seq FROM ingress_spool WHERE done_at_ms < $1 LIMIT $2)',
      [beforeMs, pageLimit(limit)],
    );
    return result.rowCount ?? 0;
  }

  async startRun(run: RunStart): Promise<void> {
    await this.#query(
      `INSERT INTO runs (run_id, sync_id, kind, status, started_at) VALUES ($1, $2, $3, 'running', $4) ON CONFLICT (run_id) DO NOTHING`,
      [run.runId, run.syncId, run.kind, run.startedAt],
    );
  }

  async finishRun(finish: RunFinish): Promise<void> {
    const { rowCount } = await this.#query(
      'UPDATE runs SET status = $1, finished_at = $2, source_version = coalesce($3, source_version), stats = $4 WHERE run_id = $5',
      [finish.status, finish.finishedAt, finish.sourceVersion ?? null, JSON.stringify(finish.stats), finish.runId],
    );
    if (rowCount === 0) throw new Error(`finishRun: run "${finish.runId}" was never started`);
  }

  async lastSuccessfulRun(syncId: string): Promise<RunRecord | undefined> {
    const [row] = await this.#rows<RunRow>(lastSucceededRun('sync_id'), [syncId]);
    return row && toRunRecord(row);
  }

  async lastSucceededRunOfKind(kind: string): Promise<RunRecord | undefined> {
    const [row] = await this.#rows<RunRow>(lastSucceededRun('kind'), [kind]);
    return row && toRunRecord(row);
  }

  async recentRuns(options: { syncId?: string; limit: number }): Promise<RunRecord[]> {
    const limit = pageLimit(options.limit);
    const rows =
      options.syncId === undefined
        ? await this.#rows<RunRow>(`SELECT ${RUN_COLUMNS} FROM runs ORDER BY started_at DESC, run_id DESC LIMIT $1`, [limit])
        : await this.#rows<RunRow>(`SELECT ${RUN_COLUMNS} FROM runs WHERE sync_id = $1 ORDER BY started_at DESC, run_id DESC LIMIT $2`, [
            options.syncId,
            limit,
          ]);
    return rows.map(toRunRecord);
  }

  async addDataPoints(entry: DataPointEntry): Promise<boolean> {
    requireFormat('day', entry.day, DAY, 'YYYY-MM-DD');
    requirePoints(entry.points);
    const { rowCount } = await this.#query(INSERT_DATA_POINTS, [entry.runId, entry.pageKey, entry.day, entry.syncId, entry.points]);
    return rowCount === 1;
  }

  async dataPointsOnDay(day: string, syncId?: string): Promise<number> {
    requireFormat('day', day, DAY, 'YYYY-MM-DD');
    const row =
      syncId === undefined
        ? await this.#one<{ total: number }>('SELECT coalesce(sum(points), 0)::bigint AS total FROM data_points WHERE day = $1', [day])
        : await this.#one<{ total: number }>(
            'SELECT coalesce(sum(points), 0)::bigint AS total FROM data_points WHERE day = $1 AND sync_id = $2',
            [day, syncId],
          );
    return row.total;
  }

  async reserveCohortDownload(reservation: CohortDownloadReservation): Promise<ReservationResult> {
    const { month, limit, cohortId, runId } = reservation;
    requireFormat('month', month, MONTH, 'YYYY-MM');
    return this.#transaction(async (client) => {
      // Reservations of one month queue on this lock, so the count and the insert below cannot interleave.
      await client.query(`SELECT pg_advisory_xact_lock(hashtext('cohort_downloads:' || $1))`, [month]);
      const downloadsIn = async (inMonth: string) =>
        (await client.query<{ count: number }>('SELECT count(*) AS count FROM cohort_downloads WHERE month = $1', [inMonth])).rows[0]
          ?.count ?? 0;
      const earlierReservation = async () => {
        const sql = 'SELECT month FROM cohort_downloads WHERE run_id = $1 AND cohort_id = $2';
        const { rows } = await client.query<{ month: string }>(sql, [runId, cohortId]);
        return rows[0] && { ok: true, used: await downloadsIn(rows[0].month) };
      };
      const earlier = await earlierReservation();
      if (earlier) return earlier;
      const used = await downloadsIn(month);
      if (used >= limit) return { ok: false, used };
      const { rowCount } = await client.query(
        'INSERT INTO cohort_downloads (run_id, cohort_id, month, reserved_at) VALUES ($1, $2, $3, now()) ON CONFLICT DO NOTHING',
        [runId, cohortId, month],
      );
      // The same run reserving for another month at this very moment (outside this month's lock) got there first.
      if (rowCount === 0) return (await earlierReservation())!;
      return { ok: true, used: used + 1 };
    });
  }

  async cohortDownloadsInMonth(month: string): Promise<number> {
    requireFormat('month', month, MONTH, 'YYYY-MM');
    return (await this.#one<{ count: number }>('SELECT count(*) AS count FROM cohort_downloads WHERE month = $1', [month])).count;
  }

  async knownDeviceIds(amplitudeIds: readonly string[]): Promise<Map<string, string | null>> {
    const known = new Map<string, string | null>();
    for (const chunk of batches(amplitudeIds)) {
      const rows = await this.#rows<AmplitudeDeviceId>(
        'SELECT amplitude_id AS "amplitudeId", device_id AS "deviceId" FROM amplitude_device_ids WHERE amplitude_id = ANY($1::text[])',
        [chunk],
      );
      for (const { amplitudeId, deviceId } of rows) known.set(amplitudeId, deviceId);
    }
    return known;
  }

  async recordDeviceIds(entries: readonly AmplitudeDeviceId[]): Promise<void> {
    for (const chunk of batches(entries)) {
      await this.#query(
        `INSERT INTO amplitude_device_ids (amplitude_id, device_id, looked_up_at)
         SELECT DISTINCT ON (a) a, d, now() FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS t(a, d, n) ORDER BY a, n DESC
         ON CONFLICT (amplitude_id) DO UPDATE SET device_id = excluded.device_id, looked_up_at = excluded.looked_up_at`,
        [chunk.map((entry) => entry.amplitudeId), chunk.map((entry) => entry.deviceId)],
      );
    }
  }

  async recordFailures(runId: string, failures: readonly MemberFailure[]): Promise<void> {
    for (const chunk of batches(failures)) {
      await this.#query(UPSERT_FAILURES, [
        runId,
        chunk.map((failure) => requireKey(failure.memberKey)),
        chunk.map((failure) => failure.reason),
      ]);
    }
  }

  async failuresForRun(runId: string, options: PageOptions): Promise<Page<MemberFailure>> {
    const limit = pageLimit(options.limit);
    const rows = await this.#rows<MemberFailure>(
      'SELECT member_key AS "memberKey", reason FROM member_failures WHERE run_id = $1 AND member_key > $2 ORDER BY member_key LIMIT $3',
      [runId, options.afterKey ?? FIRST_KEY, limit],
    );
    return toPage(rows, limit);
  }

  failureCountsByReason(runId: string): Promise<ReasonCount[]> {
    return this.#rows<ReasonCount>(
      'SELECT reason, count(*) AS count FROM member_failures WHERE run_id = $1 GROUP BY reason ORDER BY count DESC, reason',
      [runId],
    );
  }

  async recordRequestOutcome(outcome: RequestOutcome): Promise<boolean> {
    const { runId, requestKey, accepted, rejected, dataPoints } = outcome;
    const { rowCount } = await this.#query(INSERT_REQUEST_OUTCOME, [runId, requireKey(requestKey), accepted, rejected, dataPoints]);
    return rowCount === 1;
  }

  // Both ledgers writes are one statement each, whatever the batch: a round trip to the server costs more than the
  // rows (several a request otherwise, hundreds of requests a second).
  async recordRequestsSending(requests: readonly SendingRequest[]): Promise<void> {
    requests.forEach(requireValidPoints);
    if (requests.length === 0) return;
    const column = <K extends keyof SendingRequest>(key: K) => requests.map((request) => request[key]);
    await this.#query(RECORD_REQUESTS_SENDING, [
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
    const rows = await this.#rows<{ n: string }>(RECORD_SENT_REQUESTS, [
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
    return this.#one<OutcomeTotals>(
      `SELECT count(*) AS requests, coalesce(sum(accepted), 0)::bigint AS accepted, coalesce(sum(rejected), 0)::bigint AS rejected,
              coalesce(sum(data_points), 0)::bigint AS "dataPoints"
       FROM request_outcomes WHERE run_id = $1 AND request_key >= $2 AND request_key < $3`,
      [runId, keyPrefix, `${keyPrefix}\uffff`],
    );
  }

  async acquireRateSlots(request: RateSlotRequest): Promise<RateSlotGrant> {
    const { key, requested, limit, windowMs, nowMs } = request;
    // One statement: the row is locked only while it runs, so hundreds of acquisitions a second from many workers
    // do not queue behind each other's round trips. Its SET expressions all read the row as it was (see
    // nextRateWindow for the same rule in JavaScript): windows only move forward, a blocked limit grants nothing.
    type Row = { granted: number; used: number; windowStartMs: number; blockedUntilMs: number; vendorLimit: number | null };
    const take = () => this.#rows<Row>(ACQUIRE_RATE_SLOTS, [key, nowMs - (nowMs % windowMs), requested, limit, nowMs]);
    let [row] = await take();
    if (!row) {
      await this.#query('INSERT INTO rate_windows (limiter_key, window_start_ms, used) VALUES ($1, 0, 0) ON CONFLICT DO NOTHING', [key]);
      [row] = await take();
    }
    const { granted, used, windowStartMs, blockedUntilMs, vendorLimit } = row!;
    const known = vendorLimit === null ? {} : { vendorLimit };
    if (blockedUntilMs > nowMs) return { granted: 0, retryAtMs: blockedUntilMs, usedThrough: used, ...known };
    return { granted, retryAtMs: windowStartMs + windowMs, usedThrough: used, ...known };
  }

  async blockRateLimit(key: string, untilMs: number): Promise<void> {
    await this.#query(
      `INSERT INTO rate_windows AS w (limiter_key, window_start_ms, used, blocked_until_ms) VALUES ($1, 0, 0, $2)
       ON CONFLICT (limiter_key) DO UPDATE SET blocked_until_ms = greatest(w.blocked_until_ms, excluded.blocked_until_ms)`,
      [key, untilMs],
    );
  }

  async adoptVendorRateLimit(report: VendorRateReport): Promise<void> {
    const { key, vendorLimit, windowStartMs, windowCap } = report;
    await this.#query(
      `INSERT INTO rate_windows AS w (limiter_key, window_start_ms, used, vendor_limit, window_cap) VALUES ($1, $2, 0, $3, $4)
       ON CONFLICT (limiter_key) DO UPDATE SET vendor_limit = excluded.vendor_limit,
         window_cap = CASE WHEN w.window_start_ms = excluded.window_start_ms AND excluded.window_cap IS NOT NULL
           THEN least(w.window_cap, excluded.window_cap) ELSE w.window_cap END`,
      [key, windowStartMs, vendorLimit, windowCap ?? null],
    );
  }

  claimSyncLease(claim: SyncLeaseClaim): Promise<SyncLease> {
    const { syncId, holder, workflowId, hold, ttlMs, nowMs } = claim;
    return this.#transaction(async (client) => {
      // The upsert locks an existing lease row even when its WHERE refuses the claim, so the holder read below is current.
      const taken = await client.query(
        `INSERT INTO sync_leases AS l (sync_id, holder, workflow_id, hold, expires_at_ms) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (sync_id) DO UPDATE SET holder = excluded.holder, workflow_id = excluded.workflow_id, hold = excluded.hold,
           expires_at_ms = excluded.expires_at_ms
         WHERE l.holder = excluded.holder OR l.expires_at_ms <= $6`,
        [syncId, holder, workflowId, hold, nowMs + ttlMs, nowMs],
      );
      if (taken.rowCount === 1) return { held: true };
      const { rows } = await client.query<{ holder: string; workflowId: string; hold: SyncLeaseHold; expiresAtMs: number }>(
        'SELECT holder, workflow_id AS "workflowId", hold, expires_at_ms AS "expiresAtMs" FROM sync_leases WHERE sync_id = $1',
        [syncId],
      );
      return { held: false, ...rows[0]! };
    });
  }

  async releaseSyncLease(syncId: string, holder: string): Promise<void> {
    await this.#query('DELETE FROM sync_leases WHERE sync_id = $1 AND holder = $2', [syncId, holder]);
  }

  #query(text: string, values: unknown[] = []): Promise<pg.QueryResult> {
    return retrying(() => this.#pool.query(text, values));
  }

  async #rows<Row extends pg.QueryResultRow>(text: string, values: unknown[] = []): Promise<Row[]> {
    return (await retrying(() => this.#pool.query<Row>(text, values))).rows;
  }

  async #one<Row extends pg.QueryResultRow>(text: string, values: unknown[] = []): Promise<Row> {
    const [row] = await this.#rows<Row>(text, values);
    if (!row) throw new Error(`expected one row from: ${text}`);
    return row;
  }

  /** Replaces the run's plan with the pages `planSql` numbers; `countSql` counts the rows they cover. */
  async #planRunPages(runId: string, pageSize: number, planSql: string, countSql: string): Promise<{ count: number; pages: number }> {
    requirePageSize(pageSize);
    return this.#transaction(async (client) => {
      await client.query('DELETE FROM plan_pages WHERE run_id = $1', [runId]);
      await client.query(planSql, [runId, pageSize]);
      const { rows } = await client.query<{ count: number }>(countSql, [runId]);
      const count = rows[0]!.count;
      return { count, pages: Math.ceil(count / pageSize) };
    });
  }

  /**
   * Stages rows in transactions of at most MAX_ROWS_PER_TRANSACTION. Only the last carries the checkpoint: rows
   * committed before a crash are staged again, to the same effect.
   */
  async #stageInTransactions<T>(
    runId: string,
    rows: readonly T[],
    checkpoint: StagingCheckpoint,
    stage: (client: pg.PoolClient, chunk: readonly T[]) => Promise<unknown>,
  ): Promise<void> {
    const all = chunks(rows);
    for (const [index, chunk] of all.entries()) {
      await this.#transaction(async (client) => {
        await stage(client, chunk);
        if (index === all.length - 1) await client.query(UPSERT_CHECKPOINT, checkpointColumns(runId, checkpoint));
      });
    }
  }

  /** Runs `work` in one transaction on one connection, again from the start after a serialization failure or deadlock. */
  #transaction<T>(work: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    return retrying(async () => {
      const client = await this.#pool.connect();
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
function batches<T>(items: readonly T[]): (readonly T[])[] {
  return chunks(items).filter((chunk) => chunk.length > 0);
}

function stagedColumns(rows: readonly StagedRow[]): (string | null)[][] {
  const columns: (keyof StagedRow)[] = ['memberKey', 'amplitudeId', 'userId', 'deviceId', 'props'];
  return columns.map((column) => rows.map((row) => row[column]));
}

function toRunRecord(row: RunRow): RunRecord {
  return {
    runId: row.runId,
    syncId: row.syncId,
    kind: row.kind,
    status: row.status,
    startedAt: row.startedAt,
    finishedAt: row.finishedAt ?? undefined,
    sourceVersion: row.sourceVersion ?? undefined,
    stats: row.stats === null ? undefined : (JSON.parse(row.stats) as JsonObject),
  };
}

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
