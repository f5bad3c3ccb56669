/**
 * The quality-indicator (QI) view over a day range: the funnel received → matched → processed →
 * delivered → results back, turnaround percentiles per rule and per destination, failures by step,
 * the top error reasons and the volume by hour of day.
 *
 * Counts come from the job index (summaries, exact and cheap, through computeStats of ./stats.ts);
 * what only a job holds (its destinations, its error) from the jobs themselves, read newest first up
 * to a bound, and the answer says whether that read covered the whole range. Nothing here invents a
 * figure: a stage the system does not record yet has `count: null`. No patient attribute appears:
 * errors are redacted on the job before they are stored, and reasons are further reduced to their
 * shape (ids, UIDs, numbers and paths replaced) so equal failures group together.
 */
import { z } from 'zod';
import type { Job, JobSummary } from '../pipeline/job';
import type { JobStore } from '../pipeline/ports';
import type { DestinationState } from '../pipeline/steps/forward';
import { isSent } from '../pipeline/destinations';
import type { JobTelemetry } from '../telemetry';
import { computeStats, type Stats } from './stats';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;

/** The day ranges the page offers; the API accepts any whole number of days up to 30. */
export const QI_DAY_RANGES = [1, 7, 30] as const;
export const QI_MAX_DAYS = 30;
/** Jobs read for the figures the index does not hold; beyond it the answer says `complete: false`. */
export const QI_MAX_JOBS_READ = 2000;
const PAGE = 200;
const TOP_REASONS = 10;

export const qiQuerySchema = z.object({ days: z.coerce.number().int().min(1).max(QI_MAX_DAYS).default(1) }).strict();

export interface Percentiles {
  /** Jobs measured. */
  count: number;
  /** Milliseconds from the job's creation to its end (nearest-rank percentiles). */
  p50: number;
  p90: number;
  p99: number;
}

export type FunnelStageName = 'received' | 'matched' | 'processed' | 'delivered' | 'resultsBack';

export interface FunnelStage {
  stage: FunnelStageName;
  /** null: the system does not record this stage yet (never a guessed number). */
  count: number | null;
  unit: 'resources' | 'jobs';
  note: string;
}

export interface DestinationQi {
  /** Jobs that forwarded (or tried to) to this destination. */
  jobs: number;
  delivered: number;
  failed: number;
  turnaround?: Percentiles;
}

export interface ReasonCount {
  reason: string;
  count: number;
  rules: string[];
}

export interface Qi {
  from: string;
  to: string;
  days: number;
  funnel: FunnelStage[];
  jobs: Stats['jobs'];
  rules: Record<string, { succeeded: number; failed: number; open: number; turnaround?: Percentiles }>;
  destinations: Record<string, DestinationQi>;
  /** Failed jobs by the step they failed in. */
  failuresByStep: Record<string, number>;
  topErrors: ReasonCount[];
  /** Jobs created in each hour of the day (UTC), 0-23, over the whole range. */
  hourOfDay: Array<{ hour: number; jobs: number; failed: number }>;
  /** The jobs read for destinations, deliveries and reasons; `complete` when that was every job of the range. */
  read: { jobs: number; limit: number; complete: boolean };
}

/** Nearest-rank percentiles of durations in ms; undefined for none. */
export function percentiles(values: readonly number[]): Percentiles | undefined {
  if (values.length === 0) return undefined;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = (p: number) => sorted[Math.max(0, Math.ceil((p / 100) * sorted.length) - 1)];
  return { count: sorted.length, p50: rank(50), p90: rank(90), p99: rank(99) };
}

/**
 * A failure reason reduced to its shape, so the same failure on many studies is one line: DICOM UIDs,
 * Orthanc and job ids, paths and numbers become placeholders. (The reason was redacted when the job
 * stored it; this only groups it.)
 */
