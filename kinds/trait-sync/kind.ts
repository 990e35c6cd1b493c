/** The trait sync as the client API and the CLI start, schedule and follow it. */
import { ScheduleOverlapPolicy } from '@temporalio/client';
import { dryRunNote, type SyncKind } from '../../src/sync-kind.js';
import {
  traitAttributes,
  traitRunSearchAttributes,
  traitSyncId,
  traitSyncInputSchema,
  type TraitSyncInput,
  type TraitSyncOptions,
} from './input.js';
import { traitSyncProgressQuery, type traitSync, type TraitSyncProgress } from './workflow.js';

export const TRAIT_SYNC: SyncKind<typeof traitSync, TraitSyncInput, TraitSyncOptions, TraitSyncProgress> = {
  workflowType: 'traitSync',
  inputSchema: traitSyncInputSchema,
  progressQuery: traitSyncProgressQuery,
  run: (options, input) => ({ input, workflowId: traitSyncId(options) }),
  summary(options) {
    const attributes = traitAttributes(options).map(({ key, attribute }) => (key === attribute ? key : `${key} → ${attribute}`));
    return `Amplitude ${attributes.join(', ')} → Braze custom attributes, users active in ${options.windowDays} days${dryRunNote(options)}`;
  },
  searchAttributes: traitRunSearchAttributes,
  schedule: {
    cadences: ['hourly', 'daily'],
    overlap: ScheduleOverlapPolicy.SKIP,
    ids: (options) => ({ scheduleId: `${traitSyncId(options)}-schedule`, workflowId: traitSyncId(options) }),
    note: (options, cadence) => `${cadence} trait sync ${traitSyncId(options)}`,
  },
};
