/**
 * Every recorded history (test/histories, `npm run record:histories`) replayed on the current workflow code by
 * the SDK's own replayer. Runs in flight — a schedule's next run, a long sync continuing as new, a paused one —
 * replay their history on new code, so a change that would break them fails here, naming the history.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { bundleWorkflowCode, Runtime, Worker } from '@temporalio/worker';
import { DeterminismViolationError } from '@temporalio/workflow';
import { PROJECT_ROOT } from '../src/temporal/cli.js';
import * as workflows from '../workflows/index.js';
import { SANDBOX_KEYS, foundIn, readHistories, workflowTypeOf } from './helpers/histories.js';
import { testWorkflowBundlePath } from './helpers/temporal.js';

const histories = await readHistories();
const FIRST_RUN = 'first-run-1.json'; // a cohort sync's first run, recorded by scripts/record-histories.ts

describe('recorded workflow histories', () => {
  test('cover every workflow type the worker registers', () => {
    assert.ok(histories.length > 0, 'no recorded histories: run `npm run record:histories`');
    const recorded = new Set(histories.map(({ json }) => workflowTypeOf(json)));
    const types = Object.entries(workflows)
      .filter(([, value]) => typeof value === 'function')
      .map(([name]) => name);
    assert.deepEqual(
      types.filter((type) => !recorded.has(type)),
      [],
      'workflow types without a recorded history: run `npm run record:histories`',
    );
  });

  test('hold no API key and no path of the machine that recorded them', () => {
    const needles = { ...SANDBOX_KEYS, 'project path': PROJECT_ROOT };
    const leaks = histories.flatMap(({ file, json }) => foundIn(json, needles).map((leak) => `${file}: ${leak}`));
    assert.deepEqual(leaks, []);
  });

  test('replay on the current workflow code without a determinism error', async () => {
    const failures: string[] = [];
    let replayed = 0;
    // The file name stands in for the workflow id, so that a failure names its history.
    const replayable = histories.map(({ file, json }) => ({ workflowId: file, history: JSON.parse(json) as unknown }));
    for await (const result of Worker.runReplayHistories({ workflowBundle: { codePath: testWorkflowBundlePath() } }, replayable)) {
      replayed += 1;
      if (result.error) failures.push(`${result.workflowId}: ${result.error.name}: ${result.error.message}`);
    }
    assert.deepEqual(failures, [], 'these recorded runs would break on the new code: guard the change with patched() (see the README)');
    assert.equal(replayed, histories.length);
  });

  test('a cohortSync that schedules its first activity differently fails the replay with a determinism error', async () => {
    const recorded = histories.find(({ file }) => file === FIRST_RUN);
    assert.ok(recorded, `${FIRST_RUN} is recorded`);
    const { code } = await bundleWorkflowCode({
      workflowsPath: join(PROJECT_ROOT, 'test', 'fixtures', 'reordered-workflows.ts'),
      logger: Runtime.instance().logger,
    });
    await assert.rejects(
      Worker.runReplayHistory({ workflowBundle: { code } }, JSON.parse(recorded.json), recorded.file),
      (error: unknown) => {
        assert.ok(error instanceof DeterminismViolationError, `expected a DeterminismViolationError, got ${String(error)}`);
        assert.match(error.message, /prepareCohortRun/, 'the error names the activity the history expected');
        return true;
      },
    );
  });
});
