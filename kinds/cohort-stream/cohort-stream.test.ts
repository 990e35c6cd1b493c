/** Real-time cohorts end to end on the SQLite store: the scenarios every store must pass (test-scenarios.ts). */
import { SQLITE } from '../../test/helpers/stores.js';
import { cohortStreamScenarios } from './test-scenarios.js';

cohortStreamScenarios(SQLITE);
