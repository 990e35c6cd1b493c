/**
 * One sync test file's world: the sandboxes, a worker on a fresh store of the given kind, and the Temporal test
 * environment, set up before the file's tests and torn down after them.
 */
import { after, before } from 'node:test';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { Worker } from '@temporalio/worker';
import { createActivities } from '../../activities/index.js';
import { loadConfig } from '../../src/config.js';
import { startSandboxes, type Sandboxes, type SandboxesOptions } from '../../src/sandbox/sandboxes.js';
import { createWorkerContext, type WorkerContext } from '../../src/worker-context.js';
import type { TestStoreKind } from './stores.js';
import { connectTestEnvironment, createTestWorker, uniqueTaskQueue } from './temporal.js';

export class WorkerHarness {
  env!: TestWorkflowEnvironment;
  sandboxes!: Sandboxes;
  context!: WorkerContext;
  readonly taskQueue: string;
  /** The environment naming the worker's store, for processes that share it (a receiver). */
  storeEnv!: Record<string, string>;
  /** Resolves once the world is up: a file's own `before` hooks may run alongside this one. */
  readonly ready: Promise<void>;
  #worker: Worker | undefined;
  #workerRun: Promise<void> | undefined;

  constructor(
    readonly storeKind: TestStoreKind,
    sandboxOptions: SandboxesOptions,
    options: { queuePrefix: string; workerEnv?: Record<string, string> },
  ) {
    this.taskQueue = uniqueTaskQueue(options.queuePrefix);
    let started: () => void;
    this.ready = new Promise((resolve) => (started = resolve));
    before(async () => {
      this.env = await connectTestEnvironment();
      this.sandboxes = await startSandboxes(sandboxOptions);
      this.storeEnv = await storeKind.freshEnv();
      this.context = await createWorkerContext(loadConfig({ ...this.sandboxes.env, ...this.storeEnv, ...options.workerEnv }));
      this.#worker = await createTestWorker(this.env, { taskQueue: this.taskQueue, activities: await createActivities(this.context) });
      this.#workerRun = this.#worker.run();
      started();
    });
    after(async () => {
      this.#worker?.shutdown();
      await this.#workerRun;
      await this.context?.store.close();
      await this.sandboxes?.close();
      await this.env?.teardown();
    });
  }

  brazeDataPoints = () => this.sandboxes.braze.control.dataPoints().total;

  trackRequests = () => this.sandboxes.braze.control.requestCounts()['POST /users/track'] ?? 0;

  /** Runs `work` against a second worker on the same store (its own task queue and connection): two workers, one store. */
  withSecondWorker = async <T>(work: (secondQueue: string) => Promise<T>): Promise<T> => {
    const secondQueue = uniqueTaskQueue('second-worker');
    const secondContext = await createWorkerContext(loadConfig({ ...this.sandboxes.env, ...this.storeEnv }));
    const secondWorker = await createTestWorker(this.env, { taskQueue: secondQueue, activities: await createActivities(secondContext) });
    try {
      return await secondWorker.runUntil(() => work(secondQueue));
    } finally {
      await secondContext.store.close();
    }
  };

  /** Runs `work` against a worker of its own (own task queue and a fresh store of the same kind), configured by `overrides`. */
  withOwnWorker = async <T>(overrides: Record<string, string>, work: (ownQueue: string) => Promise<T>): Promise<T> => {
    const ownQueue = uniqueTaskQueue('own-worker');
    const ownContext = await createWorkerContext(loadConfig({ ...this.sandboxes.env, ...(await this.storeKind.freshEnv()), ...overrides }));
    const ownWorker = await createTestWorker(this.env, { taskQueue: ownQueue, activities: await createActivities(ownContext) });
    try {
      return await ownWorker.runUntil(() => work(ownQueue));
    } finally {
      await ownContext.store.close();
    }
  };
}
