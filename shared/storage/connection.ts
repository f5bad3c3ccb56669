/**
 * Azure Storage clients from the app's `AzureWebJobsStorage` connection string (Azurite locally).
 * `UseDevelopmentStorage=true` is expanded to Azurite's well-known account so every SDK agrees.
 */
import { TableClient } from '@azure/data-tables';
import { QueueServiceClient } from '@azure/storage-queue';

const DEV_ACCOUNT = 'devstoreaccount1';
const DEV_KEY = 'Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==';

/** Expands the development shorthand; other connection strings pass through unchanged. */
export function normaliseConnectionString(connectionString: string): string {
  const parts = new Map<string, string>();
  for (const segment of connectionString.split(';')) {
    const at = segment.indexOf('=');
    if (at > 0) parts.set(segment.slice(0, at).trim().toLowerCase(), segment.slice(at + 1).trim());
  }
  if (parts.get('usedevelopmentstorage')?.toLowerCase() !== 'true') return connectionString;
  const proxy = (parts.get('developmentstorageproxyuri') ?? 'http://127.0.0.1').replace(/\/+$/, '');
  return [
    'DefaultEndpointsProtocol=http',
    `AccountName=${DEV_ACCOUNT}`,
    `AccountKey=${DEV_KEY}`,
    `BlobEndpoint=${proxy}:10000/${DEV_ACCOUNT}`,
    `QueueEndpoint=${proxy}:10001/${DEV_ACCOUNT}`,
    `TableEndpoint=${proxy}:10002/${DEV_ACCOUNT}`,
  ].join(';');
}

export function queueService(connectionString: string): QueueServiceClient {
  return QueueServiceClient.fromConnectionString(normaliseConnectionString(connectionString));
}

export function tableClient(connectionString: string, table: string): TableClient {
  return TableClient.fromConnectionString(normaliseConnectionString(connectionString), table, {
    allowInsecureConnection: true,
  });
}
