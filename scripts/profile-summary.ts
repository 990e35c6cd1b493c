/**
 * `npm run profile:summary <file.cpuprofile> [top] [fromSeconds] [toSeconds]`: where a `node --cpu-prof`
 * profile's samples went — the functions with the most self time, and the same time grouped by where the code
 * lives (ours, the Temporal SDK, undici, the SQLite or PostgreSQL driver, zod, Node's own, V8's GC and the idle
 * loop). A busy timeline (non-idle ms per second since the profile started) shows the phases of a run; the two
 * bounds keep only the samples of one of them, e.g. the seconds a worker spent sending to Braze.
 */
import { readFile } from 'node:fs/promises';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

const [file, top = '30', fromSeconds = '0', toSeconds = 'Infinity'] = process.argv.slice(2);
if (!file) throw new Error('usage: profile-summary.ts <file.cpuprofile> [top]');
const profile = JSON.parse(await readFile(file, 'utf8')) as CpuProfile;
const byId = new Map(profile.nodes.map((node) => [node.id, node]));
const selfMs = new Map<number, number>();
const busyMsPerSecond: number[] = [];
let atMs = 0;
profile.samples.forEach((id, index) => {
  const ms = (profile.timeDeltas[index] ?? 0) / 1000;
  atMs += ms;
  const second = Math.floor(atMs / 1000);
  if (byId.get(id)!.callFrame.functionName !== '(idle)') busyMsPerSecond[second] = (busyMsPerSecond[second] ?? 0) + ms;
  if (second >= Number(fromSeconds) && second < Number(toSeconds)) selfMs.set(id, (selfMs.get(id) ?? 0) + ms);
});
const totalMs = [...selfMs.values()].reduce((sum, ms) => sum + ms, 0);

const byFunction = new Map<string, number>();
const byArea = new Map<string, number>();
for (const [id, ms] of selfMs) {
  const { functionName, url, lineNumber } = byId.get(id)!.callFrame;
  const where = url.replace(/^file:\/\/.*?\/(node_modules|src|kinds|activities|scripts)\//, '$1/');
  const name = `${functionName || '(anonymous)'}  ${where}:${lineNumber + 1}`;
  byFunction.set(name, (byFunction.get(name) ?? 0) + ms);
  byArea.set(areaOf(functionName, url), (byArea.get(areaOf(functionName, url)) ?? 0) + ms);
}

const share = (ms: number) => `${((ms / totalMs) * 100).toFixed(1).padStart(5)} %  ${ms.toFixed(0).padStart(7)} ms`;
console.log(`Busy ms per second: ${Array.from(busyMsPerSecond, (ms, second) => `${second}:${(ms ?? 0).toFixed(0)}`).join(' ')}`);
console.log(`\n${file}, seconds ${fromSeconds} to ${toSeconds}: ${totalMs.toFixed(0)} ms sampled\n\nBy area:`);
for (const [area, ms] of [...byArea].sort((a, b) => b[1] - a[1])) console.log(`  ${share(ms)}  ${area}`);
console.log(`\nTop ${top} functions by self time:`);
for (const [name, ms] of [...byFunction].sort((a, b) => b[1] - a[1]).slice(0, Number(top))) console.log(`  ${share(ms)}  ${name}`);

function areaOf(functionName: string, url: string): string {
  if (functionName === '(idle)' || functionName === '(program)' || functionName === '(garbage collector)') return functionName;
  const module = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url)?.[1];
  if (module) return module;
  if (url.startsWith('node:') || url === '') return 'node (built-in)';
  return /\/(src|kinds|activities)\//.exec(url)?.[1] ?? url;
}
