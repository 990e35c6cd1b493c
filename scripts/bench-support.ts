/**
 * What the benchmarks share: a world of real processes — the Temporal dev server, the sandboxes, optionally a
 * throw-away PostgreSQL, and workers started with the very command of `npm run worker` and a prebuilt workflow
 * bundle (as in production), each in a working directory of its own, so each one's peak RSS is its own.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { delimiter, dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Client, Connection } from '@temporalio/client';
import { loadConfig, temporalConnectionOptions, type AppConfig } from '../src/config.js';
import { startPostgresServer } from '../src/store/postgres-server.js';
import { PROJECT_ROOT, resolveTemporalCli } from '../src/temporal/cli.js';
import { startDevServer } from '../src/temporal/dev-server.js';
import { BRAZE_CONCURRENCY } from '../src/worker-context.js';
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
  /** More of the workers' environment, e.g. a rate share. */
  workerEnv?: Record<string, string>;
}

/**
 * With BENCH_CPU_PROFILE=1, each worker runs under `node --cpu-prof` (Node refuses it in NODE_OPTIONS) and writes
 * its profile here when it stops; `npm run profile:summary <file>` lists where the time went.
 */
const CPU_PROFILE_DIR = process.env.BENCH_CPU_PROFILE === '1' ? join(PROJECT_ROOT, 'data', 'cpu-profiles') : undefined;
function cpuProfileFlags(processName: string): string[] {
  return CPU_PROFILE_DIR ? ['--cpu-prof', `--cpu-prof-dir=${join(CPU_PROFILE_DIR, processName)}`] : [];
}

/** Accepted `/users/track` bodies the Braze sandbox keeps for the bare-client floor, which cycles through them. */
const FLOOR_BODIES = 2_000;
/** Requests the floor sends at least, so that its CPU time is well above the clock's resolution… */
const FLOOR_MIN_REQUESTS = 3_000;
/** …unless the run sent so slowly that these would take longer than this. */
const FLOOR_MAX_SECONDS = 60;

export interface BenchWorld {
  client: Client;
  config: AppConfig;
  brazeUrl: string;
  workerProcesses: ChildProcess[];
  /** CPU use of the workers, the sandboxes, the PostgreSQL server and the whole machine, sampled through the run. */
  cpu: CpuSampler;
  rateCeiling: { requests: number; windowMs: number };
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
  const sandboxProcess = spawnNpmScript(
    'sandbox',
    { ...options.sandboxEnv, AMPLITUDE_SANDBOX_PORT: '0', BRAZE_SANDBOX_PORT: '0', SANDBOX_ENV_FILE: sandboxEnvFile },
    [],
    PROJECT_ROOT,
    cpuProfileFlags('sandbox'),
  );
  const sandboxEnv = await readSandboxEnv(sandboxEnvFile);
  const brazeUrl = sandboxEnv.BRAZE_REST_ENDPOINT!;
  await control(brazeUrl, '/_sandbox/rate-limit', rateCeiling);
  await control(brazeUrl, '/_sandbox/track-bodies', { keep: FLOOR_BODIES });

  // On one machine, PostgreSQL is reached over its Unix socket: loopback TCP would charge the worker for the
  // kernel's delivery of every statement to the server as well, which a server on its own host does not.
  const storeEnv: Record<string, string> = postgres ? { STATE_STORE_URL: postgres.socketUrl } : { STATE_DB: join(dir, 'state.db') };
  const workerEnv = {
    ...sandboxEnv,
    ...storeEnv,
    TEMPORAL_ADDRESS: server.address,
    BRAZE_RATE_LIMIT: `${rateCeiling.requests}/${rateCeiling.windowMs / 1000}s`,
    WORKFLOW_BUNDLE_PATH: await buildWorkflowBundle(dir),
    ...options.workerEnv,
  };
  const config = loadConfig(workerEnv);
  // Each in a working directory of its own, as on separate hosts.
  const workerProcesses = await Promise.all(
    Array.from({ length: options.workers }, async (_, index) => {
      const cwd = join(dir, `worker-${index + 1}`);
      await mkdir(cwd, { recursive: true });
      return spawnNpmScript('worker', workerEnv, [], cwd, cpuProfileFlags(`worker-${index + 1}`));
    }),
  );
  const connection = await Connection.connect(await temporalConnectionOptions(config.temporal));
  const client = new Client({ connection, namespace: config.temporal.namespace });
  const cpu = new CpuSampler({
    workers: workerProcesses.map((worker) => worker.pid!),
    sandboxes: [sandboxProcess.pid!],
    store: postgres ? [postgres.pid] : [],
  });
  return {
    client,
    config,
    brazeUrl,
    workerProcesses,
    cpu,
    rateCeiling,
    storeEnv,
    async stop() {
      cpu.stop();
      await connection.close();
      for (const child of [...workerProcesses, sandboxProcess]) child.kill('SIGTERM');
      await Promise.all(
        workerProcesses.map(
          (worker) => new Promise((resolve) => (worker.exitCode === null ? worker.once('exit', resolve) : resolve(null))),
        ),
      );
      await postgres?.stop();
      await server.stop();
    },
  };
}

