/** Braze Currents → Amplitude end to end on the PostgreSQL store: the scenarios every store must pass. */
import { POSTGRES } from '../../test/helpers/stores.js';
import { currentsForwardScenarios } from './test-scenarios.js';

currentsForwardScenarios(POSTGRES);
