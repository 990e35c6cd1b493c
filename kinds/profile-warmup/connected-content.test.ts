/** Connected Content profiles end to end on the SQLite store. */
import { SQLITE } from '../../test/helpers/stores.js';
import { ConnectedContentHarness, connectedContentScenarios } from './test-scenarios.js';

connectedContentScenarios(new ConnectedContentHarness(SQLITE));