export function normaliseReason(error: string): string {
  return error
    .replace(/\b\d+(?:\.\d+){2,}\b/g, '<uid>')
    .replace(/\b[0-9a-f]{8}(?:-[0-9a-f]{8}){4}\b/gi, '<orthanc-id>')
    .replace(/\b[0-9a-f]{32}\b/gi, '<job-id>')
    .replace(/(?:[A-Za-z]:)?(?:[\\/][^\s\\/'"`,;:()]+){2,}[\\/]?/g, '<path>')
    .replace(/\d+/g, 'N')
    .replace(/\s+/g, ' ')
    .trim()
    .slice(0, 200);
}

const turnaroundOf = (job: Pick<JobSummary, 'createdAt' | 'finishedAt'>) =>
  job.finishedAt ? Date.parse(job.finishedAt) - Date.parse(job.createdAt) : undefined;

/** Job created to this destination's send; the job's own turnaround for records from before sentAt. */
function destinationTurnaroundOf(job: Job, state: DestinationState | undefined): number | undefined {
  const sentAt = state?.sentAt ? Date.parse(state.sentAt) : Number.NaN;
  return Number.isFinite(sentAt) ? sentAt - Date.parse(job.createdAt) : turnaroundOf(job);
}

function destinationsOf(job: Job): Record<string, DestinationState> {
  const forward = job.steps.find((s) => s.name === 'forward');
  return (forward?.detail?.destinations ?? {}) as Record<string, DestinationState>;
}

/** Whether a job's result reached where its rule sends it: every destination, or its published output. */
export function delivered(job: Job): boolean {
  if (job.status !== 'succeeded' || job.steps.some((s) => s.status === 'skipped')) return false;
  if (!job.rule.steps.includes('forward')) return true;
  const states = destinationsOf(job);
  return job.rule.destinations.every((name) => isSent(states[name]));
}

/** An ended job as telemetry sends it (shared/telemetry.ts jobItems): the same figures as this view. */
export function jobTelemetryOf(job: Job): JobTelemetry | undefined {
  if (job.status !== 'succeeded' && job.status !== 'failed') return undefined;
  const states = destinationsOf(job);
  const forwards = job.rule.steps.includes('forward');
  return {
    jobId: job.id,
    ruleId: job.ruleId,
    outcome: job.status,
    step: job.currentStep,
    turnaroundMs: turnaroundOf(job) ?? 0,
    destinations: Object.fromEntries(
      (forwards ? job.rule.destinations : []).map((name) => [name, isSent(states[name])]),
    ),
    destinationTurnaroundMs: Object.fromEntries(
      (forwards ? job.rule.destinations : []).flatMap((name) => {
        const took = isSent(states[name]) ? destinationTurnaroundOf(job, states[name]) : undefined;
        return took === undefined ? [] : [[name, took]];
      }),
    ),
  };
}

/**
 * The QI figures from the index summaries of the range and the jobs read (both may include older
 * ones: only those created within the last `days` days count).
 */
export function computeQi(
  input: { summaries: JobSummary[]; jobs: Job[]; readComplete: boolean },
  days: number,
  now = new Date(),
): Qi {
  const from = now.getTime() - days * DAY;
  const inRange = (createdAt: string) => Date.parse(createdAt) >= from;
  const summaries = input.summaries.filter((s) => inRange(s.createdAt));
  const jobs = input.jobs.filter((j) => inRange(j.createdAt));
  const stats = computeStats(summaries, now, days * 24);

  const rules: Qi['rules'] = {};
  const byRule = new Map<string, number[]>();
  const failuresByStep: Record<string, number> = {};
  const hourOfDay = Array.from({ length: 24 }, (_, hour) => ({ hour, jobs: 0, failed: 0 }));
  for (const s of summaries) {
    const hour = hourOfDay[new Date(s.createdAt).getUTCHours()];
    hour.jobs += 1;
    if (s.status === 'failed') {
      hour.failed += 1;
      failuresByStep[s.step] = (failuresByStep[s.step] ?? 0) + 1;
    }
    const took = turnaroundOf(s);
    if (s.status === 'succeeded' && took !== undefined) byRule.set(s.ruleId, [...(byRule.get(s.ruleId) ?? []), took]);
  }
  for (const [ruleId, counts] of Object.entries(stats.rules))
    rules[ruleId] = { ...counts, turnaround: percentiles(byRule.get(ruleId) ?? []) };

  const destinations: Qi['destinations'] = {};
  const byDestination = new Map<string, number[]>();
  const reasons = new Map<string, { count: number; rules: Set<string> }>();
  let deliveredJobs = 0;
  let resultsBack = 0;
  let expectingResults = 0;
  for (const job of jobs) {
    if (delivered(job)) deliveredJobs += 1;
    if (job.rule.expectResults) expectingResults += 1;
    if (job.roundTrip?.resultsAt) resultsBack += 1;
    if (job.status === 'failed' && job.error) {
      const reason = normaliseReason(job.error);
      const entry = reasons.get(reason) ?? { count: 0, rules: new Set<string>() };
      entry.count += 1;
      entry.rules.add(job.ruleId);
      reasons.set(reason, entry);
    }
    if (!job.rule.steps.includes('forward')) continue;
    const states = destinationsOf(job);
    for (const name of job.rule.destinations) {
      const d = (destinations[name] ??= { jobs: 0, delivered: 0, failed: 0 });
      d.jobs += 1;
      if (isSent(states[name])) {
        d.delivered += 1;
        const took = job.status === 'succeeded' ? destinationTurnaroundOf(job, states[name]) : undefined;
        if (took !== undefined) byDestination.set(name, [...(byDestination.get(name) ?? []), took]);
      } else if (job.status === 'failed') d.failed += 1;
    }
  }
  for (const [name, values] of byDestination) destinations[name].turnaround = percentiles(values);

  const partial = input.readComplete ? '' : ` (of the ${jobs.length} newest jobs read)`;
  const resources = new Set(summaries.map((s) => `${s.level}:${s.studyInstanceUid ?? s.resourceId}`));
  return {
    from: new Date(from).toISOString(),
    to: now.toISOString(),
    days,
    funnel: [
      {
        stage: 'received',
        count: resources.size,
        unit: 'resources',
        note: 'studies and series that made at least one job; arrivals that matched no rule are not recorded',
      },
      { stage: 'matched', count: summaries.length, unit: 'jobs', note: 'jobs created (a rule matched a resource)' },
      { stage: 'processed', count: stats.jobs.succeeded, unit: 'jobs', note: 'jobs that succeeded' },
      {
        stage: 'delivered',
        count: deliveredJobs,
        unit: 'jobs',
        note: `jobs whose result was published and reached every destination${partial}`,
      },
      {
        stage: 'resultsBack',
        count: resultsBack,
        unit: 'jobs',
        note: `jobs whose results came back from the AE title their rule expects them from (of ${expectingResults} expecting results)${partial}`,
      },
    ],
    jobs: stats.jobs,
    rules,
    destinations,
    failuresByStep,
    topErrors: [...reasons]
      .map(([reason, { count, rules: r }]) => ({ reason, count, rules: [...r].sort() }))
      .sort((a, b) => b.count - a.count || (a.reason < b.reason ? -1 : 1))
      .slice(0, TOP_REASONS),
    hourOfDay,
    read: { jobs: jobs.length, limit: QI_MAX_JOBS_READ, complete: input.readComplete },
  };
}

/** Reads the range from the store (the index, then jobs newest first up to `maxJobs`) and computes the QI. */
export async function readQi(
  store: Pick<JobStore, 'summariesSince' | 'listRecent'>,
  days: number,
  now = new Date(),
  maxJobs = QI_MAX_JOBS_READ,
): Promise<Qi> {
  const from = new Date(now.getTime() - days * DAY);
  const summaries = await store.summariesSince(new Date(from.getTime() - 1));
  const jobs: Job[] = [];
  let cursor: string | undefined;
  let complete = false;
  // listRecent counts calendar days (UTC partitions): one more covers the start of the range.
  while (jobs.length < maxJobs) {
    const page = await store.listRecent({ limit: Math.min(PAGE, maxJobs - jobs.length), days: days + 1, cursor });
    const fresh = page.jobs.filter((j) => Date.parse(j.createdAt) >= from.getTime());
    jobs.push(...fresh);
    cursor = page.next;
    if (!cursor || fresh.length < page.jobs.length) {
      complete = true;
      break;
    }
  }
  return computeQi({ summaries, jobs, readComplete: complete }, days, now);
}
