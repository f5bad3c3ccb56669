/**
 * The job ledger on real Azurite: the storage ports' contract (test/support/job-store-contract.ts) on
 * the Table storage implementation, each case on a table of its own; and the step runner on it:
 * duplicate messages arriving together run a step once.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { jobIdFor, newJob } from '../../shared/pipeline/job';
import { runStep } from '../../shared/pipeline/runner';
import { tableClient } from '../../shared/storage/connection';
import { createQueueSender } from '../../shared/storage/queues';
import { JOB_PARTITION } from '../../shared/storage/table';
import { openTableStorage, type StoragePorts } from '../../shared/storage/tableStorage';
import { startAzurite, type AzuriteServer } from '../support/azurite';
import { draftJob, jobStoreContract } from '../support/job-store-contract';

let azurite: AzuriteServer;
before(async () => {
  azurite = await startAzurite();
});
after(async () => azurite?.stop());

jobStoreContract('Table storage on Azurite', async ({ now, tableName }) => {
  const ports = await openTableStorage(azurite.connectionString, tableName, { now });
  const jobIds = async () => {
    const ids: string[] = [];
    for await (const row of tableClient(azurite.connectionString, tableName).listEntities({
      queryOptions: { filter: `PartitionKey eq '${JOB_PARTITION}'`, select: ['RowKey'] },
    }))
      ids.push(String(row.rowKey));
    return ids;
  };
  return { ...ports, jobIds };
});

describe('step runner on Azurite', { timeout: 60_000 }, () => {
  let ports: StoragePorts;
  before(async () => {
    ports = await openTableStorage(azurite.connectionString, 'ledgertest');
  });

  it('runs a step once when duplicate messages for it arrive together; the others come back later', async () => {
    const job = newJob(draftJob(60), jobIdFor(draftJob(60)));
    await ports.jobs.create(job);
    const queues = createQueueSender(azurite.connectionString);
    const quiet = { info: () => undefined, warn: () => undefined, error: () => undefined };
    let runs = 0;
    const slowDownload = async () => {
      runs += 1;
      await new Promise((resolve) => setTimeout(resolve, 500));
      return { instances: 1 };
    };
    const message = { jobId: job.id, step: 'download' };
    const outcomes = await Promise.all(
      Array.from({ length: 8 }, () =>
        runStep({ jobs: ports.jobs, queues, log: quiet, handOn: () => undefined }, 'download', slowDownload, message),
      ),
    );
    const stored = await ports.jobs.get(job.id);
    assert.equal(runs, 1, `outcomes: ${outcomes.join(', ')}`);
    assert.deepEqual(
      outcomes.filter((o) => o !== 'busy'),
      ['done'],
    );
    assert.equal(stored?.steps.find((st) => st.name === 'download')?.attempts, 1);
    assert.equal(await queues.depth('step-download'), 7, 'each duplicate is sent back once, to check again later');
  });
});
