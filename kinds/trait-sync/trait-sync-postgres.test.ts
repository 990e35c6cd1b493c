/** The trait sync end to end on the PostgreSQL store: the core scenarios every store must pass. */
import { POSTGRES } from '../../test/helpers/stores.js';
import { coreTraitScenarios, TraitSyncHarness } from './test-scenarios.js';

coreTraitScenarios(new TraitSyncHarness(POSTGRES));
