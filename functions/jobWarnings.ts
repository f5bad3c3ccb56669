/**
 * GET /api/jobs/{id}/warnings (function key): every warning of a job, those on its record and those
 * the ledger moved to blobs when there were too many for one Table storage record.
 */
import { app, type HttpRequest, type HttpResponseInit } from '@azure/functions';
import { readRouteId } from '../shared/azure-functions/http';
import { getServices } from '../shared/composition/services';
import { jobIdSchema } from '../shared/pipeline/messages';

export async function jobWarnings(request: HttpRequest): Promise<HttpResponseInit> {
  const parsed = readRouteId(request, jobIdSchema, 'a job id');
  if (!parsed.ok) return parsed.response;
  const found = await (await getServices()).jobs.readWarnings(parsed.value);
  if (!found) return { status: 404, jsonBody: { error: `no job ${parsed.value}` } };
  return {
    status: 200,
    jsonBody: { jobId: parsed.value, count: found.warnings.length, warnings: found.warnings, overflow: found.overflow },
  };
}

app.http('jobWarnings', { methods: ['GET'], route: 'jobs/{id}/warnings', authLevel: 'function', handler: jobWarnings });
