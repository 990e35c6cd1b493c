/**
 * No silent waits: a command that waits on a run says within seconds when no worker polls the task queue, and how
 * to start one — here `ampbraze cohort sync … --wait` and `ampbraze forget`, on a task queue no worker polls.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { PROJECT_ROOT } from '../src/temporal/cli.js';
import { SQLITE } from './helpers/stores.js';
import { connectTestEnvironment, uniqueTaskQueue, testTemporalEnv } from './helpers/temporal.js';

/** The bound: the command says so within 10 s. */
const SAYS_WITHIN_MS = 10_000;
const COHORT = 'noworker1';

let env: TestWorkflowEnvironment;
before(async () => {
  env = await connectTestEnvironment();
});
after(async () => {
  await env?.teardown();
});

/** Runs `ampbraze` until it prints `expected` on stderr (or the bound passes), then stops it; resolves with how long it took. */
async function saysWithin(args: string[], envVars: Record<string, string>, expected: RegExp): Promise<{ ms: number; stderr: string }> {
  const cwd = await mkdtemp(join(tmpdir(), 'ampbraze-no-worker-'));
  const startedAt = Date.now();
  const child = spawn(process.execPath, [join(PROJECT_ROOT, 'bin', 'ampbraze.mjs'), ...args], {
    cwd,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? cwd, ...envVars },
  });
  let stderr = '';
  try {
    return await new Promise((resolve, reject) => {
      const bound = setTimeout(() => reject(new Error(`not said within ${SAYS_WITHIN_MS} ms; stderr: ${stderr}`)), SAYS_WITHIN_MS);
      child.stderr.on('data', (chunk: Buffer) => {
        stderr += chunk.toString();
        if (expected.test(stderr)) {
          clearTimeout(bound);
          resolve({ ms: Date.now() - startedAt, stderr });
        }
      });
      child.once('exit', (code) => reject(new Error(`ampbraze exited (${code}) before saying it; stderr: ${stderr}`)));
    });
  } finally {
    child.kill();
  }
}

test('`ampbraze cohort sync --wait` and `ampbraze forget` say within seconds that no worker polls, and how to start one', async () => {
  const taskQueue = uniqueTaskQueue('nobody-polls');
  const cliEnv = { ...testTemporalEnv(), TEMPORAL_TASK_QUEUE: taskQueue };
  const message = new RegExp(
    `No worker is polling task queue "${taskQueue}": the run waits until one does\\. Start one with \`npm run worker\``,
  );
  try {
    const sync = await saysWithin(['cohort', 'sync', COHORT, '--wait'], cliEnv, message);
    assert.ok(sync.ms < SAYS_WITHIN_MS);
    const store = await SQLITE.freshEnv();
    const forget = await saysWithin(['forget', '--user-id', 'someone'], { ...cliEnv, ...store }, message);
    assert.ok(forget.ms < SAYS_WITHIN_MS);
  } finally {
    // Nothing will ever run them: they go, so that no other test meets them (the erasure's id is its own).
    for await (const run of env.client.workflow.list({ query: `TaskQueue = '${taskQueue}' AND ExecutionStatus = 'Running'` }))
      await env.client.workflow.getHandle(run.workflowId).terminate('the test is over');
    await env.client.workflow
      .getHandle(`cohort-sync-${COHORT}`)
      .terminate('the test is over')
      .catch(() => undefined);
  }
});
