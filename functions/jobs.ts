/**
 * The operator's job API (function key):
 * GET  /api/jobs?status=&rule=&resource=&limit=&days=&cursor=   recent jobs, newest first, paged
 * GET  /api/jobs/{id}                                           one job: steps, timings, counts, output, error
 * POST /api/jobs/{id}/retry                                     run a failed job again
 */
import { app, type HttpRequest, type HttpResponseInit, type InvocationContext } from '@azure/functions';
import { readQuery, readRouteId, requireJsonContentType } from '../shared/azure-functions/http';
import { getServices } from '../shared/composition/services';
import { handOnVia, stepOutputs } from '../shared/azure-functions/steps';
import { jobsQuerySchema, listJobs, percentDone, retryJob } from '../shared/operator/jobs';
import { QUEUES, jobIdSchema } from '../shared/pipeline/messages';
import { discardStaging } from '../shared/pipeline/staging';
import { withDestinationViews } from '../shared/pipeline/destinations';
import { resultsView } from '../shared/pipeline/roundTrip';

export async function jobsList(request: HttpRequest): Promise<HttpResponseInit> {
  const query = readQuery(request, jobsQuerySchema);
  if (!query.ok) return query.response;
  const { jobs, config } = await getServices();
  const listed = await listJobs(jobs, query.value);
  if (!listed.ok) return { status: 400, jsonBody: { error: listed.error } };
  return {
    status: 200,
    jsonBody: {
      jobs: listed.value.jobs
        .map((stored) => withDestinationViews(stored, new Date(), config.destinationStuckMs))
        .map((job) => ({ ...job, percent: percentDone(job), results: resultsView(job) })),
      next: listed.value.next,
    },
  };
}

export async function jobGet(request: HttpRequest): Promise<HttpResponseInit> {
  const parsed = readRouteId(request, jobIdSchema, 'a job id');
  if (!parsed.ok) return parsed.response;
  const id = parsed.value;
  const { jobs, config } = await getServices();
  const stored = await jobs.get(id);
  if (!stored) return { status: 404, jsonBody: { error: `no job ${id}` } };
  // A destination waiting longer than AUTOMATION_DESTINATION_STUCK_MINUTES reads 'stuck'.
  const job = withDestinationViews(stored, new Date(), config.destinationStuckMs);
  return { status: 200, jsonBody: { ...job, percent: percentDone(job), results: resultsView(job) } };
}

export async function jobRetry(request: HttpRequest, context: InvocationContext): Promise<HttpResponseInit> {
  const refused = requireJsonContentType(request);
  if (refused) return refused;
  const parsed = readRouteId(request, jobIdSchema, 'a job id');
  if (!parsed.ok) return parsed.response;
  const id = parsed.value;
  const { jobs, config } = await getServices();
  const outcome = await retryJob(jobs, id, new Date(), (job) => discardStaging(config.stagingPath, job.id));
  if (outcome.kind === 'not-found') return { status: 404, jsonBody: { error: `no job ${id}` } };
  if (outcome.kind === 'not-failed')
    return { status: 409, jsonBody: { error: `job ${id} is ${outcome.status}; only failed jobs can be retried` } };
  handOnVia(context)(QUEUES.step(outcome.step), { jobId: id, step: outcome.step });
  context.log(`Job ${id} (${outcome.job.ruleId}) retried by an operator from step '${outcome.step}'`);
  return { status: 202, jsonBody: { job: outcome.job, step: outcome.step } };
}

app.http('jobsList', { methods: ['GET'], route: 'jobs', authLevel: 'function', handler: jobsList });
app.http('jobGet', { methods: ['GET'], route: 'jobs/{id}', authLevel: 'function', handler: jobGet });
app.http('jobRetry', {
  methods: ['POST'],
  route: 'jobs/{id}/retry',
  authLevel: 'function',
  extraOutputs: Object.values(stepOutputs),
  handler: jobRetry,
});
