/**
 * Output locks in Azure Table storage: the `lock` partition, row = SHA-256 of the output path, naming
 * the job that may write it. A lock whose job has ended (or was purged) lapses, and the next job
 * takes it over with an ETag, so two claimants never both win.
 */
import { createHash } from 'node:crypto';
import { isTerminal } from '../pipeline/job';
import type { JobStore, OutputLocks } from '../pipeline/ports';
import { LOCK_PARTITION, getEntityIfAny, isStatus, type JobTable } from './table';

const MAX_CLAIM_ATTEMPTS = 10;

function outputRow(outputKey: string): string {
  return createHash('sha256').update(outputKey).digest('hex');
}

/** `jobs` tells whether a lock's holder is still unfinished. */
export function createTableOutputLocks({ table }: JobTable, jobs: Pick<JobStore, 'get'>): OutputLocks {
  return {
    async acquire(outputKey, jobId) {
      const rowKey = outputRow(outputKey);
      for (let attempt = 0; attempt < MAX_CLAIM_ATTEMPTS; attempt += 1) {
        try {
          await table.createEntity({ partitionKey: LOCK_PARTITION, rowKey, jobId, outputKey });
          return { acquired: true };
        } catch (error) {
          if (!isStatus(error, 409)) throw error;
        }
        const lock = await getEntityIfAny<{ jobId: string }>(table, LOCK_PARTITION, rowKey);
        if (!lock) continue; // released in between: try to create it again
        if (lock.jobId === jobId) return { acquired: true };
        const holder = await jobs.get(lock.jobId);
        if (holder && !isTerminal(holder)) return { acquired: false, holder: lock.jobId };
        try {
          await table.updateEntity({ partitionKey: LOCK_PARTITION, rowKey, jobId, outputKey }, 'Replace', {
            etag: lock.etag,
          });
          return { acquired: true };
        } catch (error) {
          if (!isStatus(error, 412) && !isStatus(error, 404)) throw error;
        }
      }
      throw new Error(`Could not claim output ${outputKey}: contended`);
    },

    async release(outputKey, jobId) {
      const rowKey = outputRow(outputKey);
      try {
        const lock = await getEntityIfAny<{ jobId: string }>(table, LOCK_PARTITION, rowKey);
        if (lock?.jobId === jobId) await table.deleteEntity(LOCK_PARTITION, rowKey, { etag: lock.etag });
      } catch (error) {
        if (!isStatus(error, 404) && !isStatus(error, 412)) throw error;
      }
    },
  };
}
