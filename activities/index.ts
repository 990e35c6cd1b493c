import type { WorkerContext } from '../src/worker-context.js';
import { createCohortExportActivities } from './cohort-export.js';
import { createCohortStreamActivities } from './cohort-stream.js';
import { createCohortSyncActivities } from './cohort-sync.js';
import { createCurrentsActivities } from './currents-forward.js';
import { createDoctorActivities } from './doctor.js';
import { createEventSyncActivities } from './event-sync.js';
import { createTraitSyncActivities } from './trait-sync.js';

/** Every activity the worker registers, bound to the worker's clients and store. */
export function createActivities(context: WorkerContext) {
  return {
    ...createDoctorActivities(context),
    ...createCohortExportActivities(context),
    ...createCohortSyncActivities(context),
    ...createCohortStreamActivities(context),
    ...createEventSyncActivities(context),
    ...createTraitSyncActivities(context),
    ...createCurrentsActivities(context),
  };
}
