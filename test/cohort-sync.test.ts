/**
 * The cohort sync end to end: real Temporal, a real worker, the sandboxes over HTTP. Every test asserts on the
 * sandbox's final Braze state and its own data-point count, not on the calls we made.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, test } from 'node:test';
import { WorkflowFailedError } from '@temporalio/client';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { Worker } from '@temporalio/worker';
import { createActivities } from '../activities/index.js';
import { scheduleCohortSync, startCohortSync } from '../src/client.js';
import { DEFERRED_DEVICE_LOOKUP } from '../src/cohort/identifiers.js';
import type { CohortSyncInput } from '../src/cohort/input.js';
import { loadConfig } from '../src/config.js';
import { startSandboxes, type Sandboxes } from '../src/sandbox/sandboxes.js';
import { resolveTemporalCli } from '../src/temporal/cli.js';
import { createWorkerContext, type WorkerContext } from '../src/worker-context.js';
import { setBudgetUpdate, type cohortSync } from '../workflows/cohort-sync.js';
import { brazeMembers, expectedMembers } from './helpers/braze-state.js';
import { ampbraze } from './helpers/cli.js';
import { changeCohortMembership, waitUntilPaused } from './helpers/cohort-sync.js';
import { connectTestEnvironment, createTestWorker, testServerAddress, uniqueTaskQueue } from './helpers/temporal.js';

const run = promisify(execFile);
const SMALL_COHORT = '26umsb5'; // ~1% of users
const MEDIUM_COHORT = '3k9x2pq'; // ~10%

let env: TestWorkflowEnvironment;
let sandboxes: Sandboxes;
let context: WorkerContext;
let worker: Worker;
let workerRun: Promise<void>;
const taskQueue = uniqueTaskQueue('cohort-sync');

before(async () => {
  env = await connectTestEnvironment();
  sandboxes = await startSandboxes({ seed: 11, users: 3_000, dataset: { brazeKnownFraction: 1 }, amplitude: { exportJobDurationMs: 200 } });
  const stateDir = await mkdtemp(join(tmpdir(), 'cohort-sync-'));
  context = await createWorkerContext(loadConfig({ ...sandboxes.env, STATE_DB: join(stateDir, 'state.db') }));
  worker = await createTestWorker(env, { taskQueue, activities: createActivities(context) });
  workerRun = worker.run();
});

after(async () => {
  worker?.shutdown();
  await workerRun;
  await context?.store.close();
  await sandboxes?.close();
  await env?.teardown();
});

async function sync(input: CohortSyncInput) {
  const handle = await startCohortSync(env.client, input, { taskQueue });
  return handle.result();
}

function anonymousMemberCount(cohortId: string): number {
  let count = 0;
  for (const member of sandboxes.dataset.cohortMembers(cohortId)) if (!member.userId) count += 1;
  return count;
}

const brazeDataPoints = () => sandboxes.braze.control.dataPoints().total;

/** Runs `work` against a worker of its own (own task queue and state store), configured by `overrides`. */
async function withOwnWorker<T>(overrides: Record<string, string>, work: (ownQueue: string) => Promise<T>): Promise<T> {
  const ownQueue = uniqueTaskQueue('own-worker');
  const stateDir = await mkdtemp(join(tmpdir(), 'own-worker-'));
  const ownContext = await createWorkerContext(loadConfig({ ...sandboxes.env, STATE_DB: join(stateDir, 'state.db'), ...overrides }));
  const ownWorker = await createTestWorker(env, { taskQueue: ownQueue, activities: createActivities(ownContext) });
  try {
    return await ownWorker.runUntil(() => work(ownQueue));
  } finally {
    await ownContext.store.close();
  }
}

const trackRequests = () => sandboxes.braze.control.requestCounts()['POST /users/track'] ?? 0;

