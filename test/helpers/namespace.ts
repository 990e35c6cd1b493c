/**
 * Each test file has its own Temporal namespace on the shared dev server, named after the file: workflow and schedule
 * ids (fixed by design, such as `currents-forward` or `cohort-sync-<cohort>`) never meet another file's, so files
 * could run in parallel. `npm test` registers one per file at start-up.
 */
import { relative, resolve } from 'node:path';
import { PROJECT_ROOT } from '../../src/temporal/cli.js';

/** `kinds/cohort-sync/cohort-sync.test.ts` → `test-kinds-cohort-sync-cohort-sync`. */
export function testNamespaceOf(testFile: string): string {
  const path = relative(PROJECT_ROOT, resolve(PROJECT_ROOT, testFile)).replace(/\.test\.ts$/, '');
  return `test-${path.replace(/[^A-Za-z0-9]+/g, '-')}`.replace(/^test-test-/, 'test-');
}

/** This test process's namespace: its file's (Node's test runner gives each file a process of its own). */
export function testNamespace(): string {
  const file = process.argv[1] ?? '';
  return file.endsWith('.test.ts') ? testNamespaceOf(file) : 'default';
}
