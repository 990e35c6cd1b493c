import type { StoreConfig } from '../config.js';
import { openPostgresStateStore } from './postgres.js';
import { openSqliteStateStore } from './sqlite.js';
import type { StateStore } from './store.js';

export type * from './store.js';
export { MAX_ROWS_PER_TRANSACTION } from './store.js';

/** Opens (and migrates) the store the configuration selects. */
export function openStateStore(config: StoreConfig): Promise<StateStore> {
  const { timeoutMs, durableCommits } = config;
  if (config.kind === 'postgres') return openPostgresStateStore(config.url.reveal(), { timeoutMs });
  return new Promise((resolve) => resolve(openSqliteStateStore(config.path, { timeoutMs, durableCommits })));
}
