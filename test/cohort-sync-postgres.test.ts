/** The core cohort-sync scenarios end to end with workers on the PostgreSQL store (STATE_STORE_URL). */
import { CohortSyncHarness, coreCohortScenarios } from './helpers/cohort-scenarios.js';
import { POSTGRES } from './helpers/stores.js';

coreCohortScenarios(new CohortSyncHarness(POSTGRES));
