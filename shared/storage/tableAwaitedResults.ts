/**
 * Jobs waiting for results in Azure Table storage: the `awaiting` partition of the job table, row =
 * hash of the forwarded StudyInstanceUID + job id, so the jobs of one study are a range query and
 * the open ones a filter on `linked`. Entries are written insert-if-absent before their job, so a
 * crash between the two leaves an entry without a job (dropped when found), never a job without one.
 */
import type { AwaitedEntry, AwaitedResults } from '../pipeline/ports';
import { studyKey } from '../pipeline/roundTrip';
import { deleteEntityIfAny, isStatus, type JobTable } from './table';

export const AWAITED_PARTITION = 'awaiting';

interface AwaitedEntity {
  partitionKey: string;
  rowKey: string;
  jobId: string;
  from: string;
  withinSeconds?: number;
  createdAt: string;
  linked: boolean;
  linkedAt?: string;
}

function entryOf(entity: AwaitedEntity): AwaitedEntry {
  return {
    jobId: entity.jobId,
    studyKey: entity.rowKey.slice(0, entity.rowKey.indexOf('-')),
    from: entity.from,
    ...(typeof entity.withinSeconds === 'number' ? { withinSeconds: entity.withinSeconds } : {}),
    createdAt: entity.createdAt,
    ...(entity.linked && entity.linkedAt ? { linkedAt: entity.linkedAt } : {}),
  };
}

export function createTableAwaitedResults({ table }: Pick<JobTable, 'table'>): AwaitedResults {
  const rowKey = (entry: Pick<AwaitedEntry, 'studyKey' | 'jobId'>) => `${entry.studyKey}-${entry.jobId}`;
  async function query(filter: string): Promise<AwaitedEntry[]> {
    const entries: AwaitedEntry[] = [];
    for await (const entity of table.listEntities<AwaitedEntity>({ queryOptions: { filter } }))
      entries.push(entryOf(entity));
    return entries.sort((a, b) => (a.createdAt < b.createdAt ? -1 : a.createdAt > b.createdAt ? 1 : 0));
  }
  return {
    async expect({ jobId, studyInstanceUid, from, withinSeconds, createdAt }) {
      const entity: AwaitedEntity = {
        partitionKey: AWAITED_PARTITION,
        rowKey: rowKey({ studyKey: studyKey(studyInstanceUid), jobId }),
        jobId,
        from,
        withinSeconds,
        createdAt,
        linked: false,
      };
      try {
        await table.createEntity(entity);
      } catch (error) {
        // Evaluated again (a duplicate event): the entry, perhaps linked since, stays as it is.
        if (!isStatus(error, 409)) throw error;
      }
    },
    // The key is hex (studyKey), so it is safe in the filter; '.' sorts right after '-'.
    forStudy: (uid) => {
      const key = studyKey(uid);
      return query(`PartitionKey eq '${AWAITED_PARTITION}' and RowKey ge '${key}-' and RowKey lt '${key}.'`);
    },
    open: () => query(`PartitionKey eq '${AWAITED_PARTITION}' and linked eq false`),
    async markLinked(entry, at) {
      try {
        await table.updateEntity(
          { partitionKey: AWAITED_PARTITION, rowKey: rowKey(entry), linked: true, linkedAt: at },
          'Merge',
        );
      } catch (error) {
        if (!isStatus(error, 404)) throw error;
      }
    },
    async remove(entry) {
      await deleteEntityIfAny(table, AWAITED_PARTITION, rowKey(entry));
    },
  };
}
