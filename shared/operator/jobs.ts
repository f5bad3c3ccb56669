/**
 * The operator's view of jobs: query parameters validated like any other untrusted input, and the
 * retry of a failed job. Search is by Orthanc id or StudyInstanceUID only, never by a patient
 * attribute, so the API can be used without handling PHI.
 */
import { z } from 'zod';
import { isTerminal, resetForRetry, type Job } from '../pipeline/job';
import type { PipelineStep } from '../vocabulary';
import { InvalidCursorError, type JobStore, type ListFilter } from '../pipeline/ports';
import { orthancIdSchema } from '../pipeline/messages';

const dicomUidSchema = z
  .string()
  .regex(/^[0-9]+(\.[0-9]+)*$/, 'expected a DICOM UID')
  .max(64);

export const jobsQuerySchema = z
  .object({
    status: z.enum(['queued', 'running', 'succeeded', 'failed']).optional(),
    rule: z.string().min(1).max(200).optional(),
    resource: z
      .union([orthancIdSchema, dicomUidSchema], { message: 'expected an Orthanc id or a StudyInstanceUID' })
      .optional(),
    limit: z.coerce.number().int().min(1).max(200).default(50),
    days: z.coerce.number().int().min(1).max(31).default(7),
    cursor: z.string().min(1).max(400).optional(),
  })
  .strict();
export type JobsQuery = z.infer<typeof jobsQuerySchema>;

type QueryResult<T> = { ok: true; value: T } | { ok: false; error: string };

export async function listJobs(
  jobs: Pick<JobStore, 'listRecent'>,
  query: JobsQuery,
): Promise<QueryResult<{ jobs: Job[]; next?: string }>> {
  const filter: ListFilter = { status: query.status, ruleId: query.rule, resource: query.resource };
  try {
    return {
      ok: true,
      value: await jobs.listRecent({ limit: query.limit, days: query.days, filter, cursor: query.cursor }),
    };
  } catch (error) {
    if (error instanceof InvalidCursorError) return { ok: false, error: error.message };
    throw error;
  }
}

export type RetryOutcome =
  | { kind: 'retried'; job: Job; step: PipelineStep }
  | { kind: 'not-found' }
  | { kind: 'not-failed'; status: Job['status'] };

/**
 * A failed job runs again under the same id. Pipelines that write files start over from their first
 * step: the download empties the working folder, so a half-anonymised or half-zipped folder is
 * never resumed. Pipelines without files (forward from Orthanc) resume at the step that failed.
 * `discardStaging` deletes what the failed run left in private staging before anything runs again.
 */
export async function retryJob(
  jobs: Pick<JobStore, 'get' | 'update'>,
  id: string,
  now = new Date(),
  discardStaging?: (job: Job) => Promise<void>,
): Promise<RetryOutcome> {
  const stored = await jobs.get(id);
  if (!stored) return { kind: 'not-found' };
  if (stored.status !== 'failed') return { kind: 'not-failed', status: stored.status };
  await discardStaging?.(stored);
  let step: PipelineStep | undefined;
  let notFailed: Job['status'] | undefined;
  const job = await jobs.update(id, (j) => {
    if (j.status !== 'failed') {
      notFailed = j.status; // retried by someone else in the meantime
      return;
    }
    step = resetForRetry(j, now, { restart: j.steps.some((s) => s.name === 'download') });
  });
  if (notFailed !== undefined || step === undefined) return { kind: 'not-failed', status: notFailed ?? job.status };
  return { kind: 'retried', job, step };
}

/** Progress of a job in one number (0-100), for lists and dashboards. */
export function percentDone(job: Job): number {
  if (isTerminal(job)) return 100;
  const total = job.steps.length;
  let done = job.steps.filter((s) => s.status === 'succeeded' || s.status === 'skipped').length;
  const current = job.steps.find((s) => s.name === job.currentStep);
  if (current?.progress && current.progress.total > 0) done += current.progress.done / current.progress.total;
  return Math.round((100 * done) / total);
}
