/**
 * A TCP relay on a free loopback port that holds each connection for a while before passing it on:
 * a real DICOM node behind a slow link (a VPN, a satellite site), for the dashboard's "slow" echo.
 */
import net from 'node:net';
import { freePort } from './process';

export interface SlowProxy {
  port: number;
  stop(): Promise<void>;
}

export async function startSlowProxy(target: { host: string; port: number }, delayMs: number): Promise<SlowProxy> {
  const port = await freePort();
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    sockets.add(client);
    client.pause();
    const timer = setTimeout(() => {
      const upstream = net.connect(target.port, target.host, () => {
        client.pipe(upstream);
        upstream.pipe(client);
        client.resume();
      });
      sockets.add(upstream);
      upstream.on('error', () => client.destroy());
      upstream.on('close', () => sockets.delete(upstream));
    }, delayMs);
    client.on('error', () => undefined);
    client.on('close', () => {
      clearTimeout(timer);
      sockets.delete(client);
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', resolve);
  });
  return {
    port,
    async stop() {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