/** Braze's own count of `/users/track` requests per fixed window, from the sandbox. */
export interface BrazeSandboxState {
  dataPoints: { total: number };
  trackWindows: { windowMs: number; firstWindowStartMs?: number; granted: number[]; rejected: number[] };
}

export async function brazeSandboxState(brazeUrl: string): Promise<BrazeSandboxState> {
  return (await (await fetch(`${brazeUrl}/_sandbox/state`)).json()) as BrazeSandboxState;
}

/** A stretch of time in which the benchmark sent to Braze, e.g. one run. */
export interface Span {
  startMs: number;
  endMs: number;
}

/**
 * Braze's windows from the first to the last with a request, within each span (all of the run without spans,
 * spans in time order); a window belongs to the first span it overlaps.
 */
function sendingWindows(state: BrazeSandboxState, spans?: readonly Span[]): Array<{ startMs: number; granted: number[] }> {
  const { windowMs, firstWindowStartMs = 0, granted } = state.trackWindows;
  const bounds = spans ?? [{ startMs: firstWindowStartMs, endMs: firstWindowStartMs + granted.length * windowMs }];
  let unassigned = 0;
  return bounds.flatMap(({ startMs, endMs }) => {
    const first = Math.max(unassigned, Math.floor((startMs - firstWindowStartMs) / windowMs));
    const end = Math.max(first, Math.ceil((endMs - firstWindowStartMs) / windowMs));
    unassigned = end;
    const inSpan = granted.slice(first, end);
    const [from, to] = [inSpan.findIndex((n) => n > 0), inSpan.findLastIndex((n) => n > 0)];
    return from === -1 ? [] : [{ startMs: firstWindowStartMs + (first + from) * windowMs, granted: inSpan.slice(from, to + 1) }];
  });
}

/**
 * Requests per second and the fraction of the ceiling over the full windows of each stretch of sending (its first
 * and last windows are only partly in it).
 */
export function ceilingFigures(state: BrazeSandboxState, ceilingPerWindow: number, spans?: readonly Span[]) {
  const fullWindows = sendingWindows(state, spans).flatMap(({ granted }) => (granted.length > 2 ? granted.slice(1, -1) : granted));
  const requests = fullWindows.reduce((sum, n) => sum + n, 0);
  const { windowMs } = state.trackWindows;
  return {
    fullRateWindowsMeasured: fullWindows.length,
    achievedRequestsPerSecond: round(requests / ((fullWindows.length * windowMs) / 1000)),
    fractionOfCeiling: round(requests / (fullWindows.length * ceilingPerWindow)),
    brazeRateLimited429s: state.trackWindows.rejected.reduce((sum, n) => sum + n, 0),
  };
}

/**
 * Where the CPU went while Braze received the requests (each stretch of sending, first to last window): cores
 * busy on the whole machine, in the workers, the sandboxes and the PostgreSQL server, and each one's CPU time per
 * request. On a small machine the sandboxes' share is what the vendor's side took, which a real deployment does
 * not pay for; on SQLite the store's work is inside the worker's figure.
 */
