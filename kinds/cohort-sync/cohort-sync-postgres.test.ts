/** The core cohort-sync scenarios end to end with workers on the PostgreSQL store (STATE_STORE_URL). */
import { CohortSyncHarness, coreCohortScenarios } from './test-scenarios.js';
import { POSTGRES } from '../../test/helpers/stores.js';

coreCohortScenarios(new CohortSyncHarness(POSTGRES));
