/**
 * Round trips (the seed's "Sent to AI → Results back"): a rule that forwards can say it expects
 * results back, `"ExpectResults": {"From": "AINODE", "Within": "2h"}`. When a study becomes stable,
 * series sent by such an AE title are matched to the jobs that forwarded the study they answer:
 *   - the same StudyInstanceUID: what AI nodes following IHE AIR (and most vendors) do, adding
 *     secondary captures, SR, SEG or GSPS series to the analysed study;
 *   - or a reference to it, for nodes that make a study of their own: ReferencedStudySequence,
 *     CurrentRequestedProcedureEvidenceSequence and PertinentOtherEvidenceSequence (SR, KOS),
 *     StudiesContainingOtherReferencedInstancesSequence (GSPS, SEG), read from one instance per series.
 * The original job records what came and when; results that do not come within `Within` of the
 * forward's end are overdue (the job list, the status report and an alert say so).
 */
import { createHash } from 'node:crypto';
import type { Job } from './job';
import type { AwaitedEntry, AwaitedResults, JobStore } from './ports';
import type { Logger, ResourceLevel } from '../vocabulary';
import { mapLimit } from '../util/concurrency';

/** Results that arrived for a job. */
export interface ResultLink {
  /** Orthanc id of the study holding the results (the forwarded study itself when they share its UID). */
  studyId: string;
  /** Orthanc ids of the series the AE title sent. */
  seriesIds: string[];
  /** 'same-study': the forwarded StudyInstanceUID; 'reference': a study referring to it. */
  matchedBy: 'same-study' | 'reference';
  at: string;
}

/** On a job whose rule expects results: what is due and what came. */
export interface RoundTrip {
  from: string;
  withinSeconds: number;
  /** The forward step's end + Within, recorded once known. */
  expectedBy?: string;
  /** When the first results were linked. */
  resultsAt?: string;
  results: ResultLink[];
  /** When the results-overdue alert went out: it goes once per job. */
  overdueAlertedAt?: string;
}

/**
 * `sending`: the forward has not ended yet; `not-sent`: the job ended without forwarding;
 * `awaiting`: forwarded, results not due yet; `overdue`: due and not come; `back`: results linked.
 */
export type ResultsState = 'sending' | 'not-sent' | 'awaiting' | 'overdue' | 'back';

/** What the job API and the dashboard show of a job's round trip. */
export interface ResultsView {
  state: ResultsState;
  from: string;
  expectedBy?: string;
  resultsAt?: string;
  /** Result studies or series groups linked. */
  results: number;
}

/** A job record keeps this many result links; later ones still count in `resultsAt`. */
const MAX_LINKS = 20;

/** The key an awaited entry is filed under: a hash, so table keys carry no UID and every UID fits. */
export function studyKey(studyInstanceUid: string): string {
  return createHash('sha256').update(studyInstanceUid.trim()).digest('hex').slice(0, 32);
}

/** AE titles compare as operators type them: trimmed, any case. */
export function sameAet(a: string | undefined, b: string | undefined): boolean {
  return a !== undefined && b !== undefined && a.trim().toUpperCase() === b.trim().toUpperCase();
}

/** When the job's forward step ended successfully (the per-destination records end it), if it has. */
export function forwardEndedAt(job: Pick<Job, 'steps'>): string | undefined {
  const forward = job.steps.find((s) => s.name === 'forward');
  return forward?.status === 'succeeded' ? forward.endedAt : undefined;
}

/** Forward end + Within: when results are due. */
export function expectedByOf(job: Pick<Job, 'steps' | 'rule'>): string | undefined {
  const expect = job.rule.expectResults;
  const ended = forwardEndedAt(job);
  if (!expect || !ended) return undefined;
  return new Date(Date.parse(ended) + expect.withinSeconds * 1000).toISOString();
}

/** The round trip of a job as of `now`; undefined for a job whose rule expects nothing back. */
export function resultsView(job: Job, now = new Date()): ResultsView | undefined {
  const expect = job.rule.expectResults;
  if (!expect) return undefined;
  const base = { from: expect.from, results: job.roundTrip?.results.length ?? 0 };
  const expectedBy = job.roundTrip?.expectedBy ?? expectedByOf(job);
  if (job.roundTrip?.resultsAt) return { ...base, state: 'back', expectedBy, resultsAt: job.roundTrip.resultsAt };
  if (!expectedBy)
    return { ...base, state: job.status === 'succeeded' || job.status === 'failed' ? 'not-sent' : 'sending' };
  return { ...base, state: now.getTime() > Date.parse(expectedBy) ? 'overdue' : 'awaiting', expectedBy };
}