function cpuWhileSending(cpu: CpuSampler, state: BrazeSandboxState, spans?: readonly Span[]) {
  const { windowMs } = state.trackWindows;
  const total = { seconds: 0, requests: 0, machine: 0, workers: 0, sandboxes: 0, store: 0 };
  for (const { startMs, granted } of sendingWindows(state, spans)) {
    const used = cpu.usedBetween(startMs, startMs + granted.length * windowMs);
    total.seconds += used.seconds;
    total.requests += granted.reduce((sum, n) => sum + n, 0);
    total.machine += used.machine;
    total.workers += used.workers;
    total.sandboxes += used.sandboxes;
    total.store += used.store;
  }
  if (total.requests === 0) return undefined;
  const perRequest = (seconds: number) => round3((seconds * 1000) / total.requests);
  return {
    requests: total.requests,
    requestsPerSecond: round(total.requests / total.seconds),
    machineCores: cpu.machineCores,
    machineCoresBusy: round(total.machine / total.seconds),
    workerCoresBusy: round(total.workers / total.seconds),
    sandboxCoresBusy: round(total.sandboxes / total.seconds),
    workerCpuMsPerBrazeRequest: perRequest(total.workers),
    storeCpuMsPerRequest: cpu.measuresStore ? perRequest(total.store) : ('in the worker (SQLite)' as const),
    sandboxCpuMsPerRequest: perRequest(total.sandboxes),
  };
}

/**
 * The worker's CPU per Braze request beside the floor measured now, on this machine: a bare client posting the
 * bodies the run sent (`scripts/bare-client.ts`) at the run's concurrency and rate. Their ratio, not the
 * fraction of the ceiling reached, is the figure to compare across runs and days.
 */
export async function efficiencyFigures(
  world: BenchWorld,
  state: BrazeSandboxState,
  options: { spans?: readonly Span[]; pagesInFlight: number },
) {
  const sending = cpuWhileSending(world.cpu, state, options.spans);
  if (!sending) return undefined;
  // At the run's own rate (a client sending a few requests a second pays more per request than one sending
  // hundreds), for at least FLOOR_MIN_REQUESTS requests or FLOOR_MAX_SECONDS, whichever is fewer.
  const floor = await measureFloor(world.brazeUrl, {
    requests: Math.round(Math.min(Math.max(sending.requests, FLOOR_MIN_REQUESTS), sending.requestsPerSecond * FLOOR_MAX_SECONDS)),
    // Each page in flight sends on BRAZE_CONCURRENCY lanes.
    concurrency: options.pagesInFlight * BRAZE_CONCURRENCY,
    perSecond: Math.ceil(Math.min(sending.requestsPerSecond, (world.rateCeiling.requests * 1000) / world.rateCeiling.windowMs)),
  });
  return {
    ...sending,
    floorCpuMsPerRequest: floor.cpuMsPerRequest,
    workerToFloorRatio: round(sending.workerCpuMsPerBrazeRequest / floor.cpuMsPerRequest),
    floor,
  };
}

