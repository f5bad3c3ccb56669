/**
 * Evaluation: a stable study or series meets every active rule; each match becomes a job
 * (insert-if-absent, so duplicate events collapse) whose first step is enqueued.
 */
import type { Cursors, JobStore } from './ports';
import { failJob, jobIdFor, newJob, type CompletionRecord, type Job, type RuleSnapshot } from './job';
import { QUEUES, type EvaluateMessage } from './messages';
import type { Logger, ResourceLevel } from '../vocabulary';
import type { QueueSender } from '../storage/queues';
import type { OrthancClient } from '../orthanc/client';
import { derivedSkip } from '../rules/matcher';
import type { Rule, RuleFileProblem } from '../rules/model';
import { derivedFrom } from '../rules/resource-tags';
import { decideCompletion, describeUnmet, type CompletionFacts } from '../rules/completion';
import { publishedVersion } from './versions';
import { mapLimit } from '../util/concurrency';
import { linkResults, sameAet, type ResultArrival, type RoundTripDeps } from './roundTrip';

/** The fields of a loaded rule (shared/rules) that evaluation reads; a rule without `zip` gets the zip step's defaults. */
export type EvaluableRule = Pick<
  Rule,
  'id' | 'checkOn' | 'active' | 'steps' | 'destinations' | 'includeDerived' | 'anonymise' | 'outputName'
> &
  Partial<Pick<Rule, 'zip' | 'completion' | 'onNewInstances' | 'publish' | 'expectResults'>>;

export interface RuleVerdict {
  matched: boolean;
  /** Plain-English reasons, one per failed check (for logs and the dry run). */
  failures: string[];
}

/** Rule-file errors last logged, so a broken file is reported when it appears or changes, not on every event. */
let reportedRuleErrors = '';

/** A rule file with an error is skipped by the loader; every other rule keeps working. */
function reportRuleErrors(log: Logger, problems: RuleFileProblem[] = []): void {
  const errors = problems
    .filter((p) => p.severity === 'error')
    .map((p) => `${p.file}${p.path ? ` ${p.path}` : ''}: ${p.message}`);
  const signature = errors.join('\n');
  if (signature === reportedRuleErrors) return;
  reportedRuleErrors = signature;
  for (const line of errors)
    log.error(`Rule file problem: ${line} (this file is not used; the other rules keep working)`);
}

/** The rules port: load the current rule set, gather a resource's tags, match. */
export interface RulesPort<R extends EvaluableRule = EvaluableRule, T = unknown> {
  load(): Promise<{ rules: R[]; problems?: RuleFileProblem[] }>;
  collectTags(level: ResourceLevel, resourceId: string, rules: R[]): Promise<T>;
  match(rule: R, tags: T): RuleVerdict;
}

export interface EvaluateDeps<R extends EvaluableRule, T> {
  orthanc: Pick<OrthancClient, 'getStudy' | 'getSeries' | 'getMetadata'>;
  rules: RulesPort<R, T>;
  jobs: Pick<JobStore, 'create'>;
  queues: QueueSender;
  log: Logger;
  /** Steps this app can run; a job needing another fails at creation with a clear reason. */
  availableSteps?: ReadonlySet<string>;
  /** As RunnerDeps.handOn: the first step's message through an output binding. */
  handOn?: (queue: string, message: unknown) => void;
  /** Per rule and resource, the highest version published (OnNewInstances); without it 'ignore' acts as 'replace'. */
  cursors?: Pick<Cursors, 'get'>;
  /** Told of every evaluated resource and its jobs (the worklist links them to the study's booking). */
  onEvaluated?: (study: EvaluatedStudy, jobIds: string[]) => Promise<void>;
  /** Round trips (ExpectResults, CheckOn Result); without them results are neither awaited nor linked. */
  roundTrips?: Omit<RoundTripDeps, 'log'>;
  now?: () => Date;
}

