/** GET /api/dashboard (function key; in compose behind nginx's login): the operator's page. */
import { app, type HttpResponseInit } from '@azure/functions';
import { loadDashboardPage, type DashboardPage } from '../shared/operator/dashboard';

// Read and hashed once per process, on the first request: loading functions/ from the sources (as
// the registration test does) finds no compiled dashboard.js, and must not fail for it.
let page: DashboardPage | undefined;

export async function dashboard(): Promise<HttpResponseInit> {
  page ??= loadDashboardPage();
  return { status: 200, headers: page.headers, body: page.body };
}

app.http('dashboard', { methods: ['GET'], route: 'dashboard', authLevel: 'function', handler: dashboard });
