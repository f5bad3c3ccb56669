/**
 * The worklist for operators (function key):
 * GET /api/worklist?day=YYYY-MM-DD   a day's bookings (today by default): time, scanner, project, status
 * GET /api/worklist/{key}            one booking with its study and jobs (booking → study → jobs)
 * No patient attribute is shown unless AUTOMATION_LOG_PHI is set.
 */
import { app, type HttpRequest, type HttpResponseInit } from '@azure/functions';
import { readQuery, readRouteId } from '../shared/azure-functions/http';
import { getServices } from '../shared/composition/services';
import { bookingKeySchema, viewOf, worklistDay, worklistQuerySchema } from '../shared/worklist/report';

export async function worklistList(request: HttpRequest): Promise<HttpResponseInit> {
  const query = readQuery(request, worklistQuerySchema);
  if (!query.ok) return query.response;
  const { bookings, jobs, config } = await getServices();
  const day = await worklistDay(bookings, (id) => jobs.get(id), {
    day: query.value.day,
    logPhi: config.logPhi,
    folder: config.worklist?.folder,
  });
  return { status: 200, jsonBody: { configured: config.worklist !== undefined, ...day } };
}

export async function worklistBooking(request: HttpRequest): Promise<HttpResponseInit> {
  const parsed = readRouteId(request, bookingKeySchema, 'a booking key (32 hex digits)');
  if (!parsed.ok) return parsed.response;
  const { bookings, jobs, config } = await getServices();
  const record = await bookings.get(parsed.value);
  if (!record) return { status: 404, jsonBody: { error: `no booking ${parsed.value}` } };
  const view = await viewOf(record, (id) => jobs.get(id), { logPhi: config.logPhi, folder: config.worklist?.folder });
  return { status: 200, jsonBody: view };
}

app.http('worklistList', { methods: ['GET'], route: 'worklist', authLevel: 'function', handler: worklistList });
app.http('worklistBooking', {
  methods: ['GET'],
  route: 'worklist/{id}',
  authLevel: 'function',
  handler: worklistBooking,
});
