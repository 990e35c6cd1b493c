import { KINDS } from '../kinds/index.js';
import type { WorkerContext } from '../src/worker-context.js';
import { createCohortExportActivities } from './cohort-export.js';
import { createDoctorActivities } from './doctor.js';

/** Every activity the worker registers, bound to the worker's clients and store: the shared ones and each kind's. */
export async function createActivities(context: WorkerContext): Promise<object> {
  const kindActivities = await Promise.all(KINDS.map(async (kind) => (await kind.loadActivities())(context)));
  return Object.assign({}, createDoctorActivities(context), createCohortExportActivities(context), ...kindActivities) as object;
}
