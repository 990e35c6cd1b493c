/** The trait sync end to end on the PostgreSQL store: the core scenarios every store must pass. */
import { POSTGRES } from './helpers/stores.js';
import { coreTraitScenarios, TraitSyncHarness } from './helpers/trait-scenarios.js';

coreTraitScenarios(new TraitSyncHarness(POSTGRES));
