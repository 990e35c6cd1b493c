import { Client, Connection } from '@temporalio/client';
import { loadTemporalConfig, temporalConnectionOptions, type TemporalConfig } from '../config.js';

/** Connects to the configured Temporal, turning an unreachable server into one plain sentence. */
export async function withTemporalClient<T>(body: (client: Client, config: TemporalConfig) => Promise<T>): Promise<T> {
  const config = loadTemporalConfig();
  let connection: Connection;
  try {
    connection = await Connection.connect({ ...(await temporalConnectionOptions(config)), connectTimeout: 10_000 });
  } catch (error) {
    throw new Error(
      `cannot reach Temporal at ${config.address} (${(error as Error).message}). Is \`npm run temporal\` running, or TEMPORAL_ADDRESS right?`,
    );
  }
  try {
    return await body(new Client({ connection, namespace: config.namespace }), config);
  } finally {
    await connection.close();
  }
}
