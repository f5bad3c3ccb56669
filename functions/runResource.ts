/**
 * POST /api/studies/{id}/run and /api/series/{id}/run: an operator (or Orthanc Explorer's button)
 * forces the rules to run again; a forced evaluation makes new jobs even for an unchanged resource.
 * Optional body: {"rules": ["ruleId", ...]} to run only some rules.
 */
import { app, output, type HttpRequest, type HttpResponseInit, type InvocationContext } from '@azure/functions';
import { STORAGE_CONNECTION } from '../shared/azure-functions/steps';
import { readJsonBody, readRouteId, requireJsonContentType } from '../shared/azure-functions/http';
import { runBodySchema } from '../shared/operator/run';
import { QUEUES, orthancIdSchema, type EvaluateMessage } from '../shared/pipeline/messages';
import type { ResourceLevel } from '../shared/vocabulary';

const evaluateQueue = output.storageQueue({ queueName: QUEUES.evaluate, connection: STORAGE_CONNECTION });

function runHandler(level: ResourceLevel) {
  return async (request: HttpRequest, context: InvocationContext): Promise<HttpResponseInit> => {
    const refused = requireJsonContentType(request);
    if (refused) return refused;
    const id = readRouteId(request, orthancIdSchema, `an Orthanc ${level.toLowerCase()} id`);
    if (!id.ok) return id.response;
    const body = await readJsonBody(request, runBodySchema, { optional: true });
    if (!body.ok) return body.response;
    const message: EvaluateMessage = {
      level,
      resourceId: id.value,
      source: 'manual',
      force: true,
      includeSeries: false,
      ruleIds: body.value?.rules,
    };
    context.extraOutputs.set(evaluateQueue, message);
    return { status: 202, jsonBody: { accepted: message } };
  };
}

app.http('runStudy', {
  methods: ['POST'],
  route: 'studies/{id}/run',
  authLevel: 'function',
  extraOutputs: [evaluateQueue],
  handler: runHandler('Study'),
});
app.http('runSeries', {
  methods: ['POST'],
  route: 'series/{id}/run',
  authLevel: 'function',
  extraOutputs: [evaluateQueue],
  handler: runHandler('Series'),
});
