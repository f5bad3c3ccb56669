/**
 * Evaluation: a stable study or series meets every active rule; each match becomes a job
 * (insert-if-absent, so duplicate events collapse) whose first step is enqueued.
 */
import type { Ledger } from './ledger';
import { failJob, jobIdFor, newJob, type Job, type RuleSnapshot } from './job';
import { QUEUES, type EvaluateMessage } from './messages';
import type { Logger, ResourceLevel } from '../vocabulary';
import type { QueueSender } from '../storage/queues';
import type { OrthancClient } from '../orthanc/client';
import { derivedSkip } from '../rules/matcher';
import type { Rule, RuleFileProblem } from '../rules/model';
import { derivedFrom } from '../rules/resource-tags';

/** The fields of a loaded rule (shared/rules) that evaluation reads; a rule without `zip` gets the zip step's defaults. */
export type EvaluableRule = Pick<
  Rule,
  'id' | 'checkOn' | 'active' | 'steps' | 'destinations' | 'includeDerived' | 'anonymise' | 'outputName'
> &
  Partial<Pick<Rule, 'zip'>>;

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
  orthanc: Pick<OrthancClient, 'getStudy' | 'getSeries'>;
  rules: RulesPort<R, T>;
  ledger: Ledger;
  queues: QueueSender;
  log: Logger;
  /** Steps this app can run; a job needing another fails at creation with a clear reason. */
  availableSteps?: ReadonlySet<string>;
  /** As RunnerDeps.handOn: the first step's message through an output binding. */
  handOn?: (queue: string, message: unknown) => void;
  now?: () => Date;
}

export interface EvaluationOutcome {
  ruleId: string;
  outcome: 'job-created' | 'job-exists' | 'job-failed' | 'no-match' | 'skipped-derived' | 'skipped-unstable';
  jobId?: string;
  detail?: string;
}

export function snapshotOf(rule: EvaluableRule): RuleSnapshot {
  return {
    id: rule.id,
    checkOn: rule.checkOn,
    steps: [...rule.steps],
    destinations: [...rule.destinations],
    anonymise: rule.anonymise,
    zip: rule.zip,
    outputName: rule.outputName,
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
      outcomes.push(await startJob(deps, rule, message, resource, now()));
    }
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
  for (const o of outcomes)
    deps.log.info(
      `${message.level} ${message.resourceId} rule '${o.ruleId}': ${o.outcome}${o.jobId ? ` (job ${o.jobId})` : ''}${o.detail && o.outcome !== 'no-match' ? ` - ${o.detail}` : ''}`,
    );
  return outcomes;
}

interface ResourceState {
  lastUpdate: string;
  /** False while instances are still arriving (Orthanc's IsStable; true again after a restart). */
  stable: boolean;
  studyInstanceUid?: string;
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

async function startJob<R extends EvaluableRule, T>(
  deps: EvaluateDeps<R, T>,
  rule: R,
  message: EvaluateMessage,
  resource: ResourceState,
  at: Date,
): Promise<EvaluationOutcome> {
  const draft = {
    rule: snapshotOf(rule),
    level: message.level,
    resourceId: message.resourceId,
    studyInstanceUid: resource.studyInstanceUid,
    lastUpdate: resource.lastUpdate,
    source: message.source,
    forced: message.force,
  };
  const job = newJob(draft, jobIdFor(draft), at);
  const missing = job.steps
    .map((s) => s.name)
    .filter((s) => deps.availableSteps !== undefined && !deps.availableSteps.has(s));
  if (missing.length > 0)
    failJob(
      job,
      `rule '${rule.id}' needs the ${missing.join(', ')} step(s), which this version of the function app does not provide`,
      at,
    );
  const { job: stored, created } = await deps.ledger.createJob(job);
  if (created && missing.length > 0) {
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
