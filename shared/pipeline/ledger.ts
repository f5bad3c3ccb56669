/**
 * The job ledger in Azure Table storage (Azurite locally).
 *
 * - `job` partition, row = job id: the job itself; created insert-if-absent so that the same
 *   (rule, resource, LastUpdate) seen twice collapses to one job. Updates use ETags.
 * - `recent-YYYYMMDD` partitions, row = inverted time + id: an index so "recent jobs" reads a
 *   day's partition from the newest end instead of scanning the table. Each index row carries a
 *   small summary of its job (status, step, rule, resource ids, counts; never a patient attribute),
 *   rewritten whenever the job's status or step changes, so filters and the 24-hour counters are
 *   answered from the index alone.
 * - `lock` partition, row = hash of an output path: which job may write that output now.
 * - `cursor` partition: the change feed's position in Orthanc's /changes.
 *
 * A record is one JSON property, and Table storage refuses a property over 64 KiB (32,768 UTF-16
 * characters), so a job that piles up warnings (one per excluded instance, say) would stop being
 * writable. The record keeps the first MAX_RECORDED_WARNINGS, each bounded; the rest go to blobs in
 * `<table>-warnings/<job id>/…`, named on the record (`warningsOverflow`) and read back whole by
 * `readWarnings`. Each spill writes a new blob, so concurrent updates never overwrite each other's;
 * an update that loses its ETag race leaves an unlisted blob, removed with the job by the purge.
 * Old jobs are purged (`purgeBefore`, AUTOMATION_LEDGER_RETENTION_DAYS) with their index rows and blobs.
 */
import { createHash, randomBytes } from 'node:crypto';
import { RestError, type TableClient } from '@azure/data-tables';
import { BlobServiceClient, type ContainerClient } from '@azure/storage-blob';
import type { Job, WarningsOverflow } from './job';
import { isTerminal } from './job';
import { normaliseConnectionString, tableClient } from '../storage/connection';
import { forEachLimit } from '../util/concurrency';

const JOB_PARTITION = 'job';
const LOCK_PARTITION = 'lock';
const CURSOR_PARTITION = 'cursor';
const MAX_TIME = 9_999_999_999_999;

/** Table storage's limit on one string property, in UTF-16 code units (64 KiB). */
export const MAX_PROPERTY_CHARS = 32_768;
/** Warnings kept on the record itself; the rest are in blobs. */
export const MAX_RECORDED_WARNINGS = 25;
/** A longer warning is cut on the record (25 x 500 characters leave room for the rest of the job). */
export const MAX_WARNING_CHARS = 500;
/** Overflow blobs per job (one per update that overflowed; a handful in practice). */
const MAX_OVERFLOW_BLOBS = 100;

interface JobEntity {
  partitionKey: string;
  rowKey: string;
  ruleId: string;
  status: string;
  createdAt: string;
  body: string;
}

/** What an index row knows of its job: enough to filter and count without reading the job. */
export interface JobSummary {
  jobId: string;
  ruleId: string;
  status: Job['status'];
  step: string;
  level: string;
  resourceId: string;
  studyInstanceUid?: string;
  createdAt: string;
  finishedAt?: string;
  instances?: number;
  bytes?: number;
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
  /**
   * Newest first, from `before` (default now) back `days` days. `next` is an opaque cursor: pass
   * it back as `cursor` for the following page.
   */
  listRecent(options: {
    limit: number;
    days?: number;
    filter?: ListFilter;
    before?: string;
    cursor?: string;
  }): Promise<{ jobs: Job[]; next?: string }>;
  /** Summaries of the jobs created since `since`, newest first, read from the index only. */
  summariesSince(since: Date): Promise<JobSummary[]>;
  /** Claim an output path for a job; false while another unfinished job holds it. */
  acquireOutput(outputKey: string, jobId: string): Promise<{ acquired: true } | { acquired: false; holder: string }>;
  releaseOutput(outputKey: string, jobId: string): Promise<void>;
  getCursor(name: string): Promise<number | undefined>;
  setCursor(name: string, value: number): Promise<void>;
  ping(): Promise<void>;
  /** Every warning of a job: those on the record, then those in its overflow blobs. */
  readWarnings(id: string): Promise<{ warnings: string[]; overflow?: WarningsOverflow } | undefined>;
  /** Deletes jobs created before `cutoff`, their index rows and overflow blobs. */
  purgeBefore(cutoff: Date): Promise<PurgeResult>;
}

