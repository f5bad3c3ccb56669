/** The three storage ports on one Azure Table (see table.ts for its layout), as the composition root builds them. */
import type { AwaitedResults, Cursors, JobStore, OutputLocks } from '../pipeline/ports';
import type { AlertClaims } from '../alerts/alerts';
import { openJobTable } from './table';
import { createTableAlertClaims } from './tableAlertClaims';
import { createTableAwaitedResults } from './tableAwaitedResults';
import { createTableCursors } from './tableCursors';
import { createTableJobStore, type TableJobStoreOptions } from './tableJobStore';
import { createTableOutputLocks } from './tableOutputLocks';

export interface StoragePorts {
  jobs: JobStore;
  outputLocks: OutputLocks;
  cursors: Cursors;
  /** Which instance sends an alert (the `alert` partition). */
  alertClaims: AlertClaims;
  /** Jobs waiting for results from an AI node (the `awaiting` partition). */
  awaitedResults: AwaitedResults;
}

export async function openTableStorage(
  connectionString: string,
  tableName?: string,
  options: TableJobStoreOptions = {},
): Promise<StoragePorts> {
  const table = await openJobTable(connectionString, tableName);
  const jobs = createTableJobStore(table, options);
  return {
    jobs,
    outputLocks: createTableOutputLocks(table, jobs),
    cursors: createTableCursors(table),
    alertClaims: createTableAlertClaims(table),
    awaitedResults: createTableAwaitedResults(table),
  };
}
