/**
 * GET /api/metrics?days=N (function key): the QI figures in the Prometheus text format for a scraper
 * (default the last day; every sample is a gauge over that window, see shared/operator/metrics.ts).
 */
import { app, type HttpRequest, type HttpResponseInit } from '@azure/functions';
import { readQuery } from '../shared/azure-functions/http';
import { getServices } from '../shared/composition/services';
import { prometheusText } from '../shared/operator/metrics';
import { qiQuerySchema, readQi } from '../shared/operator/qi';

export async function metrics(request: HttpRequest): Promise<HttpResponseInit> {
  const query = readQuery(request, qiQuerySchema);
  if (!query.ok) return query.response;
  const text = await prometheusText(await readQi((await getServices()).jobs, query.value.days));
  return { status: 200, headers: { 'Content-Type': text.contentType, 'Cache-Control': 'no-store' }, body: text.body };
}

app.http('metrics', { methods: ['GET'], route: 'metrics', authLevel: 'function', handler: metrics });
