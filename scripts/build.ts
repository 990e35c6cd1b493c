/**
 * `npm run build` (and `npm pack`, before packing): what production runs with plain node, in dist/ — the sources
 * compiled by tsc (tsconfig.build.json: the worker, the receiver, the CLI and what they import) and the workflow
 * bundle (dist/workflow-bundle.js). dist/ is emptied first, so nothing of an earlier build is packed.
 */
import { spawnSync } from 'node:child_process';
import { rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { PROJECT_ROOT } from '../src/temporal/cli.js';
import { writeWorkflowBundle } from './build-workflow-bundle.js';

await rm(join(PROJECT_ROOT, 'dist'), { recursive: true, force: true });
const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
const compiled = spawnSync(process.execPath, [tsc, '-p', join(PROJECT_ROOT, 'tsconfig.build.json')], { stdio: 'inherit' });
if (compiled.status !== 0) {
  console.error('tsc failed: nothing built');
  process.exit(1);
}
console.log(`Compiled into ${join(PROJECT_ROOT, 'dist')}`);
await writeWorkflowBundle();
