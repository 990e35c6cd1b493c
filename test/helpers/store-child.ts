/**
 * One worker process of a concurrency test: opens the store its environment selects, says `ready`, waits for `go`
 * on stdin (so every process starts contending at once), runs one task and prints its result as JSON.
 * Spawned by `runStoreProcesses` in ./store-processes.ts.
 */
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { SharedRateLimiter, type RateLimit } from '../../src/rate-limiter.js';
import { loadStoreConfig } from '../../src/config.js';
import { openStateStore, type InspectableStore, type SentRequest, type SyncLeaseClaim } from '../../src/store/index.js';

export type StoreTask =
  | { task: 'limiter'; key: string; limit: RateLimit; amounts: number[] }
  | { task: 'reserve'; month: string; limit: number; runIds: string[] }
  | { task: 'outcome'; runId: string; requestKey: string }
  | { task: 'sent'; request: SentRequest }
  | { task: 'lease'; claim: SyncLeaseClaim };

async function run(store: InspectableStore, input: StoreTask): Promise<unknown> {
  switch (input.task) {
    case 'limiter': {
      // The window each grant was counted in (its end, `retryAtMs`), straight from the store.
      const grants: [number, number][] = [];
      const acquire = store.acquireRateSlots.bind(store);
      store.acquireRateSlots = async (request) => {
        const grant = await acquire(request);
        if (grant.granted > 0) grants.push([grant.retryAtMs, grant.granted]);
        return grant;
      };
      const limiter = new SharedRateLimiter(store, input.key, input.limit);
      for (const n of input.amounts) await limiter.acquire(n);
      return grants;
    }
    case 'reserve': {
      let won = 0;
      for (const runId of input.runIds) {
        if ((await store.reserveCohortDownload({ month: input.month, limit: input.limit, cohortId: 'c', runId })).ok) won += 1;
      }
      return won;
    }
    case 'outcome':
      return store.recordRequestOutcome({ runId: input.runId, requestKey: input.requestKey, accepted: 3, rejected: 1, dataPoints: 4 });
    case 'sent':
      return (await store.recordSentRequests([input.request]))[0];
    case 'lease':
      return (await store.claimSyncLease(input.claim)).held;
  }
}

const input = JSON.parse(process.argv[2] ?? '') as StoreTask;
// Every store implements the reads and writes only tests make.
const store = (await openStateStore(loadStoreConfig(process.env))) as InspectableStore;
console.log('ready');
const lines = createInterface({ input: process.stdin });
await once(lines, 'line');
lines.close();
try {
  console.log(JSON.stringify(await run(store, input)));
} finally {
  await store.close();
}
