/**
 * `npm test`: one real Temporal dev server (in-memory, free ports for it and its Web UI, project search attributes,
 * a namespace per test file: test/helpers/namespace.ts), one throw-away PostgreSQL cluster and one workflow bundle
 * for the whole run, then every `test/*.test.ts` and `kinds/<kind>/*.test.ts` file under Node's test runner. Test
 * files reach them through environment variables (see test/helpers/temporal.ts and test/helpers/postgres.ts). A
 * server that cannot start fails the run.
 */
import { spawn } from 'node:child_process';
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { bundleWorkflowCode } from '@temporalio/worker';
import { PROJECT_ROOT, resolveTemporalCli } from '../src/temporal/cli.js';
import { startPostgresServer } from '../src/store/postgres-server.js';
import { startDevServer } from '../src/temporal/dev-server.js';
import { testNamespaceOf } from '../test/helpers/namespace.js';

// Test files to run (all when none is named), and options for Node's test runner (e.g. `--test-name-pattern=…`).
const nodeTestOptions = process.argv.slice(2).filter((arg) => arg.startsWith('--'));
const only = process.argv.slice(2).filter((arg) => !arg.startsWith('--'));
const files = only.length > 0 ? only : await allTestFiles();

const postgres = await startPostgresServer();
console.error(`PostgreSQL for the tests: ${postgres.url}`);
let exitCode = 1;
try {
  exitCode = await runWithTemporal({ TEST_POSTGRES_URL: postgres.url });
} finally {
  await postgres.stop();
}
process.exit(exitCode);

async function runWithTemporal(env: Record<string, string>): Promise<number> {
  const cli = await resolveTemporalCli({ log: (line) => console.error(line) });
  // A low continue-as-new suggestion makes multi-page syncs continue as new within the tests.
  // The Web UI is on for test/temporal-ui.test.ts, which follows the README's UI steps in a browser.
  const server = await startDevServer({
    cli,
    uiPort: 0,
    extraNamespaces: files.map(testNamespaceOf),
    dynamicConfig: { 'limit.historyCount.suggestContinueAsNew': 60 },
  });
  console.error(
    `Temporal dev server for the tests: ${server.address}, Web UI ${server.uiUrl} (${cli.kind === 'binary' ? cli.path : cli.source})`,
  );
  try {
    const bundlePath = join(PROJECT_ROOT, 'data', 'test', 'workflow-bundle.js');
    await mkdir(join(PROJECT_ROOT, 'data', 'test'), { recursive: true });
    const { code } = await bundleWorkflowCode({
      workflowsPath: join(PROJECT_ROOT, 'workflows', 'index.ts'),
      logger: {
        info: () => undefined,
        warn: console.warn,
        error: console.error,
        debug: () => undefined,
        trace: () => undefined,
        log: () => undefined,
      },
    });
    await writeFile(bundlePath, code);

    const runner = spawn(process.execPath, ['--import', 'tsx', '--test', '--test-reporter=spec', ...nodeTestOptions, ...files], {
      stdio: 'inherit',
      cwd: PROJECT_ROOT,
      env: {
        ...process.env,
        ...env,
        TEST_TEMPORAL_ADDRESS: server.address,
        TEST_TEMPORAL_UI_URL: server.uiUrl,
        TEST_WORKFLOW_BUNDLE: bundlePath,
      },
    });
    return await new Promise<number>((resolveExit) => runner.once('exit', (code, signal) => resolveExit(code ?? (signal ? 1 : 0))));
  } finally {
    await server.stop();
  }
}

/** Every test/*.test.ts, and the tests in each kind's folder (kinds/<kind>/*.test.ts). */
async function allTestFiles(): Promise<string[]> {
  const testsIn = async (dir: string) =>
    (await readdir(join(PROJECT_ROOT, dir))).filter((f) => f.endsWith('.test.ts')).map((f) => join(dir, f));
  const kindDirs = (await readdir(join(PROJECT_ROOT, 'kinds'), { withFileTypes: true })).filter((entry) => entry.isDirectory());
  const kindTests = await Promise.all(kindDirs.map((entry) => testsIn(join('kinds', entry.name))));
  return [...(await testsIn('test')), ...kindTests.flat()].sort();
}
