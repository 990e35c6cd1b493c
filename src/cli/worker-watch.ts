/**
 * A command that waits on a run must not wait in silence: a run no worker polls for sits in Temporal until one comes.
 * While the command waits, this says so within seconds, on stderr, and how to start a worker (and, once one polls,
 * that it does); the command goes on waiting either way.
 */
import type { Client } from '@temporalio/client';
import { hasWorkflowPollers } from '../client.js';

/** The first look at the task queue, and how often it is looked at again while no worker polls it. */
const FIRST_LOOK_MS = 2_000;
const LOOK_AGAIN_MS = 5_000;

export function noWorkerMessage(taskQueue: string): string {
  return (
    `No worker is polling task queue "${taskQueue}": the run waits until one does. Start one with \`npm run worker\` ` +
    `(or \`npx ampbraze worker\`) with the same TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE and TEMPORAL_TASK_QUEUE.`
  );
}

/** Resolves as `waiting` does, saying meanwhile whether a worker polls `taskQueue`. */
export async function watchingForWorker<R>(client: Client, taskQueue: string, waiting: Promise<R>): Promise<R> {
  let said = false;
  let timer: NodeJS.Timeout | undefined;
  let looking: Promise<void> | undefined;
  const look = () => {
    looking = hasWorkflowPollers(client, taskQueue)
      .then((polled) => {
        if (!polled && !said) console.error(noWorkerMessage(taskQueue));
        else if (polled && said) console.error(`A worker polls task queue "${taskQueue}" now.`);
        said = !polled;
      })
      // Temporal unreachable for a moment: the run's own wait reports a real outage.
      .catch(() => undefined)
      .finally(() => (timer = setTimeout(look, LOOK_AGAIN_MS)));
  };
  timer = setTimeout(look, FIRST_LOOK_MS);
  try {
    return await waiting;
  } finally {
    clearTimeout(timer);
    await looking;
    clearTimeout(timer);
  }
}
