/** Erasure end to end on the SQLite store (the scenarios: test-scenarios.ts). */
import { PrivacyHarness, privacyScenarios } from './test-scenarios.js';
import { SQLITE } from '../../test/helpers/stores.js';

privacyScenarios(new PrivacyHarness(SQLITE));
