/**
 * Workflow and webhook inputs are bounded — ids, durations, counts — so that a typo or a hostile value typed into the
 * Temporal UI or posted to the receiver fails at once with a message, and sync and stream ids are unambiguous. Pure.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  cohortStreamInputSchema,
  cohortStreamName,
  cohortStreamTargetOf,
  cohortSyncId,
  cohortSyncInputSchema,
} from '../kinds/cohort-sync/input.js';
import { traitSyncInputSchema } from '../kinds/trait-sync/input.js';
import { currentsForwardInputSchema } from '../kinds/currents-forward/workflow.js';

const problems = (result: { success: boolean; error?: { issues: Array<{ path: PropertyKey[]; message: string }> } }) =>
  result.success ? [] : result.error!.issues.map((issue) => `${issue.path.join('.')}: ${issue.message}`);

describe('bounded inputs', () => {
  test('a cohort id is at most 64 letters, digits or "_"', () => {
    assert.deepEqual(problems(cohortSyncInputSchema.safeParse({ cohortId: '26umsb5' })), []);
    for (const cohortId of ['abc-partner', 'a'.repeat(65), 'a b', '../x', 'ab\u0000c']) {
      assert.match(problems(cohortSyncInputSchema.safeParse({ cohortId })).join(), /cohortId: must be an Amplitude cohort id/, cohortId);
    }
    assert.match(problems(traitSyncInputSchema.safeParse({ properties: ['plan'], audienceCohortId: 'x-y' })).join(), /audienceCohortId/);
  });

  test('durations are at most a week; counts and budgets have ceilings', () => {
    assert.deepEqual(problems(currentsForwardInputSchema.safeParse({ idleTimeout: '168h' })), []);
    for (const idleTimeout of ['99999999999999h', '169h', '1d', '5 m']) {
      assert.ok(
        problems(cohortStreamInputSchema.safeParse({ cohortId: 'c1', idleTimeout })).some((p) => p.startsWith('idleTimeout')),
        idleTimeout,
      );
      assert.ok(
        problems(currentsForwardInputSchema.safeParse({ idleTimeout })).some((p) => p.startsWith('idleTimeout')),
        idleTimeout,
      );
    }
    assert.match(
      problems(traitSyncInputSchema.safeParse({ computations: ['c'], maxProfileFetches: 10 ** 12 })).join(),
      /maxProfileFetches/,
    );
    assert.match(problems(cohortSyncInputSchema.safeParse({ cohortId: 'c1', maxDataPoints: 2 ** 60 })).join(), /maxDataPoints/);
  });
});

describe('unambiguous ids', () => {
  test('every cohort and target has a sync id and stream of its own, and the stream names its cohort and target back', () => {
    const targets = [
      { cohortId: 'abc', target: 'partner_cohort', attributeName: 'amplitude_cohorts' },
      { cohortId: 'abc', target: 'attribute', attributeName: 'amplitude_cohorts' },
      { cohortId: 'abc', target: 'attribute', attributeName: 'partner' },
      { cohortId: 'abc', target: 'attribute', attributeName: 'x-partner' },
      { cohortId: 'abc_partner', target: 'attribute', attributeName: 'amplitude_cohorts' },
    ] as const;
    assert.equal(new Set(targets.map(cohortSyncId)).size, targets.length);
    for (const target of targets) assert.deepEqual(cohortStreamTargetOf(cohortStreamName(target)), target);
    assert.equal(cohortStreamTargetOf('currents'), undefined);
    // The collision of old: cohort "abc-partner" (attribute target) can no longer exist.
    assert.equal(cohortStreamInputSchema.safeParse({ cohortId: 'abc-partner' }).success, false);
  });
});
