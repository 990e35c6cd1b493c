/** The cohort sync as the client API and the CLI start, schedule and follow it. */
import { ScheduleOverlapPolicy } from '@temporalio/client';
import { dryRunNote, type SyncKind } from '../../src/sync-kind.js';
import { cohortRunSearchAttributes, cohortSyncId, cohortSyncInputSchema, type CohortSyncInput, type CohortSyncOptions } from './input.js';
import { cohortSyncProgressQuery, type cohortSync, type CohortSyncProgress } from './workflow.js';

export const COHORT_SYNC: SyncKind<typeof cohortSync, CohortSyncInput, CohortSyncOptions, CohortSyncProgress> = {
  workflowType: 'cohortSync',
  inputSchema: cohortSyncInputSchema,
  progressQuery: cohortSyncProgressQuery,
  run: (options, input) => ({ input, workflowId: cohortSyncId(options) }),
  summary(options) {
    const target = options.target === 'attribute' ? `custom attribute "${options.attributeName}"` : 'native partner cohort';
    return `Amplitude cohort ${options.cohortId} → Braze ${target}, identified by ${options.identifiers.join(' → ')}${dryRunNote(options)}`;
  },
  searchAttributes: cohortRunSearchAttributes,
  schedule: {
    cadences: ['every_minute', 'hourly', 'daily'],
    overlap: ScheduleOverlapPolicy.SKIP,
    ids: (options) => ({ scheduleId: `${cohortSyncId(options)}-schedule`, workflowId: cohortSyncId(options) }),
    note: (options, cadence) => `${cadence} cohort sync of ${options.cohortId}`,
  },
};
