/**
 * The operator's destinations (function key; shared/destinations/):
 * GET    /api/destinations              every destination (source env or dashboard, read-only or not) and the latest changes
 * POST   /api/destinations              add a DICOM destination {name, aet, host, port}, or a DICOMweb one
 *                                       {name, kind: 'dicomweb', url, credentialsFrom?: 'STOW_AUTH_<X>'}
 * PUT    /api/destinations/{id}         change its {aet, host, port} (or {kind: 'dicomweb', url, credentialsFrom?})
 * DELETE /api/destinations/{id}         delete it (and remove it from Orthanc)
 * GET    /api/destinations/audit?limit= the change history, newest first
 * The environment's destinations answer 409 on a change. Who changed what is the user nginx logged in
 * (X-Remote-User), or `function-key` for a caller with its own key.
 */
import { app, type HttpRequest, type HttpResponseInit, type InvocationContext } from '@azure/functions';
import { z } from 'zod';
import { readJsonBody, readQuery, readRouteId, requireJsonContentType } from '../shared/azure-functions/http';
import { getServices } from '../shared/composition/services';
import { auditActor, REMOTE_USER_HEADER } from '../shared/destinations/actor';
import { createDestinationAdmin, type AdminOutcome } from '../shared/destinations/admin';
import { withRulesUsing } from '../shared/destinations/catalog';
import { destinationEditSchema, destinationNameSchema, newDestinationSchema } from '../shared/destinations/validation';

const RECENT_CHANGES = 20;
const auditQuerySchema = z.strictObject({
  limit: z.coerce.number().int().min(1).max(500).default(100),
});

async function admin(context: InvocationContext) {
  const services = await getServices();
  return createDestinationAdmin({
    catalog: services.destinations,
    orthanc: services.orthanc,
    allowedSenders: services.config.allowedSenders,
    echoes: services.destinationEchoes,
    log: (line) => context.log(line),
  });
}

function answer(outcome: AdminOutcome, created = false): HttpResponseInit {
  if (outcome.kind === 'not-found') return { status: 404, jsonBody: { error: outcome.error } };
  if (outcome.kind === 'conflict') return { status: 409, jsonBody: { error: outcome.error } };
  const { destination, change, orthanc } = outcome;
  // The store's version (an ETag) is its own business; undefined fields are left out of the JSON.
  return {
    status: created ? 201 : 200,
    jsonBody: { destination: destination && { ...destination, version: undefined }, change, orthanc },
  };
}

export async function destinationsList(): Promise<HttpResponseInit> {
  const { destinations, destinationEchoes, rules } = await getServices();
  const [listed, audit, ruleSet] = await Promise.all([
    destinations.list(),
    destinations.store.audit(RECENT_CHANGES),
    // The list stands without the rules (a folder being edited, unreadable): only `usedBy` is missing.
    rules.load().catch(() => undefined),
  ]);
  return {
    status: 200,
    jsonBody: {
      destinations: withRulesUsing(listed, ruleSet?.rules ?? []).map((d) => ({
        ...d,
        ...(destinationEchoes.has(d.name) && !d.shadowed ? { echo: destinationEchoes.get(d.name) } : {}),
      })),
      audit,
    },
  };
}

export async function destinationsAudit(request: HttpRequest): Promise<HttpResponseInit> {
  const query = readQuery(request, auditQuerySchema);
  if (!query.ok) return query.response;
  const { destinations } = await getServices();
  return { status: 200, jsonBody: { audit: await destinations.store.audit(query.value.limit) } };
}

export async function destinationAdd(request: HttpRequest, context: InvocationContext): Promise<HttpResponseInit> {
  const refused = requireJsonContentType(request);
  if (refused) return refused;
  const body = await readJsonBody(request, newDestinationSchema);
  if (!body.ok) return body.response;
  const who = auditActor(request.headers.get(REMOTE_USER_HEADER));
  return answer(await (await admin(context)).add(body.value, who), true);
}

export async function destinationEdit(request: HttpRequest, context: InvocationContext): Promise<HttpResponseInit> {
  const refused = requireJsonContentType(request);
  if (refused) return refused;
  const name = readRouteId(request, destinationNameSchema, 'a destination name');
  if (!name.ok) return name.response;
  const body = await readJsonBody(request, destinationEditSchema);
  if (!body.ok) return body.response;
  const who = auditActor(request.headers.get(REMOTE_USER_HEADER));
  return answer(await (await admin(context)).edit(name.value, body.value, who));
}

export async function destinationDelete(request: HttpRequest, context: InvocationContext): Promise<HttpResponseInit> {
  const refused = requireJsonContentType(request);
  if (refused) return refused;
  const name = readRouteId(request, destinationNameSchema, 'a destination name');
  if (!name.ok) return name.response;
  const who = auditActor(request.headers.get(REMOTE_USER_HEADER));
  return answer(await (await admin(context)).remove(name.value, who));
}

app.http('destinationsList', {
  methods: ['GET'],
  route: 'destinations',
  authLevel: 'function',
  handler: destinationsList,
});
app.http('destinationAdd', {
  methods: ['POST'],
  route: 'destinations',
  authLevel: 'function',
  handler: destinationAdd,
});
app.http('destinationEdit', {
  methods: ['PUT'],
  route: 'destinations/{id}',
  authLevel: 'function',
  handler: destinationEdit,
});
app.http('destinationDelete', {
  methods: ['DELETE'],
  route: 'destinations/{id}',
  authLevel: 'function',
  handler: destinationDelete,
});
app.http('destinationsAudit', {
  methods: ['GET'],
  route: 'destinations/audit',
  authLevel: 'function',
  handler: destinationsAudit,
});
