/**
 * GET /api/health (anonymous): 200 `{"status":"ok"}` once Orthanc and storage answer, 503
 * `{"status":"unavailable"}` otherwise. Nothing else: the details are behind a key at /api/status.
 */
import { app, type HttpResponseInit } from '@azure/functions';
import { getServices } from '../shared/composition/services';
import { checkReachable, probeAnswer } from '../shared/operator/health';

export async function health(): Promise<HttpResponseInit> {
  const answer = probeAnswer(await checkReachable(getServices));
  return { status: answer.status, jsonBody: answer.body };
}

app.http('health', { methods: ['GET'], route: 'health', authLevel: 'anonymous', handler: health });