describe('cohort sync into a custom-attribute array', () => {
  test('first run sends everyone; anonymous members are skipped with a reason; our data points equal the sandbox’s', async () => {
    const pointsBefore = brazeDataPoints();
    const result = await sync({ cohortId: MEDIUM_COHORT, pageSize: 100 });
    const expected = expectedMembers(sandboxes, MEDIUM_COHORT);
    assert.deepEqual(brazeMembers(sandboxes, MEDIUM_COHORT), expected);
    assert.equal(result.added, expected.size);
    assert.equal(result.removed, 0);
    assert.equal(result.failed, 0);
    assert.equal(result.amplitudeDownloads, 1);
    assert.equal(result.skipped, anonymousMemberCount(MEDIUM_COHORT));
    assert.ok(result.skipped > 0, 'the dataset has anonymous members');
    assert.match(Object.keys(result.skipReasons).join(), /anonymous member \(no user_id\)/);
    assert.equal(result.dataPoints, brazeDataPoints() - pointsBefore);
    assert.equal(result.dataPoints, expected.size, 'one array add per member');
  });

  test('an unchanged rerun downloads nothing, sends nothing and spends nothing', async () => {
    const requestsBefore = trackRequests();
    const downloadsBefore = sandboxes.amplitude.control.downloadRequestsThisMonth();
    const pointsBefore = brazeDataPoints();
    const result = await sync({ cohortId: MEDIUM_COHORT, pageSize: 100 });
    assert.equal(result.unchanged, true);
    assert.deepEqual([result.brazeRequests, result.dataPoints, result.amplitudeDownloads], [0, 0, 0]);
    assert.equal(trackRequests(), requestsBefore);
    assert.equal(sandboxes.amplitude.control.downloadRequestsThisMonth(), downloadsBefore);
    assert.equal(brazeDataPoints(), pointsBefore);
  });

  test('a membership change sends exactly who entered and who left', async () => {
    changeCohortMembership(sandboxes.dataset, MEDIUM_COHORT, { leave: 5, enter: 7 });
    const pointsBefore = brazeDataPoints();

    const result = await sync({ cohortId: MEDIUM_COHORT, pageSize: 100 });
    assert.deepEqual([result.added, result.removed, result.failed], [7, 5, 0]);
    assert.equal(result.brazeRequests, 2, 'one request for the 7 entering, one for the 5 leaving');
    assert.deepEqual(brazeMembers(sandboxes, MEDIUM_COHORT), expectedMembers(sandboxes, MEDIUM_COHORT));
    assert.equal(result.dataPoints, 12);
    assert.equal(brazeDataPoints() - pointsBefore, 12);
  });

  test('user_alias fallback addresses anonymous members; cohort syncs never create Braze users', async () => {
    const usersBefore = sandboxes.braze.control.users();
    const countBefore = [...usersBefore].length;
    const result = await sync({ cohortId: SMALL_COHORT, attributeName: 'alias_cohorts', identifiers: ['user_id', 'user_alias'] });
    assert.equal(result.skipped, 0, 'every member has an amplitude_id to alias');
    assert.equal(result.added, expectedMembers(sandboxes, SMALL_COHORT).size + anonymousMemberCount(SMALL_COHORT), 'aliases are sent too');
    assert.equal([...sandboxes.braze.control.users()].length, countBefore, 'update-only writes created no one');
    assert.deepEqual(brazeMembers(sandboxes, SMALL_COHORT, 'alias_cohorts'), expectedMembers(sandboxes, SMALL_COHORT));
  });

  test('per-object Braze errors are mapped to the right users, kept out of the snapshot, and retried next run', async () => {
    const blocked = [...expectedMembers(sandboxes, SMALL_COHORT)].slice(0, 3);
    sandboxes.braze.control.setBlockedExternalIds(blocked);
    try {
      const first = await sync({ cohortId: SMALL_COHORT, attributeName: 'blocked_cohorts' });
      assert.equal(first.failed, 3);
      assert.deepEqual(first.failureReasons, { 'provided external_id is blacklisted and disallowed': 3 });
      const synced = brazeMembers(sandboxes, SMALL_COHORT, 'blocked_cohorts');
      assert.deepEqual([...synced].filter((id) => blocked.includes(id)), []);
      assert.equal(synced.size, expectedMembers(sandboxes, SMALL_COHORT).size - 3);
    } finally {
      sandboxes.braze.control.setBlockedExternalIds([]);
    }
    const retry = await sync({ cohortId: SMALL_COHORT, attributeName: 'blocked_cohorts' });
    assert.equal(retry.unchanged, false, 'a run with failures does not let the next one skip');
    assert.deepEqual([retry.added, retry.removed, retry.failed], [3, 0, 0]);
    assert.deepEqual(brazeMembers(sandboxes, SMALL_COHORT, 'blocked_cohorts'), expectedMembers(sandboxes, SMALL_COHORT));
  });

  test('a 5xx/429 storm still ends in the exact expected state, each user sent until accepted', async () => {
    sandboxes.braze.control.setFaults({ serverErrorRate: 0.3, rateLimitBurstEvery: 7, rateLimitBurstLength: 2 });
    const [pointsBefore, requestsBefore] = [brazeDataPoints(), trackRequests()];
    try {
      const result = await sync({ cohortId: MEDIUM_COHORT, attributeName: 'storm_cohorts', pageSize: 100 });
      assert.equal(result.added, expectedMembers(sandboxes, MEDIUM_COHORT).size);
      // Refused requests (5xx, 429) are counted as requests, at no data points, as Braze counts them.
      assert.equal(result.dataPoints, brazeDataPoints() - pointsBefore);
      assert.equal(result.brazeRequests, trackRequests() - requestsBefore);
      assert.ok(result.brazeRequests > Math.ceil(result.added / 75), 'the storm refused some requests');
    } finally {
      sandboxes.braze.control.setFaults({});
    }
    assert.deepEqual(brazeMembers(sandboxes, MEDIUM_COHORT, 'storm_cohorts'), expectedMembers(sandboxes, MEDIUM_COHORT));
  });

  test('an Amplitude 5xx/429 storm on the list, export, status and file calls still ends exact, with one download', async () => {
    const downloadsBefore = sandboxes.amplitude.control.downloadRequestsThisMonth();
    sandboxes.amplitude.control.setFaults({ serverErrorRate: 0.3, rateLimitBurstEvery: 3, rateLimitBurstLength: 1 });
    try {
      const result = await sync({ cohortId: MEDIUM_COHORT, attributeName: 'amplitude_storm_cohorts' });
      assert.equal(result.added, expectedMembers(sandboxes, MEDIUM_COHORT).size);
      assert.equal(result.amplitudeDownloads, 1);
    } finally {
      sandboxes.amplitude.control.setFaults({});
    }
    assert.equal(sandboxes.amplitude.control.downloadRequestsThisMonth() - downloadsBefore, 1, 'failed calls were retried, not re-requested');
    assert.deepEqual(brazeMembers(sandboxes, MEDIUM_COHORT, 'amplitude_storm_cohorts'), expectedMembers(sandboxes, MEDIUM_COHORT));
  });

  test('a long run continues as new with its cursor and totals, and still ends exact', async () => {
    const handle = await startCohortSync(env.client, { cohortId: MEDIUM_COHORT, attributeName: 'long_cohorts', pageSize: 15 }, { taskQueue });
    const result = await handle.result();
    let runs = 0;
    // Visibility lags behind the runs themselves, even on the dev server.
    for (let i = 0; i < 50 && runs < 2; i++) {
      runs = 0;
      for await (const _ of env.client.workflow.list({ query: `WorkflowId = '${handle.workflowId}'` })) runs += 1;
      if (runs < 2) await new Promise((r) => setTimeout(r, 100));
    }
    assert.ok(runs >= 2, `expected continue-as-new, saw ${runs} run(s)`);
    assert.equal(result.added, expectedMembers(sandboxes, MEDIUM_COHORT).size, 'totals carried across runs');
    assert.deepEqual(brazeMembers(sandboxes, MEDIUM_COHORT, 'long_cohorts'), expectedMembers(sandboxes, MEDIUM_COHORT));
  });

  test('a dry run sends nothing and predicts exactly what the real run then spends', async () => {
    const requestsBefore = trackRequests();
    const dry = await sync({ cohortId: MEDIUM_COHORT, attributeName: 'planned_cohorts', dryRun: true });
    assert.equal(dry.dryRun, true);
    assert.equal(trackRequests(), requestsBefore);
    assert.equal(brazeMembers(sandboxes, MEDIUM_COHORT, 'planned_cohorts').size, 0);
    const pointsBefore = brazeDataPoints();
    const real = await sync({ cohortId: MEDIUM_COHORT, attributeName: 'planned_cohorts' });
    assert.equal(real.unchanged, false, 'a dry run does not count as synced');
    assert.equal(real.dataPoints, dry.plan?.predictedDataPoints);
    assert.equal(brazeDataPoints() - pointsBefore, dry.plan?.predictedDataPoints);
  });

  test('over its budget a run pauses (not fails), reports why, and finishes once the budget is raised', async () => {
    const handle = await startCohortSync(env.client, { cohortId: MEDIUM_COHORT, attributeName: 'budget_cohorts', pageSize: 50, maxDataPoints: 120 }, { taskQueue });
    const progress = await waitUntilPaused(env.client, handle.workflowId);
    assert.match(progress.pausedReason ?? '', /over the run budget/);
    assert.equal(progress.totals.dataPoints, 100, 'two pages of 50 fit in 120, the third does not');
    assert.equal(brazeMembers(sandboxes, MEDIUM_COHORT, 'budget_cohorts').size, 100);

    await handle.executeUpdate(setBudgetUpdate, { args: [{ maxDataPoints: 10_000 }] });
    const result = await handle.result();
    assert.equal(result.added, expectedMembers(sandboxes, MEDIUM_COHORT).size);
    assert.deepEqual(brazeMembers(sandboxes, MEDIUM_COHORT, 'budget_cohorts'), expectedMembers(sandboxes, MEDIUM_COHORT));
  });

  test('a daily budget across all syncs pauses a run; the per-day ledger holds every point spent', async () => {
    const today = new Date().toISOString().slice(0, 10);
    const spentToday = await context.store.dataPointsOnDay(today);
    assert.ok(spentToday > 0, 'earlier syncs spent data points today');
    const pointsBefore = brazeDataPoints();
    const input = { cohortId: MEDIUM_COHORT, attributeName: 'daily_cohorts', pageSize: 50, maxDataPointsPerDay: spentToday + 120 };
    const handle = await startCohortSync(env.client, input, { taskQueue });
    const progress = await waitUntilPaused(env.client, handle.workflowId);
    assert.match(progress.pausedReason ?? '', /over the daily budget/);
    assert.equal(progress.totals.dataPoints, 100, 'what other syncs spent today counts against the budget');

    await handle.executeUpdate(setBudgetUpdate, { args: [{ maxDataPointsPerDay: spentToday + 100_000 }] });
    const result = await handle.result();
    assert.deepEqual(brazeMembers(sandboxes, MEDIUM_COHORT, 'daily_cohorts'), expectedMembers(sandboxes, MEDIUM_COHORT));
    assert.equal((await context.store.dataPointsOnDay(today)) - spentToday, result.dataPoints);
    assert.equal(brazeDataPoints() - pointsBefore, result.dataPoints);
  });
});

