/** The event sync end to end on the PostgreSQL store: the core scenarios every store must pass. */
import { coreEventScenarios, EventSyncHarness } from './test-scenarios.js';
import { POSTGRES } from '../../test/helpers/stores.js';

coreEventScenarios(new EventSyncHarness(POSTGRES));
