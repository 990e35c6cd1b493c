/**
 * The StateStore contract, run against SQLite and PostgreSQL alike, plus what is particular to each: SQLite's
 * file and WAL, PostgreSQL's advisory-locked migrations. Concurrency tests use separate processes.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import Database from 'better-sqlite3';
import pg from 'pg';
import { openStateStore, type StagedMember, type InspectableStore } from '../src/store/index.js';
import { applyMigrations, MIGRATIONS } from '../src/store/migrations.js';
import { applyPostgresMigrations } from '../src/store/postgres.js';
import { createTestDatabase } from './helpers/postgres.js';
import { grantsPerWindow, runStoreProcesses } from './helpers/store-processes.js';
import { forEachStore, openFreshStore, openStoreFrom } from './helpers/stores.js';

const key = (index: number) => `ext:user-${String(index).padStart(6, '0')}`;
const range = (count: number) => Array.from({ length: count }, (_, index) => index);
const member = (index: number): StagedMember => ({
  memberKey: key(index),
  amplitudeId: String(1_000_000 + index),
  userId: `user-${index}`,
});
const probeTable = 'CREATE TABLE migration_probe (id INTEGER PRIMARY KEY)';
const probeMigration = { version: 1_000, name: 'test table', sql: probeTable, postgres: probeTable };

/** Attribute snapshot rows as schema 8 kept them: (scope, user, attribute, the value's JSON text). */
const SNAPSHOT_ROWS_V8 = [
  ['braze:default', 'user_id:a', 'plan', '"free"'],
  ['braze:default', 'user_id:a', 'genres', '["rock","jazz"]'],
  ['braze:default', 'user_id:b', 'ltv', '12.5'],
  ['braze:other', 'user_id:a', 'plan', '"premium"'],
];
const SNAPSHOTS_AFTER_MOVE = {
  'braze:default': { 'user_id:a': { plan: '"free"', genres: '["rock","jazz"]' }, 'user_id:b': { ltv: '12.5' } },
  'braze:other': { 'user_id:a': { plan: '"premium"' } },
};

async function snapshotsAfterMove(store: InspectableStore) {
  const read = async (scope: string) =>
    Object.fromEntries(
      [...(await store.attributeSnapshots(scope, ['user_id:a', 'user_id:b']))].map(([user, values]) => [user, Object.fromEntries(values)]),
    );
  return { 'braze:default': await read('braze:default'), 'braze:other': await read('braze:other') };
}

async function collectPages<T>(fetch: (afterKey: string | undefined) => Promise<{ items: T[]; nextAfterKey: string | undefined }>) {
  const items: T[] = [];
  let afterKey: string | undefined;
  do {
    const page = await fetch(afterKey);
    items.push(...page.items);
    afterKey = page.nextAfterKey;
  } while (afterKey !== undefined);
  return items;
}

describe('SQLite migrations', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ampbraze-store-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  void test('create the parent directory, enable WAL, apply once, and apply a new migration on the next open', async () => {
    const path = join(dir, 'nested', 'state.db');
    const store = await openStateStore({ kind: 'sqlite', path });
    assert.equal(store.description, `SQLite ${path}`);
    assert.equal(await store.schemaVersion(), MIGRATIONS.at(-1)?.version);
    await store.close();

    const db = new Database(path);
    try {
      assert.equal(db.pragma('journal_mode', { simple: true }), 'wal');
      assert.deepEqual(applyMigrations(db), []);
      assert.deepEqual(applyMigrations(db, [...MIGRATIONS, probeMigration]), [1_000]);
      assert.deepEqual(applyMigrations(db, [...MIGRATIONS, probeMigration]), []);
      assert.equal(db.prepare('SELECT count(*) AS n FROM schema_migrations WHERE version = 1000').pluck().get(), 1);
    } finally {
      db.close();
    }
    // This build does not know version 1000: it must refuse rather than run against an unknown schema.
    await assert.rejects(openStateStore({ kind: 'sqlite', path }), /schema version 1000, newer than this build/);
  });

  void test('attribute snapshots of schema 8 (a row per attribute) read the same after the move to a row per user', async () => {
    const path = join(dir, 'snapshots-v8.db');
    const db = new Database(path);
    try {
      applyMigrations(
        db,
        MIGRATIONS.filter((migration) => migration.version <= 8),
      );
      const insert = db.prepare('INSERT INTO attribute_snapshots (sync_id, member_key, attribute, value) VALUES (?, ?, ?, ?)');
      for (const row of SNAPSHOT_ROWS_V8) insert.run(...row);
    } finally {
      db.close();
    }
    const store = await openStoreFrom({ STATE_DB: path });
    try {
      assert.deepEqual(await snapshotsAfterMove(store), SNAPSHOTS_AFTER_MOVE);
    } finally {
      await store.close();
    }
  });

  void test('refuse an out-of-order list', () => {
    const db = new Database(':memory:');
    try {
      assert.throws(
        () => applyMigrations(db, [...MIGRATIONS, { version: 0, name: 'late', sql: '', postgres: '' }]),
        /increasing version order/,
      );
    } finally {
      db.close();
    }
  });
});

