/**
 * POST /api/orthanc/events: the Lua hook's stable events. Validates and enqueues, answers 202 at
 * once, and never calls Orthanc while handling the request (Orthanc's REST API is blocked while its
 * Lua callback waits for this answer).
 */
import { app, output, type HttpRequest, type HttpResponseInit, type InvocationContext } from '@azure/functions';
import { STORAGE_CONNECTION } from '../shared/azure-functions/steps';
import { readJsonBody } from '../shared/azure-functions/http';
import { QUEUES, eventToEvaluateMessage, orthancEventSchema } from '../shared/pipeline/messages';

const evaluateQueue = output.storageQueue({ queueName: QUEUES.evaluate, connection: STORAGE_CONNECTION });

export async function orthancEvents(request: HttpRequest, context: InvocationContext): Promise<HttpResponseInit> {
  const body = await readJsonBody(request, orthancEventSchema);
  if (!body.ok) return body.response;
  context.extraOutputs.set(evaluateQueue, eventToEvaluateMessage(body.value, 'webhook'));
  return { status: 202, jsonBody: { accepted: body.value } };
}

app.http('orthancEvents', {
  methods: ['POST'],
  route: 'orthanc/events',
  authLevel: 'function',
  extraOutputs: [evaluateQueue],
  handler: orthancEvents,
});