/** What identifies an evaluated resource's study: its Orthanc id and the UIDs a booking may match. */
export interface EvaluatedStudy {
  orthancStudyId: string;
  studyInstanceUid?: string;
  accessionNumber?: string;
}

export interface EvaluationOutcome {
  ruleId: string;
  outcome:
    | 'job-created'
    | 'job-exists'
    | 'job-failed'
    | 'no-match'
    | 'skipped-derived'
    | 'skipped-unstable'
    /** Completion conditions not met yet: evaluated again later (see shared/rules/completion.ts). */
    | 'waiting-completion'
    /** ForceAfter passed with conditions unmet and OnTimeout is 'ignore': no job. */
    | 'skipped-incomplete'
    /** OnNewInstances is 'ignore' and this rule already published the resource. */
    | 'skipped-published'
    /** The study holds results for this rule's own job (ExpectResults): forwarding it again would loop. */
    | 'skipped-result';
  jobId?: string;
  detail?: string;
}

/** A Result rule's job runs on the level of what it was given: the result study or a result series. */
export function snapshotOf(rule: EvaluableRule, level: ResourceLevel = 'Study'): RuleSnapshot {
  return {
    id: rule.id,
    checkOn: rule.checkOn === 'Result' ? level : rule.checkOn,
    steps: [...rule.steps],
    destinations: [...rule.destinations],
    anonymise: rule.anonymise,
    zip: rule.zip,
    outputName: rule.outputName,
    ...(rule.onNewInstances && rule.onNewInstances !== 'replace' ? { onNewInstances: rule.onNewInstances } : {}),
    ...(rule.publish ? { publish: rule.publish } : {}),
    ...(rule.expectResults ? { expectResults: { ...rule.expectResults } } : {}),
  };
}

