/**
 * The job store in Azure Table storage: the `job` partition, row = job id, one JSON property per job.
 * Jobs are created insert-if-absent, so the same (rule, resource, LastUpdate) seen twice collapses to
 * one job; updates use ETags. The index rows (jobIndex.ts) follow status and step changes, and
 * warnings beyond the record's share go to blobs (warningOverflow.ts). Old jobs are purged
 * (`purgeBefore`, AUTOMATION_LEDGER_RETENTION_DAYS) with their index rows and blobs.
 */
import type { TableClient } from '@azure/data-tables';
import { forEachLimit } from '../util/concurrency';
import type { Job, JobSummary } from '../pipeline/job';
import { matchesFilter, type JobStore, type PurgeResult } from '../pipeline/ports';
import {
  DAY_MS,
  createdAtOfRow,
  dayKey,
  decodeCursor,
  encodeCursor,
  fromIndex,
  indexEntity,
  indexRow,
  invertedTime,
  mayMatch,
  partitionDate,
  textOf,
} from './jobIndex';
import { updateJobRecord, type JobRecordIo } from './jobRecord';
import { JOB_PARTITION, deleteEntityIfAny, getEntityIfAny, isStatus, pingTable, type JobTable } from './table';
import { warningBlobs, type WarningBlobs } from './warningOverflow';

interface JobEntity {
  partitionKey: string;
  rowKey: string;
  ruleId: string;
  status: string;
  createdAt: string;
  body: string;
}

function toEntity(job: Job): JobEntity {
  return {
    partitionKey: JOB_PARTITION,
    rowKey: job.id,
    ruleId: job.ruleId,
    status: job.status,
    createdAt: job.createdAt,
    body: JSON.stringify(job),
  };
}

export interface TableJobStoreOptions {
  /** The clock "now" is read from when listing and summarising (the system's by default). */
  now?: () => Date;
}

export function createTableJobStore({ table, warnings }: JobTable, options: TableJobStoreOptions = {}): JobStore {
  const now = options.now ?? (() => new Date());
  const blobs = warningBlobs(warnings);

  async function read(id: string): Promise<{ job: Job; etag: string } | undefined> {
    const entity = await getEntityIfAny<JobEntity>(table, JOB_PARTITION, id);
    return entity && { job: JSON.parse(entity.body) as Job, etag: entity.etag };
  }

  const record: JobRecordIo<string> = {
    read,
    async write(job, etag) {
      try {
        await blobs.spill(job);
        await table.updateEntity(toEntity(job), 'Replace', { etag });
        return true;
      } catch (error) {
        if (!isStatus(error, 412)) throw error;
        await new Promise((resolve) => setTimeout(resolve, 10 + Math.random() * 40));
        return false;
      }
    },
    writeIndex: async (job) => void (await table.upsertEntity(indexEntity(job), 'Replace')),
  };

  const store: JobStore = {
    async create(job) {
      await blobs.spill(job);
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
      await table.upsertEntity(indexEntity(job), 'Replace');
      return { job, created: true };
    },

    async get(id) {
      return (await read(id))?.job;
    },

    update: (id, change) => updateJobRecord(record, id, change),

    listRecent: (options) => listRecent(table, (id) => store.get(id), now, options),

    async summariesSince(since) {
      const summaries: JobSummary[] = [];
      const ceiling = invertedTime(since.getTime());
      for (let at = now().getTime(); dayKey(new Date(at).toISOString()) >= dayKey(since.toISOString()); at -= DAY_MS) {
        const partition = dayKey(new Date(at).toISOString());
        const rows = table.listEntities<Record<string, unknown>>({
          queryOptions: { filter: `PartitionKey eq '${partition}' and RowKey lt '${ceiling}'` },
        });
        for await (const row of rows) summaries.push(fromIndex(row));
      }
      return summaries;
    },

    async readWarnings(id) {
      const job = await store.get(id);
      if (!job) return undefined;
      const all = [...job.warnings];
      for (const name of job.warningsOverflow?.blobs ?? []) all.push(...(await blobs.read(name)));
      return { warnings: all, overflow: job.warningsOverflow };
    },

    purgeBefore: (cutoff) => purgeBefore(table, blobs, cutoff),

    ping: () => pingTable(table),
  };
  return store;
}

