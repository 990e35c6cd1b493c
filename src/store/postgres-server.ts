/**
 * A throw-away PostgreSQL cluster for the test suite: `initdb` in a temporary directory, a free port on
 * 127.0.0.1, the unix socket inside that directory, no fsync. PostgreSQL refuses to run as root, so as root the
 * cluster belongs to (and runs as) the `postgres` system user that Debian's package creates.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { chown, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { freePort, stopChild } from '../temporal/dev-server.js';

const DEBIAN_ROOT = '/usr/lib/postgresql';
const SUPERUSER = 'postgres';

export interface PostgresServer {
  /** A superuser connection URL (trust authentication, loopback only). */
  url: string;
  /** The same server over its Unix socket: for clients on this machine, cheaper per statement than loopback TCP. */
  socketUrl: string;
  /** The postmaster's process id; its backends are its children. */
  pid: number;
  stop(): Promise<void>;
}

/** The newest `/usr/lib/postgresql/<version>/bin` holding `initdb` (Debian keeps them off PATH), if any. */
export function findPostgresBinDir(): string | undefined {
  if (!existsSync(DEBIAN_ROOT)) return undefined;
  const versions = readdirSync(DEBIAN_ROOT)
    .filter((version) => existsSync(join(DEBIAN_ROOT, version, 'bin', 'initdb')))
    .sort((a, b) => Number(b) - Number(a));
  return versions[0] && join(DEBIAN_ROOT, versions[0], 'bin');
}

/** Installs Debian's `postgresql` package unless `initdb` is already there; returns the bin directory. */
export function installPostgres(log: (line: string) => void): string {
  const found = findPostgresBinDir();
  if (found) return found;
  if (process.getuid?.() !== 0)
    throw new Error('PostgreSQL is not installed: run `apt-get install postgresql` as root (or this command as root)');
  log('Installing PostgreSQL (apt-get install postgresql) …');
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  execFileSync('apt-get', ['update'], { stdio: ['ignore', 'ignore', 'inherit'], env });
  execFileSync('apt-get', ['install', '-y', '--no-install-recommends', 'postgresql'], { stdio: ['ignore', 'ignore', 'inherit'], env });
  const installed = findPostgresBinDir();
  if (!installed) throw new Error(`apt-get installed postgresql, but no initdb was found under ${DEBIAN_ROOT}`);
  return installed;
}

export async function startPostgresServer(options: { binDir?: string; startupTimeoutMs?: number } = {}): Promise<PostgresServer> {
  const binDir = options.binDir ?? findPostgresBinDir();
  if (!binDir) throw new Error('PostgreSQL is not installed (no initdb under /usr/lib/postgresql): run `npm run postgres:install`');
  const dir = await mkdtemp(join(tmpdir(), 'ampbraze-postgres-'));
  const asUser = await unprivilegedUser(dir);
  const run = (program: string, args: string[]) => {
    const command = [join(binDir, program), ...args];
    return asUser ? ['setpriv', `--reuid=${asUser.uid}`, `--regid=${asUser.gid}`, '--clear-groups', '--', ...command] : command;
  };
  const dataDir = join(dir, 'data');
  try {
    const [initdb, ...initdbArgs] = run('initdb', ['-D', dataDir, '-U', SUPERUSER, '--auth=trust', '--encoding=UTF8', '--no-sync']);
    execFileSync(initdb!, initdbArgs, { stdio: ['ignore', 'ignore', 'pipe'], cwd: dir });
  } catch (error) {
    await rm(dir, { recursive: true, force: true });
    throw new Error(`initdb failed: ${(error as { stderr?: Buffer }).stderr?.toString().trim() ?? String(error)}`);
  }

  const port = await freePort();
  const settings = {
    listen_addresses: '127.0.0.1',
    unix_socket_directories: dir,
    // Durability is worth nothing in a cluster deleted after the run.
    fsync: 'off',
    synchronous_commit: 'off',
    full_page_writes: 'off',
    // Every test store opens a pool of its own.
    max_connections: '300',
  };
  const settingArgs = Object.entries(settings).flatMap(([name, value]) => ['-c', `${name}=${value}`]);
  const [postgres, ...args] = run('postgres', ['-D', dataDir, '-p', String(port), ...settingArgs]);
  const child = spawn(postgres!, args, { stdio: ['ignore', 'pipe', 'pipe'], cwd: dir });
  const output: string[] = [];
  const keepTail = (chunk: Buffer) => {
    output.push(chunk.toString());
    if (output.length > 50) output.shift();
  };
  child.stdout.on('data', keepTail);
  child.stderr.on('data', keepTail);
  const url = `postgres://${SUPERUSER}@127.0.0.1:${port}/postgres`;
  const socketUrl = `postgres://${SUPERUSER}@localhost:${port}/postgres?host=${encodeURIComponent(dir)}`;
  const stop = async () => {
    // SIGINT is PostgreSQL's fast shutdown: open sessions are ended, nothing is waited for.
    await stopChild(child, 'SIGINT');
    await rm(dir, { recursive: true, force: true });
  };
  try {
    await waitUntilReady(url, child, options.startupTimeoutMs ?? 60_000);
  } catch (error) {
    await stop();
    throw new Error(`${(error as Error).message}\n${output.join('').trim()}`);
  }
  return { url, socketUrl, pid: child.pid!, stop };
}

/** As root: the `postgres` system user, made owner of `dir`. Otherwise nobody: the cluster runs as the caller. */
async function unprivilegedUser(dir: string): Promise<{ uid: number; gid: number } | undefined> {
  if (process.getuid?.() !== 0) return undefined;
  const idOf = (flag: '-u' | '-g') => {
    try {
      return Number(
        execFileSync('id', [flag, SUPERUSER], { stdio: ['ignore', 'pipe', 'ignore'] })
          .toString()
          .trim(),
      );
    } catch {
      throw new Error('PostgreSQL refuses to run as root, and there is no `postgres` user to run it as (run `npm run postgres:install`)');
    }
  };
  const user = { uid: idOf('-u'), gid: idOf('-g') };
  await chown(dir, user.uid, user.gid);
  return user;
}

async function waitUntilReady(url: string, child: ChildProcess, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`postgres exited with code ${child.exitCode}`);
    const client = new pg.Client({ connectionString: url });
    try {
      await client.connect();
      await client.query('SELECT 1');
      return;
    } catch {
      await new Promise((r) => setTimeout(r, 200));
    } finally {
      await client.end().catch(() => undefined);
    }
  }
  throw new Error(`postgres did not accept connections within ${timeoutMs / 1000}s`);
}
