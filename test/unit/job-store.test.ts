/**
 * The in-memory storage ports (test/support/memory-storage.ts) against the contract the Table storage
 * ones meet on Azurite (test/integration/ledger.test.ts), so unit tests built on them test real behaviour.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { jobIdFor, newJob } from '../../shared/pipeline/job';
import { createMemoryStorage } from '../support/memory-storage';
import { draftJob, jobStoreContract } from '../support/job-store-contract';

jobStoreContract('in memory', async ({ now, tableName }) => {
  const storage = createMemoryStorage({ now, tableName });
  return { ...storage, jobIds: async () => storage.jobs.jobIds() };
});

describe('memory job store', () => {
  it('interleaves concurrent updates as storage does: they meet ETag conflicts and retry', async () => {
    const { jobs } = createMemoryStorage();
    const job = newJob(draftJob(1), jobIdFor(draftJob(1)));
    await jobs.create(job);
    await Promise.all(Array.from({ length: 10 }, (_, i) => jobs.update(job.id, (j) => j.warnings.push(`w${i}`))));
    assert.equal((await jobs.get(job.id))?.warnings.length, 10);
    assert.ok(jobs.conflicts > 0, 'concurrent updates met conflicts');
  });
});