describe('cohort sync into the native partner cohort', () => {
  test('members land in the Braze partner cohort; leavers are removed', async () => {
    const result = await sync({ cohortId: SMALL_COHORT, target: 'partner_cohort' });
    const cohort = () => sandboxes.braze.control.cohort(SMALL_COHORT);
    assert.deepEqual(new Set(cohort()?.members), expectedMembers(sandboxes, SMALL_COHORT));
    assert.equal(result.added, expectedMembers(sandboxes, SMALL_COHORT).size);

    const leaver = [...sandboxes.dataset.cohortMembers(SMALL_COHORT)].find((m) => m.userId)!;
    sandboxes.dataset.removeCohortMembers(SMALL_COHORT, [leaver.amplitudeId]);
    const second = await sync({ cohortId: SMALL_COHORT, target: 'partner_cohort' });
    assert.deepEqual([second.added, second.removed], [0, 1]);
    assert.deepEqual(new Set(cohort()?.members), expectedMembers(sandboxes, SMALL_COHORT));
  });
});

describe('the device_id fallback (partner target)', () => {
  const lookups = () => sandboxes.amplitude.control.userLookupsThisHour();
  const partnerMembers = (cohortId: string) => new Set(sandboxes.braze.control.cohort(cohortId)?.members);

  /** Who the Braze cohort should hold: identified members by external_id, anonymous ones by their device's Braze profile. */
  function expectedPartnerMembers(cohortId: string): Set<string> {
    const anonymousByDevice = new Map<string, string>();
    for (const profile of sandboxes.braze.control.users()) {
      if (!profile.identified) for (const deviceId of profile.deviceIds) anonymousByDevice.set(deviceId, profile.brazeId);
    }
    const members = new Set<string>();
    for (const member of sandboxes.dataset.cohortMembers(cohortId)) {
      const key = member.userId ?? anonymousByDevice.get(sandboxes.dataset.deviceIdOf(member.index));
      assert.ok(key, 'every member is known to Braze in this dataset');
      members.add(key);
    }
    return members;
  }

  test('anonymous members are looked up once by device_id (User Activity API) and land in the Braze cohort', async () => {
    const cohort = sandboxes.dataset.defineCohort({ id: 'dev1ce1', name: 'Device fallback', memberFraction: 0.02 });
    const input: CohortSyncInput = { cohortId: cohort.id, target: 'partner_cohort', identifiers: ['user_id', 'device_id'] };
    const lookupsBefore = lookups();
    const first = await sync(input);
    assert.ok(anonymousMemberCount(cohort.id) > 0, 'the cohort has anonymous members');
    assert.deepEqual([first.added, first.skipped, first.failed], [cohort.size, 0, 0]);
    assert.equal(lookups() - lookupsBefore, anonymousMemberCount(cohort.id), 'one lookup per anonymous member');
    assert.deepEqual(partnerMembers(cohort.id), expectedPartnerMembers(cohort.id));

    const newcomer = [...sandboxes.dataset.identities()].find((user) => !user.userId && !sandboxes.dataset.cohortIdsOf(user.index).includes(cohort.id))!;
    sandboxes.dataset.addCohortMembers(cohort.id, [newcomer.amplitudeId]);
    const second = await sync(input);
    assert.deepEqual([second.added, second.removed, second.skipped], [1, 0, 0]);
    assert.equal(lookups() - lookupsBefore, anonymousMemberCount(cohort.id), 'known device ids are not looked up again');
    assert.deepEqual(partnerMembers(cohort.id), expectedPartnerMembers(cohort.id));
  });

  test('lookups over the shared rate limit are deferred with a reason, and the next runs finish them', async () => {
    const cohort = sandboxes.dataset.defineCohort({ id: 'dev1ce2', name: 'Device fallback, throttled', memberFraction: 0.02 });
    const anonymous = anonymousMemberCount(cohort.id);
    assert.ok(anonymous > 4, `the cohort has more anonymous members (${anonymous}) than one window allows`);
    const input: CohortSyncInput = { cohortId: cohort.id, target: 'partner_cohort', identifiers: ['user_id', 'device_id'] };
    const runs = await withOwnWorker({ AMPLITUDE_USER_LOOKUP_RATE: '4/1s' }, async (ownQueue) => {
      const results = [];
      for (let attempt = 0; attempt < 10; attempt++) {
        const result = await startCohortSync(env.client, input, { taskQueue: ownQueue }).then((handle) => handle.result());
        results.push(result);
        if (result.skipped === 0) break;
        await new Promise((r) => setTimeout(r, 1_000)); // the next window of the limit
      }
      return results;
    });
    assert.deepEqual(runs[0]?.skipReasons, { [DEFERRED_DEVICE_LOOKUP]: anonymous - 4 }, 'four lookups fit in the first window');
    assert.equal(runs.at(-1)?.skipped, 0, 'later runs looked up the rest');
    assert.ok(runs.every((run) => !run.unchanged), 'a run with deferred lookups does not let the next one skip the download');
    assert.equal(runs.reduce((sum, run) => sum + run.added, 0), cohort.size);
    assert.deepEqual(partnerMembers(cohort.id), expectedPartnerMembers(cohort.id));
  });
});

