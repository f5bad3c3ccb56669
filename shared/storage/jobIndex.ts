/**
 * The index of jobs in the table: `recent-YYYYMMDD` partitions, row = inverted time + id, so "recent
 * jobs" reads a day's partition from the newest end instead of scanning the table. Each index row
 * carries a small summary of its job (status, step, rule, resource ids, counts; never a patient
 * attribute), rewritten whenever the job's status or step changes, so filters and the 24-hour counters
 * are answered from the index alone.
 */
import { summaryOf, type Job, type JobSummary } from '../pipeline/job';
import { InvalidCursorError, type ListFilter } from '../pipeline/ports';

const MAX_TIME = 9_999_999_999_999;
export const DAY_MS = 86_400_000;

export function dayKey(iso: string): string {
  return `recent-${iso.slice(0, 10).replace(/-/g, '')}`;
}

/** Row keys sort newest first: the inverted creation time, then the id. */
export function invertedTime(ms: number): string {
  return String(MAX_TIME - ms).padStart(13, '0');
}

export function indexRow(job: Pick<Job, 'id' | 'createdAt'>): string {
  return `${invertedTime(Date.parse(job.createdAt))}-${job.id}`;
}

/** When the job of an index row was created (its time is in the row key). */
export function createdAtOfRow(rowKey: string): number {
  return MAX_TIME - Number(rowKey.slice(0, 13));
}

export function indexEntity(job: Job) {
  const summary = summaryOf(job);
  // Table storage rejects undefined-valued properties only by omitting them.
  const defined = Object.fromEntries(Object.entries(summary).filter(([, v]) => v !== undefined));
  return { partitionKey: dayKey(job.createdAt), rowKey: indexRow(job), ...defined };
}

/** A text property of a table row (undefined when absent or not text). */
export function textOf(value: unknown): string | undefined {
  return typeof value === 'string' || typeof value === 'number' ? String(value) : undefined;
}

export function fromIndex(row: Record<string, unknown>): JobSummary {
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
export function encodeCursor(partition: string, rowKey: string): string {
  return Buffer.from(`${partition}|${rowKey}`, 'utf8').toString('base64url');
}

export function decodeCursor(cursor: string): { partition: string; rowKey: string } {
  const [partition, rowKey] = Buffer.from(cursor, 'base64url').toString('utf8').split('|');
  if (!/^recent-\d{8}$/.test(partition ?? '') || !/^\d{13}-[A-Za-z0-9_-]+$/.test(rowKey ?? ''))
    throw new InvalidCursorError(cursor);
  return { partition, rowKey };
}

/** The last millisecond of a day partition. */
export function partitionDate(partition: string): number {
  const d = partition.slice('recent-'.length);
  return Date.parse(`${d.slice(0, 4)}-${d.slice(4, 6)}-${d.slice(6, 8)}T23:59:59.999Z`);
}

/**
 * Filters on the index row, so only candidate jobs are read; the job itself confirms the match.
 * Rows written before the index carried summaries have no fields and are always candidates.
 */
export function mayMatch(row: Record<string, unknown>, filter: ListFilter): boolean {
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
