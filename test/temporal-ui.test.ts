/**
 * The README's "Temporal UI" steps, followed one by one in a real headless Chromium against the dev server's
 * Web UI: the schedules they create, triggered from the UI, run a real cohort sync (Braze ends up holding the
 * cohort), a real event sync (Braze receives the hour's events) and a real trait sync (Braze holds the properties).
 * Needs Debian's chromium (scripts/install-chromium.sh); Playwright never downloads a browser of its own.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { ScheduleNotFoundError } from '@temporalio/client';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { Worker } from '@temporalio/worker';
import { chromium, type Browser, type Locator, type Page } from 'playwright-core';
import { createActivities } from '../activities/index.js';
import { DEFAULT_TASK_QUEUE, loadConfig } from '../src/config.js';
import { startSandboxes, type Sandboxes } from '../src/sandbox/sandboxes.js';
import type { UserActivity } from '../src/store/store.js';
import { createWorkerContext, type WorkerContext } from '../src/worker-context.js';
import { startEventSync } from '../src/client.js';
import { exportHourOf, exportHourStart } from '../kinds/event-sync/input.js';
import type { cohortSync } from '../kinds/cohort-sync/workflow.js';
import type { eventSync } from '../kinds/event-sync/workflow.js';
import type { traitSync } from '../kinds/trait-sync/workflow.js';
import { brazeMembers, expectedMembers } from './helpers/braze-state.js';
import { connectTestEnvironment, createTestWorker, testNamespace, testUiUrl } from './helpers/temporal.js';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
// The README's own values. No other test file polls the README's task queue, so this one can: the test types
// exactly what a user would.
const COHORT = '26umsb5';
const SCHEDULE_ID = `cohort-sync-${COHORT}-hourly`;
const WORKFLOW_ID = `cohort-sync-${COHORT}`;
const EVENT_SCHEDULE_ID = 'event-sync-schedule';
const TRAIT_SCHEDULE_ID = 'trait-sync-billing-schedule';
const TASK_QUEUE = DEFAULT_TASK_QUEUE;
// A loaded 2-core machine renders the UI slowly.
const UI_TIMEOUT_MS = 60_000;

let env: TestWorkflowEnvironment;
let sandboxes: Sandboxes;
let context: WorkerContext;
let worker: Worker;
let workerRun: Promise<void>;
let browser: Browser;

before(async () => {
  if (!existsSync(CHROMIUM)) throw new Error(`No browser at ${CHROMIUM}: run scripts/install-chromium.sh (or set CHROMIUM_PATH)`);
  env = await connectTestEnvironment();
  sandboxes = await startSandboxes({ seed: 17, users: 3_000, dataset: { brazeKnownFraction: 1 }, amplitude: { exportJobDurationMs: 200 } });
  const stateDir = await mkdtemp(join(tmpdir(), 'temporal-ui-'));
  context = await createWorkerContext(loadConfig({ ...sandboxes.env, STATE_DB: join(stateDir, 'state.db') }));
  worker = await createTestWorker(env, { taskQueue: TASK_QUEUE, activities: await createActivities(context) });
  workerRun = worker.run();
  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox'] });
});

after(async () => {
  await browser?.close();
  worker?.shutdown();
  await workerRun;
  await context?.store.close();
  await sandboxes?.close();
  await env?.teardown();
});

/** Runs `steps` on a fresh page; on failure saves a screenshot of where it stopped and prints its path. */
async function inBrowser(steps: (page: Page) => Promise<void>): Promise<void> {
  const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
  page.setDefaultTimeout(UI_TIMEOUT_MS);
  page.setDefaultNavigationTimeout(2 * UI_TIMEOUT_MS);
  try {
    await steps(page);
  } catch (error) {
    const screenshot = join(await mkdtemp(join(tmpdir(), 'temporal-ui-failure-')), 'page.png');
    await page.screenshot({ path: screenshot, fullPage: true }).then(
      () => console.error(`Screenshot of the page at failure (${page.url()}): ${screenshot}`),
      (screenshotError: Error) => console.error(`No screenshot: ${screenshotError.message}`),
    );
    throw error;
  } finally {
    await page.close();
  }
}

/** The UI fills fields asynchronously: waits until `field` holds `value`. */
async function waitForValue(field: Locator, value: string): Promise<void> {
  const deadline = Date.now() + UI_TIMEOUT_MS;
  let shown = await field.inputValue();
  for (; shown !== value && Date.now() < deadline; shown = await field.inputValue()) await new Promise((r) => setTimeout(r, 100));
  assert.equal(shown, value);
}

interface UiSchedule {
  scheduleId: string;
  workflowType: string;
  workflowId: string;
  input: Record<string, unknown>;
  /** The README's extra step for event syncs: *Edit Schedule Policies* → *Buffer All*, a one-day window. */
  bufferAll?: boolean;
}