export interface PurgeResult {
  jobs: number;
  indexRows: number;
  blobs: number;
}

function isStatus(error: unknown, status: number): boolean {
  return error instanceof RestError
    ? error.statusCode === status
    : (error as { statusCode?: number })?.statusCode === status;
}

function dayKey(iso: string): string {
  return `recent-${iso.slice(0, 10).replace(/-/g, '')}`;
}

function indexRow(job: Pick<Job, 'id' | 'createdAt'>): string {
  const inverted = String(MAX_TIME - Date.parse(job.createdAt)).padStart(13, '0');
  return `${inverted}-${job.id}`;
}

export function summaryOf(job: Job): JobSummary {
  const counted = job.steps.filter((s) => s.instances !== undefined);
  return {
    jobId: job.id,
    ruleId: job.ruleId,
    status: job.status,
    step: job.currentStep,
    level: job.level,
    resourceId: job.resourceId,
    studyInstanceUid: job.studyInstanceUid,
    createdAt: job.createdAt,
    finishedAt: job.finishedAt,
    instances: counted.length ? Math.max(...counted.map((s) => s.instances ?? 0)) : undefined,
    bytes: counted.length ? Math.max(...job.steps.map((s) => s.bytes ?? 0)) : undefined,
  };
}

function indexEntity(job: Job) {
  const summary = summaryOf(job);
  // Table storage rejects undefined-valued properties only by omitting them.
  const defined = Object.fromEntries(Object.entries(summary).filter(([, v]) => v !== undefined));
  return { partitionKey: dayKey(job.createdAt), rowKey: indexRow(job), ...defined };
}

/** A text property of a table row ('' or undefined when absent or not text). */
function textOf(value: unknown): string | undefined {
  return typeof value === 'string' || typeof value === 'number' ? String(value) : undefined;
}

function fromIndex(row: Record<string, unknown>): JobSummary {
  return {
    jobId: textOf(row.jobId) ?? '',
    ruleId: textOf(row.ruleId) ?? '',
    status: (row.status as Job['status']) ?? 'queued',
    step: textOf(row.step) ?? '',
    level: textOf(row.level) ?? '',
    resourceId: textOf(row.resourceId) ?? '',
    studyInstanceUid: textOf(row.studyInstanceUid),
    createdAt: textOf(row.createdAt) ?? '',
    finishedAt: textOf(row.finishedAt),
    instances: row.instances === undefined ? undefined : Number(row.instances),
    bytes: row.bytes === undefined ? undefined : Number(row.bytes),
  };
}

/** A page cursor: the day partition and the last row key returned. */
function encodeCursor(partition: string, rowKey: string): string {
  return Buffer.from(`${partition}|${rowKey}`, 'utf8').toString('base64url');
}

function decodeCursor(cursor: string): { partition: string; rowKey: string } {
  const [partition, rowKey] = Buffer.from(cursor, 'base64url').toString('utf8').split('|');
  if (!/^recent-\d{8}$/.test(partition ?? '') || !/^\d{13}-[A-Za-z0-9_-]+$/.test(rowKey ?? ''))
    throw new InvalidCursorError(cursor);
  return { partition, rowKey };
}

