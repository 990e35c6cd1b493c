/**
 * `npm run receiver` / `ampbraze receive`: the HTTP receiver on RECEIVER_PORT (8780). It needs the store and
 * Temporal, not the vendors' keys: what it acknowledges is forwarded by the workers. It starts even while Temporal is
 * unreachable (what it spools waits, and the workflows are started once Temporal answers); `/readyz` tells.
 */
import { Client, Connection } from '@temporalio/client';
import {
  loadAmplitudeConfig,
  loadReceiverConfig,
  loadStoreConfig,
  loadTemporalConfig,
  temporalConnectionOptions,
  type ConnectedContentConfig,
} from '../config.js';
import { UNKNOWN_USER_ANSWER } from '../profiles/answer.js';
import { ConnectedContent } from '../profiles/connected-content.js';
import { SuppressionList, suppressionKeyOf } from '../privacy/suppression.js';
import type { StateStore } from '../store/store.js';
import { amplitudeClientOf, profileApiLimiter } from '../worker-context.js';
import { openStateStore } from '../store/index.js';
import { nudgeCohortStream, nudgeCurrentsForward } from '../client.js';
import { buildReceiver } from './server.js';
import { UsageCounter } from '../operator/usage-counter.js';
import { nudgeEventStream } from '../../kinds/event-stream/kind.js';

export async function main(): Promise<void> {
  const receiver = loadReceiverConfig();
  const temporal = loadTemporalConfig();
  // Every acknowledgement is on disk before it is sent, and no store operation holds a request for long.
  const store = await openStateStore({ ...loadStoreConfig(), timeoutMs: receiver.storeTimeoutMs, durableCommits: true });
  const connection = Connection.lazy(await temporalConnectionOptions(temporal));
  const client = new Client({ connection, namespace: temporal.namespace });
  const usage = new UsageCounter(store);
  // Profile fetches that fail are logged by the receiver (never with the user: the error names the endpoint only).
  const connectedContent =
    receiver.connectedContent &&
    connectedContentRoute(receiver.connectedContent, store, usage, (error) => app.log.warn({ err: error }, 'profile fetch failed'));
  const app = buildReceiver({
    store,
    limits: receiver,
    connectedContent,
    status: receiver.statusToken && { token: receiver.statusToken, quotas: receiver.quotas },
    usage,
    currentsToken: receiver.currentsToken,
    logger: { level: process.env.RECEIVER_LOG_LEVEL ?? 'info' },
    onCurrentsSpooled: () => nudgeCurrentsForward(client, { taskQueue: temporal.taskQueue }),
    amplitudeWebhookToken: receiver.amplitudeWebhookToken,
    onCohortSpooled: async ({ cohortId, target, attributeName }) => {
      const maxDataPointsPerDay = receiver.cohortStreamMaxDataPointsPerDay;
      const input = { cohortId, target, attributeName, ...(maxDataPointsPerDay && { maxDataPointsPerDay }) };
      await nudgeCohortStream(client, input, { taskQueue: temporal.taskQueue });
    },
    amplitudeStreamToken: receiver.amplitudeStreamToken,
    onEventStreamSpooled: async (name) => void (await nudgeEventStream(client, name, { taskQueue: temporal.taskQueue })),
    temporalReachable: async (deadlineMs) => {
      await connection.withDeadline(deadlineMs, () => connection.workflowService.getSystemInfo({}));
    },
  });
  const address = await app.listen({ host: receiver.host, port: receiver.port });
  const routes = [
    receiver.currentsToken && 'POST /currents',
    receiver.amplitudeWebhookToken && 'POST /amplitude/cohorts',
    receiver.amplitudeStreamToken && 'POST /amplitude/stream/<name>',
    receiver.connectedContent && 'GET /connected-content/userprofile',
    receiver.statusToken && 'GET /status, GET /metrics',
  ].filter(Boolean);
  console.log(
    `Receiver listening on ${address} (${[...routes, 'GET /healthz', 'GET /readyz'].join(', ')}); state store: ${store.description}`,
  );
  const stop = async () => {
    // Requests in flight finish (new ones get 503), then the store and Temporal connection close.
    await app.close();
    connectedContent?.lookups.close();
    await usage.close();
    await connection.close();
    await store.close();
  };
  for (const signal of ['SIGTERM', 'SIGINT'] as const) process.once(signal, () => void stop());
}

/**
 * Profiles for Braze Connected Content: the receiver holds the Amplitude key (it fetches users never fetched, and
 * refreshes old profiles, within the budget it shares with the workers); Braze holds only the receiver's token.
 */
function connectedContentRoute(config: ConnectedContentConfig, store: StateStore, usage: UsageCounter, onError: (error: unknown) => void) {
  const amplitude = loadAmplitudeConfig();
  const fallbackBody = config.fallbackBody ?? UNKNOWN_USER_ANSWER;
  const lookups = new ConnectedContent({
    store,
    amplitude: amplitudeClientOf(amplitude, usage),
    limiter: profileApiLimiter(store, amplitude),
    maxAgeMs: config.maxAgeMs,
    fallbackBody,
    fetchTimeoutMs: config.fetchTimeoutMs,
    suppression: new SuppressionList(store, suppressionKeyOf(amplitude)),
    onError,
  });
  return { lookups, token: config.token, cacheSeconds: config.cacheSeconds, fallbackBody };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { reportAndExit } = await import('../cli/output.js');
  await main().catch(reportAndExit);
}
