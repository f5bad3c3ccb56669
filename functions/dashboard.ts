/** GET /api/dashboard (function key; in compose behind nginx's login): the operator's page. */
import { app, type HttpResponseInit } from '@azure/functions';
import { DASHBOARD_HEADERS, DASHBOARD_HTML } from '../shared/operator/dashboard';

export async function dashboard(): Promise<HttpResponseInit> {
  return { status: 200, headers: DASHBOARD_HEADERS, body: DASHBOARD_HTML };
}

app.http('dashboard', { methods: ['GET'], route: 'dashboard', authLevel: 'function', handler: dashboard });
