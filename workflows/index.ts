export { cohortSync } from './cohort-sync.js';
export { doctor } from './doctor.js';
