/**
 * The package as production gets it: `npm pack` (which builds: the sources compiled into dist/ and the workflow
 * bundle), the tarball installed with npm into an empty directory, and from there — plain node, no tsx, no TypeScript
 * sources — `npx ampbraze worker` against the Temporal dev server and the sandboxes, `npx ampbraze receiver`, and
 * `npx ampbraze doctor`, every check of which must pass.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { startSandboxes, type Sandboxes } from '../src/sandbox/sandboxes.js';
import { PROJECT_ROOT } from '../src/temporal/cli.js';
import { uniqueTaskQueue, testTemporalEnv } from './helpers/temporal.js';

const PACKAGE_NAME = 'amplitude-braze-sync';
/** Building and packing, then installing (better-sqlite3 is compiled when no prebuilt binary can be downloaded). */
const NPM_TIMEOUT_MS = 10 * 60_000;
const START_TIMEOUT_MS = 60_000;

let sandboxes: Sandboxes;
let workDir: string;

before(async () => {
  sandboxes = await startSandboxes({ seed: 7, users: 200 });
  workDir = await mkdtemp(join(tmpdir(), 'ampbraze-package-'));
});

after(async () => {
  await sandboxes?.close();
  if (workDir) await rm(workDir, { recursive: true, force: true });
});

interface Running {
  /** Everything it printed so far, stdout and stderr. */
  output(): string;
  /** Resolves with its exit code. */
  exited: Promise<number | null>;
  /** SIGTERM to its whole process group (npx, the shell it starts, and the node running the command). */
  stop(): Promise<void>;
}

/** `command args…` in `cwd`, in a process group of its own so that it can be stopped with whatever it started. */
function run(command: string, args: string[], cwd: string, env: NodeJS.ProcessEnv): Running {
  const child = spawn(command, args, { cwd, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<number | null>((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (code, signal) => resolve(code ?? (signal ? 128 : null)));
  });
  const signalGroup = (signal: NodeJS.Signals) => {
    try {
      process.kill(-child.pid!, signal);
    } catch {
      // The group is gone already.
    }
  };
  return {
    output: () => output,
    exited,
    stop: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      signalGroup('SIGTERM');
      const killLater = setTimeout(() => signalGroup('SIGKILL'), 40_000);
      await exited.catch(() => undefined);
      clearTimeout(killLater);
    },
  };
}

/** Runs to its end within `timeoutMs`; fails, with what it printed, unless it exits 0. */
async function runToEnd(command: string, args: string[], cwd: string, env: NodeJS.ProcessEnv, timeoutMs: number): Promise<string> {
  const running = run(command, args, cwd, env);
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), timeoutMs)));
  const code = await Promise.race([running.exited, timedOut]);
  clearTimeout(timer);
  if (code === 'timeout') await running.stop();
  assert.equal(code, 0, `\`${command} ${args.join(' ')}\` ${code === 'timeout' ? 'timed out' : `exited ${code}`}:\n${running.output()}`);
  return running.output();
}

/** Starts `npx ampbraze …` and waits until it prints a line matching `ready`; its first group is returned. */
async function startUntil(args: string[], cwd: string, env: NodeJS.ProcessEnv, ready: RegExp) {
  const running = run('npx', ['ampbraze', ...args], cwd, env);
  const deadline = Date.now() + START_TIMEOUT_MS;
  while (!ready.test(running.output())) {
    const state = await Promise.race([running.exited, new Promise((resolve) => setTimeout(() => resolve('waiting'), 100))]);
    if (state !== 'waiting' || Date.now() > deadline) {
      await running.stop();
      assert.fail(
        `\`npx ampbraze ${args.join(' ')}\` ${state === 'waiting' ? 'did not start' : `exited ${String(state)}`}:\n${running.output()}`,
      );
    }
  }
  return { running, match: ready.exec(running.output())?.[1] };
}

/** npm as a user runs it: without the npm_* settings of the `npm test` that runs this file. */
function npmEnv(): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(process.env).filter(([key]) => !/^npm_/i.test(key) && key !== 'NODE_OPTIONS'));
}

/** Every file of the installed package, relative to its folder. */
async function filesOf(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries.filter((entry) => entry.isFile()).map((entry) => join(entry.parentPath, entry.name).slice(dir.length + 1));
}

