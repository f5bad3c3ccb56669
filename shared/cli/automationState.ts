/**
 * What `autorthanc backup` saves and `restore` puts back: the automation state, not the DICOM store
 * (Orthanc's own backup covers that). It is read and written directly on the host: the rules folder
 * (with master.json and mapping files), `.env` (keys and secrets), and every Table-storage table and
 * blob container of the app, found generically by the prefix all of them share (`automation…`: the job
 * ledger, bookings, destinations, and the ledger's `-warnings` container), so a table added later is
 * backed up without a change here. Direct storage rather than the function app's API: it is an
 * operator command on the host, it works while the app is down (the moment a restore is needed), and
 * no endpoint that dumps the whole ledger has to exist.
 *
 * The archive is one .tar.gz: `manifest.json` (format, versions, time, counts), `rules/…`, `env/.env`,
 * `tables/<name>.jsonl` (one entity a line, each property with its EDM type, so numbers, dates and
 * 64-bit integers come back as they were), `blobs/<container>/<name>`.
 */
import { TableServiceClient, type TableClient, type TableEntity } from '@azure/data-tables';
import { BlobServiceClient } from '@azure/storage-blob';
import { z } from 'zod';
import { normaliseConnectionString, tableClient } from '../storage/connection';
import { CliError } from './io';

/** Every table and blob container the app creates starts with this (shared/storage/*.ts). */
export const APP_STORAGE_PREFIX = 'automation';
export const BACKUP_FORMAT = 'autorthanc-functions-backup';
export const BACKUP_FORMAT_VERSION = 1;
/** The job ledger: restore refuses to write into one that already holds jobs, unless forced. */
export const LEDGER_TABLE = 'automationjobs';
export const LEDGER_JOB_PARTITION = 'job';

const EDM_TYPES = ['Binary', 'Boolean', 'DateTime', 'Double', 'Guid', 'Int32', 'Int64', 'String'] as const;

/** One table row as the archive holds it: keys, and every property as {type, value} text. */
export const storedEntitySchema = z.object({
  partitionKey: z.string(),
  rowKey: z.string(),
  properties: z.record(z.string(), z.object({ type: z.enum(EDM_TYPES), value: z.string() })),
});
export type StoredEntity = z.infer<typeof storedEntitySchema>;

export const manifestSchema = z.object({
  format: z.literal(BACKUP_FORMAT),
  formatVersion: z.number().int().min(1),
  appVersion: z.string(),
  createdAt: z.string(),
  rules: z.object({ files: z.array(z.string()), masterJson: z.boolean() }),
  env: z.object({ included: z.boolean(), variables: z.number().int().min(0), secrets: z.array(z.string()) }),
  tables: z.array(z.object({ name: z.string(), rows: z.number().int().min(0) })),
  containers: z.array(
    z.object({
      name: z.string(),
      blobs: z.array(z.object({ name: z.string(), contentType: z.string().optional(), bytes: z.number().int() })),
    }),
  ),
});
export type Manifest = z.infer<typeof manifestSchema>;

/** Table and container names are `[a-z0-9-]` by Azure's rules; anything else in an archive is refused. */
export const STORAGE_NAME = /^[A-Za-z0-9][A-Za-z0-9-]{2,62}$/;

export interface AppStorage {
  /** Where it is, fit to print (no key). */
  where: string;
  tables(): Promise<string[]>;
  table(name: string): TableClient;
  blobs: BlobServiceClient;
  containers(): Promise<string[]>;
}

export function openAppStorage(connectionString: string): AppStorage {
  const normalised = normaliseConnectionString(connectionString);
  let service: TableServiceClient;
  let blobs: BlobServiceClient;
  try {
    service = TableServiceClient.fromConnectionString(normalised, { allowInsecureConnection: true });
    blobs = BlobServiceClient.fromConnectionString(normalised);
  } catch (error) {
    throw new CliError(`the storage connection string is not usable (${(error as Error).message.split('\n')[0]})`);
  }
  const where = /TableEndpoint=([^;]+)/i.exec(normalised)?.[1] ?? service.url;
  return {
    where,
    async tables() {
      const names: string[] = [];
      for await (const t of service.listTables())
        if (t.name?.toLowerCase().startsWith(APP_STORAGE_PREFIX)) names.push(t.name);
      return names.sort();
    },
    table: (name) => tableClient(normalised, name),
    blobs,
    async containers() {
      const names: string[] = [];
      for await (const c of blobs.listContainers({ prefix: APP_STORAGE_PREFIX })) names.push(c.name);
      return names.sort();
    },
  };
}

/** A storage failure a person can act on (nothing listening, a refused key) as a CliError naming where. */
export function storageError(storage: Pick<AppStorage, 'where'>, error: unknown): CliError {
  const e = error as Error & { code?: string; statusCode?: number; cause?: { code?: string } };
  const why = e.code ?? e.cause?.code ?? (e.statusCode ? `HTTP ${e.statusCode}` : e.message.split('\n')[0]);
  return new CliError(
    `cannot use Table/Blob storage at ${storage.where} (${why}); is it running and reachable? (--storage-connection or AzureWebJobsStorage; docs/operations.md, Backup)`,
  );
}

/** An entity read with `disableTypeConversion`, as the archive stores it (no etag or timestamp: the service sets those). */
export function toStoredEntity(entity: Record<string, unknown>): StoredEntity {
  const properties: StoredEntity['properties'] = {};
  for (const [name, raw] of Object.entries(entity)) {
    if (name === 'partitionKey' || name === 'rowKey' || name === 'etag' || name === 'timestamp') continue;
    const typed = raw as { type?: string; value?: unknown };
    if (typed === null || typeof typed !== 'object' || typeof typed.type !== 'string')
      throw new Error(`property ${name} came back without its type`);
    properties[name] = { type: typed.type as StoredEntity['properties'][string]['type'], value: String(typed.value) };
  }
  return { partitionKey: String(entity.partitionKey), rowKey: String(entity.rowKey), properties };
}

/** The entity to write back: JSON types where the wire uses them, EDM-annotated text for the rest. */
export function fromStoredEntity(stored: StoredEntity): TableEntity<Record<string, unknown>> {
  const entity: TableEntity<Record<string, unknown>> = { partitionKey: stored.partitionKey, rowKey: stored.rowKey };
  for (const [name, { type, value }] of Object.entries(stored.properties)) {
    switch (type) {
      case 'String':
        entity[name] = value;
        break;
      case 'Boolean':
        entity[name] = value === 'true';
        break;
      case 'Int32':
        entity[name] = Number(value);
        break;
      case 'Double':
        // Annotated: a whole number written bare would come back as Int32.
        entity[name] = { type, value: Number(value) };
        break;
      default:
        entity[name] = { type, value };
    }
  }
  return entity;
}
