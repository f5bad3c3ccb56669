/**
 * The rules as operators see them (function key):
 * GET /api/rules                                  every rule file with its validation state
 * GET /api/studies/{id}/dry-run[?rules=a,b]   which rules would run for a study, and why
 * GET /api/series/{id}/dry-run[?rules=...]     the same for a series
 */
import { app, type HttpRequest, type HttpResponseInit } from '@azure/functions';
import { readQuery, readRouteId } from '../shared/azure-functions/http';
import { getServices } from '../shared/composition/services';
import { dryRun, dryRunQuerySchema, rulesReport } from '../shared/operator/rules';
import { orthancIdSchema } from '../shared/pipeline/messages';
import type { ResourceLevel } from '../shared/vocabulary';

export async function rulesList(): Promise<HttpResponseInit> {
  const services = await getServices();
  return { status: 200, jsonBody: rulesReport(await services.rules.load()) };
}

function dryRunHandler(level: ResourceLevel) {
  return async (request: HttpRequest): Promise<HttpResponseInit> => {
    const id = readRouteId(request, orthancIdSchema, `an Orthanc ${level.toLowerCase()} id`);
    if (!id.ok) return id.response;
    const query = readQuery(request, dryRunQuerySchema);
    if (!query.ok) return query.response;
    const ruleIds =
      query.value.rules
        ?.split(',')
        .map((r) => r.trim())
        .filter(Boolean) ?? [];
    const services = await getServices();
    try {
      return {
        status: 200,
        jsonBody: await dryRun(
          () => services.rules.load(),
          services.orthanc,
          level,
          id.value,
          ruleIds.length ? ruleIds : undefined,
        ),
      };
    } catch (error) {
      if ((error as { notFound?: boolean }).notFound)
        return { status: 404, jsonBody: { error: `Orthanc has no ${level.toLowerCase()} ${id.value}` } };
      throw error;
    }
  };
}

app.http('rulesList', { methods: ['GET'], route: 'rules', authLevel: 'function', handler: rulesList });
app.http('dryRunStudy', {
  methods: ['GET'],
  route: 'studies/{id}/dry-run',
  authLevel: 'function',
  handler: dryRunHandler('Study'),
});
app.http('dryRunSeries', {
  methods: ['GET'],
  route: 'series/{id}/dry-run',
  authLevel: 'function',
  handler: dryRunHandler('Series'),
});