export async function evaluateResource<R extends EvaluableRule, T>(
  deps: EvaluateDeps<R, T>,
  message: EvaluateMessage,
): Promise<EvaluationOutcome[]> {
  const now = deps.now ?? (() => new Date());
  const resource = await loadResource(deps, message);
  if (!resource) return [];

  const { rules, problems } = await deps.rules.load();
  reportRuleErrors(deps.log, problems);
  const candidates = rules.filter(
    (r) => r.active && r.checkOn === message.level && (!message.ruleIds || message.ruleIds.includes(r.id)),
  );
  const outcomes: EvaluationOutcome[] = [];
  const rechecks: Array<{ ruleId: string; seconds: number; unmet: string[] }> = [];
  let facts: CompletionFacts | undefined;
  const arrival = await resultArrival(deps, message, resource, rules, now());
  const sender = await seriesSender(deps, message, resource, candidates);
  if (candidates.length > 0 && !resource.stable && !message.force) {
    // A replayed change (the change feed, a sweep) can reach a resource that is receiving instances
    // again. A job now would capture a half-sent state, one job more than the stable event Orthanc
    // logs once the instances stop; that later event is the one to act on. A manual run still goes.
    for (const rule of candidates)
      outcomes.push({
        ruleId: rule.id,
        outcome: 'skipped-unstable',
        detail: 'instances are still arriving; the stable event that follows will be evaluated',
      });
  } else if (candidates.length > 0) {
    const tags = await deps.rules.collectTags(message.level, message.resourceId, candidates);
    for (const rule of candidates) {
      const skipped = derivedSkip(rule, resource.derivedFrom);
      if (skipped !== undefined) {
        outcomes.push({ ruleId: rule.id, outcome: 'skipped-derived', detail: skipped });
        continue;
      }
      const verdict = deps.rules.match(rule, tags);
      if (!verdict.matched) {
        outcomes.push({ ruleId: rule.id, outcome: 'no-match', detail: verdict.failures.join('; ') });
        continue;
      }
      const answered = arrival?.answers.find((a) => a.ruleId === rule.id);
      const fromResultNode = sender !== undefined && sameAet(rule.expectResults?.from, sender);
      if ((answered || fromResultNode) && !message.force) {
        outcomes.push({
          ruleId: rule.id,
          outcome: 'skipped-result',
          detail: answered
            ? `the study holds results from ${arrival!.from} for this rule's job ${answered.jobId}`
            : `the series came from ${sender}, which this rule expects results from`,
        });
        continue;
      }
      if (rule.onNewInstances === 'ignore' && !message.force && deps.cursors) {
        const published = await publishedVersion(deps.cursors, {
          ruleId: rule.id,
          level: message.level,
          resourceId: message.resourceId,
        });
        if (published > 0) {
          outcomes.push({
            ruleId: rule.id,
            outcome: 'skipped-published',
            detail: "this rule published the resource already and its OnNewInstances is 'ignore'",
          });
          continue;
        }
      }
      let completion: Completion = {};
      if (rule.completion) {
        facts ??= await completionFacts(
          deps,
          message,
          resource,
          now(),
          candidates.some((r) => r.completion?.forceAfterSeconds !== undefined),
        );
        completion = judgeCompletion(rule, message, facts);
        if (completion.outcome) {
          outcomes.push(completion.outcome);
          if (completion.recheckSeconds !== undefined)
            rechecks.push({ ruleId: rule.id, seconds: completion.recheckSeconds, unmet: completion.unmet ?? [] });
          continue;
        }
      }
      outcomes.push(await startJob(deps, rule, message, resource, now(), completion));
    }
  }
  if (arrival) outcomes.push(...(await runResultRules(deps, rules, message, resource, arrival, now)));
  for (const recheck of rechecks) {
    // A delayed message, not a sleeping worker: the queue hides it until the condition can have changed.
    const again: EvaluateMessage = {
      ...message,
      includeSeries: false,
      ruleIds: [recheck.ruleId],
      waitedFor: [...new Set([...(message.waitedFor ?? []), ...recheck.unmet])],
    };
    await deps.queues.send(QUEUES.evaluate, again, { delaySeconds: recheck.seconds });
  }

  if (message.level === 'Study' && message.includeSeries && rules.some((r) => r.active && r.checkOn === 'Series')) {
    for (const seriesId of resource.seriesIds) {
      await deps.queues.send(QUEUES.evaluate, {
        ...message,
        level: 'Series',
        resourceId: seriesId,
        includeSeries: false,
      });
    }
  }
  for (const o of outcomes) {
    const line = `${message.level} ${message.resourceId} rule '${o.ruleId}': ${o.outcome}${o.jobId ? ` (job ${o.jobId})` : ''}${o.detail && o.outcome !== 'no-match' ? ` - ${o.detail}` : ''}`;
    // A study given up on without a job is worth an operator's attention.
    if (o.outcome === 'skipped-incomplete') deps.log.warn(line);
    else deps.log.info(line);
  }
  if (deps.onEvaluated)
    await deps.onEvaluated(
      {
        orthancStudyId: resource.studyId,
        studyInstanceUid: resource.studyInstanceUid,
        accessionNumber: resource.accessionNumber,
      },
      outcomes.flatMap((o) => (o.jobId ? [o.jobId] : [])),
    );
  return outcomes;
}

interface ResourceState {
  lastUpdate: string;
  /** False while instances are still arriving (Orthanc's IsStable; true again after a restart). */
  stable: boolean;
  studyInstanceUid?: string;
  /** The Orthanc id of the study (the resource itself, or a series' parent). */
  studyId: string;
  accessionNumber?: string;
  /** Set when Orthanc made the resource itself (anonymised or modified): the source's Orthanc id. */
  derivedFrom?: string;
  seriesIds: string[];
}