export class InvalidCursorError extends Error {
  constructor(cursor: string) {
    super(`'${cursor.slice(0, 40)}' is not a cursor this API returned`);
    this.name = 'InvalidCursorError';
  }
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

function outputRow(outputKey: string): string {
  return createHash('sha256').update(outputKey).digest('hex');
}

/** A warning as the record keeps it: cut to MAX_WARNING_CHARS, saying how long it was. */
export function boundedWarning(warning: string): string {
  if (warning.length <= MAX_WARNING_CHARS) return warning;
  const note = ` … (${warning.length} characters)`;
  return `${warning.slice(0, MAX_WARNING_CHARS - note.length)}${note}`;
}

export async function createLedger(connectionString: string, tableName = 'automationjobs'): Promise<Ledger> {
  const table: TableClient = tableClient(connectionString, tableName);
  await ensureTable(table);
  const containerName = `${tableName.toLowerCase()}-warnings`;
  const container: ContainerClient = BlobServiceClient.fromConnectionString(
    normaliseConnectionString(connectionString),
  ).getContainerClient(containerName);
  let containerReady: Promise<unknown> | undefined;

  /** Moves warnings beyond the record's share into a new blob, before the record is written. */
  async function spill(job: Job): Promise<void> {
    job.warnings = job.warnings.map(boundedWarning);
    if (job.warnings.length <= MAX_RECORDED_WARNINGS) return;
    const overflow = job.warnings.slice(MAX_RECORDED_WARNINGS);
    job.warnings = job.warnings.slice(0, MAX_RECORDED_WARNINGS);
    const record: WarningsOverflow = job.warningsOverflow ?? { count: 0, container: containerName, blobs: [] };
    if (record.blobs.length < MAX_OVERFLOW_BLOBS) {
      containerReady ??= container.createIfNotExists().catch((error: unknown) => {
        containerReady = undefined;
        throw error;
      });
      await containerReady;
      const name = `${job.id}/${String(Date.now()).padStart(13, '0')}-${randomBytes(4).toString('hex')}.json`;
      const body = JSON.stringify(overflow);
      await container.getBlockBlobClient(name).upload(body, Buffer.byteLength(body), {
        blobHTTPHeaders: { blobContentType: 'application/json' },
        conditions: { ifNoneMatch: '*' },
      });
      record.blobs.push(name);
    } else {
      record.dropped = (record.dropped ?? 0) + overflow.length;
    }
    record.count += overflow.length;
    job.warningsOverflow = record;
  }

  async function deleteBlobsOf(jobId: string): Promise<number> {
    let deleted = 0;
    try {
      for await (const blob of container.listBlobsFlat({ prefix: `${jobId}/` })) {
        await container.deleteBlob(blob.name).catch((error: unknown) => {
          if (!isStatus(error, 404)) throw error;
        });
        deleted += 1;
      }
    } catch (error) {
      // No container yet: no job ever overflowed.
      if (!isStatus(error, 404)) throw error;
    }
    return deleted;
  }

  async function deleteEntity(partitionKey: string, rowKey: string): Promise<boolean> {
    try {
      await table.deleteEntity(partitionKey, rowKey);
      return true;
    } catch (error) {
      if (isStatus(error, 404)) return false;
      throw error;
    }
  }

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
      await spill(job);
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

    async getJob(id) {
      return (await read(id))?.job;
    },

    async updateJob(id, change) {
      for (let attempt = 0; attempt < 20; attempt += 1) {
        const current = await read(id);
        if (!current) throw new Error(`Job ${id} not found in the ledger`);
        const was = `${current.job.status}/${current.job.currentStep}`;
        change(current.job);
        try {
          await spill(current.job);
          await table.updateEntity(toEntity(current.job), 'Replace', { etag: current.etag });
          // The index follows status and step changes (a few per job), not every progress tick.
          if (`${current.job.status}/${current.job.currentStep}` !== was || isTerminal(current.job)) {
            await table.upsertEntity(indexEntity(current.job), 'Replace');
          }
          return current.job;
        } catch (error) {
          if (!isStatus(error, 412)) throw error;
          await new Promise((resolve) => setTimeout(resolve, 10 + Math.random() * 40));
        }
      }
      throw new Error(`Job ${id}: too many concurrent updates`);
    },

    async listRecent({ limit, days = 7, filter = {}, before, cursor }) {
      const jobs: Job[] = [];
      const from = cursor ? decodeCursor(cursor) : undefined;
      const start = from ? partitionDate(from.partition) : before ? Date.parse(before) : Date.now();
      const floor = from?.rowKey ?? (before ? `${String(MAX_TIME - Date.parse(before)).padStart(13, '0')}-~` : '');
      let last: { partition: string; rowKey: string } | undefined;
      for (let day = 0; day < days; day += 1) {
        const partition = dayKey(new Date(start - day * 86_400_000).toISOString());
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
            const found = await Promise.all(chunk.map((row) => ledger.getJob(String(row.jobId))));
            for (let i = 0; i < found.length; i += 1) {
              const job = found[i];
              if (!job || !matches(job, filter)) continue;
              if (jobs.length === limit)
                return { jobs, next: last ? encodeCursor(last.partition, last.rowKey) : undefined };
              jobs.push(job);
              last = { partition, rowKey: String(chunk[i].rowKey) };
            }
          }
        }
      }
      return { jobs };
    },

    async summariesSince(since) {
      const summaries: JobSummary[] = [];
      const ceiling = String(MAX_TIME - since.getTime()).padStart(13, '0');
      for (let at = Date.now(); dayKey(new Date(at).toISOString()) >= dayKey(since.toISOString()); at -= 86_400_000) {
        const partition = dayKey(new Date(at).toISOString());
        const rows = table.listEntities<Record<string, unknown>>({
          queryOptions: { filter: `PartitionKey eq '${partition}' and RowKey lt '${ceiling}'` },
        });
        for await (const row of rows) summaries.push(fromIndex(row));
      }
      return summaries;
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
      await table.upsertEntity(
        { partitionKey: CURSOR_PARTITION, rowKey: name, value, updatedAt: new Date().toISOString() },
        'Replace',
      );
    },

    async ping() {
      await table
        .listEntities({ queryOptions: { filter: `PartitionKey eq '${CURSOR_PARTITION}'` } })
        .byPage({ maxPageSize: 1 })
        .next();
    },

    async readWarnings(id) {
      const job = await ledger.getJob(id);
      if (!job) return undefined;
      const warnings = [...job.warnings];
      for (const name of job.warningsOverflow?.blobs ?? []) {
        const text = (await container.getBlockBlobClient(name).downloadToBuffer()).toString('utf8');
        warnings.push(...(JSON.parse(text) as string[]));
      }
      return { warnings, overflow: job.warningsOverflow };
    },

    async purgeBefore(cutoff) {
      const result: PurgeResult = { jobs: 0, indexRows: 0, blobs: 0 };
      const purge = async (jobId: string) => {
        if (await deleteEntity(JOB_PARTITION, jobId)) result.jobs += 1;
        result.blobs += await deleteBlobsOf(jobId);
      };
      // The index first: day partitions up to the cutoff's day, rows older than the cutoff (their time is in the row key).
      const indexRows = table.listEntities<Record<string, unknown>>({
        queryOptions: {
          filter: `PartitionKey ge 'recent-' and PartitionKey le '${dayKey(cutoff.toISOString())}'`,
          select: ['PartitionKey', 'RowKey', 'jobId'],
        },
      });
      const old: Array<{ partitionKey: string; rowKey: string; jobId: string }> = [];
      for await (const row of indexRows) {
        const created = MAX_TIME - Number(String(row.rowKey).slice(0, 13));
        if (created < cutoff.getTime())
          old.push({
            partitionKey: String(row.partitionKey),
            rowKey: String(row.rowKey),
            jobId: textOf(row.jobId) ?? String(row.rowKey).slice(14),
          });
      }
      await forEachLimit(old, 8, async (row) => {
        await purge(row.jobId);
        if (await deleteEntity(row.partitionKey, row.rowKey)) result.indexRows += 1;
      });
      // Then jobs whose index row was never written (a crash between the two writes).
      const jobs = table.listEntities<JobEntity>({
        queryOptions: {
          filter: `PartitionKey eq '${JOB_PARTITION}' and createdAt lt '${cutoff.toISOString()}'`,
          select: ['RowKey', 'createdAt'],
        },
      });
      const orphans: Array<{ id: string; createdAt: string }> = [];
      for await (const entity of jobs) orphans.push({ id: String(entity.rowKey), createdAt: String(entity.createdAt) });
      await forEachLimit(orphans, 8, async (job) => {
        await purge(job.id);
        if (await deleteEntity(dayKey(job.createdAt), indexRow(job))) result.indexRows += 1;
      });
      return result;
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

function partitionDate(partition: string): number {
  const d = partition.slice('recent-'.length);
  return Date.parse(`${d.slice(0, 4)}-${d.slice(4, 6)}-${d.slice(6, 8)}T23:59:59.999Z`);
}

/**
 * Filters on the index row, so only candidate jobs are read; the job itself confirms the match.
 * Rows written before the index carried summaries have no fields and are always candidates.
 */
function mayMatch(row: Record<string, unknown>, filter: ListFilter): boolean {
  if (filter.status && row.status !== undefined && row.status !== filter.status) return false;
  if (filter.ruleId && row.ruleId !== undefined && row.ruleId !== filter.ruleId) return false;
  if (
    filter.resource &&
    row.resourceId !== undefined &&
    row.resourceId !== filter.resource &&
    row.studyInstanceUid !== filter.resource
  )
    return false;
  return true;
}

function matches(job: Job, filter: ListFilter): boolean {
  if (filter.status && job.status !== filter.status) return false;
  if (filter.ruleId && job.ruleId !== filter.ruleId) return false;
  if (filter.resource && job.resourceId !== filter.resource && job.studyInstanceUid !== filter.resource) return false;
  return true;
}
