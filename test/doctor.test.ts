/**
 * The whole path — client → real Temporal → real worker → activity → sandbox over HTTP — through the `doctor`
 * workflow, the typed client API and the `ampbraze` CLI.
 */
import assert from 'node:assert/strict';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import Database from 'better-sqlite3';
import pg from 'pg';
import { createActivities } from '../activities/index.js';
import type { DoctorReport } from '../activities/doctor.js';
import { NoWorkerError, runDoctor } from '../src/client.js';
import { loadConfig } from '../src/config.js';
import { CURRENTS_STREAM } from '../src/currents/amplitude-events.js';
import { MIGRATIONS } from '../src/store/migrations.js';
import { describePostgresUrl } from '../src/store/postgres.js';
import { startSandboxes, type Sandboxes } from '../src/sandbox/sandboxes.js';
import { createWorkerContext } from '../src/worker-context.js';
import { ampbraze } from './helpers/cli.js';
import { forEachStore, openStoreFrom, type StoreEnv } from './helpers/stores.js';
import { connectTestEnvironment, createTestWorker, uniqueTaskQueue, testTemporalEnv } from './helpers/temporal.js';

let env: TestWorkflowEnvironment;
let sandboxes: Sandboxes;

before(async () => {
  env = await connectTestEnvironment();
  sandboxes = await startSandboxes({ seed: 7, users: 200 });
});

after(async () => {
  await sandboxes?.close();
  await env?.teardown();
});

/** Runs `body` while a worker configured with the sandboxes' environment (plus `overrides`) serves `taskQueue`. */
async function withWorker<T>(
  taskQueue: string,
  overrides: Record<string, string>,
  body: () => Promise<T>,
  storeEnv: StoreEnv = { STATE_DB: ':memory:' },
): Promise<T> {
  const config = loadConfig({ ...sandboxes.env, ...storeEnv, ...overrides });
  const context = await createWorkerContext(config);
  const worker = await createTestWorker(env, { taskQueue, activities: await createActivities(context) });
  try {
    return await worker.runUntil(body());
  } finally {
    await context.store.close();
  }
}

function checkNamed(report: DoctorReport, name: string) {
  const check = report.checks.find((c) => c.name === name);
  assert.ok(check, `no check named ${name}`);
  return check;
}

describe('the state-store check', () => {
  const latest = MIGRATIONS.at(-1)?.version;

  /** Deletes the newest migration's record, as if the store had been restored from an older backup. */
  async function forgetLatestMigration(storeEnv: StoreEnv) {
    if (storeEnv.STATE_DB) {
      const db = new Database(storeEnv.STATE_DB);
      db.prepare('DELETE FROM schema_migrations WHERE version = ?').run(latest);
      db.close();
      return;
    }
    const client = new pg.Client({ connectionString: storeEnv.STATE_STORE_URL });
    await client.connect();
    await client.query('DELETE FROM schema_migrations WHERE version = $1', [latest]);
    await client.end();
  }

  forEachStore((kind) => {
    test('names the store and finds it reachable, migrated and writable; a store behind the build fails the check', async () => {
      const storeEnv = await kind.freshEnv();
      const taskQueue = uniqueTaskQueue('doctor-store');
      const storeCheck = () => runDoctor(env.client, { taskQueue }).then((report) => checkNamed(report, 'State store'));
      const checks = async () => [await storeCheck(), await forgetLatestMigration(storeEnv).then(storeCheck)];
      const [healthy, behind] = await withWorker(taskQueue, {}, checks, storeEnv);
      const location = storeEnv.STATE_DB ? `SQLite ${storeEnv.STATE_DB}` : describePostgresUrl(storeEnv.STATE_STORE_URL!);
      assert.doesNotMatch(location, /@/, 'no user or password');
      assert.equal(healthy?.status, 'ok', healthy?.detail);
      assert.equal(healthy?.detail, `${location}: reachable, migrated (schema version ${latest}), writable`);
      assert.equal(behind?.status, 'failed');
      assert.equal(behind?.detail, `${location}: reachable, but at schema version ${(latest ?? 0) - 1} where this build expects ${latest}`);
    });
  });
});

