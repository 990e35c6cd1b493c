/** Runs the real `ampbraze` executable and the project's `temporal` CLI, as a user would, and captures what they printed. */
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { PROJECT_ROOT, resolveTemporalCli } from '../../src/temporal/cli.js';
import { testNamespace, testServerAddress } from './temporal.js';

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** With exactly `envVars` (plus PATH), from an empty directory (no .env). */
export async function ampbraze(args: string[], envVars: Record<string, string>): Promise<CliResult> {
  const cwd = await mkdtemp(join(tmpdir(), 'ampbraze-cli-'));
  const child = spawn(process.execPath, [join(PROJECT_ROOT, 'bin', 'ampbraze.mjs'), ...args], {
    cwd,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? cwd, ...envVars },
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const code = await new Promise<number | null>((resolveExit) => child.once('exit', resolveExit));
  return { code, stdout, stderr };
}

/** The project's Temporal CLI against the test server, e.g. `temporal('workflow', 'start', …)`. */
export async function temporal(...args: string[]): Promise<{ stdout: string; stderr: string }> {
  const cli = await resolveTemporalCli({ install: false, allowSdkDownload: false });
  assert.equal(cli.kind, 'binary');
  return promisify(execFile)(cli.path, [...args, '--address', testServerAddress(), '--namespace', testNamespace()]);
}

/**
 * The arguments of the README's `temporal …` command that starts with `prefix` (e.g. `temporal schedule create
 * --schedule-id trait-sync-billing-schedule`), its continuation lines joined and its single quotes removed, with
 * `--task-queue` pointed at `taskQueue`: a test runs the line exactly as the README shows it.
 */
export async function readmeTemporalCommand(prefix: string, taskQueue: string): Promise<string[]> {
  const readme = await readFile(join(PROJECT_ROOT, 'README.md'), 'utf8');
  const command = readme
    .replace(/\\\n\s*/g, '')
    .split('\n')
    .find((line) => line.startsWith(prefix));
  assert.ok(command, `the README has a line starting with "${prefix}"`);
  const words = [...command.matchAll(/'([^']*)'|(\S+)/g)].map((match) => match[1] ?? match[2]!);
  const queue = words.indexOf('--task-queue');
  if (queue >= 0) words[queue + 1] = taskQueue;
  return words.slice(1);
}
