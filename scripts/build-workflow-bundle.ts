/**
 * `npm run build:workflows`: bundles the workflow code once, ahead of time (the SDK's production practice), so
 * workers start fast and skip webpack's memory spike. Point a worker at it with WORKFLOW_BUNDLE_PATH.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { bundleWorkflowCode } from '@temporalio/worker';
import { PROJECT_ROOT } from '../src/temporal/cli.js';

const output = process.argv[2] ?? join(PROJECT_ROOT, 'dist', 'workflow-bundle.js');
const { code } = await bundleWorkflowCode({ workflowsPath: join(PROJECT_ROOT, 'workflows', 'index.ts') });
await mkdir(dirname(output), { recursive: true });
await writeFile(output, code);
console.log(`Workflow bundle written to ${output}`);
