/** GET /api/qi?days=1|7|30 (function key): the QI view's figures over the last `days` days (1-30, default 1). */
import { app, type HttpRequest, type HttpResponseInit } from '@azure/functions';
import { readQuery } from '../shared/azure-functions/http';
import { getServices } from '../shared/composition/services';
import { qiQuerySchema, readQi } from '../shared/operator/qi';

export async function qi(request: HttpRequest): Promise<HttpResponseInit> {
  const query = readQuery(request, qiQuerySchema);
  if (!query.ok) return query.response;
  return { status: 200, jsonBody: await readQi((await getServices()).jobs, query.value.days) };
}

app.http('qi', { methods: ['GET'], route: 'qi', authLevel: 'function', handler: qi });