const UID = /^[0-9]+(\.[0-9]+)*$/;
/** Study Root's "Detached Study Management" SOP class: a ReferencedStudySequence item's instance is the study. */
const STUDY_SOP_CLASS = '1.2.840.10008.3.1.2.3.1';

/** The studies a result instance refers to (Orthanc's simplified tags: sequences are lists of objects). */
export function referencedStudyUids(tags: Record<string, unknown>): string[] {
  const items = (keyword: string): Array<Record<string, unknown>> => {
    const value = tags[keyword];
    return Array.isArray(value)
      ? value.filter((v): v is Record<string, unknown> => typeof v === 'object' && v !== null)
      : [];
  };
  const found: unknown[] = [];
  for (const item of items('ReferencedStudySequence')) {
    found.push(item.StudyInstanceUID);
    const sopClass = item.ReferencedSOPClassUID;
    if (sopClass === undefined || sopClass === STUDY_SOP_CLASS) found.push(item.ReferencedSOPInstanceUID);
  }
  for (const keyword of [
    'CurrentRequestedProcedureEvidenceSequence',
    'PertinentOtherEvidenceSequence',
    'StudiesContainingOtherReferencedInstancesSequence',
  ])
    for (const item of items(keyword)) found.push(item.StudyInstanceUID);
  const uids = found.filter((v): v is string => typeof v === 'string').map((v) => v.trim());
  return [...new Set(uids.filter((v) => v.length <= 64 && UID.test(v)))];
}

/** What linking reads of Orthanc (structural: `createOrthancClient` satisfies it). */
export interface ResultSource {
  getSeries(id: string): Promise<{ ID: string; Instances: string[]; LastUpdate: string }>;
  getMetadata(level: 'instances', id: string, name: string): Promise<string | undefined>;
  getInstanceTags(id: string): Promise<Record<string, unknown>>;
}

export interface RoundTripDeps {
  awaited: AwaitedResults;
  jobs: Pick<JobStore, 'get' | 'update'>;
  orthanc: ResultSource;
  log: Logger;
}

export interface ArrivedStudy {
  studyId: string;
  studyInstanceUid?: string;
  seriesIds: string[];
  lastUpdate: string;
}

/** A stable study that holds results of forwarded jobs. */
export interface ResultArrival {
  from: string;
  /** The jobs whose forward it answers (linked now or at an earlier evaluation). */
  answers: Array<{ jobId: string; ruleId: string }>;
  /** Where `CheckOn: Result` rules look: the result study, or each result series in the forwarded study. */
  targets: Array<{ level: ResourceLevel; resourceId: string; lastUpdate: string }>;
}

/**
 * Links the results in a stable study to the jobs waiting for them. Jobs still waiting all get
 * them (a study forwarded twice is answered for both); when none waits any more, later results
 * (a second AI series) join the newest job. Linking again is harmless: known series are not added twice.
 */
