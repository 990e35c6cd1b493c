/**
 * `npm run build:workflows [output]`: bundles the workflow code once, ahead of time (the SDK's production practice), so
 * workers start fast and skip webpack's memory spike. `npm run build` writes it to dist/workflow-bundle.js, which a
 * worker started from dist/ loads by itself; a worker run from the sources loads one named by WORKFLOW_BUNDLE_PATH.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { bundleWorkflowCode } from '@temporalio/worker';
import { PROJECT_ROOT } from '../src/temporal/cli.js';
import { BUILT_WORKFLOW_BUNDLE } from '../src/worker.js';

export async function writeWorkflowBundle(output = BUILT_WORKFLOW_BUNDLE): Promise<void> {
  const { code } = await bundleWorkflowCode({ workflowsPath: join(PROJECT_ROOT, 'workflows', 'index.ts') });
  await mkdir(dirname(output), { recursive: true });
  await writeFile(output, code);
  console.log(`Workflow bundle written to ${output}`);
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) await writeWorkflowBundle(process.argv[2]);
