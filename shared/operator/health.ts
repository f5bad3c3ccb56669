/**
 * Health in two answers. The anonymous probe (`GET /api/health`, for load balancers and `npm start`)
 * says only `{"status": "ok"}` or 503 `{"status": "unavailable"}`: a version, a destination's host
 * or an error text tells an unauthenticated caller what to attack. The keyed status report
 * (`GET /api/status`, for the dashboard and the CLI) has the details: is Orthanc reachable (and which
 * version), is storage reachable, how deep each queue and its poison queue are, where the change feed
 * stands, how the DICOM destinations answered their C-ECHO and whether the DICOMweb ones answer. Each check is bounded in time so a
 * hung dependency gives a clear 503 instead of a hung probe. Only Orthanc and storage decide `ok`.
 */
import type { EchoState } from '../orthanc/destinations';
import type { Services } from '../composition/services';
import { PIPELINE_STEPS } from '../vocabulary';
import { QUEUES } from '../pipeline/messages';
import { CHANGE_FEED_CURSOR } from '../pipeline/changeFeed';
import { countForwarding, type ForwardingCounts } from '../pipeline/destinations';
import { awaitedJobs, resultsView } from '../pipeline/roundTrip';

export interface QueueState {
  /** Approximate visible messages; null when the queue does not exist yet (nothing sent to it). */
  depth: number | null;
  poison: number | null;
}

export interface HealthReport {
  ok: boolean;
  checkedAt: string;
  orthanc: { ok: boolean; version?: string; error?: string };
  storage: { ok: boolean; error?: string };
  settings?: { ok: boolean; error?: string };
  /** DICOM destinations from the environment and their C-ECHO at start-up (not part of `ok`). */
  destinations?: Record<string, EchoState>;
  /** DICOMweb destinations (DICOMWEB_<NAME>): base URL (never credentials) and whether a QIDO query answered (not part of `ok`). */
  dicomweb?: Record<string, { url: string; reachable: boolean; status?: number; error?: string }>;
  queues?: Record<string, QueueState>;
  /** Last Orthanc change sequence number read by the change feed (null before its first run). */
  changeFeed?: { cursor: number | null };
  /** Destinations of unfinished forwards: pending, sending and stuck (AUTOMATION_DESTINATION_STUCK_MINUTES); not part of `ok`. */
  forwarding?: ForwardingCounts;
  /** Jobs waiting for results from an AI node (ExpectResults), and those overdue: stuck (not part of `ok`). */
  results?: { awaiting: number; overdue: Array<{ jobId: string; ruleId: string; from: string; expectedBy?: string }> };
}

/** The queues every deployment has: evaluation and one per pipeline step. */
export const WATCHED_QUEUES = [QUEUES.evaluate, ...PIPELINE_STEPS.map((s) => QUEUES.step(s))];

export async function queueStates(queues: Services['queues']): Promise<Record<string, QueueState>> {
  const entries = await Promise.all(
    WATCHED_QUEUES.map(async (name) => {
      const [depth, poison] = await Promise.all([queues.depth(name), queues.depth(QUEUES.poison(name))]);
      return [name, { depth: depth ?? null, poison: poison ?? null }] as const;
    }),
  );
  return Object.fromEntries(entries);
}

const CHECK_TIMEOUT_MS = 5_000;

async function within<T>(promise: Promise<T>, label: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`${label} did not answer within ${CHECK_TIMEOUT_MS} ms`)),
      CHECK_TIMEOUT_MS,
    );
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** The anonymous probe's whole answer: nothing but the status. */
export type HealthProbe = { status: 'ok' } | { status: 'unavailable' };

export function probeAnswer(report: Pick<HealthReport, 'ok'>): { status: 200 | 503; body: HealthProbe } {
  return report.ok ? { status: 200, body: { status: 'ok' } } : { status: 503, body: { status: 'unavailable' } };
}

/** Orthanc and storage only: what the probe needs, without the queue and cursor reads of the report. */
export async function checkReachable(getServices: () => Promise<Services>): Promise<{ ok: boolean }> {
  try {
    const services = await within(getServices(), 'startup');
    await Promise.all([within(services.orthanc.system(), 'Orthanc'), within(services.jobs.ping(), 'Table storage')]);
    return { ok: true };
  } catch {
    return { ok: false };
  }
}

/** Each DICOMweb destination's base URL (credentials are never part of it) and whether it answers. */
async function probeDicomWeb(services: Services): Promise<NonNullable<HealthReport['dicomweb']>> {
  const entries = await Promise.all(
    Object.entries(services.dicomweb ?? {}).map(async ([name, client]) => {
      const answer = await within(client.probe(), `DICOMweb ${name}`).catch((error: Error) => ({
        reachable: false,
        error: error.message,
      }));
      return [name, { url: client.url, ...answer }] as const;
    }),
  );
  return Object.fromEntries(entries);
}

export async function checkHealth(getServices: () => Promise<Services>): Promise<HealthReport> {
  const checkedAt = new Date().toISOString();
  let services: Services;
  try {
    services = await within(getServices(), 'startup');
  } catch (error) {
    const message = (error as Error).message;
    return {
      ok: false,
      checkedAt,
      orthanc: { ok: false, error: 'not checked' },
      storage: { ok: false, error: 'not checked' },
      settings: { ok: false, error: message },
    };
  }
  const dicomweb = probeDicomWeb(services);
  const [orthanc, storage, queues, cursor] = await Promise.all([
    within(services.orthanc.system(), 'Orthanc')
      .then((s) => ({ ok: true, version: s.Version }))
      .catch((error: Error) => ({ ok: false, error: error.message })),
    within(services.jobs.ping(), 'Table storage')
      .then(() => ({ ok: true }))
      .catch((error: Error) => ({ ok: false, error: error.message })),
    within(queueStates(services.queues), 'Queue storage').catch(() => undefined),
    within(services.cursors.get(CHANGE_FEED_CURSOR), 'Table storage').catch(() => undefined),
  ]);
  const forwarding = await within(forwardingState(services), 'Table storage').catch(() => undefined);
  const results = await within(roundTripState(services), 'Table storage').catch(() => undefined);
  return {
    ok: orthanc.ok && storage.ok,
    checkedAt,
    orthanc,
    storage,
    destinations: Object.fromEntries(services.destinationEchoes),
    dicomweb: await dicomweb,
    queues,
    changeFeed: { cursor: cursor ?? null },
    ...(forwarding ? { forwarding } : {}),
    ...(results ? { results } : {}),
  };
}

async function roundTripState(services: Services): Promise<NonNullable<HealthReport['results']>> {
  const now = new Date();
  const { awaiting, overdue } = await awaitedJobs({ awaited: services.awaitedResults, jobs: services.jobs }, now);
  return {
    awaiting,
    overdue: overdue.map((job) => ({
      jobId: job.id,
      ruleId: job.ruleId,
      from: job.rule.expectResults?.from ?? '',
      expectedBy: resultsView(job, now)?.expectedBy,
    })),
  };
}

/** The running jobs' destinations (the newest 200 of the last week: a backlog larger than that is an incident anyway). */
async function forwardingState(services: Services): Promise<ForwardingCounts> {
  const { jobs } = await services.jobs.listRecent({ limit: 200, days: 7, filter: { status: 'running' } });
  return countForwarding(jobs, new Date(), services.config.destinationStuckMs);
}
