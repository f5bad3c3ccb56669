/** GET /api/health (anonymous): 200 once Orthanc and storage answer, 503 with the reason otherwise. */
import { app, type HttpResponseInit } from '@azure/functions';
import { getServices } from '../shared/app/services';
import { checkHealth } from '../shared/app/health';

export async function health(): Promise<HttpResponseInit> {
  const report = await checkHealth(getServices);
  return { status: report.ok ? 200 : 503, jsonBody: report };
}

app.http('health', { methods: ['GET'], route: 'health', authLevel: 'anonymous', handler: health });
