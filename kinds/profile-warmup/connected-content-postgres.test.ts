/** Connected Content profiles end to end on the PostgreSQL store. */
import { POSTGRES } from '../../test/helpers/stores.js';
import { ConnectedContentHarness, connectedContentScenarios } from './test-scenarios.js';

connectedContentScenarios(new ConnectedContentHarness(POSTGRES));
