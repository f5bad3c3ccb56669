/**
 * GET /api/doctor (function key): the checks only the app can make for `autorthanc doctor`: its storage
 * and staging folders writable with free space, its secrets set and strong, its clock against Orthanc's.
 */
import { app, type HttpResponseInit } from '@azure/functions';
import { getServices } from '../shared/composition/services';
import { runDoctor } from '../shared/operator/doctor';

export async function doctor(): Promise<HttpResponseInit> {
  const { config, orthanc } = await getServices();
  return { status: 200, jsonBody: await runDoctor({ config, orthanc }) };
}

app.http('doctor', { methods: ['GET'], route: 'doctor', authLevel: 'function', handler: doctor });
