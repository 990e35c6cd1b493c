/**
 * Both StateStore implementations behind one contract: `forEachStore` runs a suite once on SQLite and once on
 * PostgreSQL. A store is chosen the way the worker chooses it, by environment variables, so child processes can
 * open the very same store.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe } from 'node:test';
import { loadStoreConfig } from '../../src/config.js';
import { openStateStore, type InspectableStore } from '../../src/store/index.js';
import { createTestDatabase } from './postgres.js';

export type StoreEnv = Record<string, string>;

export interface TestStoreKind {
  name: 'SQLite' | 'PostgreSQL';
  /** Variables selecting a new, empty store of this kind. */
  freshEnv(): Promise<StoreEnv>;
}

const dirs: string[] = [];
after(async () => {
  await Promise.all(dirs.map((dir) => rm(dir, { recursive: true, force: true })));
});

export const SQLITE: TestStoreKind = {
  name: 'SQLite',
  async freshEnv() {
    const dir = await mkdtemp(join(tmpdir(), 'ampbraze-store-'));
    dirs.push(dir);
    return { STATE_DB: join(dir, 'state.db') };
  },
};

export const POSTGRES: TestStoreKind = {
  name: 'PostgreSQL',
  async freshEnv() {
    return { STATE_STORE_URL: await createTestDatabase() };
  },
};

export const STORE_KINDS: readonly TestStoreKind[] = [SQLITE, POSTGRES];

/** A store as the workers open it, with the reads and writes only tests make (every store implements them). */
export async function openStoreFrom(env: StoreEnv): Promise<InspectableStore> {
  return (await openStateStore(loadStoreConfig(env))) as InspectableStore;
}

/** Opens a new, empty store of this kind; `env` opens more connections to it. */
export async function openFreshStore(kind: TestStoreKind): Promise<{ store: InspectableStore; env: StoreEnv }> {
  const env = await kind.freshEnv();
  return { store: await openStoreFrom(env), env };
}

/** Registers `suite` once per store kind, each inside a `describe` named after the store. */
export function forEachStore(suite: (kind: TestStoreKind) => void): void {
  for (const kind of STORE_KINDS) describe(kind.name, () => suite(kind));
}
