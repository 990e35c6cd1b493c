/** The receivers' spools as an operator sees them: what each stream has not processed yet, how old, and its dead letters. */
import type { StateStore } from '../store/store.js';

export interface StreamBacklog {
  stream: string;
  pending: number;
  deferred: number;
  /** Seconds (to the millisecond) since the oldest unprocessed item arrived; 0 when none waits. */
  oldestAgeSeconds: number;
  deadLetters: number;
}

export async function streamBacklogs(store: StateStore, nowMs = Date.now()): Promise<StreamBacklog[]> {
  const deadLetters = new Map((await store.deadLetterCounts()).map(({ stream, count }) => [stream, count]));
  const streams = [...new Set([...(await store.pendingIngressStreams()), ...deadLetters.keys()])].sort();
  return Promise.all(
    streams.map(async (stream) => {
      const backlog = await store.ingressBacklog(stream, nowMs);
      const oldest = backlog.oldestReceivedAtMs;
      return {
        stream,
        pending: backlog.pending,
        deferred: backlog.deferred,
        oldestAgeSeconds: oldest === undefined ? 0 : Math.max(0, (nowMs - oldest) / 1000),
        deadLetters: deadLetters.get(stream) ?? backlog.deadLetters,
      };
    }),
  );
}
