/** Live progress of a sync on a terminal, fed by the workflow's `progress` query; each kind's words are in its cli.ts. */

/** Polls the `progress` query into a progress bar (a line per phase when not on a terminal) until the run ends. */
export async function followProgress<P, R>(
  query: () => Promise<P>,
  describe: (progress: P) => string,
  result: () => Promise<R>,
): Promise<R> {
  const interactive = process.stdout.isTTY;
  let lastLine = '';
  // At most one query at a time, and none left when the caller closes the connection: the SDK would retry a
  // query still in flight on the closed channel, and that throws outside any promise.
  let polling: Promise<void> | undefined;
  const timer = setInterval(() => {
    if (polling) return;
    polling = query()
      .then((progress) => {
        const line = describe(progress);
        if (line === lastLine) return;
        if (interactive) process.stdout.write(`\r${line.padEnd(lastLine.length)}`);
        else if (line.split(' ')[0] !== lastLine.split(' ')[0]) console.log(line);
        lastLine = line;
      })
      .catch(() => undefined) // the query races the run's start and end; the next tick tries again
      .finally(() => (polling = undefined));
  }, 500);
  try {
    return await result();
  } finally {
    clearInterval(timer);
    await polling;
    if (interactive && lastLine) process.stdout.write('\n');
  }
}

/** A run's phase, and while it applies pages a progress bar, before the kind's own counts. */
export function progressLine(progress: { phase: string; page: number; pagesTotal: number; pausedReason?: string }, counts: string): string {
  if (progress.phase !== 'applying' && progress.phase !== 'paused') return `${progress.phase} … ${counts}`;
  const width = 24;
  const done = progress.pagesTotal === 0 ? width : Math.round((progress.page / progress.pagesTotal) * width);
  const bar = `[${'#'.repeat(done)}${'-'.repeat(width - done)}]`;
  const paused = progress.pausedReason ? ` · PAUSED: ${progress.pausedReason}` : '';
  return `${progress.phase} ${bar} page ${progress.page}/${progress.pagesTotal} · ${counts}${paused}`;
}
