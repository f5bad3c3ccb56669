/**
 * The job ledger in Azure Table storage (Azurite locally).
 *
 * - `job` partition, row = job id: the job itself; created insert-if-absent so that the same
 *   (rule, resource, LastUpdate) seen twice collapses to one job. Updates use ETags.
 * - `recent-YYYYMMDD` partitions, row = inverted time + id: an index so "recent jobs" reads a
 *   day's partition from the newest end instead of scanning the table.
 * - `lock` partition, row = hash of an output path: which job may write that output now.
 * - `cursor` partition: the change feed's position in Orthanc's /changes.
 */
import { createHash } from 'node:crypto';
import { RestError, type TableClient } from '@azure/data-tables';
import type { Job } from './job';
import { isTerminal } from './job';
import { tableClient } from '../storage/connection';

const JOB_PARTITION = 'job';
const LOCK_PARTITION = 'lock';
const CURSOR_PARTITION = 'cursor';
const MAX_TIME = 9_999_999_999_999;

interface JobEntity {
  partitionKey: string;
  rowKey: string;
  ruleId: string;
  status: string;
  createdAt: string;
  body: string;
}

export interface ListFilter {
  status?: Job['status'];
  ruleId?: string;
  /** Orthanc id or StudyInstanceUID (never a patient attribute). */
  resource?: string;
}

export interface Ledger {
  createJob(job: Job): Promise<{ job: Job; created: boolean }>;
  getJob(id: string): Promise<Job | undefined>;
  /** Read-modify-write with optimistic concurrency; `change` may run more than once. */
  updateJob(id: string, change: (job: Job) => void): Promise<Job>;
  listRecent(options: { limit: number; days?: number; filter?: ListFilter; before?: string }): Promise<{ jobs: Job[]; next?: string }>;
  /** Claim an output path for a job; false while another unfinished job holds it. */
  acquireOutput(outputKey: string, jobId: string): Promise<{ acquired: true } | { acquired: false; holder: string }>;
  releaseOutput(outputKey: string, jobId: string): Promise<void>;
  getCursor(name: string): Promise<number | undefined>;
  setCursor(name: string, value: number): Promise<void>;
  ping(): Promise<void>;
}

function isStatus(error: unknown, status: number): boolean {
  return error instanceof RestError ? error.statusCode === status : (error as { statusCode?: number })?.statusCode === status;
}

function dayKey(iso: string): string {
  return `recent-${iso.slice(0, 10).replace(/-/g, '')}`;
}

function indexRow(job: Job): string {
  const inverted = String(MAX_TIME - Date.parse(job.createdAt)).padStart(13, '0');
  return `${inverted}-${job.id}`;
}

function toEntity(job: Job): JobEntity {
  return { partitionKey: JOB_PARTITION, rowKey: job.id, ruleId: job.ruleId, status: job.status, createdAt: job.createdAt, body: JSON.stringify(job) };
}

function outputRow(outputKey: string): string {
  return createHash('sha256').update(outputKey).digest('hex');
}

