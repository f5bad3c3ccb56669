/**
 * A real Azurite (blob, queue, table) on free loopback ports. In memory unless `persistentDir` is
 * given; with a folder, stop() + start() keeps queues, tables and blobs (a restart of storage).
 * The account is Azurite's well-known devstoreaccount1; the connection string names all three
 * endpoints explicitly, because the ports are not the defaults.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { FatalWaitError, freePort, portOpen, spawnManaged, waitFor, type ManagedProcess } from './process';

const REPO = path.resolve(__dirname, '../..');
const KEY = 'Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==';

export interface AzuriteServer {
  connectionString: string;
  blobPort: number;
  queuePort: number;
  tablePort: number;
  start(): Promise<void>;
  stop(): Promise<void>;
  logs(): string;
}

export async function startAzurite(options: { persistentDir?: string } = {}): Promise<AzuriteServer> {
  const binary = path.join(REPO, 'node_modules/.bin/azurite');
  if (!existsSync(binary)) throw new Error(`Required ${binary} is missing (npm dev dependency 'azurite'). Run: npm ci`);
  const [blobPort, queuePort, tablePort] = [await freePort(), await freePort(), await freePort()];
  const args = [
    '--silent',
    '--skipApiVersionCheck',
    '--loose',
    '--disableProductStyleUrl',
    '--blobHost',
    '127.0.0.1',
    '--blobPort',
    String(blobPort),
    '--queueHost',
    '127.0.0.1',
    '--queuePort',
    String(queuePort),
    '--tableHost',
    '127.0.0.1',
    '--tablePort',
    String(tablePort),
    ...(options.persistentDir ? ['--location', options.persistentDir] : ['--inMemoryPersistence']),
  ];
  let proc: ManagedProcess | undefined;
  const server: AzuriteServer = {
    connectionString: [
      'DefaultEndpointsProtocol=http',
      'AccountName=devstoreaccount1',
      `AccountKey=${KEY}`,
      `BlobEndpoint=http://127.0.0.1:${blobPort}/devstoreaccount1`,
      `QueueEndpoint=http://127.0.0.1:${queuePort}/devstoreaccount1`,
      `TableEndpoint=http://127.0.0.1:${tablePort}/devstoreaccount1`,
    ].join(';'),
    blobPort,
    queuePort,
    tablePort,
    async start() {
      if (proc?.running()) return;
      proc = spawnManaged(binary, args, { name: 'azurite' });
      await waitFor(
        async () => {
          if (!proc!.running()) throw new FatalWaitError(`Azurite exited during startup: ${proc!.output()}`);
          return (await portOpen(blobPort)) && (await portOpen(queuePort)) && (await portOpen(tablePort));
        },
        {
          timeoutMs: 30_000,
          intervalMs: 100,
          description: `Azurite to listen on 127.0.0.1:${blobPort}/${queuePort}/${tablePort}`,
          onTimeout: () => proc!.output(),
        },
      );
    },
    async stop() {
      await proc?.stop('SIGTERM', 10_000);
    },
    logs: () => proc?.output() ?? '',
  };
  await server.start();
  return server;
}