test(
  'the packed package installs into an empty directory and runs the worker, the receiver and a passing doctor with plain node',
  { timeout: 20 * 60_000 },
  async (t) => {
    const packDir = join(workDir, 'pack');
    const appDir = join(workDir, 'app');
    await mkdir(packDir);
    await mkdir(appDir);

    let startedAt = Date.now();
    await runToEnd('npm', ['pack', '--pack-destination', packDir], PROJECT_ROOT, npmEnv(), NPM_TIMEOUT_MS);
    const [tarball, ...others] = (await readdir(packDir)).filter((name) => name.endsWith('.tgz'));
    assert.ok(tarball && others.length === 0, `one tarball in ${packDir}`);
    t.diagnostic(`npm pack (with the build) took ${Math.round((Date.now() - startedAt) / 1000)} s`);

    // An empty project (its package.json keeps npm from installing into a parent folder's project).
    await writeFile(join(appDir, 'package.json'), `${JSON.stringify({ name: 'app', private: true }, null, 2)}\n`);
    startedAt = Date.now();
    await runToEnd(
      'npm',
      ['install', '--prefer-offline', '--no-audit', '--no-fund', join(packDir, tarball)],
      appDir,
      npmEnv(),
      NPM_TIMEOUT_MS,
    );
    t.diagnostic(`npm install of the tarball took ${Math.round((Date.now() - startedAt) / 1000)} s`);

    const installed = join(appDir, 'node_modules', PACKAGE_NAME);
    assert.deepEqual(
      (await readdir(installed)).sort(),
      ['README.md', 'bin', 'dist', 'package.json'],
      'the package holds the build, not the sources or tests',
    );
    const files = await filesOf(installed);
    assert.ok(files.includes(join('dist', 'workflow-bundle.js')), 'the prebuilt workflow bundle is in the package');
    assert.deepEqual(
      files.filter((file) => file.endsWith('.ts') || file.endsWith('.map')),
      [],
      'no TypeScript sources, no source maps pointing at them',
    );
    for (const devOnly of ['tsx', 'typescript', '@temporalio/testing'])
      assert.equal(existsSync(join(appDir, 'node_modules', devOnly)), false, `${devOnly} is not installed with the package`);

    // One environment for every command, as an operator's would be; nothing of this process's (no NODE_OPTIONS).
    const env = {
      PATH: process.env.PATH ?? '',
      HOME: process.env.HOME ?? appDir,
      ...sandboxes.env,
      STATE_DB: join(appDir, 'state.db'),
      ...testTemporalEnv(),
      TEMPORAL_TASK_QUEUE: uniqueTaskQueue('package'),
      CURRENTS_TOKEN: 'package-test-currents-token-0123456789',
      RECEIVER_HOST: '127.0.0.1',
      RECEIVER_PORT: '0',
    };
    startedAt = Date.now();
    const worker = await startUntil(['worker'], appDir, env, /(polling task queue)/);
    try {
      t.diagnostic(`the worker was polling ${Math.round((Date.now() - startedAt) / 1000)} s after \`npx ampbraze worker\``);
      const receiver = await startUntil(['receiver'], appDir, env, /Receiver listening on (http:\/\/\S+?)[\s(]/);
      try {
        const ready = await fetch(`${receiver.match}/readyz`);
        assert.equal(ready.status, 200, `the receiver is ready: ${await ready.text()}\n${receiver.running.output()}`);
      } finally {
        await receiver.running.stop();
      }

      startedAt = Date.now();
      const doctor = await runToEnd('npx', ['ampbraze', 'doctor'], appDir, env, 3 * 60_000);
      t.diagnostic(`npx ampbraze doctor took ${Math.round((Date.now() - startedAt) / 1000)} s`);
      assert.match(doctor, /All checks passed\./);
      for (const check of ['Temporal', 'State store', 'Amplitude cohort API', 'Braze REST API'])
        assert.match(doctor, new RegExp(`✓ ${check} `), `${check} passed:\n${doctor}`);
    } catch (error) {
      console.error(`The worker printed:\n${worker.running.output()}`);
      throw error;
    } finally {
      await worker.running.stop();
    }
  },
);
