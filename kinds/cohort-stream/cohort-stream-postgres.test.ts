/** Real-time cohorts end to end on the PostgreSQL store: the scenarios every store must pass. */
import { POSTGRES } from '../../test/helpers/stores.js';
import { cohortStreamScenarios } from './test-scenarios.js';

cohortStreamScenarios(POSTGRES);
