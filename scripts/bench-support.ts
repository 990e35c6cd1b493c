/**
 * What the benchmarks share: a world of real processes — the Temporal dev server, the sandboxes, optionally a
 * throw-away PostgreSQL, and workers started with the very command of `npm run worker` and a prebuilt workflow
 * bundle (as in production), each in a working directory of its own, so each one's peak RSS is its own.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { delimiter, dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Client, Connection } from '@temporalio/client';
import { loadConfig, temporalConnectionOptions, type AppConfig } from '../src/config.js';
import { startPostgresServer } from '../src/store/postgres-server.js';
import { PROJECT_ROOT, resolveTemporalCli } from '../src/temporal/cli.js';
import { startDevServer } from '../src/temporal/dev-server.js';
import packageJson from '../package.json' with { type: 'json' };

export interface BenchWorldOptions {
  /** Emptied first; holds the SQLite store, the bundle and the workers' working directories. */
  dir: string;
  /** `SANDBOX_*` variables for `npm run sandbox`. */
  sandboxEnv: Record<string, string>;
  /** The Braze `/users/track` ceiling the sandbox enforces and the workers share. */
  rateCeiling: { requests: number; windowMs: number };
  store: 'sqlite' | 'postgres';
  workers: number;
}

export interface BenchWorld {
  client: Client;
  config: AppConfig;
  brazeUrl: string;
  workerProcesses: ChildProcess[];
  /** The store's environment variables, as the workers have them. */
  storeEnv: Record<string, string>;
  stop(): Promise<void>;
}

export async function startBenchWorld(options: BenchWorldOptions): Promise<BenchWorld> {
  const { dir, rateCeiling } = options;
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  const server = await startDevServer({ cli: await resolveTemporalCli(), uiPort: false });
  const postgres = options.store === 'postgres' ? await startPostgresServer() : undefined;
  const sandboxEnvFile = join(dir, 'sandbox.env');
  const sandboxProcess = spawnNpmScript('sandbox', { ...options.sandboxEnv, AMPLITUDE_SANDBOX_PORT: '0', BRAZE_SANDBOX_PORT: '0', SANDBOX_ENV_FILE: sandboxEnvFile });
  const sandboxEnv = await readSandboxEnv(sandboxEnvFile);
  const brazeUrl = sandboxEnv.BRAZE_REST_ENDPOINT!;
  await fetch(`${brazeUrl}/_sandbox/rate-limit`, { method: 'POST', body: JSON.stringify(rateCeiling) });

  const storeEnv: Record<string, string> = postgres ? { STATE_STORE_URL: postgres.url } : { STATE_DB: join(dir, 'state.db') };
  const workerEnv = {
    ...sandboxEnv,
    ...storeEnv,
    TEMPORAL_ADDRESS: server.address,
    BRAZE_RATE_LIMIT: `${rateCeiling.requests}/${rateCeiling.windowMs / 1000}s`,
    WORKFLOW_BUNDLE_PATH: await buildWorkflowBundle(dir),
  };
  const config = loadConfig(workerEnv);
  // Each in a working directory of its own, as on separate hosts.
  const workerProcesses = await Promise.all(
    Array.from({ length: options.workers }, async (_, index) => {
      const cwd = join(dir, `worker-${index + 1}`);
      await mkdir(cwd, { recursive: true });
      return spawnNpmScript('worker', workerEnv, [], cwd);
    }),
  );
  const connection = await Connection.connect(await temporalConnectionOptions(config.temporal));
  const client = new Client({ connection, namespace: config.temporal.namespace });
  return {
    client,
    config,
    brazeUrl,
    workerProcesses,
    storeEnv,
    async stop() {
      await connection.close();
      for (const child of [...workerProcesses, sandboxProcess]) child.kill('SIGTERM');
      await Promise.all(workerProcesses.map((worker) => new Promise((resolve) => (worker.exitCode === null ? worker.once('exit', resolve) : resolve(null)))));
      await postgres?.stop();
      await server.stop();
    },
  };
}

