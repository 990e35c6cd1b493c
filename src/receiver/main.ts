/**
 * `npm run receiver` / `ampbraze receive`: the HTTP receiver on RECEIVER_PORT (8780). It needs the store and
 * Temporal, not the vendors' keys: what it acknowledges is forwarded by the workers. It starts even while Temporal is
 * unreachable (what it spools waits, and the workflows are started once Temporal answers); `/readyz` tells.
 */
import { Client, Connection } from '@temporalio/client';
import { loadReceiverConfig, loadStoreConfig, loadTemporalConfig, temporalConnectionOptions } from '../config.js';
import { openStateStore } from '../store/index.js';
import { nudgeCohortStream, nudgeCurrentsForward } from '../client.js';
import { buildReceiver } from './server.js';
import { nudgeEventStream } from '../../kinds/event-stream/kind.js';

export async function main(): Promise<void> {
  const receiver = loadReceiverConfig();
  const temporal = loadTemporalConfig();
  // Every acknowledgement is on disk before it is sent, and no store operation holds a request for long.
  const store = await openStateStore({ ...loadStoreConfig(), timeoutMs: receiver.storeTimeoutMs, durableCommits: true });
  const connection = Connection.lazy(await temporalConnectionOptions(temporal));
  const client = new Client({ connection, namespace: temporal.namespace });
  const app = buildReceiver({
    store,
    limits: receiver,
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
  ].filter(Boolean);
  console.log(
    `Receiver listening on ${address} (${[...routes, 'GET /healthz', 'GET /readyz'].join(', ')}); state store: ${store.description}`,
  );
  const stop = async () => {
    // Requests in flight finish (new ones get 503), then the store and Temporal connection close.
    await app.close();
    await connection.close();
    await store.close();
  };
  for (const signal of ['SIGTERM', 'SIGINT'] as const) process.once(signal, () => void stop());
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { reportAndExit } = await import('../cli/output.js');
  await main().catch(reportAndExit);
}