describe('failing fast', () => {
  test('an invalid input typed into the UI fails at once, naming every bad field', async () => {
    const handle = await env.client.workflow.start('cohortSync', {
      taskQueue,
      workflowId: uniqueTaskQueue('bad-input'),
      args: [{ cohortId: '', target: 'everywhere', pageSize: 0, identifiers: ['device_id'] }],
    });
    await assert.rejects(handle.result(), (error: unknown) => {
      assert.ok(error instanceof WorkflowFailedError);
      const message = (error.cause as Error).message;
      for (const field of ['cohortId', 'target', 'pageSize']) assert.match(message, new RegExp(`${field}:`));
      return true;
    });
    const { status } = await handle.describe();
    assert.equal(status.name, 'FAILED');
  });

  test('an exhausted download quota fails with a readable message instead of spending the last downloads', async () => {
    await withOwnWorker({ AMPLITUDE_COHORT_DOWNLOAD_QUOTA: '1' }, async (ownQueue) => {
      await startCohortSync(env.client, { cohortId: SMALL_COHORT, attributeName: 'quota_a' }, { taskQueue: ownQueue }).then((h) => h.result());
      const second = await startCohortSync(env.client, { cohortId: SMALL_COHORT, attributeName: 'quota_b' }, { taskQueue: ownQueue });
      await assert.rejects(second.result(), (error: unknown) => {
        assert.ok(error instanceof WorkflowFailedError);
        assert.match((error.cause as Error).message, /^Amplitude cohort download quota exhausted: 1 of 1 downloads used/);
        return true;
      });
    });
  });

  test('an export that never completes fails at the wait limit with a readable message', async () => {
    sandboxes.amplitude.control.setExportJobDurationMs(Infinity);
    try {
      await withOwnWorker({ AMPLITUDE_EXPORT_MAX_WAIT: '2s' }, async (ownQueue) => {
        const handle = await startCohortSync(env.client, { cohortId: SMALL_COHORT, attributeName: 'stuck_cohorts' }, { taskQueue: ownQueue });
        await assert.rejects(handle.result(), (error: unknown) => {
          assert.ok(error instanceof WorkflowFailedError);
          assert.match((error.cause as Error).message, /^Amplitude has not finished exporting cohort "26umsb5" after 2 seconds \(request /);
          return true;
        });
      });
    } finally {
      sandboxes.amplitude.control.setExportJobDurationMs(200);
    }
  });
});

describe('the Temporal CLI, exactly as the README documents it', () => {
  const temporal = async (...args: string[]) => {
    const cli = await resolveTemporalCli({ install: false, allowSdkDownload: false });
    assert.equal(cli.kind, 'binary');
    return run(cli.path, [...args, '--address', testServerAddress()]);
  };

  test('`temporal workflow start` runs a cohort sync from plain JSON input', async () => {
    const workflowId = uniqueTaskQueue('cli-start');
    await temporal('workflow', 'start', '--task-queue', taskQueue, '--type', 'cohortSync', '--workflow-id', workflowId, '--input', `{"cohortId":"${SMALL_COHORT}","attributeName":"cli_cohorts"}`);
    const result = await env.client.workflow.getHandle<typeof cohortSync>(workflowId).result();
    assert.equal(result.added, expectedMembers(sandboxes, SMALL_COHORT).size);
    assert.deepEqual(brazeMembers(sandboxes, SMALL_COHORT, 'cli_cohorts'), expectedMembers(sandboxes, SMALL_COHORT));
  });

  test('`temporal schedule create` with a cron spec and the skip overlap policy', async () => {
    const scheduleId = uniqueTaskQueue('cli-schedule');
    await temporal(
      'schedule', 'create', '--schedule-id', scheduleId, '--cron', '0 * * * *', '--overlap-policy', 'Skip', '--catchup-window', '1h',
      '--task-queue', taskQueue, '--type', 'cohortSync', '--workflow-id', `cohort-sync-${SMALL_COHORT}`, '--input', `{"cohortId":"${SMALL_COHORT}"}`,
    );
    const schedule = env.client.schedule.getHandle(scheduleId);
    try {
      const described = await schedule.describe();
      assert.equal(described.action.type, 'startWorkflow');
      assert.equal(described.policies.overlap, 'SKIP');
    } finally {
      await schedule.delete();
    }
  });
});

describe('`ampbraze cohort` commands', () => {
  const cliEnv = () => ({ TEMPORAL_ADDRESS: testServerAddress(), TEMPORAL_TASK_QUEUE: taskQueue });

  test('`cohort sync --wait` follows the progress query to the result; `cohort status` reports the run', async () => {
    sandboxes.braze.control.setFaults({ latencyMs: 100 }); // pages slow enough for the progress poll to see them
    let synced;
    try {
      synced = await ampbraze(['cohort', 'sync', MEDIUM_COHORT, '--attribute', 'cli_wait_cohorts', '--page-size', '20', '--wait'], cliEnv());
    } finally {
      sandboxes.braze.control.setFaults({});
    }
    assert.equal(synced.code, 0, synced.stderr);
    const expected = expectedMembers(sandboxes, MEDIUM_COHORT);
    assert.match(synced.stdout, /^Started cohort-sync-3k9x2pq-attribute-cli_wait_cohorts$/m);
    assert.match(synced.stdout, /^applying \[[#-]{24}\] page \d+\/\d+ · \+\d+ −0/m, 'a progress line while pages were applied');
    assert.match(synced.stdout, new RegExp(`^Done: ${expected.size} added, 0 removed`, 'm'));
    assert.deepEqual(brazeMembers(sandboxes, MEDIUM_COHORT, 'cli_wait_cohorts'), expected);

    const status = await ampbraze(['cohort', 'status', MEDIUM_COHORT, '--attribute', 'cli_wait_cohorts'], cliEnv());
    assert.equal(status.code, 0, status.stderr);
    assert.match(status.stdout, new RegExp(`^done … \\+${expected.size} −0 · 0 failed · ${expected.size} data points$`, 'm'));
  });

  test('`cohort schedule` creates a daily schedule pinned to a local time of day', async () => {
    const args = ['cohort', 'schedule', SMALL_COHORT, '--attribute', 'cli_scheduled', '--cadence', 'daily', '--at', '02:30', '--time-zone', 'Europe/Paris'];
    const created = await ampbraze(args, cliEnv());
    assert.equal(created.code, 0, created.stderr);
    const scheduleId = 'cohort-sync-26umsb5-attribute-cli_scheduled-schedule';
    assert.match(created.stdout, new RegExp(`^Created schedule ${scheduleId} \\(daily at 02:30\\)`, 'm'));
    const schedule = env.client.schedule.getHandle(scheduleId);
    try {
      const described = await schedule.describe();
      assert.equal(described.spec.timezone, 'Europe/Paris');
      const [calendar] = described.spec.calendars ?? [];
      assert.deepEqual([calendar?.hour, calendar?.minute], [[{ start: 2, end: 2, step: 1 }], [{ start: 30, end: 30, step: 1 }]]);
    } finally {
      await schedule.delete();
    }
  });

  test('a bad option is refused before anything starts, naming the field', async () => {
    const refused = await ampbraze(['cohort', 'sync', SMALL_COHORT, '--identifiers', 'email'], cliEnv());
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /identifiers\.0: /);
  });
});

describe('schedules', () => {
  test('create, trigger, pause and delete through the client API', async () => {
    const schedule = await scheduleCohortSync(env.client, { cohortId: SMALL_COHORT, attributeName: 'scheduled_cohorts' }, { cadence: 'daily', at: '02:30', taskQueue });
    try {
      const described = await schedule.describe();
      const [calendar] = described.spec.calendars ?? [];
      assert.deepEqual([calendar?.hour, calendar?.minute], [[{ start: 2, end: 2, step: 1 }], [{ start: 30, end: 30, step: 1 }]]);
      assert.equal(described.policies.overlap, 'SKIP');
      await schedule.trigger();
      const synced = () => brazeMembers(sandboxes, SMALL_COHORT, 'scheduled_cohorts');
      for (let i = 0; i < 100 && synced().size === 0; i++) await new Promise((r) => setTimeout(r, 200));
      for (let i = 0; i < 100 && (await schedule.describe()).info.runningActions.length > 0; i++) await new Promise((r) => setTimeout(r, 200));
      assert.deepEqual(synced(), expectedMembers(sandboxes, SMALL_COHORT));
      await schedule.pause('maintenance');
      assert.equal((await schedule.describe()).state.paused, true);
    } finally {
      await schedule.delete();
    }
  });
});