describe('PostgreSQL migrations', () => {
  void test('ten workers opening a fresh database together all succeed, and each migration is applied once', async () => {
    const url = await createTestDatabase();
    const stores = await Promise.all(range(10).map(() => openStoreFrom({ STATE_STORE_URL: url })));
    try {
      assert.deepEqual(
        await Promise.all(stores.map((store) => store.schemaVersion())),
        range(10).map(() => MIGRATIONS.at(-1)?.version),
      );
    } finally {
      await Promise.all(stores.map((store) => store.close()));
    }
    const pool = new pg.Pool({ connectionString: url });
    try {
      const { rows } = await pool.query<{ version: number; n: string }>(
        'SELECT version, count(*) AS n FROM schema_migrations GROUP BY version ORDER BY version',
      );
      assert.deepEqual(
        rows.map((row) => [row.version, Number(row.n)]),
        MIGRATIONS.map((migration) => [migration.version, 1]),
      );
    } finally {
      await pool.end();
    }
  });

  void test('a new migration is applied on the next open, and a schema newer than the build is refused', async () => {
    const url = await createTestDatabase();
    const store = await openStoreFrom({ STATE_STORE_URL: url });
    assert.match(store.description, /^PostgreSQL 127\.0\.0\.1:\d+\/test_\w+$/);
    await store.close();
    const pool = new pg.Pool({ connectionString: url });
    try {
      assert.deepEqual(await applyPostgresMigrations(pool), []);
      assert.deepEqual(await applyPostgresMigrations(pool, [...MIGRATIONS, probeMigration]), [1_000]);
      assert.deepEqual(await applyPostgresMigrations(pool, [...MIGRATIONS, probeMigration]), []);
    } finally {
      await pool.end();
    }
    await assert.rejects(openStoreFrom({ STATE_STORE_URL: url }), /schema version 1000, newer than this build/);
  });

  void test('attribute snapshots of schema 8 (a row per attribute) read the same after the move to a row per user', async () => {
    const url = await createTestDatabase();
    const pool = new pg.Pool({ connectionString: url });
    try {
      await applyPostgresMigrations(
        pool,
        MIGRATIONS.filter((migration) => migration.version <= 8),
      );
      for (const row of SNAPSHOT_ROWS_V8)
        await pool.query('INSERT INTO attribute_snapshots (sync_id, member_key, attribute, value) VALUES ($1, $2, $3, $4)', row);
    } finally {
      await pool.end();
    }
    const store = await openStoreFrom({ STATE_STORE_URL: url });
    try {
      assert.deepEqual(await snapshotsAfterMove(store), SNAPSHOTS_AFTER_MOVE);
    } finally {
      await store.close();
    }
  });

  void test('an unreachable server fails the open naming the store and the reason, never the password', async () => {
    await assert.rejects(openStoreFrom({ STATE_STORE_URL: 'postgres://sync:pg-password-s3cr3t@127.0.0.1:1/state' }), (error: Error) => {
      assert.match(error.message, /^PostgreSQL 127\.0\.0\.1:1\/state: connect ECONNREFUSED/);
      assert.doesNotMatch(`${error.message}\n${error.stack}`, /s3cr3t/);
      return true;
    });
  });

  void test('the description names host and database, never the password', async () => {
    const url = new URL(await createTestDatabase());
    url.password = 'pg-password-s3cr3t';
    const store = await openStoreFrom({ STATE_STORE_URL: url.href });
    try {
      assert.equal(store.description, `PostgreSQL ${url.hostname}:${url.port}${url.pathname}`);
      assert.doesNotMatch(store.description, /s3cr3t/);
    } finally {
      await store.close();
    }
  });
});

