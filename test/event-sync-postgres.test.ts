/** The event sync end to end on the PostgreSQL store: the core scenarios every store must pass. */
import { coreEventScenarios, EventSyncHarness } from './helpers/event-scenarios.js';
import { POSTGRES } from './helpers/stores.js';

coreEventScenarios(new EventSyncHarness(POSTGRES));
