/**
 * The dashboard's destinations (shared/destinations/store.ts) in their own Azure Table
 * (`automationdestinations`), so a backup or an operator can read them apart from the job ledger:
 * - `destination` partition, row = the name in lower case (one name in any case is one destination),
 *   columns name, kind (absent on the first records: DICOM), aet, host, port for DICOM or url and
 *   credentialsFrom (a setting's name, never a secret) for DICOMweb, createdAt, updatedAt, updatedBy; writes carry the ETag of the read
 *   they were made from, so of two concurrent edits one wins and the other is told to reload;
 * - `audit` partition, row = inverted time + a random suffix (newest first in the table's own order),
 *   columns at, who, action, name, before and after (JSON).
 */
import { randomBytes } from 'node:crypto';
import type { TableClient } from '@azure/data-tables';
import {
  DestinationConflict,
  isDicomWeb,
  type DestinationChange,
  type DestinationFields,
  type DestinationStore,
  type StoredDestination,
} from '../destinations/store';
import { tableClient } from './connection';
import { isStatus } from './table';

export const DESTINATIONS_TABLE = 'automationdestinations';
export const DESTINATION_PARTITION = 'destination';
export const AUDIT_PARTITION = 'audit';

/** Larger than any millisecond timestamp until the year 2286, so inverted times keep 13 digits. */
const TIME_CEILING = 9_999_999_999_999;

interface DestinationEntity {
  partitionKey: string;
  rowKey: string;
  name: string;
  kind?: string;
  aet?: string;
  host?: string;
  port?: number;
  url?: string;
  credentialsFrom?: string;
  createdAt: string;
  updatedAt: string;
  updatedBy: string;
}

interface AuditEntity {
  partitionKey: string;
  rowKey: string;
  at: string;
  who: string;
  action: string;
  name: string;
  before?: string;
  after?: string;
}

function entityOf(d: StoredDestination): DestinationEntity {
  return {
    partitionKey: DESTINATION_PARTITION,
    rowKey: d.name.toLowerCase(),
    name: d.name,
    ...(isDicomWeb(d)
      ? { kind: 'dicomweb', url: d.url, ...(d.credentialsFrom ? { credentialsFrom: d.credentialsFrom } : {}) }
      : { aet: d.aet, host: d.host, port: d.port }),
    createdAt: d.createdAt,
    updatedAt: d.updatedAt,
    updatedBy: d.updatedBy,
  };
}

function destinationOf(e: DestinationEntity & { etag?: string }): StoredDestination {
  const meta = {
    name: e.name,
    createdAt: e.createdAt,
    updatedAt: e.updatedAt,
    updatedBy: e.updatedBy,
    version: e.etag,
  };
  if (e.kind === 'dicomweb')
    return {
      ...meta,
      kind: 'dicomweb',
      url: e.url ?? '',
      ...(e.credentialsFrom ? { credentialsFrom: e.credentialsFrom } : {}),
    };
  return { ...meta, aet: e.aet ?? '', host: e.host ?? '', port: Number(e.port) };
}

const fields = (json: string | undefined): DestinationFields | undefined =>
  json === undefined ? undefined : (JSON.parse(json) as DestinationFields);

/** A write refused because the record changed (412), is gone (404) or exists (409). */
function conflictOf(error: unknown): DestinationConflict | undefined {
  if (isStatus(error, 409)) return new DestinationConflict('exists');
  if (isStatus(error, 412)) return new DestinationConflict('changed');
  if (isStatus(error, 404)) return new DestinationConflict('missing');
  return undefined;
}

export async function createTableDestinationStore(
  connectionString: string,
  tableName = DESTINATIONS_TABLE,
): Promise<DestinationStore> {
  const table: TableClient = tableClient(connectionString, tableName);
  try {
    await table.createTable();
  } catch (error) {
    if (!isStatus(error, 409)) throw error;
  }
  const write = async (run: () => Promise<unknown>) => {
    try {
      await run();
    } catch (error) {
      throw conflictOf(error) ?? error;
    }
  };
  const etagOf = (d: StoredDestination) => {
    if (!d.version) throw new Error(`destination ${d.name}: a write needs the version of the record it was read from`);
    return d.version;
  };

  return {
    async list() {
      const out: StoredDestination[] = [];
      const filter = `PartitionKey eq '${DESTINATION_PARTITION}'`;
      for await (const e of table.listEntities<DestinationEntity>({ queryOptions: { filter } }))
        out.push(destinationOf(e));
      return out.sort((a, b) => a.name.localeCompare(b.name));
    },
    async get(name) {
      try {
        return destinationOf(await table.getEntity<DestinationEntity>(DESTINATION_PARTITION, name.toLowerCase()));
      } catch (error) {
        if (isStatus(error, 404)) return undefined;
        throw error;
      }
    },
    create: (d) => write(() => table.createEntity(entityOf(d))),
    async replace(expected, next) {
      if (expected.name.toLowerCase() !== next.name.toLowerCase())
        throw new Error(`destination ${expected.name}: a replacement must keep the name`);
      await write(() => table.updateEntity(entityOf(next), 'Replace', { etag: etagOf(expected) }));
    },
    remove: (expected) =>
      write(() => table.deleteEntity(DESTINATION_PARTITION, expected.name.toLowerCase(), { etag: etagOf(expected) })),
    async record(change) {
      const inverted = String(TIME_CEILING - Date.parse(change.at)).padStart(13, '0');
      await table.createEntity<AuditEntity>({
        partitionKey: AUDIT_PARTITION,
        rowKey: `${inverted}-${randomBytes(4).toString('hex')}`,
        at: change.at,
        who: change.who,
        action: change.action,
        name: change.name,
        ...(change.before ? { before: JSON.stringify(change.before) } : {}),
        ...(change.after ? { after: JSON.stringify(change.after) } : {}),
      });
    },
    async audit(limit) {
      const out: DestinationChange[] = [];
      const filter = `PartitionKey eq '${AUDIT_PARTITION}'`;
      for await (const page of table.listEntities<AuditEntity>({ queryOptions: { filter } }).byPage({
        maxPageSize: Math.min(limit, 1000),
      })) {
        for (const e of page) {
          if (out.length >= limit) break;
          const before = fields(e.before);
          const after = fields(e.after);
          out.push({
            at: e.at,
            who: e.who,
            action: e.action as DestinationChange['action'],
            name: e.name,
            ...(before ? { before } : {}),
            ...(after ? { after } : {}),
          });
        }
        if (out.length >= limit) break;
      }
      return out;
    },
  };
}
