/**
 * POST /api/destinations/{id}/echo (function key): a timed C-ECHO of one destination through Orthanc
 * (a QIDO probe for a DICOMweb one), from the environment or added in the dashboard. 200 with `ok` either way (a failed echo is an answer, not an
 * error), 404 for an unknown name. `autorthanc test NAME` calls it.
 */
import { app, type HttpRequest, type HttpResponseInit } from '@azure/functions';
import { z } from 'zod';
import { readRouteId, requireJsonContentType } from '../shared/azure-functions/http';
import { getServices } from '../shared/composition/services';
import { echoDestination } from '../shared/operator/echo';

const destinationNameSchema = z.string().regex(/^[A-Za-z0-9_-]{1,64}$/);

export async function destinationEcho(request: HttpRequest): Promise<HttpResponseInit> {
  const refused = requireJsonContentType(request);
  if (refused) return refused;
  const parsed = readRouteId(request, destinationNameSchema, 'a destination name');
  if (!parsed.ok) return parsed.response;
  const services = await getServices();
  const answer = await echoDestination(
    {
      orthanc: services.orthanc,
      // The dashboard's destinations too, read now: another instance may have added one a moment ago.
      modalities: await services.destinations.all(),
      dicomweb: await services.destinations.dicomweb(),
      echoes: services.destinationEchoes,
    },
    parsed.value,
  );
  if (!answer) return { status: 404, jsonBody: { error: `no destination ${parsed.value}` } };
  return { status: 200, jsonBody: answer };
}

app.http('destinationEcho', {
  methods: ['POST'],
  route: 'destinations/{id}/echo',
  authLevel: 'function',
  handler: destinationEcho,
});