/** The README's steps, numbered as there: creates the schedule, opens its page, and checks what the server got. */
async function createScheduleInUi(page: Page, schedule: UiSchedule): Promise<void> {
  // The namespace's page, as picked in the UI's namespace switcher (this file's own: test/helpers/namespace.ts).
  await page.goto(`${testUiUrl()}/namespaces/${testNamespace()}/workflows`);
  // "open Schedules → Create Schedule"
  await page.getByRole('navigation', { name: 'Primary' }).getByRole('link', { name: 'Schedules', exact: true }).click();
  // The list loads from visibility, which can lag on a busy machine: if the button has not shown, load the page again.
  const create = page.getByRole('link', { name: 'Create Schedule' });
  if (
    !(await create.waitFor({ timeout: UI_TIMEOUT_MS / 2 }).then(
      () => true,
      () => false,
    ))
  )
    await page.reload();
  await create.click();
  await page.getByRole('heading', { name: 'Create Schedule', level: 1 }).waitFor();
  await page.getByLabel('Schedule Name').fill(schedule.scheduleId); // 1
  await page.getByLabel('Workflow Type').fill(schedule.workflowType); // 2
  await page.getByLabel('Workflow ID').fill(schedule.workflowId);
  await page.getByLabel('Task Queue').fill(TASK_QUEUE);
  const input = page.getByRole('textbox', { name: 'JSON Data' }); // 3
  await input.fill(JSON.stringify(schedule.input));
  // Leaving the editor reformats the JSON over more lines: done now, the layout cannot shift under the next click.
  await input.blur();
  await page.getByRole('radio', { name: 'json/plain' }).check();
  await page.getByRole('button', { name: 'Every hour' }).click(); // 4
  await waitForValue(page.getByRole('textbox', { name: 'Cron expression', exact: true }), '0 * * * *');
  if (schedule.bufferAll) {
    await page.getByRole('button', { name: 'Edit Schedule Policies' }).click();
    await page.getByRole('radio', { name: /^Buffer All/ }).check();
    await page.getByRole('spinbutton', { name: 'Window' }).fill('1');
    await page.getByRole('button', { name: 'Update Policies' }).click();
  }
  // 5: the UI goes back to the list, where the new schedule's name opens its page.
  await page.getByRole('button', { name: 'Create Schedule' }).click();
  await page.getByRole('link', { name: schedule.scheduleId, exact: true }).click();
  await page.getByRole('heading', { name: schedule.scheduleId, level: 1 }).waitFor();

  // The schedule the server got holds exactly what was typed.
  const described = await env.client.schedule.getHandle(schedule.scheduleId).describe();
  assert.equal(described.action.type, 'startWorkflow');
  assert.deepEqual(
    [described.action.workflowType, described.action.workflowId, described.action.taskQueue, described.action.args],
    [schedule.workflowType, schedule.workflowId, TASK_QUEUE, [schedule.input]],
  );
  const [calendar] = described.spec.calendars ?? [];
  assert.deepEqual([calendar?.minute, calendar?.hour], [[{ start: 0, end: 0, step: 1 }], [{ start: 0, end: 23, step: 1 }]]);
  if (schedule.bufferAll) {
    assert.equal(described.policies.overlap, 'BUFFER_ALL');
    assert.equal(described.policies.catchupWindow, 86_400_000);
  } else {
    assert.equal(described.policies.overlap, 'SKIP', 'the UI skips overlapping runs by default, as the README says');
  }
}

/** "Schedule Actions → Trigger, and Trigger again in the dialog" on the schedule's page runs it now; resolves with the run's workflow id. */
async function triggerInUi(page: Page, scheduleId: string, workflowId: string): Promise<string> {
  await page.getByRole('button', { name: 'Schedule Actions' }).click();
  await page.getByRole('menuitem', { name: 'Trigger' }).click();
  await page.getByRole('dialog', { name: 'Trigger Immediately' }).getByRole('button', { name: 'Trigger', exact: true }).click();
  const schedule = env.client.schedule.getHandle(scheduleId);
  let recentActions = (await schedule.describe()).info.recentActions;
  for (let i = 0; i < 300 && recentActions.length === 0; i++) {
    await new Promise((r) => setTimeout(r, 200));
    recentActions = (await schedule.describe()).info.recentActions;
  }
  assert.equal(recentActions.length, 1, 'the trigger started one run');
  const started = recentActions[0]!.action.workflow.workflowId;
  assert.ok(started.startsWith(`${workflowId}-`), `${started}: a scheduled run's id is the schedule's workflow id and its time`);
  return started;
}

