import assert from 'node:assert/strict';
import { chmod, mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { resolveTemporalCli, TemporalCliNotFoundError } from '../src/temporal/cli.js';

async function fakeExecutable(dir: string, name: string): Promise<string> {
  const path = join(dir, name);
  await writeFile(path, '#!/bin/sh\nexit 0\n');
  await chmod(path, 0o755);
  return path;
}

test('TEMPORAL_CLI_PATH wins over PATH', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'cli-'));
  const explicit = await fakeExecutable(dir, 'my-temporal');
  await fakeExecutable(dir, 'temporal');
  const cli = await resolveTemporalCli({ env: { TEMPORAL_CLI_PATH: explicit, PATH: dir }, install: false });
  assert.deepEqual(cli, { kind: 'binary', path: explicit, source: 'TEMPORAL_CLI_PATH' });
});

test('a TEMPORAL_CLI_PATH that is not executable is an error, not a silent fallback', async () => {
  await assert.rejects(
    resolveTemporalCli({ env: { TEMPORAL_CLI_PATH: '/nonexistent/temporal' }, install: false }),
    TemporalCliNotFoundError,
  );
});

test('`temporal` on PATH is found', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'cli-'));
  const onPath = await fakeExecutable(dir, 'temporal');
  const cli = await resolveTemporalCli({ env: { PATH: `/nonexistent:${dir}` }, install: false });
  assert.deepEqual(cli, { kind: 'binary', path: onPath, source: 'PATH' });
});

test('the project tools folder is found when nothing else is', async () => {
  const toolsDir = await mkdtemp(join(tmpdir(), 'tools-'));
  await mkdir(join(toolsDir, 'bin'));
  const local = await fakeExecutable(join(toolsDir, 'bin'), 'temporal');
  const cli = await resolveTemporalCli({ env: { PATH: '' }, toolsDir, install: false });
  assert.deepEqual(cli, { kind: 'binary', path: local, source: 'project tools folder' });
});

test('nothing found and no fallback allowed: the error names everything that was tried', async () => {
  const toolsDir = await mkdtemp(join(tmpdir(), 'tools-'));
  await assert.rejects(resolveTemporalCli({ env: { PATH: '' }, toolsDir, install: false, allowSdkDownload: false }), (error: Error) => {
    assert.ok(error instanceof TemporalCliNotFoundError);
    for (const tried of ['TEMPORAL_CLI_PATH', 'on PATH', 'tools folder']) assert.match(error.message, new RegExp(tried));
    return true;
  });
});

test('with every source missing, the last resort is the SDK download', async () => {
  const toolsDir = await mkdtemp(join(tmpdir(), 'tools-'));
  const cli = await resolveTemporalCli({ env: { PATH: '' }, toolsDir, install: false });
  assert.equal(cli.kind, 'sdk-download');
});