async function loadResource<R extends EvaluableRule, T>(
  deps: EvaluateDeps<R, T>,
  message: EvaluateMessage,
): Promise<ResourceState | undefined> {
  try {
    if (message.level === 'Study') {
      const study = await deps.orthanc.getStudy(message.resourceId);
      return {
        lastUpdate: study.LastUpdate,
        stable: study.IsStable,
        studyInstanceUid: study.MainDicomTags.StudyInstanceUID,
        studyId: message.resourceId,
        accessionNumber: study.MainDicomTags.AccessionNumber,
        derivedFrom: derivedFrom(study),
        seriesIds: study.Series,
      };
    }
    const series = await deps.orthanc.getSeries(message.resourceId);
    const study = await deps.orthanc.getStudy(series.ParentStudy);
    return {
      lastUpdate: series.LastUpdate,
      stable: series.IsStable,
      studyInstanceUid: study.MainDicomTags.StudyInstanceUID,
      studyId: series.ParentStudy,
      accessionNumber: study.MainDicomTags.AccessionNumber,
      derivedFrom: derivedFrom(study, series),
      seriesIds: [],
    };
  } catch (error) {
    if ((error as { notFound?: boolean }).notFound) {
      deps.log.warn(`${message.level} ${message.resourceId} no longer exists in Orthanc; nothing to evaluate`);
      return undefined;
    }
    throw error;
  }
}

/**
 * A stable study from an AE title some rule expects results from: linked to the jobs it answers
 * (shared/pipeline/roundTrip.ts). Only studies, and only once instances stopped arriving.
 */
async function resultArrival<R extends EvaluableRule, T>(
  deps: EvaluateDeps<R, T>,
  message: EvaluateMessage,
  resource: ResourceState,
  rules: R[],
  now: Date,
): Promise<ResultArrival | undefined> {
  if (!deps.roundTrips || message.level !== 'Study' || (!resource.stable && !message.force)) return undefined;
  const expected = [...new Set(rules.flatMap((r) => (r.expectResults ? [r.expectResults.from] : [])))];
  return linkResults(
    { ...deps.roundTrips, log: deps.log },
    {
      studyId: resource.studyId,
      studyInstanceUid: resource.studyInstanceUid,
      seriesIds: resource.seriesIds,
      lastUpdate: resource.lastUpdate,
    },
    expected,
    now,
  );
}

/**
 * Who sent a series, when a Series rule expects results from someone: a series from that very AE
 * title is a result, and forwarding it back would loop.
 */
async function seriesSender<R extends EvaluableRule, T>(
  deps: EvaluateDeps<R, T>,
  message: EvaluateMessage,
  resource: ResourceState,
  candidates: R[],
): Promise<string | undefined> {
  if (!deps.roundTrips || message.level !== 'Series' || (!resource.stable && !message.force)) return undefined;
  if (!candidates.some((r) => r.expectResults)) return undefined;
  const first = (await deps.roundTrips.orthanc.getSeries(message.resourceId)).Instances[0];
  return first ? deps.roundTrips.orthanc.getMetadata('instances', first, 'RemoteAET') : undefined;
}

/** `CheckOn: Result` rules on each result target; their jobs name the job the result answers. */
async function runResultRules<R extends EvaluableRule, T>(
  deps: EvaluateDeps<R, T>,
  rules: R[],
  message: EvaluateMessage,
  resource: ResourceState,
  arrival: ResultArrival,
  now: () => Date,
): Promise<EvaluationOutcome[]> {
  const resultRules = rules.filter(
    (r) => r.active && r.checkOn === 'Result' && (!message.ruleIds || message.ruleIds.includes(r.id)),
  );
  const outcomes: EvaluationOutcome[] = [];
  if (resultRules.length === 0) return outcomes;
  for (const target of arrival.targets) {
    const tags = await deps.rules.collectTags(target.level, target.resourceId, resultRules);
    const on = `result ${target.level.toLowerCase()} ${target.resourceId}`;
    for (const rule of resultRules) {
      const skipped = derivedSkip(rule, resource.derivedFrom);
      if (skipped !== undefined) {
        outcomes.push({ ruleId: rule.id, outcome: 'skipped-derived', detail: `${on}: ${skipped}` });
        continue;
      }
      const verdict = deps.rules.match(rule, tags);
      if (!verdict.matched) {
        outcomes.push({ ruleId: rule.id, outcome: 'no-match', detail: verdict.failures.join('; ') });
        continue;
      }
      const outcome = await startJob(
        deps,
        rule,
        { ...message, level: target.level, resourceId: target.resourceId },
        { ...resource, lastUpdate: target.lastUpdate },
        now(),
        {},
        arrival.answers[0].jobId,
      );
      outcomes.push({ ...outcome, detail: outcome.detail ? `${on}: ${outcome.detail}` : on });
    }
  }
  return outcomes;
}