async function deleteSchedule(scheduleId: string): Promise<void> {
  // Not found when the test failed before the UI created it.
  await env.client.schedule
    .getHandle(scheduleId)
    .delete()
    .catch((error: unknown) => {
      if (!(error instanceof ScheduleNotFoundError)) throw error;
    });
}

test(
  'a schedule created and triggered in the Web UI as the README says syncs the cohort into Braze',
  { timeout: 10 * UI_TIMEOUT_MS },
  async () => {
    const expected = expectedMembers(sandboxes, COHORT);
    assert.ok(expected.size > 0, 'the cohort has identified members');
    assert.equal(brazeMembers(sandboxes, COHORT).size, 0, 'nobody is in the cohort in Braze before the scheduled run');
    try {
      let workflowId = '';
      await inBrowser(async (page) => {
        await createScheduleInUi(page, {
          scheduleId: SCHEDULE_ID,
          workflowType: 'cohortSync',
          workflowId: WORKFLOW_ID,
          input: { cohortId: COHORT },
        });
        workflowId = await triggerInUi(page, SCHEDULE_ID, WORKFLOW_ID);
      });
      const result = await env.client.workflow.getHandle<typeof cohortSync>(workflowId).result();
      assert.deepEqual(brazeMembers(sandboxes, COHORT), expected);
      assert.deepEqual([result.added, result.removed, result.failed, result.amplitudeDownloads], [expected.size, 0, 0, 1]);
      assert.equal(result.dataPoints, sandboxes.braze.control.dataPoints().total);
    } finally {
      await deleteSchedule(SCHEDULE_ID);
    }
  },
);

test(
  'the hourly event schedule created in the Web UI as the README says streams its hour into Braze',
  { timeout: 10 * UI_TIMEOUT_MS },
  async () => {
    const input = { eventTypes: ['Purchase Completed'] };
    const pointsBefore = sandboxes.braze.control.dataPoints().total;
    try {
      let workflowId = '';
      await inBrowser(async (page) => {
        await createScheduleInUi(page, {
          scheduleId: EVENT_SCHEDULE_ID,
          workflowType: 'eventSync',
          workflowId: 'event-sync',
          input,
          bufferAll: true,
        });
        workflowId = await triggerInUi(page, EVENT_SCHEDULE_ID, 'event-sync');
      });
      const result = await env.client.workflow.getHandle<typeof eventSync>(workflowId).result();
      const expected = [...sandboxes.dataset.eventsInHour(exportHourStart(result.hour)!)].filter(
        (e) => e.user_id && e.event_type === 'Purchase Completed',
      );
      assert.equal(result.forwarded, expected.length);
      assert.equal(
        sandboxes.braze.control.dataPoints().total - pointsBefore,
        expected.length,
        'one data point per event, counted by Braze',
      );
    } finally {
      await deleteSchedule(EVENT_SCHEDULE_ID);
    }
  },
);

test(
  'a trait sync schedule created in the Web UI as the README says writes the active users’ properties into Braze',
  { timeout: 10 * UI_TIMEOUT_MS },
  async () => {
    // The activity index is fed as the hourly event schedule would: an event sync of the hour (ingest only).
    const ingest = await startEventSync(
      env.client,
      { hour: exportHourOf(Date.now()) },
      { taskQueue: TASK_QUEUE, workflowId: `ui-ingest-${Date.now()}` },
    );
    await ingest.result();
    const input = { name: 'billing', properties: ['plan', 'ltv'], attributePrefix: 'amp_' };
    try {
      let workflowId = '';
      await inBrowser(async (page) => {
        await createScheduleInUi(page, {
          scheduleId: TRAIT_SCHEDULE_ID,
          workflowType: 'traitSync',
          workflowId: 'trait-sync-billing',
          input,
        });
        workflowId = await triggerInUi(page, TRAIT_SCHEDULE_ID, 'trait-sync-billing');
      });
      const result = await env.client.workflow.getHandle<typeof traitSync>(workflowId).result();
      const identified: UserActivity[] = [];
      let afterKey: string | undefined;
      do {
        const page = await context.store.activeUsers({ afterKey, limit: 1_000, sinceMs: 0 });
        identified.push(...page.items.filter((user) => user.userKey.startsWith('user_id:')));
        afterKey = page.nextAfterKey;
      } while (afterKey !== undefined);
      assert.ok(identified.length > 0, 'the hour had identified users');
      assert.deepEqual([result.users, result.failed], [identified.length, 0]);
      for (const { userKey, properties } of identified) {
        const attributes = Object.fromEntries(sandboxes.braze.control.user(userKey.slice('user_id:'.length))?.customAttributes ?? []);
        assert.deepEqual([attributes.amp_plan, attributes.amp_ltv], [properties.plan, properties.ltv], `attributes of ${userKey}`);
      }
    } finally {
      await deleteSchedule(TRAIT_SCHEDULE_ID);
    }
  },
);
