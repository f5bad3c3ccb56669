/**
 * The one Azure Table (Azurite locally) behind the job store, the output locks and the cursors:
 * - `job` partition, row = job id: the job record (tableJobStore.ts);
 * - `recent-YYYYMMDD` partitions, row = inverted time + id: the index of job summaries (jobIndex.ts);
 * - `lock` partition, row = hash of an output path: which job may write that output now (tableOutputLocks.ts);
 * - `cursor` partition: the change feed's position in Orthanc's /changes (tableCursors.ts);
 * - `alert` partition, row = alert kind + hash of its subject: when it was last sent (tableAlertClaims.ts);
 * - `awaiting` partition, row = hash of a forwarded StudyInstanceUID + job id: jobs expecting results (tableAwaitedResults.ts);
 * and the `<table>-warnings` blob container the job records spill warnings into (warningOverflow.ts).
 */
import { RestError, type GetTableEntityResponse, type TableClient, type TableEntityResult } from '@azure/data-tables';
import { BlobServiceClient, type ContainerClient } from '@azure/storage-blob';
import { normaliseConnectionString, tableClient } from './connection';

export const DEFAULT_TABLE = 'automationjobs';
export const JOB_PARTITION = 'job';
export const LOCK_PARTITION = 'lock';
export const CURSOR_PARTITION = 'cursor';

export interface JobTable {
  table: TableClient;
  /** `<table>-warnings`: where a job's warnings beyond the record's share go; created on first use. */
  warnings: ContainerClient;
}

/** Opens the table, creating it when absent. */
export async function openJobTable(connectionString: string, tableName = DEFAULT_TABLE): Promise<JobTable> {
  const table = tableClient(connectionString, tableName);
  try {
    await table.createTable();
  } catch (error) {
    if (!isStatus(error, 409)) throw error;
  }
  const blobs = BlobServiceClient.fromConnectionString(normaliseConnectionString(connectionString));
  return { table, warnings: blobs.getContainerClient(`${tableName.toLowerCase()}-warnings`) };
}

/** Whether a storage call failed with this HTTP status (RestError, or an error carrying `statusCode`). */
export function isStatus(error: unknown, status: number): boolean {
  return error instanceof RestError
    ? error.statusCode === status
    : (error as { statusCode?: number })?.statusCode === status;
}

/** Reads an entity; undefined when there is none. */
export async function getEntityIfAny<T extends object>(
  table: TableClient,
  partitionKey: string,
  rowKey: string,
): Promise<GetTableEntityResponse<TableEntityResult<T>> | undefined> {
  try {
    return await table.getEntity<T>(partitionKey, rowKey);
  } catch (error) {
    if (isStatus(error, 404)) return undefined;
    throw error;
  }
}

/** Deletes an entity; false when it was already gone. */
export async function deleteEntityIfAny(table: TableClient, partitionKey: string, rowKey: string): Promise<boolean> {
  try {
    await table.deleteEntity(partitionKey, rowKey);
    return true;
  } catch (error) {
    if (isStatus(error, 404)) return false;
    throw error;
  }
}

/** The cheapest query that proves the table answers: one page of one row from the tiny cursor partition. */
export async function pingTable(table: TableClient): Promise<void> {
  await table
    .listEntities({ queryOptions: { filter: `PartitionKey eq '${CURSOR_PARTITION}'` } })
    .byPage({ maxPageSize: 1 })
    .next();
}
