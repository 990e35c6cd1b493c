/**
 * Starts a real `temporal server start-dev` for the embedded default (`npm run temporal`) and for the test
 * suite. We spawn the CLI ourselves rather than through `TestWorkflowEnvironment.createLocal`, whose 5 s
 * start-up deadline a loaded 2-core machine can miss.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import { createServer, connect } from 'node:net';
import { dirname } from 'node:path';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import type { TemporalCli } from './cli.js';
import { PROJECT_SEARCH_ATTRIBUTES, searchAttributeFlags } from './search-attributes.js';

export interface DevServerOptions {
  cli: TemporalCli;
  /** 0 or undefined picks a free port. */
  port?: number;
  /** Web UI port (0 picks a free one, undefined means `port` + 1000, the CLI's default), or `false` for a headless server. */
  uiPort?: number | false;
  /** Persistent SQLite file; in-memory when omitted. */
  dbFilename?: string;
  namespace?: string;
  /** More namespaces registered at start-up, each with the project's search attributes (the tests: one per file). */
  extraNamespaces?: string[];
  /** Extra `--dynamic-config-value KEY=JSON` settings. */
  dynamicConfig?: Record<string, string | number | boolean>;
  /** Forward the server's own output (the interactive `npm run temporal`). */
  inheritOutput?: boolean;
  startupTimeoutMs?: number;
}

export interface DevServer {
  address: string;
  uiUrl?: string;
  stop(): Promise<void>;
}

/** Attempts when a port picked as free was taken before the server bound it (another process got there first). */
const PORT_RACE_ATTEMPTS = 3;

export async function startDevServer(options: DevServerOptions): Promise<DevServer> {
  // Only ports we picked ourselves can be picked again.
  const portsPicked = !options.port || options.uiPort === 0;
  for (let attempt = 1; ; attempt++) {
    try {
      return await startDevServerOnce(options);
    } catch (error) {
      const lostRace = /address already in use/.test((error as Error).message);
      if (!(portsPicked && lostRace && attempt < PORT_RACE_ATTEMPTS)) throw error;
    }
  }
}

async function startDevServerOnce(options: DevServerOptions): Promise<DevServer> {
  const port = options.port || (await freePort());
  const uiPort = options.uiPort === false ? undefined : options.uiPort === 0 ? await freePort() : (options.uiPort ?? port + 1000);
  const uiUrl = uiPort === undefined ? undefined : `http://127.0.0.1:${uiPort}`;
  const namespace = options.namespace ?? 'default';
  const timeoutMs = options.startupTimeoutMs ?? 60_000;
  if (options.dbFilename) await mkdir(dirname(options.dbFilename), { recursive: true });
  const dynamicConfigArgs = Object.entries(options.dynamicConfig ?? {}).flatMap(([key, value]) => [
    '--dynamic-config-value',
    `${key}=${JSON.stringify(value)}`,
  ]);
  const extraNamespaceArgs = (options.extraNamespaces ?? []).flatMap((name) => ['--namespace', name]);

  if (options.cli.kind === 'sdk-download') {
    const env = await TestWorkflowEnvironment.createLocal({
      server: {
        port,
        namespace,
        dbFilename: options.dbFilename,
        ui: uiPort !== undefined,
        uiPort,
        searchAttributes: PROJECT_SEARCH_ATTRIBUTES,
        extraArgs: [...extraNamespaceArgs, ...dynamicConfigArgs],
      },
    });
    if (uiUrl) await waitUntil(() => answers(uiUrl), `the Web UI did not answer at ${uiUrl}`, undefined, timeoutMs);
    return { address: `127.0.0.1:${port}`, uiUrl, stop: () => env.teardown() };
  }

  const args = [
    'server',
    'start-dev',
    '--ip',
    '127.0.0.1',
    '--port',
    String(port),
    '--namespace',
    namespace,
    ...extraNamespaceArgs,
    '--log-level',
    'warn',
    // The UI's news feed would fetch from the internet; tests and demos run offline.
    ...(uiPort === undefined ? ['--headless'] : ['--ui-port', String(uiPort), '--ui-disable-news-fetch']),
    ...(options.dbFilename ? ['--db-filename', options.dbFilename, '--sqlite-pragma', 'journal_mode=WAL'] : []),
    ...searchAttributeFlags(),
    ...dynamicConfigArgs,
  ];
  const child = spawn(options.cli.path, args, {
    stdio: ['ignore', options.inheritOutput ? 'inherit' : 'pipe', options.inheritOutput ? 'inherit' : 'pipe'],
  });
  const output: string[] = [];
  const keepTail = (chunk: Buffer) => {
    output.push(chunk.toString());
    if (output.length > 50) output.shift();
  };
  child.stdout?.on('data', keepTail);
  child.stderr?.on('data', keepTail);

  try {
    await waitUntil(() => canConnect(port), `temporal server start-dev did not accept connections on port ${port}`, child, timeoutMs);
    // The UI is a separate server inside the CLI, and may come up after the frontend.
    if (uiUrl) await waitUntil(() => answers(uiUrl), `the Web UI did not answer at ${uiUrl}`, child, timeoutMs);
  } catch (error) {
    child.kill('SIGKILL');
    throw new Error(`${(error as Error).message}\n${output.join('').trim()}`);
  }
  return { address: `127.0.0.1:${port}`, uiUrl, stop: () => stopChild(child) };
}

export async function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolvePort(address.port) : reject(new Error('no port'))));
    });
  });
}

export function isPortFree(port: number): Promise<boolean> {
  return new Promise((resolveFree) => {
    const probe = createServer();
    probe.once('error', () => resolveFree(false));
    probe.listen(port, '127.0.0.1', () => probe.close(() => resolveFree(true)));
  });
}

async function waitUntil(
  ready: () => Promise<boolean>,
  failure: string,
  child: ChildProcess | undefined,
  timeoutMs: number,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child && child.exitCode !== null) throw new Error(`temporal server start-dev exited with code ${child.exitCode}`);
    if (await ready()) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`${failure} within ${timeoutMs / 1000}s`);
}

/** Any HTTP response counts: the server is up and serving. */
function answers(url: string): Promise<boolean> {
  return fetch(url, { signal: AbortSignal.timeout(5_000) }).then(
    (response) => (void response.body?.cancel(), true),
    () => false,
  );
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolveConnect) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolveConnect(true);
    });
    socket.once('error', () => resolveConnect(false));
  });
}

/** Asks a child server to stop with `signal`, and kills it if it has not exited 10 s later. */
export async function stopChild(child: ChildProcess, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  child.kill(signal);
  const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
  await exited;
  clearTimeout(timer);
}