export async function createLedger(connectionString: string, tableName = 'automationjobs'): Promise<Ledger> {
  const table: TableClient = tableClient(connectionString, tableName);
  await ensureTable(table);

  async function read(id: string): Promise<{ job: Job; etag: string } | undefined> {
    try {
      const entity = await table.getEntity<JobEntity>(JOB_PARTITION, id);
      return { job: JSON.parse(entity.body) as Job, etag: entity.etag };
    } catch (error) {
      if (isStatus(error, 404)) return undefined;
      throw error;
    }
  }

  const ledger: Ledger = {
    async createJob(job) {
      try {
        await table.createEntity(toEntity(job));
      } catch (error) {
        if (!isStatus(error, 409)) throw error;
        const existing = await read(job.id);
        if (!existing) throw new Error(`Job ${job.id} reported as existing but cannot be read`, { cause: error });
        return { job: existing.job, created: false };
      }
      // The index is written after the job; a crash in between only hides the job from listings
      // until its next update rewrites the index row (upsert), never loses it.
      await table.upsertEntity({ partitionKey: dayKey(job.createdAt), rowKey: indexRow(job), jobId: job.id }, 'Replace');
      return { job, created: true };
    },

    async getJob(id) {
      return (await read(id))?.job;
    },

    async updateJob(id, change) {
      for (let attempt = 0; attempt < 20; attempt += 1) {
        const current = await read(id);
        if (!current) throw new Error(`Job ${id} not found in the ledger`);
        change(current.job);
        try {
          await table.updateEntity(toEntity(current.job), 'Replace', { etag: current.etag });
          if (attempt === 0 && isTerminal(current.job)) {
            await table.upsertEntity({ partitionKey: dayKey(current.job.createdAt), rowKey: indexRow(current.job), jobId: id }, 'Replace');
          }
          return current.job;
        } catch (error) {
          if (!isStatus(error, 412)) throw error;
          await new Promise((resolve) => setTimeout(resolve, 10 + Math.random() * 40));
        }
      }
      throw new Error(`Job ${id}: too many concurrent updates`);
    },

    async listRecent({ limit, days = 7, filter = {}, before }) {
      const jobs: Job[] = [];
      const start = before ? Date.parse(before) : Date.now();
      for (let day = 0; day < days && jobs.length < limit; day += 1) {
        const partition = dayKey(new Date(start - day * 86_400_000).toISOString());
        const rowFloor = before ? String(MAX_TIME - Date.parse(before)).padStart(13, '0') : '';
        const query = table.listEntities<{ jobId: string; rowKey: string }>({
          queryOptions: { filter: rowFloor ? `PartitionKey eq '${partition}' and RowKey gt '${rowFloor}-~'` : `PartitionKey eq '${partition}'` },
        });
        for await (const page of query.byPage({ maxPageSize: Math.max(limit * 2, 50) })) {
          const found = await Promise.all(page.map((row) => ledger.getJob(row.jobId)));
          for (const job of found) {
            if (!job || !matches(job, filter)) continue;
            jobs.push(job);
            if (jobs.length >= limit) break;
          }
          if (jobs.length >= limit) break;
        }
      }
      const last = jobs.at(-1);
      return { jobs, next: jobs.length >= limit && last ? last.createdAt : undefined };
    },

    async acquireOutput(outputKey, jobId) {
      const rowKey = outputRow(outputKey);
      for (let attempt = 0; attempt < 10; attempt += 1) {
        try {
          await table.createEntity({ partitionKey: LOCK_PARTITION, rowKey, jobId, outputKey });
          return { acquired: true };
        } catch (error) {
          if (!isStatus(error, 409)) throw error;
        }
        let lock;
        try {
          lock = await table.getEntity<{ jobId: string }>(LOCK_PARTITION, rowKey);
        } catch (error) {
          if (isStatus(error, 404)) continue;
          throw error;
        }
        if (lock.jobId === jobId) return { acquired: true };
        const holder = await ledger.getJob(lock.jobId);
        if (holder && !isTerminal(holder)) return { acquired: false, holder: lock.jobId };
        try {
          await table.updateEntity({ partitionKey: LOCK_PARTITION, rowKey, jobId, outputKey }, 'Replace', { etag: lock.etag });
          return { acquired: true };
        } catch (error) {
          if (!isStatus(error, 412) && !isStatus(error, 404)) throw error;
        }
      }
      throw new Error(`Could not claim output ${outputKey}: contended`);
    },

    async releaseOutput(outputKey, jobId) {
      const rowKey = outputRow(outputKey);
      try {
        const lock = await table.getEntity<{ jobId: string }>(LOCK_PARTITION, rowKey);
        if (lock.jobId === jobId) await table.deleteEntity(LOCK_PARTITION, rowKey, { etag: lock.etag });
      } catch (error) {
        if (!isStatus(error, 404) && !isStatus(error, 412)) throw error;
      }
    },

    async getCursor(name) {
      try {
        const entity = await table.getEntity<{ value: number }>(CURSOR_PARTITION, name);
        return Number(entity.value);
      } catch (error) {
        if (isStatus(error, 404)) return undefined;
        throw error;
      }
    },

    async setCursor(name, value) {
      await table.upsertEntity({ partitionKey: CURSOR_PARTITION, rowKey: name, value, updatedAt: new Date().toISOString() }, 'Replace');
    },

    async ping() {
      await table.listEntities({ queryOptions: { filter: `PartitionKey eq '${CURSOR_PARTITION}'` } }).byPage({ maxPageSize: 1 }).next();
    },
  };
  return ledger;
}

async function ensureTable(table: TableClient): Promise<void> {
  try {
    await table.createTable();
  } catch (error) {
    if (!isStatus(error, 409)) throw error;
  }
}

function matches(job: Job, filter: ListFilter): boolean {
  if (filter.status && job.status !== filter.status) return false;
  if (filter.ruleId && job.ruleId !== filter.ruleId) return false;
  if (filter.resource && job.resourceId !== filter.resource && job.studyInstanceUid !== filter.resource) return false;
  return true;
}
