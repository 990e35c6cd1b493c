/**
 * A TCP proxy in front of a real server (PostgreSQL, Temporal), to make it unreachable without touching it: `refuse`
 * closes every connection at once (as a server that is down), `pause` holds every byte in both directions (as a
 * server that stopped answering: SIGSTOP, a network partition), `forward` passes everything through.
 */
import { connect, createServer, type AddressInfo, type Socket } from 'node:net';

export type ProxyMode = 'forward' | 'pause' | 'refuse';

export interface TcpProxy {
  port: number;
  setMode(mode: ProxyMode): void;
  close(): Promise<void>;
}

export async function startTcpProxy(target: { host: string; port: number }, initialMode: ProxyMode = 'forward'): Promise<TcpProxy> {
  let mode = initialMode;
  const links = new Set<{ flush(): void; destroy(): void }>();
  const server = createServer((client) => {
    if (mode === 'refuse') return client.destroy();
    const upstream = connect(target.port, target.host);
    const held: Array<{ to: Socket; chunk: Buffer }> = [];
    const relay = (to: Socket) => (chunk: Buffer) => (mode === 'pause' ? held.push({ to, chunk }) : to.write(chunk));
    client.on('data', relay(upstream));
    upstream.on('data', relay(client));
    const link = {
      flush: () => held.splice(0).forEach(({ to, chunk }) => to.write(chunk)),
      destroy: () => {
        client.destroy();
        upstream.destroy();
      },
    };
    links.add(link);
    const end = () => {
      links.delete(link);
      link.destroy();
    };
    client.on('close', end).on('error', end);
    upstream.on('close', end).on('error', end);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    setMode(next) {
      mode = next;
      if (next === 'forward') for (const link of links) link.flush();
      if (next === 'refuse') for (const link of links) link.destroy();
    },
    close: async () => {
      for (const link of links) link.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}