/** Newest first through the day partitions of the index, reading only the jobs a page needs. */
async function listRecent(
  table: TableClient,
  get: JobStore['get'],
  now: () => Date,
  { limit, days = 7, filter = {}, before, cursor }: Parameters<JobStore['listRecent']>[0],
): ReturnType<JobStore['listRecent']> {
  const jobs: Job[] = [];
  const from = cursor ? decodeCursor(cursor) : undefined;
  const start = from ? partitionDate(from.partition) : before ? Date.parse(before) : now().getTime();
  const floor = from?.rowKey ?? (before ? `${invertedTime(Date.parse(before))}-~` : '');
  let last: { partition: string; rowKey: string } | undefined;
  for (let day = 0; day < days; day += 1) {
    const partition = dayKey(new Date(start - day * DAY_MS).toISOString());
    const rowFilter = day === 0 && floor ? ` and RowKey gt '${floor}'` : '';
    const query = table.listEntities<Record<string, unknown>>({
      queryOptions: { filter: `PartitionKey eq '${partition}'${rowFilter}` },
    });
    for await (const page of query.byPage({ maxPageSize: Math.max(limit * 2, 50) })) {
      const wanted = page.filter((row) => mayMatch(row, filter));
      // Jobs are read only as far as the page needs (plus one, which tells whether there is a next page).
      for (let offset = 0; offset < wanted.length;) {
        const chunk = wanted.slice(offset, offset + limit + 1 - jobs.length);
        offset += chunk.length;
        const found = await Promise.all(chunk.map((row) => get(String(row.jobId))));
        for (let i = 0; i < found.length; i += 1) {
          const job = found[i];
          if (!job || !matchesFilter(job, filter)) continue;
          if (jobs.length === limit)
            return { jobs, next: last ? encodeCursor(last.partition, last.rowKey) : undefined };
          jobs.push(job);
          last = { partition, rowKey: String(chunk[i].rowKey) };
        }
      }
    }
  }
  return { jobs };
}

/** The index rows older than the cutoff with their jobs and blobs, then jobs that never got an index row. */
async function purgeBefore(table: TableClient, blobs: WarningBlobs, cutoff: Date): Promise<PurgeResult> {
  /** Deletes a job, its blobs and (when known) its index row, counting what went. */
  async function purgeJob(jobId: string, result: PurgeResult, indexKey?: { partitionKey: string; rowKey: string }) {
    if (await deleteEntityIfAny(table, JOB_PARTITION, jobId)) result.jobs += 1;
    result.blobs += await blobs.deleteOf(jobId);
    if (indexKey && (await deleteEntityIfAny(table, indexKey.partitionKey, indexKey.rowKey))) result.indexRows += 1;
  }
  const result: PurgeResult = { jobs: 0, indexRows: 0, blobs: 0 };
  // The index first: day partitions up to the cutoff's day, rows older than the cutoff (their time is in the row key).
  const indexRows = table.listEntities<Record<string, unknown>>({
    queryOptions: {
      filter: `PartitionKey ge 'recent-' and PartitionKey le '${dayKey(cutoff.toISOString())}'`,
      select: ['PartitionKey', 'RowKey', 'jobId'],
    },
  });
  const old: Array<{ partitionKey: string; rowKey: string; jobId: string }> = [];
  for await (const row of indexRows) {
    const rowKey = String(row.rowKey);
    if (createdAtOfRow(rowKey) < cutoff.getTime())
      old.push({ partitionKey: String(row.partitionKey), rowKey, jobId: textOf(row.jobId) ?? rowKey.slice(14) });
  }
  await forEachLimit(old, 8, (row) => purgeJob(row.jobId, result, row));
  // Then jobs whose index row was never written (a crash between the two writes).
  const jobs = table.listEntities<JobEntity>({
    queryOptions: {
      filter: `PartitionKey eq '${JOB_PARTITION}' and createdAt lt '${cutoff.toISOString()}'`,
      select: ['RowKey', 'createdAt'],
    },
  });
  const orphans: Array<{ id: string; createdAt: string }> = [];
  for await (const entity of jobs) orphans.push({ id: String(entity.rowKey), createdAt: String(entity.createdAt) });
  await forEachLimit(orphans, 8, (job) =>
    purgeJob(job.id, result, { partitionKey: dayKey(job.createdAt), rowKey: indexRow(job) }),
  );
  return result;
}