describe('PostgreSQL under contention', () => {
  void test('under SERIALIZABLE, workers whose transactions conflict are retried, never failed', async () => {
    const url = await createTestDatabase();
    const admin = new pg.Client({ connectionString: url });
    await admin.connect();
    await admin.query(`ALTER DATABASE ${new URL(url).pathname.slice(1)} SET default_transaction_isolation = 'serializable'`);
    await admin.end();
    const env = { STATE_STORE_URL: url };
    const store = await openStoreFrom(env);
    try {
      const runIds = (worker: number) => range(12).map((i) => `s${worker}-${i}`);
      const reservations = range(4).map((worker) => ({ task: 'reserve' as const, month: '2025-08', limit: 30, runIds: runIds(worker) }));
      const limiters = range(2).map(() => ({
        task: 'limiter' as const,
        key: 'serializable',
        limit: { requests: 10, windowMs: 100 },
        amounts: [3, 3, 3],
      }));
      const [a, b, c, d, ...grants] = await runStoreProcesses(env, [...reservations, ...limiters]);
      assert.equal(
        [a, b, c, d].reduce((sum: number, won) => sum + (won as number), 0),
        30,
      );
      assert.equal(await store.cohortDownloadsInMonth('2025-08'), 30);
      const { perWindow, total } = grantsPerWindow(grants);
      assert.ok(total >= 18, `the store granted ${total} slots for the 18 asked`);
      for (const [windowEnd, granted] of perWindow) assert.ok(granted <= 10, `window ending ${windowEnd} granted ${granted}`);
    } finally {
      await store.close();
    }
  });
});