/** Runs the bare client against the minimal server, each in a process of its own, and returns its CPU per request. */
async function measureFloor(brazeUrl: string, run: { requests: number; concurrency: number; perSecond: number }) {
  const { bodies } = (await (await fetch(`${brazeUrl}/_sandbox/track-bodies`)).json()) as { bodies: string[] };
  if (bodies.length === 0) throw new Error('the Braze sandbox kept no /users/track bodies for the floor');
  const bodiesFile = join(PROJECT_ROOT, 'data', `floor-bodies-${process.pid}.json`);
  await mkdir(dirname(bodiesFile), { recursive: true });
  await writeFile(bodiesFile, JSON.stringify(bodies));
  const script = join(PROJECT_ROOT, 'scripts', 'bare-client.ts');
  const server = spawn(process.execPath, ['--import', 'tsx', script, 'server'], {
    cwd: PROJECT_ROOT,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  try {
    const port = await firstLineOf(server);
    const client = spawn(
      process.execPath,
      ['--import', 'tsx', script, 'client', port, bodiesFile, ...[run.requests, run.concurrency, run.perSecond].map(String)],
      { cwd: PROJECT_ROOT, stdio: ['ignore', 'pipe', 'inherit'] },
    );
    const result = JSON.parse(await firstLineOf(client)) as { requests: number; cpuMs: number; seconds: number };
    return {
      requests: result.requests,
      distinctBodies: bodies.length,
      concurrency: run.concurrency,
      requestsPerSecond: round(result.requests / result.seconds),
      cpuMsPerRequest: round3(result.cpuMs / result.requests),
    };
  } finally {
    server.kill('SIGTERM');
    await rm(bodiesFile, { force: true });
  }
}

async function firstLineOf(child: ChildProcess): Promise<string> {
  let output = '';
  for await (const chunk of child.stdout!) {
    output += String(chunk);
    if (output.includes('\n')) return output.slice(0, output.indexOf('\n'));
  }
  throw new Error(`the bare client exited with ${child.exitCode} before printing`);
}

type CpuRole = 'workers' | 'sandboxes' | 'store' | 'machine';

/** CPU seconds used so far by some processes (with their children), sampled a few times a second (Linux `/proc`). */
export class CpuSampler {
  readonly machineCores = availableParallelism();
  private readonly samples: Array<{ atMs: number } & Record<CpuRole, number>> = [];
  private readonly timer: NodeJS.Timeout;

  constructor(private readonly pids: Record<Exclude<CpuRole, 'machine'>, number[]>) {
    this.timer = setInterval(() => void this.sample(), 200);
  }

  /** On SQLite the store has no process of its own: its work is the worker's. */
  get measuresStore(): boolean {
    return this.pids.store.length > 0;
  }

  stop(): void {
    clearInterval(this.timer);
  }

  /** CPU seconds per role between two moments (from the samples nearest them), and the seconds between those. */
  usedBetween(startMs: number, endMs: number): Record<CpuRole, number> & { seconds: number } {
    const nearest = (atMs: number) =>
      this.samples.reduce((best, sample) => (Math.abs(sample.atMs - atMs) < Math.abs(best.atMs - atMs) ? sample : best));
    const [first, last] = [nearest(startMs), nearest(endMs)];
    return {
      seconds: (last.atMs - first.atMs) / 1000,
      workers: last.workers - first.workers,
      sandboxes: last.sandboxes - first.sandboxes,
      store: last.store - first.store,
      machine: last.machine - first.machine,
    };
  }

  private async sample(): Promise<void> {
    const atMs = Date.now();
    const [workers, sandboxes, store, machine] = await Promise.all([
      cpuSecondsOfTrees(this.pids.workers),
      cpuSecondsOfTrees(this.pids.sandboxes),
      cpuSecondsOfTrees(this.pids.store),
      machineBusySeconds(),
    ]);
    this.samples.push({ atMs, workers, sandboxes, store, machine });
  }
}

/** Clock ticks per second of `/proc`'s CPU times (USER_HZ, 100 on Linux). */
const TICKS_PER_SECOND = 100;

async function cpuSecondsOfTrees(pids: number[]): Promise<number> {
  const seconds = await Promise.all(pids.map((pid) => cpuSecondsOfTree(pid)));
  return seconds.reduce((sum, n) => sum + n, 0);
}

/** User and system CPU of a process and its descendants still running (0 once it is gone). */
async function cpuSecondsOfTree(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => undefined);
  if (stat === undefined) return 0;
  // The fields after the command name, which is in parentheses and may hold spaces: utime and stime are 14 and 15.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const own = (Number(fields[11]) + Number(fields[12])) / TICKS_PER_SECOND;
  const children = await readFile(`/proc/${pid}/task/${pid}/children`, 'utf8').catch(() => '');
  const childPids = children.trim().split(/\s+/).filter(Boolean).map(Number);
  return own + (await cpuSecondsOfTrees(childPids));
}

/** Busy CPU time of all cores together, from `/proc/stat`: user, nice, system, irq, softirq and steal. */
async function machineBusySeconds(): Promise<number> {
  const [cpuLine] = (await readFile('/proc/stat', 'utf8')).split('\n');
  const [user, nice, system, , , irq, softirq, steal] = cpuLine!.split(/\s+/).slice(1).map(Number);
  return [user, nice, system, irq, softirq, steal].reduce((sum: number, n) => sum + (n ?? 0), 0) / TICKS_PER_SECOND;
}

/** Runs the command of an npm script with `exec`, so the child's pid is the command's own (not npm's or a shell's). */
export function spawnNpmScript(
  name: keyof typeof packageJson.scripts,
  env: Record<string, string> = {},
  args: string[] = [],
  cwd = PROJECT_ROOT,
  nodeFlags: string[] = [],
) {
  // Run from elsewhere, the script's relative paths must still resolve inside the project.
  const script = packageJson.scripts[name].replace(' src/', ` ${PROJECT_ROOT}/src/`);
  // Node flags go on node's own command line, right after `node`.
  const withFlags = nodeFlags.length === 0 ? script : script.replace(/\bnode /, `node ${nodeFlags.join(' ')} `);
  const command = [withFlags, ...args].join(' ');
  const path = [join(PROJECT_ROOT, 'node_modules', '.bin'), dirname(process.execPath), process.env.PATH].join(delimiter);
  return spawn('sh', ['-c', `exec ${command}`], {
    cwd,
    stdio: ['ignore', 'ignore', 'inherit'],
    env: { ...process.env, ...env, PATH: path },
  });
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
    if (text)
      return Object.fromEntries(
        text
          .trim()
          .split('\n')
          .map((line) => line.split(/=(.*)/s).slice(0, 2) as [string, string]),
      );
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

/** To three decimals: CPU milliseconds per request. */
export function round3(value: number): number {
  return Math.round(value * 1000) / 1000;
}

/** POSTs JSON to a sandbox's control endpoint and returns its answer; throws unless it is a 2xx. */
export async function control<T = unknown>(baseUrl: string, path: string, body: unknown): Promise<T> {
  const response = await fetch(`${baseUrl}${path}`, {
    method: 'POST',
    body: JSON.stringify(body),
    headers: { 'content-type': 'application/json' },
  });
  if (!response.ok) throw new Error(`${path}: ${response.status} ${await response.text()}`);
  return (await response.json()) as T;
}

/** The value at fraction `p` of ascending `sorted` (0 when it is empty). */
export function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? 0;
}

/** Polls `condition` every 250 ms for up to 30 minutes. */
export async function waitUntil(condition: () => Promise<boolean>, what: string): Promise<void> {
  for (const deadline = Date.now() + 30 * 60_000; !(await condition().catch(() => false)); await sleep(250)) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
  }
}

