/**
 * Real-time events end to end on the SQLite store (event-stream-postgres.test.ts runs the same on PostgreSQL), and
 * the README's ways of starting, changing and following a stream: the Temporal CLI line and `ampbraze events stream`.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ampbraze, readmeTemporalCommand, temporal } from '../../test/helpers/cli.js';
import { SQLITE } from '../../test/helpers/stores.js';
import { testTemporalEnv } from '../../test/helpers/temporal.js';
import { getEventStreamProgress } from './kind.js';
import { EventStreamHarness, eventStreamScenarios } from './test-scenarios.js';

const h = new EventStreamHarness(SQLITE);
eventStreamScenarios(h);

test('the README’s temporal line starts the stream; ampbraze changes it and shows its status', async (t) => {
  t.after(() => h.stop('web'));
  await temporal(...(await readmeTemporalCommand('temporal workflow start --type eventStream', h.taskQueue)));
  const env = { ...testTemporalEnv(), TEMPORAL_TASK_QUEUE: h.taskQueue };
  const configured = await ampbraze(['events', 'stream', 'configure', 'web', '--event-types', 'Purchase Completed,Signup'], env);
  assert.equal(configured.code, 0, configured.stderr);
  assert.match(configured.stdout, /"eventTypes":\["Purchase Completed","Signup"\]/);
  assert.deepEqual((await getEventStreamProgress(h.env.client, 'web')).settings?.eventTypes, ['Purchase Completed', 'Signup']);
  const status = await ampbraze(['events', 'stream', 'status', 'web'], env);
  assert.equal(status.code, 0, status.stderr);
  assert.match(status.stdout, /0 events sent · 0 already sent/);
});