/** Braze's own count of `/users/track` requests per fixed window, from the sandbox. */
export interface BrazeSandboxState {
  dataPoints: { total: number };
  trackWindows: { windowMs: number; granted: number[]; rejected: number[] };
}

export async function brazeSandboxState(brazeUrl: string): Promise<BrazeSandboxState> {
  return (await (await fetch(`${brazeUrl}/_sandbox/state`)).json()) as BrazeSandboxState;
}

/** Requests per second and the fraction of the ceiling over the full windows (the first and last are only partly in the run). */
export function ceilingFigures(state: BrazeSandboxState, ceilingPerWindow: number) {
  const { granted, windowMs } = state.trackWindows;
  const fullWindows = granted.length > 2 ? granted.slice(1, -1) : granted;
  const requests = fullWindows.reduce((sum, n) => sum + n, 0);
  return {
    fullRateWindowsMeasured: fullWindows.length,
    achievedRequestsPerSecond: round(requests / ((fullWindows.length * windowMs) / 1000)),
    fractionOfCeiling: round(requests / (fullWindows.length * ceilingPerWindow)),
    brazeRateLimited429s: state.trackWindows.rejected.reduce((sum, n) => sum + n, 0),
  };
}

/** Runs the command of an npm script with `exec`, so the child's pid is the command's own (not npm's or a shell's). */
export function spawnNpmScript(name: keyof typeof packageJson.scripts, env: Record<string, string> = {}, args: string[] = [], cwd = PROJECT_ROOT) {
  // Run from elsewhere, the script's relative paths must still resolve inside the project.
  const command = [packageJson.scripts[name].replace(' src/', ` ${PROJECT_ROOT}/src/`), ...args].join(' ');
  const path = [join(PROJECT_ROOT, 'node_modules', '.bin'), dirname(process.execPath), process.env.PATH].join(delimiter);
  return spawn('sh', ['-c', `exec ${command}`], { cwd, stdio: ['ignore', 'ignore', 'inherit'], env: { ...process.env, ...env, PATH: path } });
}

/** The process's peak resident set so far (Linux `VmHWM`), in bytes. */
export async function peakRssOf(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const kilobytes = /^VmHWM:\s+(\d+) kB$/m.exec(status)?.[1];
  if (kilobytes === undefined) throw new Error(`no VmHWM for process ${pid}`);
  return Number(kilobytes) * 1024;
}

async function readSandboxEnv(envFile: string): Promise<Record<string, string>> {
  for (let waited = 0; waited < 300_000; waited += 250) {
    const text = await readFile(envFile, 'utf8').catch(() => undefined);
    if (text) return Object.fromEntries(text.trim().split('\n').map((line) => line.split(/=(.*)/s).slice(0, 2) as [string, string]));
    await sleep(250);
  }
  throw new Error('the sandboxes did not start within 5 minutes');
}

/** Bundled ahead of time, as in production, so webpack's memory does not count as the worker's. */
async function buildWorkflowBundle(dir: string): Promise<string> {
  const bundlePath = join(dir, 'workflow-bundle.js');
  const builder = spawnNpmScript('build:workflows', {}, [bundlePath]);
  const code = await new Promise<number | null>((resolve) => builder.once('exit', resolve));
  if (code !== 0) throw new Error('building the workflow bundle failed');
  return bundlePath;
}

/** Writes the figures to `file` (bench-results/…) and prints them. */
export async function writeFigures(file: string, figures: object): Promise<void> {
  await mkdir(dirname(file), { recursive: true });
  await writeFile(file, `${JSON.stringify(figures, null, 2)}\n`);
  console.log(figures);
  console.log(`Written to ${file}`);
}

export function round(value: number): number {
  return Math.round(value * 100) / 100;
}
