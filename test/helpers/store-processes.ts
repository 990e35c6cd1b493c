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

/**
 * What limiter tasks' processes were granted by the store, summed per window (keyed by the window's end). A
 * process returns only once it got all it asked for; the store may have granted more, since slots it answers with
 * too late in their window are left unused.
 */
export function grantsPerWindow(results: readonly unknown[]): { perWindow: Map<number, number>; total: number } {
  const perWindow = new Map<number, number>();
  for (const [windowEnd, granted] of (results as [number, number][][]).flat()) {
    perWindow.set(windowEnd, (perWindow.get(windowEnd) ?? 0) + granted);
  }
  return { perWindow, total: [...perWindow.values()].reduce((sum, granted) => sum + granted, 0) };
}
