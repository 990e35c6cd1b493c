/**
 * `npm run record:histories [-- <folder> [<scenario prefix>]]`: runs every kind of workflow execution for real — its
 * own Temporal dev server, the sandboxes, a worker — and writes each run's event history to
 * test/histories/<scenario>.json, or <scenario>-<n>.json for the runs of a continue-as-new chain (only the scenarios
 * whose name starts with the prefix, when one is given: histories recorded by earlier code stay as they are). test/replay.test.ts replays them on the current
 * workflow code. A small dataset and small pages keep the files small; they hold only synthetic sandbox data.
 */
import assert from 'node:assert/strict';
import { mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { Client, Connection, WorkflowFailedError, type WorkflowHandleWithFirstExecutionRunId } from '@temporalio/client';
import { historyToJSON } from '@temporalio/common/lib/proto-utils.js';
import { DefaultLogger, NativeConnection, Runtime } from '@temporalio/worker';
import {
  runDoctor,
  startCohortSync,
  startEventSync,
  startForgetUsers,
  startPrivacySync,
  startProfileWarmup,
  startTraitSync,
} from '../src/client.js';
import { exportHourOf, type EventSyncInput } from '../kinds/event-sync/input.js';
import { loadConfig, temporalConnectionOptions } from '../src/config.js';
import { startSandboxes } from '../src/sandbox/sandboxes.js';
import type { TraitSyncInput } from '../kinds/trait-sync/input.js';
import { PROJECT_ROOT, resolveTemporalCli } from '../src/temporal/cli.js';
import { startDevServer } from '../src/temporal/dev-server.js';
import { createSyncWorker } from '../src/worker.js';
import { createWorkerContext } from '../src/worker-context.js';
import { changeCohortMembership, waitForProgress, waitUntilPaused } from '../test/helpers/cohort-sync.js';
import { HISTORIES_DIR, SANDBOX_KEYS, foundIn } from '../test/helpers/histories.js';
import { resumeSignal, setBudgetUpdate, type CohortSyncResult } from '../kinds/cohort-sync/workflow.js';
import type { EventSyncResult } from '../kinds/event-sync/workflow.js';
import type { TraitSyncResult } from '../kinds/trait-sync/workflow.js';
import { currentsForward, spooledSignal } from '../kinds/currents-forward/workflow.js';
import { CURRENTS_STREAM } from '../src/currents/amplitude-events.js';
import { cohortStreamName, type CohortSyncInput } from '../kinds/cohort-sync/input.js';
import { cohortStream } from '../kinds/cohort-stream/workflow.js';
import { saveProfileList } from '../kinds/profile-warmup/kind.js';
import { configureUpdate, eventStream } from '../kinds/event-stream/workflow.js';
import { eventStreamSpool } from '../kinds/event-stream/input.js';
import type { JsonObject } from '../src/store/store.js';

const SMALL_COHORT = '26umsb5'; // ~1% of users
const MEDIUM_COHORT = '3k9x2pq'; // ~10%
const LARGE_COHORT = '5fh7t0w'; // ~40%: over the sandbox's download size limit below

const outputDir = resolve(process.argv[2] ?? HISTORIES_DIR);
const onlyPrefix = process.argv[3] ?? '';
// Failing runs are scenarios here, not news: the worker speaks up only on errors.
Runtime.install({ logger: new DefaultLogger('ERROR') });

const cli = await resolveTemporalCli({ log: (line) => console.error(line) });
// Low enough that a sync of a dozen pages continues as new: the chain's later runs start from a checkpoint.
const server = await startDevServer({ cli, uiPort: false, dynamicConfig: { 'limit.historyCount.suggestContinueAsNew': 60 } });
const sandboxes = await startSandboxes({
  seed: 11,
  users: 300,
  dataset: { brazeKnownFraction: 1 },
  amplitude: { exportJobDurationMs: 200, maxCohortSize: 100 },
});
// The files get committed: nothing of the recording machine (paths, host name) may end up in them.
const IDENTITY = 'record-histories';
const config = loadConfig({ ...sandboxes.env, TEMPORAL_ADDRESS: server.address, STATE_DB: ':memory:' });
const context = { ...(await createWorkerContext(config)), workerIdentity: IDENTITY };
const workerConnection = await NativeConnection.connect(await temporalConnectionOptions(config.temporal));
const worker = await createSyncWorker(workerConnection, config.temporal, context);
const connection = await Connection.connect(await temporalConnectionOptions(config.temporal));
const client = new Client({ connection, namespace: config.temporal.namespace, identity: IDENTITY });
const { taskQueue } = config.temporal;

interface FirstRun {
  workflowId: string;
  runId: string;
}

function firstRunOf(handle: WorkflowHandleWithFirstExecutionRunId): FirstRun {
  return { workflowId: handle.workflowId, runId: handle.firstExecutionRunId };
}

/** Starts a sync under the scenario's name as its workflow id. */
function startScenario(scenario: string, input: CohortSyncInput) {
  return startCohortSync(client, input, { taskQueue, workflowId: scenario });
}

/** Runs a sync to its end and checks it ended as its scenario says (unchanged, skipped, …). */
async function syncScenario(scenario: string, input: CohortSyncInput, expected: Partial<CohortSyncResult> = {}): Promise<FirstRun> {
  const handle = await startScenario(scenario, input);
  const result = await handle.result();
  for (const [key, value] of Object.entries(expected))
    assert.deepEqual(result[key as keyof CohortSyncResult], value, `${scenario}: ${key}`);
  return firstRunOf(handle);
}

async function expectFailure(handle: WorkflowHandleWithFirstExecutionRunId): Promise<FirstRun> {
  const failure = await handle.result().then(
    () => undefined,
    (error: unknown) => error,
  );
  if (!(failure instanceof WorkflowFailedError)) throw new Error(`${handle.workflowId} was expected to fail`, { cause: failure });
  return firstRunOf(handle);
}

/** Runs an hour of events to its end and checks it ended as its scenario says. */
async function eventScenario(scenario: string, input: EventSyncInput, expected: Partial<EventSyncResult> = {}): Promise<FirstRun> {
  const handle = await startEventSync(client, input, { taskQueue, workflowId: scenario });
  const result = await handle.result();
  for (const [key, value] of Object.entries(expected)) assert.deepEqual(result[key as keyof EventSyncResult], value, `${scenario}: ${key}`);
  return firstRunOf(handle);
}

/** Runs a trait sync to its end and checks it ended as its scenario says. */
async function traitScenario(scenario: string, input: TraitSyncInput, expected: Partial<TraitSyncResult> = {}): Promise<FirstRun> {
  const handle = await startTraitSync(client, input, { taskQueue, workflowId: scenario });
  const result = await handle.result();
  for (const [key, value] of Object.entries(expected)) assert.deepEqual(result[key as keyof TraitSyncResult], value, `${scenario}: ${key}`);
  return firstRunOf(handle);
}

const TRAIT_SYNC: TraitSyncInput = { name: 'recorded', properties: ['plan', 'ltv', 'level'], attributePrefix: 'amp_' };

/** An hour of the sandbox's events, `hoursAgo` before the recording. */
const EVENT_HOUR = exportHourOf(Date.now() - 4 * 3_600_000);

interface Scenario {
  name: string;
  run: (name: string) => Promise<FirstRun>;
  /** The recording fails unless this run continues as new: replaying a chain's later runs needs one. */
  continuesAsNew?: boolean;
}

// Run in order over one state store, as a deployment sees them: the reruns follow the first sync of their cohort.
const scenarios: Scenario[] = [
  { name: 'first-run', continuesAsNew: true, run: (name) => syncScenario(name, { cohortId: MEDIUM_COHORT, pageSize: 3 }) },
  { name: 'unchanged-rerun', run: (name) => syncScenario(name, { cohortId: MEDIUM_COHORT, pageSize: 3 }, { unchanged: true }) },
  {
    name: 'delta-run',
    run: (name) => {
      changeCohortMembership(sandboxes.dataset, MEDIUM_COHORT, { leave: 2, enter: 3 });
      return syncScenario(name, { cohortId: MEDIUM_COHORT, pageSize: 3 }, { added: 3, removed: 2 });
    },
  },
  {
    name: 'dry-run',
    run: (name) => syncScenario(name, { cohortId: MEDIUM_COHORT, attributeName: 'planned_cohorts', dryRun: true }, { dataPoints: 0 }),
  },
  {
    name: 'budget-raised-by-update',
    run: async (name) => {
      const handle = await startScenario(name, { cohortId: SMALL_COHORT, attributeName: 'budget_cohorts', pageSize: 1, maxDataPoints: 1 });
      await waitUntilPaused(client, handle.workflowId);
      await handle.executeUpdate(setBudgetUpdate, { args: [{ maxDataPoints: 1_000 }] });
      await handle.result();
      return firstRunOf(handle);
    },
  },
  {
    name: 'budget-resumed-by-signal',
    run: async (name) => {
      const handle = await startScenario(name, { cohortId: SMALL_COHORT, attributeName: 'resumed_cohorts', pageSize: 2, maxDataPoints: 2 });
      // A resume lifts the budget for one page only: the run pauses again at each later page, to the end.
      for (let page = -1; ;) {
        const progress = await waitForProgress(
          client,
          handle.workflowId,
          (p) => p.phase === 'done' || (p.phase === 'paused' && p.page > page),
        );
        if (progress.phase === 'done') break;
        if (progress.phase !== 'paused') throw new Error(`${name} is neither paused nor done: ${progress.phase}`);
        await handle.signal(resumeSignal);
        page = progress.page;
      }
      await handle.result();
      return firstRunOf(handle);
    },
  },
  {
    name: 'skipped-while-another-runs',
    run: async (name) => {
      // A paused run holds the sync's lease; a second run of the same sync (as a Schedule starts it) skips.
      const input: CohortSyncInput = { cohortId: SMALL_COHORT, attributeName: 'leased_cohorts', pageSize: 1, maxDataPoints: 1 };
      const holder = await startScenario(`${name}-holder`, input);
      await waitUntilPaused(client, holder.workflowId);
      const skipped = await syncScenario(name, input, { runInProgress: holder.workflowId, added: 0 });
      await holder.executeUpdate(setBudgetUpdate, { args: [{ maxDataPoints: 1_000 }] });
      await holder.result();
      return skipped;
    },
  },
  { name: 'partner-cohort', run: (name) => syncScenario(name, { cohortId: SMALL_COHORT, target: 'partner_cohort' }) },
  {
    name: 'invalid-input',
    // Past the client's own validation, as a start from the Temporal UI or CLI would be.
    run: async (name) => {
      const handle = await client.workflow.start('cohortSync', { taskQueue, workflowId: name, args: [{ cohortId: '', pageSize: 0 }] });
      return expectFailure(handle);
    },
  },
  { name: 'vendor-rejected', run: async (name) => expectFailure(await startScenario(name, { cohortId: LARGE_COHORT })) },
  {
    name: 'event-first-run',
    run: (name) =>
      eventScenario(name, { hour: EVENT_HOUR, eventTypes: ['*'], identifiers: ['user_id', 'device_id'], pageSize: 2 }, { failed: 0 }),
  },
  {
    name: 'event-rerun',
    run: (name) => eventScenario(name, { hour: EVENT_HOUR, eventTypes: ['*'], identifiers: ['user_id', 'device_id'] }, { forwarded: 0 }),
  },
  {
    name: 'event-ingest-only',
    run: (name) => eventScenario(name, { hour: exportHourOf(Date.now() - 5 * 3_600_000) }, { brazeRequests: 0 }),
  },
  {
    name: 'event-budget-raised-by-update',
    run: async (name) => {
      const input: EventSyncInput = {
        hour: exportHourOf(Date.now() - 6 * 3_600_000),
        eventTypes: ['*'],
        identifiers: ['user_id', 'device_id'],
        pageSize: 1,
        maxDataPoints: 1,
      };
      const handle = await startEventSync(client, input, { taskQueue, workflowId: name });
      await waitUntilPaused(client, handle.workflowId);
      await handle.executeUpdate(setBudgetUpdate, { args: [{ maxDataPoints: 1_000 }] });
      await handle.result();
      return firstRunOf(handle);
    },
  },
  {
    name: 'event-invalid-input',
    run: async (name) =>
      expectFailure(await client.workflow.start('eventSync', { taskQueue, workflowId: name, args: [{ hour: 'yesterday', pageSize: 0 }] })),
  },
  {
    name: 'trait-first-run',
    run: async (name) => {
      // The activity index must be fed (and fresh) first, as in a deployment: an ingest-only hour.
      await (
        await startEventSync(client, { hour: exportHourOf(Date.now() - 7 * 3_600_000) }, { taskQueue, workflowId: `${name}-ingest` })
      ).result();
      return traitScenario(name, { ...TRAIT_SYNC, pageSize: 2 }, { failed: 0 });
    },
  },
  {
    name: 'trait-profiles',
    run: async (name) => {
      await (
        await startEventSync(client, { hour: exportHourOf(Date.now() - 8 * 3_600_000) }, { taskQueue, workflowId: `${name}-ingest` })
      ).result();
      const input: TraitSyncInput = {
        name: 'recorded-profiles',
        computations: ['lifetime_spend'],
        recommendations: [{ id: 'rec-top-picks', attribute: 'top_picks' }],
        maxProfileFetches: 20,
      };
      return traitScenario(name, input, { failed: 0 });
    },
  },
  { name: 'trait-unchanged-rerun', run: (name) => traitScenario(name, TRAIT_SYNC, { brazeRequests: 0, dataPoints: 0 }) },
  {
    name: 'trait-dry-run',
    run: (name) => traitScenario(name, { ...TRAIT_SYNC, attributePrefix: 'planned_', dryRun: true }, { dataPoints: 0 }),
  },
  {
    name: 'trait-invalid-input',
    run: async (name) =>
      expectFailure(
        await client.workflow.start('traitSync', { taskQueue, workflowId: name, args: [{ properties: ['email'], windowDays: 0 }] }),
      ),
  },
  {
    name: 'currents-forward',
    run: async (name) => {
      // What the receiver spools (a valid event, one without an Amplitude user), then its nudge: a signal-with-start.
      const time = Math.floor(Date.now() / 1000);
      const event = (id: string, user: Record<string, string>) => ({
        event_type: 'users.messages.email.Open',
        id,
        time,
        user,
        properties: {},
      });
      await context.store.spoolIngress(
        CURRENTS_STREAM,
        [
          { dedupeKey: 'rec-1', partitionKey: 'user_id:user-000001', body: event('rec-1', { external_user_id: 'user-000001' }) },
          { dedupeKey: 'rec-2', partitionKey: 'none', body: event('rec-2', { user_id: 'braze-2' }) },
        ],
        Date.now(),
      );
      const handle = await client.workflow.signalWithStart(currentsForward, {
        taskQueue,
        workflowId: name,
        args: [{ idleTimeout: '1s' }],
        signal: spooledSignal,
      });
      const totals = await client.workflow.getHandle<typeof currentsForward>(name, handle.signaledRunId).result();
      assert.deepEqual([totals.forwarded, totals.skipped], [1, 1]);
      return { workflowId: name, runId: handle.signaledRunId };
    },
  },
  {
    name: 'cohort-stream',
    run: async (name) => {
      // What the receiver spools of a webhook batch (one user entering the cohort), then its nudge.
      const stream = { cohortId: SMALL_COHORT, target: 'attribute' as const, attributeName: 'amplitude_cohorts' };
      const newcomer = [...sandboxes.dataset.identities()].find(
        (user) => user.userId && !sandboxes.dataset.cohortIdsOf(user.index).includes(SMALL_COHORT),
      )!;
      const change = { user_id: newcomer.userId!, in_cohort: true, computed_time: Math.floor(Date.now() / 1000) };
      await context.store.spoolIngress(
        cohortStreamName(stream),
        [{ dedupeKey: 'rec-message::enter::0|1', partitionKey: change.user_id, body: change }],
        Date.now(),
      );
      const handle = await client.workflow.signalWithStart(cohortStream, {
        taskQueue,
        workflowId: name,
        args: [{ cohortId: SMALL_COHORT, idleTimeout: '1s' }],
        signal: spooledSignal,
      });
      const totals = await client.workflow.getHandle<typeof cohortStream>(name, handle.signaledRunId).result();
      assert.deepEqual([totals.added, totals.removed], [1, 0]);
      return { workflowId: name, runId: handle.signaledRunId };
    },
  },
  {
    name: 'event-stream',
    run: async (name) => {
      // What the receiver spools of the Webhooks streaming destination (an identified user's event), then its nudge
      // with the stream's settings, and a change of them by the `configure` update.
      const hourStart = Date.now() - 5 * 3_600_000;
      const line = [...sandboxes.amplitude.control.exportedEvents(hourStart - (hourStart % 3_600_000))].find((event) => event.user_id)!;
      await context.store.spoolIngress(
        eventStreamSpool('recorded'),
        [
          {
            dedupeKey: `insert:${line.$insert_id}`,
            partitionKey: `user_id:${line.user_id}`,
            body: JSON.parse(JSON.stringify(line)) as JsonObject,
          },
        ],
        Date.now(),
      );
      const handle = await client.workflow.signalWithStart(eventStream, {
        taskQueue,
        workflowId: name,
        args: [{ name: 'recorded', eventTypes: ['*'], idleTimeout: '2s' }],
        signal: spooledSignal,
      });
      const run = client.workflow.getHandle<typeof eventStream>(name, handle.signaledRunId);
      await run.executeUpdate(configureUpdate, { args: [{ eventTypes: [line.event_type] }] });
      const totals = await run.result();
      assert.deepEqual([totals.read, totals.sent], [1, 1]);
      return { workflowId: name, runId: handle.signaledRunId };
    },
  },
  {
    name: 'profile-warmup',
    run: async (name) => {
      // A saved list of three users, warmed: each profile fetched once and kept for Connected Content.
      const users = [...sandboxes.dataset.identities()].filter((user) => user.userId).slice(0, 3);
      await saveProfileList(
        context.store,
        'recorded',
        users.map((user) => user.userId!),
      );
      const handle = await startProfileWarmup(client, { list: 'recorded' }, { taskQueue, workflowId: name });
      const result = await handle.result();
      assert.deepEqual([result.members, result.fetched, result.fresh], [3, 3, 3]);
      return firstRunOf(handle);
    },
  },
  {
    name: 'forget-users',
    run: async (name) => {
      // A user of the medium cohort forgotten: the workflow carries the request's id, never the user's.
      const [member] = [...sandboxes.dataset.cohortMembers(MEDIUM_COHORT)].filter((m) => m.userId);
      const handle = await startForgetUsers(client, context.store, { userIds: [member!.userId!] }, {}, { taskQueue, workflowId: name });
      assert.equal((await handle.result()).done, true);
      return firstRunOf(handle);
    },
  },
  {
    name: 'privacy-sync',
    run: async (name) => {
      // Amplitude's deletion job of one user, read and forgotten.
      const [member] = [...sandboxes.dataset.cohortMembers(SMALL_COHORT)].filter((m) => m.userId);
      await context.amplitude.requestUserDeletions({ userIds: [member!.userId!], requester: 'recorded' });
      const handle = await startPrivacySync(client, {}, { taskQueue, workflowId: name });
      assert.equal((await handle.result()).forgotten, 1);
      return firstRunOf(handle);
    },
  },
  {
    name: 'doctor',
    run: async () => {
      await runDoctor(client, { taskQueue });
      return listedRun(`WorkflowType = 'doctor'`);
    },
  },
];

async function listedRun(query: string): Promise<FirstRun> {
  // Visibility lags behind the runs themselves, even on the dev server.
  for (let i = 0; i < 50; i++) {
    for await (const execution of client.workflow.list({ query })) return execution;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`no workflow run matches ${query}`);
}

/** Every run of the chain that starts at `first`, following continue-as-new to the last one. */
async function historiesOf(first: FirstRun): Promise<string[]> {
  const runs: string[] = [];
  for (let runId: string | null | undefined = first.runId; runId;) {
    const history = await client.workflow.getHandle(first.workflowId, runId).fetchHistory();
    // Stack traces of failures name source files: relative to the project, as in the repository.
    runs.push(historyToJSON(history).replaceAll(`${PROJECT_ROOT}/`, ''));
    runId = history.events?.at(-1)?.workflowExecutionContinuedAsNewEventAttributes?.newExecutionRunId;
  }
  return runs;
}

async function writeHistories(scenario: string, runs: string[]): Promise<void> {
  // A re-recording replaces the scenario's files, however many runs its chain had before.
  const previous = new RegExp(`^${scenario}(-\\d+)?\\.json$`);
  for (const file of (await readdir(outputDir)).filter((f) => previous.test(f))) await rm(join(outputDir, file));
  for (const [index, json] of runs.entries()) {
    const file = join(outputDir, runs.length === 1 ? `${scenario}.json` : `${scenario}-${index + 1}.json`);
    const leaks = foundIn(json, { ...SANDBOX_KEYS, 'project path': PROJECT_ROOT, 'host name': `@${hostname()}` });
    if (leaks.length > 0) throw new Error(`${relative(PROJECT_ROOT, file)} would contain the ${leaks.join(', ')}`);
    await writeFile(file, `${json}\n`);
    console.log(`${relative(PROJECT_ROOT, file)}: ${(json.length / 1024).toFixed(1)} KB`);
  }
}

try {
  await mkdir(outputDir, { recursive: true });
  await worker.runUntil(async () => {
    for (const { name, run, continuesAsNew } of scenarios.filter((scenario) => scenario.name.startsWith(onlyPrefix))) {
      const runs = await historiesOf(await run(name));
      if (continuesAsNew && runs.length < 2)
        throw new Error(`${name} did not continue as new: lower suggestContinueAsNew or the page size`);
      await writeHistories(name, runs);
    }
  });
} finally {
  await Promise.all([connection.close(), workerConnection.close(), context.store.close(), sandboxes.close()]);
  await server.stop();
}
