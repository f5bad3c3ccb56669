/** GET /api/stats (function key): jobs, instances and bytes of the last 24 hours, per rule and per hour. */
import { app, type HttpResponseInit } from '@azure/functions';
import { getServices } from '../shared/composition/services';
import { STATS_WINDOW_HOURS, computeStats } from '../shared/operator/stats';

export async function stats(): Promise<HttpResponseInit> {
  const now = new Date();
  const summaries = await (
    await getServices()
  ).jobs.summariesSince(new Date(now.getTime() - STATS_WINDOW_HOURS * 3_600_000));
  return { status: 200, jsonBody: computeStats(summaries, now) };
}

app.http('stats', { methods: ['GET'], route: 'stats', authLevel: 'function', handler: stats });
