/** Real-time events end to end on the PostgreSQL store: the scenarios every store must pass. */
import { POSTGRES } from '../../test/helpers/stores.js';
import { EventStreamHarness, eventStreamScenarios } from './test-scenarios.js';

eventStreamScenarios(new EventStreamHarness(POSTGRES));
