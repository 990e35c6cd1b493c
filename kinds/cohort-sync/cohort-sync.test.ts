/**
 * The cohort sync end to end on the SQLite store: the core scenarios (shared with the PostgreSQL file) and
 * everything else the sync does — fallbacks, storms, continue-as-new, dry runs, partner cohorts, device ids,
 * failing fast, the Temporal CLI, `ampbraze cohort` and schedules.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { WorkflowFailedError } from '@temporalio/client';
import { scheduleCohortSync, startCohortSync } from '../../src/client.js';
import { DEFERRED_DEVICE_LOOKUP } from '../../src/cohort/identifiers.js';
import type { CohortSyncInput } from './input.js';
import type { cohortSync } from './workflow.js';
import { ampbraze, temporal } from '../../test/helpers/cli.js';
import { CohortSyncHarness, coreCohortScenarios, MEDIUM_COHORT, SMALL_COHORT } from './test-scenarios.js';
import { SQLITE } from '../../test/helpers/stores.js';
import { uniqueTaskQueue, testTemporalEnv } from '../../test/helpers/temporal.js';

const h = new CohortSyncHarness(SQLITE);
const { sync, expectedMembers, anonymousMemberCount, brazeMembers, brazeDataPoints, trackRequests, withOwnWorker } = h;

coreCohortScenarios(h);

describe('cohort sync into a custom-attribute array: fallbacks, storms, long runs and dry runs', () => {
  test('user_alias fallback addresses anonymous members; cohort syncs never create Braze users', async () => {
    const usersBefore = h.sandboxes.braze.control.users();
    const countBefore = [...usersBefore].length;
    const result = await sync({ cohortId: SMALL_COHORT, attributeName: 'alias_cohorts', identifiers: ['user_id', 'user_alias'] });
    assert.equal(result.skipped, 0, 'every member has an amplitude_id to alias');
    assert.equal(result.added, expectedMembers(SMALL_COHORT).size + anonymousMemberCount(SMALL_COHORT), 'aliases are sent too');
    assert.equal([...h.sandboxes.braze.control.users()].length, countBefore, 'update-only writes created no one');
    assert.deepEqual(brazeMembers(SMALL_COHORT, 'alias_cohorts'), expectedMembers(SMALL_COHORT));
  });

  test('an Amplitude 5xx/429 storm on the list, export, status and file calls still ends exact, with one download', async () => {
    const downloadsBefore = h.sandboxes.amplitude.control.downloadRequestsThisMonth();
    h.sandboxes.amplitude.control.setFaults({ serverErrorRate: 0.3, rateLimitBurstEvery: 3, rateLimitBurstLength: 1 });
    try {
      const result = await sync({ cohortId: MEDIUM_COHORT, attributeName: 'amplitude_storm_cohorts' });
      assert.equal(result.added, expectedMembers(MEDIUM_COHORT).size);
      assert.equal(result.amplitudeDownloads, 1);
    } finally {
      h.sandboxes.amplitude.control.setFaults({});
    }
    assert.equal(
      h.sandboxes.amplitude.control.downloadRequestsThisMonth() - downloadsBefore,
      1,
      'failed calls were retried, not re-requested',
    );
    assert.deepEqual(brazeMembers(MEDIUM_COHORT, 'amplitude_storm_cohorts'), expectedMembers(MEDIUM_COHORT));
  });

  test('a long run continues as new with its cursor and totals, and still ends exact', async () => {
    const handle = await startCohortSync(
      h.env.client,
      { cohortId: MEDIUM_COHORT, attributeName: 'long_cohorts', pageSize: 15 },
      { taskQueue: h.taskQueue },
    );
    const result = await handle.result();
    let runs = 0;
    // Visibility lags behind the runs themselves, even on the dev server.
    for (let i = 0; i < 50 && runs < 2; i++) {
      runs = 0;
      for await (const _ of h.env.client.workflow.list({ query: `WorkflowId = '${handle.workflowId}'` })) runs += 1;
      if (runs < 2) await new Promise((r) => setTimeout(r, 100));
    }
    assert.ok(runs >= 2, `expected continue-as-new, saw ${runs} run(s)`);
    assert.equal(result.added, expectedMembers(MEDIUM_COHORT).size, 'totals carried across runs');
    assert.deepEqual(brazeMembers(MEDIUM_COHORT, 'long_cohorts'), expectedMembers(MEDIUM_COHORT));
  });

  test('a dry run sends nothing and predicts exactly what the real run then spends', async () => {
    const requestsBefore = trackRequests();
    const dry = await sync({ cohortId: MEDIUM_COHORT, attributeName: 'planned_cohorts', dryRun: true });
    assert.equal(dry.dryRun, true);
    assert.equal(trackRequests(), requestsBefore);
    assert.equal(brazeMembers(MEDIUM_COHORT, 'planned_cohorts').size, 0);
    const pointsBefore = brazeDataPoints();
    const real = await sync({ cohortId: MEDIUM_COHORT, attributeName: 'planned_cohorts' });
    assert.equal(real.unchanged, false, 'a dry run does not count as synced');
    assert.equal(real.dataPoints, dry.plan?.predictedDataPoints);
    assert.equal(brazeDataPoints() - pointsBefore, dry.plan?.predictedDataPoints);
  });
});

describe('cohort sync into the native partner cohort', () => {
  test('members land in the Braze partner cohort; leavers are removed', async () => {
    const result = await sync({ cohortId: SMALL_COHORT, target: 'partner_cohort' });
    const cohort = () => h.sandboxes.braze.control.cohort(SMALL_COHORT);
    assert.deepEqual(new Set(cohort()?.members), expectedMembers(SMALL_COHORT));
    assert.equal(result.added, expectedMembers(SMALL_COHORT).size);

    const leaver = [...h.sandboxes.dataset.cohortMembers(SMALL_COHORT)].find((m) => m.userId)!;
    h.sandboxes.dataset.removeCohortMembers(SMALL_COHORT, [leaver.amplitudeId]);
    const second = await sync({ cohortId: SMALL_COHORT, target: 'partner_cohort' });
    assert.deepEqual([second.added, second.removed], [0, 1]);
    assert.deepEqual(new Set(cohort()?.members), expectedMembers(SMALL_COHORT));
  });
});

describe('the device_id fallback (partner target)', () => {
  const lookups = () => h.sandboxes.amplitude.control.userLookupsThisHour();
  const partnerMembers = (cohortId: string) => new Set(h.sandboxes.braze.control.cohort(cohortId)?.members);

  /** Who the Braze cohort should hold: identified members by external_id, anonymous ones by their device's Braze profile. */
  function expectedPartnerMembers(cohortId: string): Set<string> {
    const anonymousByDevice = new Map<string, string>();
    for (const profile of h.sandboxes.braze.control.users()) {
      if (!profile.identified) for (const deviceId of profile.deviceIds) anonymousByDevice.set(deviceId, profile.brazeId);
    }
    const members = new Set<string>();
    for (const member of h.sandboxes.dataset.cohortMembers(cohortId)) {
      const key = member.userId ?? anonymousByDevice.get(h.sandboxes.dataset.deviceIdOf(member.index));
      assert.ok(key, 'every member is known to Braze in this dataset');
      members.add(key);
    }
    return members;
  }

  test('anonymous members are looked up once by device_id (User Activity API) and land in the Braze cohort', async () => {
    const cohort = h.sandboxes.dataset.defineCohort({ id: 'dev1ce1', name: 'Device fallback', memberFraction: 0.02 });
    const input: CohortSyncInput = { cohortId: cohort.id, target: 'partner_cohort', identifiers: ['user_id', 'device_id'] };
    const lookupsBefore = lookups();
    const first = await sync(input);
    assert.ok(anonymousMemberCount(cohort.id) > 0, 'the cohort has anonymous members');
    assert.deepEqual([first.added, first.skipped, first.failed], [cohort.size, 0, 0]);
    assert.equal(lookups() - lookupsBefore, anonymousMemberCount(cohort.id), 'one lookup per anonymous member');
    assert.deepEqual(partnerMembers(cohort.id), expectedPartnerMembers(cohort.id));

    const newcomer = [...h.sandboxes.dataset.identities()].find(
      (user) => !user.userId && !h.sandboxes.dataset.cohortIdsOf(user.index).includes(cohort.id),
    )!;
    h.sandboxes.dataset.addCohortMembers(cohort.id, [newcomer.amplitudeId]);
    const second = await sync(input);
    assert.deepEqual([second.added, second.removed, second.skipped], [1, 0, 0]);
    assert.equal(lookups() - lookupsBefore, anonymousMemberCount(cohort.id), 'known device ids are not looked up again');
    assert.deepEqual(partnerMembers(cohort.id), expectedPartnerMembers(cohort.id));
  });

  test('lookups over the shared rate limit are deferred with a reason, and the next runs finish them', async () => {
    const cohort = h.sandboxes.dataset.defineCohort({ id: 'dev1ce2', name: 'Device fallback, throttled', memberFraction: 0.02 });
    const anonymous = anonymousMemberCount(cohort.id);
    assert.ok(anonymous > 4, `the cohort has more anonymous members (${anonymous}) than one window allows`);
    const input: CohortSyncInput = { cohortId: cohort.id, target: 'partner_cohort', identifiers: ['user_id', 'device_id'] };
    const runs = await withOwnWorker({ AMPLITUDE_USER_LOOKUP_RATE: '4/1s' }, async (ownQueue) => {
      const results = [];
      for (let attempt = 0; attempt < 10; attempt++) {
        const result = await startCohortSync(h.env.client, input, { taskQueue: ownQueue }).then((handle) => handle.result());
        results.push(result);
        if (result.skipped === 0) break;
        await new Promise((r) => setTimeout(r, 1_000)); // the next window of the limit
      }
      return results;
    });
    // At most four lookups fit in the first window (none when the run lands in the window's last moments).
    const deferred = runs[0]?.skipReasons[DEFERRED_DEVICE_LOOKUP] ?? 0;
    assert.deepEqual(Object.keys(runs[0]?.skipReasons ?? {}), [DEFERRED_DEVICE_LOOKUP]);
    assert.ok(deferred >= anonymous - 4 && deferred > 0, `${deferred} of ${anonymous} lookups deferred by the first run`);
    assert.equal(runs.at(-1)?.skipped, 0, 'later runs looked up the rest');
    assert.ok(
      runs.every((run) => !run.unchanged),
      'a run with deferred lookups does not let the next one skip the download',
    );
    assert.equal(
      runs.reduce((sum, run) => sum + run.added, 0),
      cohort.size,
    );
    assert.deepEqual(partnerMembers(cohort.id), expectedPartnerMembers(cohort.id));
  });
});

