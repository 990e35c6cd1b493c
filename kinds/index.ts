/**
 * Every sync kind and stream the worker runs and the CLI offers. Adding one adds its folder, a line here and its
 * workflow in workflows/index.ts (the workflow bundle imports nothing else). A kind's commands load with the CLI;
 * its activities only in a worker.
 */
import type { Command } from 'commander';
import type { WorkerContext } from '../src/worker-context.js';
import { registerCohortCommands } from './cohort-sync/cli.js';
import { registerCurrentsCommands } from './currents-forward/cli.js';
import { registerEventStreamCommands } from './event-stream/cli.js';
import { registerEventCommands } from './event-sync/cli.js';
import { registerTraitCommands } from './trait-sync/cli.js';
import { registerProfileCommands } from './profile-warmup/cli.js';
import { registerPrivacyCommands } from './privacy/cli.js';

interface Kind {
  /** Its `ampbraze` commands. */
  registerCommands?: (program: Command) => void;
  /** Its activities, bound to a worker's clients and store. */
  loadActivities: () => Promise<(context: WorkerContext) => object>;
}

export const KINDS: readonly Kind[] = [
  {
    registerCommands: registerCohortCommands,
    loadActivities: async () => (await import('./cohort-sync/activities.js')).createCohortSyncActivities,
  },
  { loadActivities: async () => (await import('./cohort-stream/activities.js')).createCohortStreamActivities },
  {
    registerCommands: registerEventCommands,
    loadActivities: async () => (await import('./event-sync/activities.js')).createEventSyncActivities,
  },
  {
    registerCommands: registerEventStreamCommands,
    loadActivities: async () => (await import('./event-stream/activities.js')).createEventStreamActivities,
  },
  {
    registerCommands: registerTraitCommands,
    loadActivities: async () => (await import('./trait-sync/activities.js')).createTraitSyncActivities,
  },
  {
    registerCommands: registerProfileCommands,
    loadActivities: async () => (await import('./profile-warmup/activities.js')).createProfileWarmupActivities,
  },
  {
    registerCommands: registerPrivacyCommands,
    loadActivities: async () => (await import('./privacy/activities.js')).createPrivacyActivities,
  },
  {
    registerCommands: registerCurrentsCommands,
    loadActivities: async () => (await import('./currents-forward/activities.js')).createCurrentsActivities,
  },
];
