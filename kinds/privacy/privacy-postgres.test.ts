/** Erasure end to end on the PostgreSQL store (the scenarios: test-scenarios.ts). */
import { PrivacyHarness, privacyScenarios } from './test-scenarios.js';
import { POSTGRES } from '../../test/helpers/stores.js';

privacyScenarios(new PrivacyHarness(POSTGRES));