describe('failing fast', () => {
  test('an invalid input typed into the UI fails at once, naming every bad field', async () => {
    const handle = await h.env.client.workflow.start('cohortSync', {
      taskQueue: h.taskQueue,
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
      await startCohortSync(h.env.client, { cohortId: SMALL_COHORT, attributeName: 'quota_a' }, { taskQueue: ownQueue }).then((h) =>
        h.result(),
      );
      const second = await startCohortSync(h.env.client, { cohortId: SMALL_COHORT, attributeName: 'quota_b' }, { taskQueue: ownQueue });
      await assert.rejects(second.result(), (error: unknown) => {
        assert.ok(error instanceof WorkflowFailedError);
        assert.match((error.cause as Error).message, /^Amplitude cohort download quota exhausted: 1 of 1 downloads used/);
        return true;
      });
    });
  });

  test('an export that never completes fails at the wait limit with a readable message', async () => {
    h.sandboxes.amplitude.control.setExportJobDurationMs(Infinity);
    try {
      await withOwnWorker({ AMPLITUDE_EXPORT_MAX_WAIT: '2s' }, async (ownQueue) => {
        const handle = await startCohortSync(
          h.env.client,
          { cohortId: SMALL_COHORT, attributeName: 'stuck_cohorts' },
          { taskQueue: ownQueue },
        );
        await assert.rejects(handle.result(), (error: unknown) => {
          assert.ok(error instanceof WorkflowFailedError);
          assert.match((error.cause as Error).message, /^Amplitude has not finished exporting cohort "26umsb5" after 2 seconds \(request /);
          return true;
        });
      });
    } finally {
      h.sandboxes.amplitude.control.setExportJobDurationMs(200);
    }
  });
});

describe('the Temporal CLI, exactly as the README documents it', () => {
  test('`temporal workflow start` runs a cohort sync from plain JSON input', async () => {
    const workflowId = uniqueTaskQueue('cli-start');
    await temporal(
      'workflow',
      'start',
      '--task-queue',
      h.taskQueue,
      '--type',
      'cohortSync',
      '--workflow-id',
      workflowId,
      '--input',
      `{"cohortId":"${SMALL_COHORT}","attributeName":"cli_cohorts"}`,
    );
    const result = await h.env.client.workflow.getHandle<typeof cohortSync>(workflowId).result();
    assert.equal(result.added, expectedMembers(SMALL_COHORT).size);
    assert.deepEqual(brazeMembers(SMALL_COHORT, 'cli_cohorts'), expectedMembers(SMALL_COHORT));
  });

  test('`temporal schedule create` with a cron spec and the skip overlap policy', async () => {
    const scheduleId = uniqueTaskQueue('cli-schedule');
    await temporal(
      'schedule',
      'create',
      '--schedule-id',
      scheduleId,
      '--cron',
      '0 * * * *',
      '--overlap-policy',
      'Skip',
      '--catchup-window',
      '1h',
      '--task-queue',
      h.taskQueue,
      '--type',
      'cohortSync',
      '--workflow-id',
      `cohort-sync-${SMALL_COHORT}`,
      '--input',
      `{"cohortId":"${SMALL_COHORT}"}`,
    );
    const schedule = h.env.client.schedule.getHandle(scheduleId);
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
  const cliEnv = () => ({ ...testTemporalEnv(), TEMPORAL_TASK_QUEUE: h.taskQueue });

  test('`cohort sync --wait` follows the progress query to the result; `cohort status` reports the run', async () => {
    h.sandboxes.braze.control.setFaults({ latencyMs: 100 }); // pages slow enough for the progress poll to see them
    let synced;
    try {
      synced = await ampbraze(
        ['cohort', 'sync', MEDIUM_COHORT, '--attribute', 'cli_wait_cohorts', '--page-size', '20', '--wait'],
        cliEnv(),
      );
    } finally {
      h.sandboxes.braze.control.setFaults({});
    }
    assert.equal(synced.code, 0, synced.stderr);
    assert.doesNotMatch(synced.stderr, /No worker is polling/, 'a worker polls: nothing to say');
    const expected = expectedMembers(MEDIUM_COHORT);
    assert.match(synced.stdout, /^Started cohort-sync-3k9x2pq-attribute-cli_wait_cohorts$/m);
    assert.match(synced.stdout, /^applying \[[#-]{24}\] page \d+\/\d+ · \+\d+ −0/m, 'a progress line while pages were applied');
    assert.match(synced.stdout, new RegExp(`^Done: ${expected.size} added, 0 removed`, 'm'));
    assert.deepEqual(brazeMembers(MEDIUM_COHORT, 'cli_wait_cohorts'), expected);

    const status = await ampbraze(['cohort', 'status', MEDIUM_COHORT, '--attribute', 'cli_wait_cohorts'], cliEnv());
    assert.equal(status.code, 0, status.stderr);
    assert.match(status.stdout, new RegExp(`^done … \\+${expected.size} −0 · 0 failed · ${expected.size} data points$`, 'm'));
  });

  test('`cohort schedule` creates a daily schedule pinned to a local time of day', async () => {
    const args = [
      'cohort',
      'schedule',
      SMALL_COHORT,
      '--attribute',
      'cli_scheduled',
      '--cadence',
      'daily',
      '--at',
      '02:30',
      '--time-zone',
      'Europe/Paris',
    ];
    const created = await ampbraze(args, cliEnv());
    assert.equal(created.code, 0, created.stderr);
    const scheduleId = 'cohort-sync-26umsb5-attribute-cli_scheduled-schedule';
    assert.match(created.stdout, new RegExp(`^Created schedule ${scheduleId} \\(daily at 02:30\\)`, 'm'));
    const schedule = h.env.client.schedule.getHandle(scheduleId);
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
    const schedule = await scheduleCohortSync(
      h.env.client,
      { cohortId: SMALL_COHORT, attributeName: 'scheduled_cohorts' },
      { cadence: 'daily', at: '02:30', taskQueue: h.taskQueue },
    );
    try {
      const described = await schedule.describe();
      const [calendar] = described.spec.calendars ?? [];
      assert.deepEqual([calendar?.hour, calendar?.minute], [[{ start: 2, end: 2, step: 1 }], [{ start: 30, end: 30, step: 1 }]]);
      assert.equal(described.policies.overlap, 'SKIP');
      await schedule.trigger();
      for (let i = 0; i < 100 && brazeMembers(SMALL_COHORT, 'scheduled_cohorts').size === 0; i++)
        await new Promise((r) => setTimeout(r, 200));
      for (let i = 0; i < 100 && (await schedule.describe()).info.runningActions.length > 0; i++)
        await new Promise((r) => setTimeout(r, 200));
      assert.deepEqual(brazeMembers(SMALL_COHORT, 'scheduled_cohorts'), expectedMembers(SMALL_COHORT));
      await schedule.pause('maintenance');
      assert.equal((await schedule.describe()).state.paused, true);
    } finally {
      await schedule.delete();
    }
  });
});