forEachStore((kind) => {
  void test('keys compare byte-wise (UTF-8): pages come in the same order on every store', async () => {
    const { store } = await openFreshStore(kind);
    try {
      const keys = ['ext:b', 'ext:B', 'ext:é', 'ext:e', 'ext:Z', 'ext:ä', 'ext:~', 'ext:a-1', 'ext:a_1', 'ext:a1', 'ext:日本'];
      await store.commitSnapshot('sync-order', { added: keys });
      const paged = await collectPages((afterKey) => store.snapshotMembers('sync-order', { afterKey, limit: 2 }));
      assert.deepEqual(
        paged.map((item) => item.memberKey),
        [...keys].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b))),
      );
    } finally {
      await store.close();
    }
  });

  describe('cohort state', () => {
    let store: InspectableStore;
    before(async () => {
      ({ store } = await openFreshStore(kind));
    });
    after(async () => {
      await store.close();
    });

    void test('staging resumes from the checkpoint stored with its rows', async () => {
      assert.equal(await store.stagingCheckpoint('run-stage'), undefined);
      await store.stageChunk('run-stage', range(100).map(member), { rowsConsumed: 100, bytesConsumed: 4_000 });
      assert.deepEqual(await store.stagingCheckpoint('run-stage'), { rowsConsumed: 100, bytesConsumed: 4_000 });

      // A retried attempt re-reads from an earlier offset: overlapping rows are not duplicated, the first one wins.
      const retried = range(100).map((index) => ({ ...member(50 + index), props: { retried: true } }));
      await store.stageChunk('run-stage', retried, { rowsConsumed: 150, bytesConsumed: 6_000 });
      assert.equal(await store.stagedCount('run-stage'), 150);
      assert.deepEqual(await store.stagingCheckpoint('run-stage'), { rowsConsumed: 150, bytesConsumed: 6_000 });

      const { items } = await store.diffPage('run-stage', 'sync-none', { kind: 'enter', afterKey: key(98), limit: 3 });
      assert.deepEqual(items, [key(99), key(100), key(101)]);

      // A chunk larger than one transaction still lands whole, with its checkpoint.
      await store.stageChunk(
        'run-stage',
        range(12_000).map((index) => member(1_000 + index)),
        { rowsConsumed: 12_150, bytesConsumed: 500_000 },
      );
      assert.equal(await store.stagedCount('run-stage'), 12_150);

      await store.clearStaging('run-stage');
      assert.equal(await store.stagedCount('run-stage'), 0);
      assert.equal(await store.stagingCheckpoint('run-stage'), undefined);
    });

    void test('diff pages enter and leave in key order over 10k+ rows, and committing them converges the snapshot', async () => {
      const all = range(15_000);
      const staged = all.filter((index) => index % 3 !== 0);
      const snapshot = all.filter((index) => index % 2 === 0);
      const expectedEnter = staged.filter((index) => index % 2 !== 0).map(key);
      const expectedLeave = snapshot.filter((index) => index % 3 === 0).map(key);

      await store.commitSnapshot('sync-diff', { added: snapshot.map(key) });
      assert.equal(await store.snapshotCount('sync-diff'), snapshot.length);
      await store.stageChunk('run-diff', staged.map(member), { rowsConsumed: staged.length, bytesConsumed: 1 });
      assert.deepEqual(await store.diffCounts('run-diff', 'sync-diff'), { enter: expectedEnter.length, leave: expectedLeave.length });

      // Commit each page as it is "sent", the way the sync does: keyset paging must not skip or repeat anything.
      const entered = await collectPages(async (afterKey) => {
        const page = await store.diffPage('run-diff', 'sync-diff', { kind: 'enter', afterKey, limit: 777 });
        await store.commitSnapshot('sync-diff', { added: page.items });
        return page;
      });
      assert.deepEqual(entered, expectedEnter);

      const left = await collectPages(async (afterKey) => {
        const page = await store.diffPage('run-diff', 'sync-diff', { kind: 'leave', afterKey, limit: 777 });
        await store.commitSnapshot('sync-diff', { removed: page.items });
        return page;
      });
      assert.deepEqual(left, expectedLeave);

      assert.deepEqual(await store.diffCounts('run-diff', 'sync-diff'), { enter: 0, leave: 0 });
      const members = await collectPages((afterKey) => store.snapshotMembers('sync-diff', { afterKey, limit: 5_000 }));
      assert.deepEqual(
        members.map((item) => item.memberKey),
        staged.map(key),
      );
      // Another sync's snapshot is separate.
      assert.equal((await store.diffCounts('run-diff', 'sync-other')).enter, staged.length);
    });

    void test('attribute snapshots are read per batch of members and upserted', async () => {
      await store.upsertAttributeSnapshots('sync-traits', [
        { memberKey: 'ext:a', attribute: 'plan', value: '"pro"' },
        { memberKey: 'ext:a', attribute: 'seats', value: '3' },
        { memberKey: 'ext:b', attribute: 'plan', value: '"free"' },
      ]);
      await store.upsertAttributeSnapshots('sync-traits', [{ memberKey: 'ext:a', attribute: 'seats', value: '4' }]);
      const snapshots = await store.attributeSnapshots('sync-traits', ['ext:a', 'ext:unknown']);
      assert.deepEqual(
        [...snapshots].map(([memberKey, attributes]) => [memberKey, Object.fromEntries(attributes)]),
        [['ext:a', { plan: '"pro"', seats: '4' }]],
      );
    });
  });

  describe('ledgers', () => {
    let store: InspectableStore;
    before(async () => {
      ({ store } = await openFreshStore(kind));
    });
    after(async () => {
      await store.close();
    });

    void test('the run ledger finds the last successful run with its source version', async () => {
      assert.equal(await store.lastSuccessfulRun('sync-runs'), undefined);
      await store.startRun({ runId: 'r1', syncId: 'sync-runs', kind: 'cohort', startedAt: new Date('2025-03-01T00:00:00Z') });
      await store.finishRun({
        runId: 'r1',
        status: 'succeeded',
        finishedAt: new Date('2025-03-01T00:05:00Z'),
        stats: { entered: 10 },
        sourceVersion: 'lc-1',
      });
      await store.startRun({ runId: 'r2', syncId: 'sync-runs', kind: 'cohort', startedAt: new Date('2025-03-02T00:00:00Z') });
      await store.finishRun({ runId: 'r2', status: 'failed', finishedAt: new Date('2025-03-02T00:01:00Z'), stats: { error: 'boom' } });
      await store.startRun({ runId: 'r3', syncId: 'sync-runs', kind: 'cohort', startedAt: new Date('2025-03-03T00:00:00Z') });
      // A retried start does not reset anything.
      await store.startRun({ runId: 'r1', syncId: 'sync-runs', kind: 'cohort', startedAt: new Date('2025-03-09T00:00:00Z') });

      assert.deepEqual(await store.lastSuccessfulRun('sync-runs'), {
        runId: 'r1',
        syncId: 'sync-runs',
        kind: 'cohort',
        status: 'succeeded',
        startedAt: new Date('2025-03-01T00:00:00Z'),
        finishedAt: new Date('2025-03-01T00:05:00Z'),
        sourceVersion: 'lc-1',
        stats: { entered: 10 },
      });
      const recent = await store.recentRuns({ syncId: 'sync-runs', limit: 10 });
      assert.deepEqual(
        recent.map((run) => [run.runId, run.status]),
        [
          ['r3', 'running'],
          ['r2', 'failed'],
          ['r1', 'succeeded'],
        ],
      );
      assert.equal((await store.recentRuns({ limit: 1 }))[0]?.runId, 'r3');
      await assert.rejects(
        store.finishRun({ runId: 'never-started', status: 'succeeded', finishedAt: new Date(), stats: {} }),
        /never started/,
      );
    });

    void test('data points count once per run page', async () => {
      const page = { day: '2025-03-01', syncId: 'sync-dp', runId: 'run-dp', pageKey: 'enter:0', points: 75 };
      assert.equal(await store.addDataPoints(page), true);
      assert.equal(await store.addDataPoints(page), false);
      assert.equal(await store.addDataPoints({ ...page, pageKey: 'enter:1', points: 25 }), true);
      assert.equal(await store.addDataPoints({ ...page, syncId: 'sync-dp-2', runId: 'run-dp-2', points: 5 }), true);
      assert.equal(await store.addDataPoints({ ...page, day: '2025-03-02', runId: 'run-dp-3' }), true);

      assert.equal(await store.dataPointsOnDay('2025-03-01', 'sync-dp'), 100);
      assert.equal(await store.dataPointsOnDay('2025-03-01'), 105);
      assert.equal(await store.dataPointsOnDay('2025-03-03'), 0);
      await assert.rejects(store.addDataPoints({ ...page, day: '03/01/2025' }), /YYYY-MM-DD/);
    });

    void test('cohort downloads are reserved up to the limit, once per run', async () => {
      const month = '2025-04';
      assert.deepEqual(await store.reserveCohortDownload({ month, limit: 2, cohortId: 'c1', runId: 'q1' }), { ok: true, used: 1 });
      assert.deepEqual(await store.reserveCohortDownload({ month, limit: 2, cohortId: 'c1', runId: 'q1' }), { ok: true, used: 1 });
      assert.deepEqual(await store.reserveCohortDownload({ month, limit: 2, cohortId: 'c2', runId: 'q2' }), { ok: true, used: 2 });
      assert.deepEqual(await store.reserveCohortDownload({ month, limit: 2, cohortId: 'c3', runId: 'q3' }), { ok: false, used: 2 });
      // The run that already holds a reservation keeps it even at the limit.
      assert.deepEqual(await store.reserveCohortDownload({ month, limit: 2, cohortId: 'c2', runId: 'q2' }), { ok: true, used: 2 });
      assert.equal(await store.cohortDownloadsInMonth(month), 2);
      assert.deepEqual(await store.reserveCohortDownload({ month: '2025-05', limit: 2, cohortId: 'c3', runId: 'q3' }), {
        ok: true,
        used: 1,
      });
    });

    void test('failures keep the vendor reason per member and count by reason', async () => {
      await store.recordFailures('run-f', [
        { memberKey: 'ext:c', reason: 'Invalid external_id' },
        { memberKey: 'ext:a', reason: 'Invalid external_id' },
        { memberKey: 'ext:b', reason: 'Too many attributes' },
      ]);
      await store.recordFailures('run-f', [{ memberKey: 'ext:b', reason: 'Invalid external_id' }]);
      const first = await store.failuresForRun('run-f', { limit: 2 });
      assert.deepEqual(first, {
        items: [
          { memberKey: 'ext:a', reason: 'Invalid external_id' },
          { memberKey: 'ext:b', reason: 'Invalid external_id' },
        ],
        nextAfterKey: 'ext:b',
      });
      assert.deepEqual(await store.failuresForRun('run-f', { afterKey: first.nextAfterKey, limit: 2 }), {
        items: [{ memberKey: 'ext:c', reason: 'Invalid external_id' }],
        nextAfterKey: undefined,
      });
      assert.deepEqual(await store.failureCountsByReason('run-f'), [{ reason: 'Invalid external_id', count: 3 }]);
    });
  });

  describe('many worker processes sharing the store', () => {
    void test('four processes reserving downloads never reserve past the limit', async () => {
      const { store, env } = await openFreshStore(kind);
      try {
        const runIds = (worker: number) => range(12).map((i) => `w${worker}-${i}`);
        const tasks = range(4).map((worker) => ({ task: 'reserve' as const, month: '2025-06', limit: 30, runIds: runIds(worker) }));
        const won = (await runStoreProcesses(env, tasks)) as number[];
        assert.equal(
          won.reduce((sum, count) => sum + count, 0),
          30,
        );
        assert.equal(await store.cohortDownloadsInMonth('2025-06'), 30);
      } finally {
        await store.close();
      }
    });

    void test('two processes racing for the last download: exactly one wins', async () => {
      const { store, env } = await openFreshStore(kind);
      try {
        assert.equal((await store.reserveCohortDownload({ month: '2025-07', limit: 3, cohortId: 'c', runId: 'earlier-1' })).ok, true);
        assert.equal((await store.reserveCohortDownload({ month: '2025-07', limit: 3, cohortId: 'c', runId: 'earlier-2' })).ok, true);
        const won = (await runStoreProcesses(env, [
          { task: 'reserve', month: '2025-07', limit: 3, runIds: ['racer-a'] },
          { task: 'reserve', month: '2025-07', limit: 3, runIds: ['racer-b'] },
        ])) as number[];
        assert.deepEqual([...won].sort(), [0, 1]);
        assert.equal(await store.cohortDownloadsInMonth('2025-07'), 3);
      } finally {
        await store.close();
      }
    });

    void test('one run reserving in two months at once (a retry across month end) keeps a single reservation', async () => {
      const { store, env } = await openFreshStore(kind);
      try {
        const won = await runStoreProcesses(env, [
          { task: 'reserve', month: '2025-09', limit: 5, runIds: ['run-at-month-end'] },
          { task: 'reserve', month: '2025-10', limit: 5, runIds: ['run-at-month-end'] },
        ]);
        assert.deepEqual(won, [1, 1], 'both attempts hold the reservation');
        assert.equal((await store.cohortDownloadsInMonth('2025-09')) + (await store.cohortDownloadsInMonth('2025-10')), 1);
      } finally {
        await store.close();
      }
    });

    void test('a request outcome recorded by two processes at once counts once', async () => {
      const { store, env } = await openFreshStore(kind);
      try {
        const recorded = await runStoreProcesses(
          env,
          range(3).map(() => ({ task: 'outcome' as const, runId: 'run-o', requestKey: 'enter:0:0' })),
        );
        assert.deepEqual([...recorded].sort(), [false, false, true]);
        assert.deepEqual(await store.requestOutcomeTotals('run-o', 'enter:'), { requests: 1, accepted: 3, rejected: 1, dataPoints: 4 });
      } finally {
        await store.close();
      }
    });
  });
});
