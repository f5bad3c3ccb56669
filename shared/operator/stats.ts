/**
 * Counters for the last 24 hours (or `windowHours`: the QI view, shared/operator/qi.ts, counts days
 * with it), from the ledger's index summaries (no job is read): jobs by status and by rule, instances
 * and bytes processed, and one bucket per hour for the chart.
 */
import type { JobSummary } from '../pipeline/job';

export interface HourBucket {
  /** Start of the hour, ISO. */
  hour: string;
  instances: number;
  bytes: number;
  succeeded: number;
  failed: number;
}

export interface Stats {
  from: string;
  to: string;
  jobs: { created: number; succeeded: number; failed: number; running: number; queued: number };
  instances: number;
  bytes: number;
  rules: Record<string, { succeeded: number; failed: number; open: number }>;
  hourly: HourBucket[];
}

const HOUR = 3_600_000;
export const STATS_WINDOW_HOURS = 24;

export function computeStats(summaries: JobSummary[], now = new Date(), windowHours = STATS_WINDOW_HOURS): Stats {
  const to = now.getTime();
  const firstHour = Math.floor(to / HOUR) * HOUR - (windowHours - 1) * HOUR;
  const from = to - windowHours * HOUR;
  const hourly: HourBucket[] = Array.from({ length: windowHours }, (_, i) => ({
    hour: new Date(firstHour + i * HOUR).toISOString(),
    instances: 0,
    bytes: 0,
    succeeded: 0,
    failed: 0,
  }));
  const stats: Stats = {
    from: new Date(from).toISOString(),
    to: now.toISOString(),
    jobs: { created: 0, succeeded: 0, failed: 0, running: 0, queued: 0 },
    instances: 0,
    bytes: 0,
    rules: {},
    hourly,
  };
  for (const s of summaries) {
    if (Date.parse(s.createdAt) < from) continue;
    stats.jobs.created += 1;
    stats.jobs[s.status] += 1;
    const rule = (stats.rules[s.ruleId] ??= { succeeded: 0, failed: 0, open: 0 });
    if (s.status === 'succeeded') rule.succeeded += 1;
    else if (s.status === 'failed') rule.failed += 1;
    else rule.open += 1;
    if (!s.finishedAt) continue;
    const index = Math.floor((Date.parse(s.finishedAt) - firstHour) / HOUR);
    const bucket = hourly[Math.min(Math.max(index, 0), windowHours - 1)];
    if (s.status === 'failed') {
      bucket.failed += 1;
      continue;
    }
    bucket.succeeded += 1;
    bucket.instances += s.instances ?? 0;
    bucket.bytes += s.bytes ?? 0;
    stats.instances += s.instances ?? 0;
    stats.bytes += s.bytes ?? 0;
  }
  return stats;
}
