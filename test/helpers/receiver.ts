/** The receiver as a real process (`src/receiver/main.ts`), on a free loopback port, as an operator runs it. */
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { PROJECT_ROOT } from '../../src/temporal/cli.js';
import { testTemporalEnv } from './temporal.js';
import type { WorkerHarness } from './worker-harness.js';

export interface ReceiverProcess {
  url: string;
  child: ChildProcess;
  /** What it printed so far (warnings and errors: a failed test shows them). */
  output(): string;
  /** SIGTERM: requests in flight finish, then it exits. */
  stop(): Promise<void>;
}

const START_TIMEOUT_MS = 60_000;

export async function startReceiverProcess(env: Record<string, string>): Promise<ReceiverProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', join(PROJECT_ROOT, 'src', 'receiver', 'main.ts')], {
    env: { PATH: process.env.PATH ?? '', RECEIVER_HOST: '127.0.0.1', RECEIVER_PORT: '0', RECEIVER_LOG_LEVEL: 'warn', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the receiver did not start: ${output}`)), START_TIMEOUT_MS);
    const read = (chunk: Buffer) => {
      output += chunk.toString();
      const listening = /Receiver listening on (http:\/\/[^\s]+)/.exec(output);
      if (listening) {
        clearTimeout(timer);
        resolve(listening[1]!);
      }
    };
    child.stdout.on('data', read);
    child.stderr.on('data', read);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`the receiver exited (${code}) before listening: ${output}`));
    });
  });
  return {
    url,
    child,
    output: () => output,
    stop: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      await exited;
    },
  };
}

/** A receiver on the harness's store and task queue, with `env` (its tokens, limits) on top. */
export function startHarnessReceiver(h: WorkerHarness, env: Record<string, string>): Promise<ReceiverProcess> {
  return startReceiverProcess({ ...h.storeEnv, ...testTemporalEnv(), TEMPORAL_TASK_QUEUE: h.taskQueue, ...env });
}