/** User and system CPU seconds a process has used so far (Linux `/proc`). */
export async function cpuSecondsOf(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  // The fields after the command name, which is in parentheses and may hold spaces: utime and stime are 14 and 15.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / TICKS_PER_SECOND;
}

/** Resident memory of processes every few seconds: the peak, and the peak of the last fifth against the first's. */
export class RssSampler {
  private readonly samples: Array<Record<string, number>> = [];
  private readonly timer: NodeJS.Timeout;

  constructor(private readonly pids: Record<string, number>) {
    this.timer = setInterval(() => void this.sample(), 2_000);
  }

  stop(): void {
    clearInterval(this.timer);
  }

  figures(): Record<string, { peak: number; firstFifthPeak: number; lastFifthPeak: number }> {
    const fifth = Math.max(1, Math.floor(this.samples.length / 5));
    const peak = (samples: Array<Record<string, number>>, name: string) => round(Math.max(...samples.map((s) => s[name] ?? 0)));
    return Object.fromEntries(
      Object.keys(this.pids).map((name) => [
        name,
        {
          peak: peak(this.samples, name),
          firstFifthPeak: peak(this.samples.slice(0, fifth), name),
          lastFifthPeak: peak(this.samples.slice(-fifth), name),
        },
      ]),
    );
  }

  private async sample(): Promise<void> {
    const sample: Record<string, number> = {};
    for (const [name, pid] of Object.entries(this.pids)) {
      const status = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => '');
      sample[name] = Number(/^VmRSS:\s+(\d+) kB$/m.exec(status)?.[1] ?? 0) / 1024;
    }
    this.samples.push(sample);
  }
}
