#!/usr/bin/env node
// The installed package runs the build (dist/, from `npm run build`) with plain node. A development checkout (the
// TypeScript sources are here) runs the sources through tsx, so it never runs a build older than its code.
import { existsSync } from 'node:fs';
import { join } from 'node:path';

if (existsSync(join(import.meta.dirname, '..', 'src', 'cli', 'main.ts'))) {
  const { register } = await import('tsx/esm/api');
  register();
  await import('../src/cli/main.ts');
} else {
  await import('../dist/src/cli/main.js');
}
