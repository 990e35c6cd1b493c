export { cohortSync } from './cohort-sync.js';
export { eventSync } from './event-sync.js';
export { traitSync } from './trait-sync.js';
export { doctor } from './doctor.js';
export { currentsForward } from './currents-forward.js';
export { cohortStream } from './cohort-stream.js';