async function startJob<R extends EvaluableRule, T>(
  deps: EvaluateDeps<R, T>,
  rule: R,
  message: EvaluateMessage,
  resource: ResourceState,
  at: Date,
  completion: Completion = {},
  resultOf?: string,
): Promise<EvaluationOutcome> {
  const draft = {
    rule: snapshotOf(rule, message.level),
    level: message.level,
    resourceId: message.resourceId,
    studyInstanceUid: resource.studyInstanceUid,
    lastUpdate: resource.lastUpdate,
    source: message.source,
    forced: message.force,
  };
  const job = newJob(draft, jobIdFor(draft), at);
  if (completion.record) job.completion = completion.record;
  if (completion.warning) job.warnings.push(completion.warning);
  const missing = job.steps
    .map((s) => s.name)
    .filter((s) => deps.availableSteps !== undefined && !deps.availableSteps.has(s));
  if (missing.length > 0)
    failJob(
      job,
      `rule '${rule.id}' needs the ${missing.join(', ')} step(s), which this version of the function app does not provide`,
      at,
    );
  else if (completion.failure) failJob(job, completion.failure, at);
  if (resultOf) job.resultOf = resultOf;
  if (rule.expectResults) {
    job.roundTrip = { from: rule.expectResults.from, withinSeconds: rule.expectResults.withinSeconds, results: [] };
    // Filed before the job is created, so no job that waits for results is ever missing from the lookup.
    if (deps.roundTrips && resource.studyInstanceUid && job.status !== 'failed')
      await deps.roundTrips.awaited.expect({
        jobId: job.id,
        studyInstanceUid: resource.studyInstanceUid,
        from: rule.expectResults.from,
        withinSeconds: rule.expectResults.withinSeconds,
        createdAt: job.createdAt,
      });
  }
  const { job: stored, created } = await deps.jobs.create(job);
  if (created && (missing.length > 0 || completion.failure)) {
    deps.log.error(`Job ${stored.id} (${rule.id}) failed: ${stored.error}`);
    return { ruleId: rule.id, outcome: 'job-failed', jobId: stored.id, detail: stored.error };
  }
  if (created || notStarted(stored)) {
    const first = { jobId: stored.id, step: stored.currentStep };
    if (deps.handOn) deps.handOn(QUEUES.step(stored.currentStep), first);
    else await deps.queues.send(QUEUES.step(stored.currentStep), first);
    return {
      ruleId: rule.id,
      outcome: created ? 'job-created' : 'job-exists',
      jobId: stored.id,
      detail: created ? undefined : 'first step re-sent',
    };
  }
  return { ruleId: rule.id, outcome: 'job-exists', jobId: stored.id, detail: `already ${stored.status}` };
}

/**
 * The first message is written by the host only after a successful evaluation, so a job created by an
 * evaluation that then failed has none: a later evaluation sends it again (steps ignore duplicates).
 */
function notStarted(job: Job): boolean {
  return job.status === 'queued' && job.attempts === 0;
}

/** What a rule's Completion decided: an outcome instead of a job, or what the job records and how it starts. */
interface Completion {
  outcome?: EvaluationOutcome;
  recheckSeconds?: number;
  unmet?: string[];
  record?: CompletionRecord;
  /** OnTimeout 'fail': the job is created failed with this reason. */
  failure?: string;
  warning?: string;
}

