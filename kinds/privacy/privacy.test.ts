/** Erasure and identity end to end on the SQLite store (the scenarios: test-scenarios.ts), and `ampbraze forget` as a user runs it. */
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { describe, test } from 'node:test';
import { PrivacyHarness, privacyScenarios } from './test-scenarios.js';
import { ampbraze } from '../../test/helpers/cli.js';
import { SQLITE } from '../../test/helpers/stores.js';
import { testTemporalEnv } from '../../test/helpers/temporal.js';

const h = new PrivacyHarness(SQLITE);
privacyScenarios(h);

describe('ampbraze forget', () => {
  test('forgets ids given and read from a file, prints what it removed where, and --undo lifts the suppression (recorded)', async () => {
    const env = { ...h.sandboxes.env, ...h.storeEnv, ...testTemporalEnv(), TEMPORAL_TASK_QUEUE: h.taskQueue };
    const [first, second] = [...h.sandboxes.dataset.identities()].filter((user) => user.userId).slice(-2);
    const file = join(tmpdir(), `forget-${Date.now()}.txt`);
    await writeFile(file, `# users Braze deleted\nuser_id:${second!.userId}\n\n`);
    const forgotten = await ampbraze(['forget', '--user-id', first!.userId!, '--file', file], env);
    assert.equal(forgotten.stderr, '');
    assert.equal(forgotten.code, 0);
    assert.match(forgotten.stdout, /^Started forget-[0-9a-f-]{36}$/m);
    assert.match(forgotten.stdout, /Erased 2 user ids/);
    assert.match(forgotten.stdout, /Store: .*; \d+ ids suppressed\. SQLite: the file rewritten \(VACUUM\)/);
    assert.ok(!forgotten.stdout.includes(first!.userId!), 'the output names no one');

    const suppressed = () => h.context.suppression.check([{ userId: first!.userId }], (ids) => ids);
    assert.equal((await suppressed()).size, 1);
    const undone = await ampbraze(['forget', '--undo', '--user-id', first!.userId!], env);
    assert.equal(undone.code, 0, undone.stderr);
    assert.match(undone.stdout, /Lifted 1 of 1 suppressions \(recorded\)/);
    assert.equal((await suppressed()).size, 0);

    const empty = await ampbraze(['forget'], env);
    assert.notEqual(empty.code, 0);
    assert.match(empty.stderr, /at least one user id, device id or Amplitude id/);
  });
});
