/** Braze Currents → Amplitude end to end on the SQLite store: the scenarios every store must pass (test-scenarios.ts). */
import { SQLITE } from '../../test/helpers/stores.js';
import { currentsForwardScenarios } from './test-scenarios.js';

currentsForwardScenarios(SQLITE);
