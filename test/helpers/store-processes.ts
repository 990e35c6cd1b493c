/** Runs store tasks in separate worker processes that share one store, released together. */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import type { StoreTask } from './store-child.js';
import type { StoreEnv } from './stores.js';

const CHILD = new URL('./store-child.ts', import.meta.url).pathname;

/** One process per task; each result is what its task returned. */
export async function runStoreProcesses(env: StoreEnv, tasks: readonly StoreTask[]): Promise<unknown[]> {
  const children = tasks.map((task) => {
    const child = spawn(process.execPath, ['--import', 'tsx', CHILD, JSON.stringify(task)], {
      env: { PATH: process.env.PATH ?? '', ...env },
      stdio: ['pipe', 'pipe', 'inherit'],
    });
    const lines = createInterface({ input: child.stdout });
    const exited = once(child, 'exit').then(([code]) => {
      if (code !== 0) throw new Error(`store process for ${task.task} exited with code ${String(code)}`);
    });
    const gone = exited.then(() => Promise.reject(new Error(`store process for ${task.task} exited without answering`)));
    gone.catch(() => undefined);
    const next = () => Promise.race([once(lines, 'line').then(([line]) => line as string), gone]);
    return { child, next, exited };
  });
  const ready = await Promise.all(children.map(({ next }) => next()));
  if (ready.some((line) => line !== 'ready')) throw new Error(`a store process did not start: ${ready.join(', ')}`);
  const results = children.map(({ next }) => next());
  for (const { child } of children) child.stdin.end('go\n');
  const lines = await Promise.all(results);
  await Promise.all(children.map(({ exited }) => exited));
  return lines.map((line) => JSON.parse(line) as unknown);
}
