/**
 * POST /api/alerts/test (function key): a test alert to every webhook in AUTOMATION_ALERT_WEBHOOKS,
 * bypassing the rate limit, answering what each returned (by number, format and host: the URLs
 * hold tokens and never leave). The dashboard's "Send test alert" button calls it.
 */
import { app, type HttpRequest, type HttpResponseInit } from '@azure/functions';
import { requireJsonContentType } from '../shared/azure-functions/http';
import { getServices } from '../shared/composition/services';

export async function alertsTest(request: HttpRequest): Promise<HttpResponseInit> {
  const refused = requireJsonContentType(request);
  if (refused) return refused;
  const { alerts } = await getServices();
  if (alerts.webhooks === 0)
    return { status: 409, jsonBody: { error: 'no webhooks configured: set AUTOMATION_ALERT_WEBHOOKS', results: [] } };
  const results = await alerts.test();
  return { status: 200, jsonBody: { ok: results.every((r) => r.ok), results } };
}

app.http('alertsTest', { methods: ['POST'], route: 'alerts/test', authLevel: 'function', handler: alertsTest });
