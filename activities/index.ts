import { KINDS } from '../kinds/index.js';
import type { WorkerContext } from '../src/worker-context.js';
import { createCohortExportActivities } from './cohort-export.js';
import { createDoctorActivities } from './doctor.js';

/** A worker's activities by name (a type a Promise does not satisfy, so an un-awaited factory fails to compile). */
export type ActivityFunctions = Record<string, (...args: never[]) => Promise<unknown>>;

/** Every activity the worker registers, bound to the worker's clients and store: the shared ones and each kind's. */
export async function createActivities(context: WorkerContext): Promise<ActivityFunctions> {
  const kindActivities = await Promise.all(KINDS.map(async (kind) => (await kind.loadActivities())(context)));
  return Object.assign({}, createDoctorActivities(context), createCohortExportActivities(context), ...kindActivities) as ActivityFunctions;
}