export async function linkResults(
  deps: RoundTripDeps,
  study: ArrivedStudy,
  expectedFrom: readonly string[],
  now = new Date(),
): Promise<ResultArrival | undefined> {
  if (expectedFrom.length === 0) return undefined;
  const series = await mapLimit(study.seriesIds, 8, async (id) => {
    const s = await deps.orthanc.getSeries(id);
    const first = s.Instances[0];
    const aet = first ? await deps.orthanc.getMetadata('instances', first, 'RemoteAET') : undefined;
    return { id, lastUpdate: s.LastUpdate, first, from: expectedFrom.find((f) => sameAet(f, aet)) };
  });
  const fromResults = series.filter((s) => s.from !== undefined);
  if (fromResults.length === 0) return undefined;
  const from = fromResults[0].from!;
  const resultSeries = fromResults.filter((s) => sameAet(s.from, from));

  const candidates: Array<{ uid: string; matchedBy: ResultLink['matchedBy'] }> = [];
  if (study.studyInstanceUid) candidates.push({ uid: study.studyInstanceUid, matchedBy: 'same-study' });
  for (const s of resultSeries) {
    if (!s.first) continue;
    for (const uid of referencedStudyUids(await deps.orthanc.getInstanceTags(s.first)))
      if (!candidates.some((c) => c.uid === uid)) candidates.push({ uid, matchedBy: 'reference' });
  }
  const waiting: Array<{ entry: AwaitedEntry; job: Job; matchedBy: ResultLink['matchedBy'] }> = [];
  for (const candidate of candidates) {
    for (const entry of await deps.awaited.forStudy(candidate.uid)) {
      if (!sameAet(entry.from, from) || waiting.some((w) => w.entry.jobId === entry.jobId)) continue;
      const job = await deps.jobs.get(entry.jobId);
      if (!job) await deps.awaited.remove(entry);
      // A job on this very study that is itself a result (a Result rule forwarding on) does not answer it.
      else if (!(job.resultOf && job.resourceId === study.studyId))
        waiting.push({ entry, job, matchedBy: candidate.matchedBy });
    }
  }
  if (waiting.length === 0) return undefined;
  const open = waiting.filter((w) => !w.entry.linkedAt && !w.job.roundTrip?.resultsAt);
  const chosen = open.length > 0 ? open : [waiting.sort((a, b) => (a.job.createdAt < b.job.createdAt ? 1 : -1))[0]];

  const at = now.toISOString();
  const seriesIds = resultSeries.map((s) => s.id);
  for (const { entry, job, matchedBy } of chosen) {
    let added = 0;
    await deps.jobs.update(job.id, (j) => {
      const expect = j.rule.expectResults ?? { from, withinSeconds: 0 };
      const trip = (j.roundTrip ??= { from: expect.from, withinSeconds: expect.withinSeconds, results: [] });
      trip.expectedBy ??= expectedByOf(j);
      const known = new Set(trip.results.flatMap((r) => r.seriesIds));
      const fresh = seriesIds.filter((id) => !known.has(id));
      added = fresh.length;
      if (fresh.length === 0) return;
      if (trip.results.length < MAX_LINKS)
        trip.results.push({ studyId: study.studyId, seriesIds: fresh, matchedBy, at });
      trip.resultsAt ??= at;
      j.updatedAt = at;
    });
    if (!entry.linkedAt) await deps.awaited.markLinked(entry, at);
    if (added > 0)
      deps.log.info(
        `Study ${study.studyId}: ${added} result series from ${from} linked to job ${job.id} (rule '${job.ruleId}', ${matchedBy === 'same-study' ? 'same StudyInstanceUID' : 'by reference'})`,
      );
  }
  const wholeStudy = resultSeries.length === series.length;
  return {
    from,
    answers: chosen.map(({ job }) => ({ jobId: job.id, ruleId: job.ruleId })),
    targets: wholeStudy
      ? [{ level: 'Study', resourceId: study.studyId, lastUpdate: study.lastUpdate }]
      : resultSeries.map((s) => ({ level: 'Series' as const, resourceId: s.id, lastUpdate: s.lastUpdate })),
  };
}

/**
 * How many jobs wait for results, and those whose results are overdue, from the open entries. Only
 * entries older than their Within can be overdue (the forward ends after the job is made), so only
 * their jobs are read: the dashboard asks every few seconds.
 */
export async function awaitedJobs(
  deps: { awaited: AwaitedResults; jobs: Pick<JobStore, 'get'> },
  now = new Date(),
  limit = 500,
): Promise<{ awaiting: number; overdue: Job[] }> {
  const open = await deps.awaited.open();
  const mayBeDue = (e: AwaitedEntry) =>
    e.withinSeconds === undefined || Date.parse(e.createdAt) + e.withinSeconds * 1000 < now.getTime();
  const entries = open.filter(mayBeDue).slice(-limit);
  const found = await mapLimit(entries, 8, async (entry) => {
    const job = await deps.jobs.get(entry.jobId);
    if (!job) await deps.awaited.remove(entry);
    // Results linked but the entry not marked (a crash in between): it leaves the open list now.
    else if (job.roundTrip?.resultsAt) await deps.awaited.markLinked(entry, job.roundTrip.resultsAt);
    return job && !job.roundTrip?.resultsAt ? job : undefined;
  });
  let awaiting = open.length - entries.length;
  const overdue: Job[] = [];
  for (const job of found) {
    const state = job && resultsView(job, now)?.state;
    if (state === 'awaiting' || state === 'sending') awaiting += 1;
    if (state === 'overdue') overdue.push(job!);
  }
  return { awaiting, overdue };
}
