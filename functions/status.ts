/**
 * GET /api/status (function key): the operator's health report (Orthanc version, storage, queue depths
 * and poison counts, the change feed's cursor, each destination's C-ECHO); 200 when Orthanc and
 * storage answer, 503 with the same report otherwise. The dashboard and the CLI read it.
 */
import { app, type HttpResponseInit } from '@azure/functions';
import { getServices } from '../shared/composition/services';
import { checkHealth } from '../shared/operator/health';

export async function status(): Promise<HttpResponseInit> {
  const report = await checkHealth(getServices);
  return { status: report.ok ? 200 : 503, jsonBody: report };
}

app.http('status', { methods: ['GET'], route: 'status', authLevel: 'function', handler: status });
