export { cohortSync } from '../kinds/cohort-sync/workflow.js';
export { eventSync } from '../kinds/event-sync/workflow.js';
export { traitSync } from '../kinds/trait-sync/workflow.js';
export { doctor } from './doctor.js';
export { currentsForward } from '../kinds/currents-forward/workflow.js';
export { cohortStream } from '../kinds/cohort-stream/workflow.js';
export { eventStream } from '../kinds/event-stream/workflow.js';
export { profileWarmup } from '../kinds/profile-warmup/workflow.js';
export { forgetUsers, privacySync } from '../kinds/privacy/workflow.js';