describe('doctor workflow', () => {
  test('every check passes against the sandboxes', async () => {
    const taskQueue = uniqueTaskQueue('doctor');
    const report = await withWorker(taskQueue, {}, () => runDoctor(env.client, { taskQueue }));
    assert.equal(report.ok, true, JSON.stringify(report, null, 2));
    assert.deepEqual(
      report.checks.map((c) => [c.name, c.status]),
      [
        ['Temporal', 'ok'],
        ['State store', 'ok'],
        ['Amplitude cohort API', 'ok'],
        ['Amplitude User Profile API', 'ok'],
        ['Braze REST API', 'ok'],
        ['Braze partner cohort API', 'ok'],
        ['Ingress backlogs', 'ok'],
      ],
    );
    assert.equal(checkNamed(report, 'Ingress backlogs').detail, 'Currents → Amplitude: 0 waiting');
    assert.match(checkNamed(report, 'Temporal').detail, new RegExp(taskQueue));
    assert.match(checkNamed(report, 'Amplitude cohort API').detail, new RegExp(`${sandboxes.dataset.cohorts().length} cohorts visible`));
  });

  test('a backlog older than its threshold is a warning naming the stream, not a failure', async () => {
    const taskQueue = uniqueTaskQueue('doctor');
    const storeEnv = { STATE_DB: join(await mkdtemp(join(tmpdir(), 'doctor-backlog-')), 'state.db') };
    const store = await openStoreFrom(storeEnv);
    const item = (id: string) => ({ dedupeKey: id, partitionKey: 'user-1', body: {} });
    await store.spoolIngress(CURRENTS_STREAM, [item('c-1')], Date.now() - 1_000);
    await store.spoolIngress('cohort-webhook:cohort-sync-26umsb5', [item('w-1'), item('w-2')], Date.now() - 10 * 60_000);
    await store.close();
    const report = await withWorker(taskQueue, {}, () => runDoctor(env.client, { taskQueue }), storeEnv);
    assert.equal(report.ok, true, 'a warning is not a failure');
    const backlogs = checkNamed(report, 'Ingress backlogs');
    assert.equal(backlogs.status, 'warning');
    assert.match(
      backlogs.detail,
      /^Currents → Amplitude: 1 waiting, the oldest \d s; cohort-sync-26umsb5 webhooks: 2 waiting, the oldest 6\d\d s \(the oldest webhook change has waited/,
    );
  });

  test('dead letters past DEAD_LETTER_WARN_COUNT are a warning naming each stream and how to see them', async () => {
    const taskQueue = uniqueTaskQueue('doctor');
    const storeEnv = { STATE_DB: join(await mkdtemp(join(tmpdir(), 'doctor-letters-')), 'state.db') };
    const store = await openStoreFrom(storeEnv);
    const letter = (key: string) => ({ dedupeKey: key, reason: 'events[0]: id: must not contain a NUL character', body: {} });
    await store.deadLetterIngress(CURRENTS_STREAM, [letter('content:1'), letter('content:2')], Date.now());
    await store.deadLetterIngress('cohort-webhook:cohort-sync-26umsb5', [letter('content:3')], Date.now());
    await store.close();
    const tolerant = await withWorker(taskQueue, { DEAD_LETTER_WARN_COUNT: '3' }, () => runDoctor(env.client, { taskQueue }), storeEnv);
    assert.equal(checkNamed(tolerant, 'Ingress backlogs').status, 'ok', 'three are not more than three');
    const report = await withWorker(taskQueue, {}, () => runDoctor(env.client, { taskQueue }), storeEnv);
    const backlogs = checkNamed(report, 'Ingress backlogs');
    assert.equal(backlogs.status, 'warning');
    assert.match(
      backlogs.detail,
      /; 3 dead letters \(cohort-webhook:cohort-sync-26umsb5: 1, currents: 2\), over DEAD_LETTER_WARN_COUNT \(0\): `ampbraze deadletters list` shows why$/,
    );
  });

  test('a wrong Braze key fails that check with the vendor’s own message, and only that check', async () => {
    const taskQueue = uniqueTaskQueue('doctor');
    const report = await withWorker(taskQueue, { BRAZE_API_KEY: 'not-the-right-key' }, () => runDoctor(env.client, { taskQueue }));
    assert.equal(report.ok, false);
    const braze = checkNamed(report, 'Braze REST API');
    assert.equal(braze.status, 'failed');
    assert.match(braze.detail, /401/);
    assert.doesNotMatch(braze.detail, /not-the-right-key/, 'the key must never be echoed');
    assert.deepEqual(
      report.checks.filter((c) => c.status === 'failed').map((c) => c.name),
      ['Braze REST API'],
    );
  });

  test('a wrong Amplitude secret fails the Amplitude checks', async () => {
    const taskQueue = uniqueTaskQueue('doctor');
    const report = await withWorker(taskQueue, { AMPLITUDE_SECRET_KEY: 'wrong-secret' }, () => runDoctor(env.client, { taskQueue }));
    assert.equal(checkNamed(report, 'Amplitude cohort API').status, 'failed');
    assert.equal(checkNamed(report, 'Amplitude User Profile API').status, 'failed');
    assert.match(checkNamed(report, 'Amplitude User Profile API').detail, /Invalid Api-Key/);
  });

  test('without partner credentials the partner check is skipped, not failed', async () => {
    const taskQueue = uniqueTaskQueue('doctor');
    const report = await withWorker(taskQueue, { BRAZE_PARTNER_API_KEY: '' }, () => runDoctor(env.client, { taskQueue }));
    assert.equal(report.ok, true);
    assert.equal(checkNamed(report, 'Braze partner cohort API').status, 'skipped');
  });

  test('with no worker on the task queue, the client says so', async () => {
    await assert.rejects(runDoctor(env.client, { taskQueue: uniqueTaskQueue('nobody'), timeoutMs: 2_000 }), NoWorkerError);
  });
});

describe('ampbraze CLI', () => {
  test('`ampbraze doctor` prints each check and exits 1 when the worker has a wrong key', async () => {
    const taskQueue = uniqueTaskQueue('doctor-cli');
    const result = await withWorker(taskQueue, { BRAZE_API_KEY: 'wrong-key' }, () =>
      ampbraze(['doctor', '--timeout', '30'], { ...testTemporalEnv(), TEMPORAL_TASK_QUEUE: taskQueue }),
    );
    assert.equal(result.code, 1, result.stdout + result.stderr);
    assert.match(result.stdout, /✓ Temporal/);
    assert.match(result.stdout, /✓ Amplitude cohort API/);
    assert.match(result.stdout, /✗ Braze REST API\s+braze POST \S+ 401/);
    assert.match(result.stdout, /1 check failed\./);
  });

  test('`ampbraze doctor` exits 0 when everything answers', async () => {
    const taskQueue = uniqueTaskQueue('doctor-cli');
    const result = await withWorker(taskQueue, {}, () => ampbraze(['doctor'], { ...testTemporalEnv(), TEMPORAL_TASK_QUEUE: taskQueue }));
    assert.equal(result.code, 0, result.stdout + result.stderr);
    assert.match(result.stdout, /All checks passed\./);
  });

  test('an unreachable Temporal is reported plainly', async () => {
    const result = await ampbraze(['doctor'], { TEMPORAL_ADDRESS: '127.0.0.1:1' });
    assert.equal(result.code, 1);
    assert.match(result.stderr, /cannot reach Temporal at 127\.0\.0\.1:1/);
    assert.doesNotMatch(result.stdout + result.stderr, /\n\s+at /, 'no stack trace');
  });

  test('bad configuration: one readable error listing every problem, no stack trace', async () => {
    const result = await ampbraze(['worker'], {
      AMPLITUDE_REGION: 'mars',
      BRAZE_REST_ENDPOINT: 'not a url',
      BRAZE_API_KEY: '"quoted-key"',
    });
    assert.equal(result.code, 2, result.stdout + result.stderr);
    for (const variable of ['AMPLITUDE_API_KEY', 'AMPLITUDE_SECRET_KEY', 'AMPLITUDE_REGION', 'BRAZE_REST_ENDPOINT', 'BRAZE_API_KEY']) {
      assert.match(result.stderr, new RegExp(`${variable}:`), `${variable} not reported`);
    }
    assert.match(result.stderr, /^Invalid configuration \(5 problems\):/);
    assert.doesNotMatch(result.stderr, /quoted-key/, 'a secret value must never be echoed');
    assert.doesNotMatch(result.stderr, /\n\s+at /, 'no stack trace');
  });
});