function judgeCompletion(rule: EvaluableRule, message: EvaluateMessage, facts: CompletionFacts): Completion {
  const settings = rule.completion!;
  const decision = decideCompletion(settings, facts);
  const unmet = decision.conditions.filter((c) => !c.met).map((c) => c.condition);
  const record = (outcome: CompletionRecord['outcome']): CompletionRecord => ({
    outcome,
    conditions: decision.conditions,
    waitedFor: [
      ...new Set([
        ...(message.waitedFor ?? []),
        ...(outcome === 'complete' ? [] : unmet),
        // Met StableSeconds was a wait whichever evaluation saw it met (the delayed re-check, or the
        // change feed or sweep arriving later): the job comes that long after the last instance.
        ...(outcome === 'complete' && settings.stableSeconds !== undefined ? ['StableSeconds'] : []),
      ]),
    ],
    firstArrival: facts.firstArrival?.toISOString(),
    decidedAt: facts.now.toISOString(),
  });
  // An operator's run goes now, as it does for a resource Orthanc does not call stable yet.
  if (message.force) return { record: record('manual') };
  if (decision.kind === 'complete') return { record: record('complete') };
  const missing = describeUnmet(decision.conditions);
  if (decision.kind === 'wait')
    return {
      outcome: {
        ruleId: rule.id,
        outcome: 'waiting-completion',
        detail: `${missing}; ${decision.recheckSeconds !== undefined ? `evaluated again in ${decision.recheckSeconds}s` : 'evaluated again when new instances make it stable'}`,
      },
      recheckSeconds: decision.recheckSeconds,
      unmet,
    };
  const timedOut = `ForceAfter ${decision.forceAfterSeconds}s passed since the first instance arrived with ${missing}`;
  if (decision.onTimeout === 'ignore')
    return {
      outcome: {
        ruleId: rule.id,
        outcome: 'skipped-incomplete',
        detail: `${timedOut}; OnTimeout is 'ignore', so no job`,
      },
    };
  if (decision.onTimeout === 'fail') return { record: record('timeout'), failure: `incomplete: ${timedOut}` };
  return { record: record('timeout'), warning: `completion: ${timedOut}; OnTimeout is 'proceed', so it runs anyway` };
}

/** Orthanc's timestamps (`20260101T120000`, LastUpdate and ReceptionDate) are UTC. */
function orthancTime(value: string | undefined): Date | undefined {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})/.exec(value ?? '');
  return m ? new Date(Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], +m[6])) : undefined;
}

/**
 * What Completion conditions are judged on: the resource's series (descriptions, instance counts) and
 * its first arrival, the earliest ReceptionDate of the first instance Orthanc lists in each series
 * (one request per series, not per instance; instances are listed in arrival order).
 */
async function completionFacts<R extends EvaluableRule, T>(
  deps: EvaluateDeps<R, T>,
  message: EvaluateMessage,
  resource: ResourceState,
  now: Date,
  withArrival: boolean,
): Promise<CompletionFacts> {
  const ids = message.level === 'Study' ? resource.seriesIds : [message.resourceId];
  const series = await mapLimit(ids, 8, (id) => deps.orthanc.getSeries(id));
  const arrivals = await mapLimit(series, 8, async (s) =>
    withArrival && s.Instances[0]
      ? orthancTime(await deps.orthanc.getMetadata('instances', s.Instances[0], 'ReceptionDate'))
      : undefined,
  );
  const known = arrivals.filter((d): d is Date => d !== undefined).map((d) => d.getTime());
  return {
    now,
    lastUpdate: orthancTime(resource.lastUpdate) ?? now,
    firstArrival: known.length ? new Date(Math.min(...known)) : undefined,
    instances: series.reduce((n, s) => n + s.Instances.length, 0),
    seriesDescriptions: series.map((s) => s.MainDicomTags.SeriesDescription ?? ''),
  };
}
