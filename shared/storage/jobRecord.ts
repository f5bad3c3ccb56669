/**
 * The read-change-write cycle of a job record under optimistic concurrency, one loop for the Table
 * store and the in-memory one, so both retry and index alike: a change that loses the race to another
 * writer runs again on the newer record, and the index row follows status and step changes (a few per
 * job), not every progress tick.
 */
import { isTerminal, type Job } from '../pipeline/job';

const MAX_UPDATE_ATTEMPTS = 20;

export interface JobRecordIo<Etag> {
  read(id: string): Promise<{ job: Job; etag: Etag } | undefined>;
  /** Writes the job if its record still has `etag` (spilling extra warnings first); false when another writer came first. */
  write(job: Job, etag: Etag): Promise<boolean>;
  writeIndex(job: Job): Promise<void>;
}

export async function updateJobRecord<Etag>(
  io: JobRecordIo<Etag>,
  id: string,
  change: (job: Job) => void,
): Promise<Job> {
  for (let attempt = 0; attempt < MAX_UPDATE_ATTEMPTS; attempt += 1) {
    const current = await io.read(id);
    if (!current) throw new Error(`Job ${id} not found in the ledger`);
    const was = `${current.job.status}/${current.job.currentStep}`;
    change(current.job);
    if (!(await io.write(current.job, current.etag))) continue;
    if (`${current.job.status}/${current.job.currentStep}` !== was || isTerminal(current.job))
      await io.writeIndex(current.job);
    return current.job;
  }
  throw new Error(`Job ${id}: too many concurrent updates`);
}
