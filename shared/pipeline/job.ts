/**
 * The job model and its state transitions, as pure functions (the ledger stores the result).
 * A job is one rule's pipeline for one state of one resource: (rule, resource, LastUpdate).
 */
import { createHash, randomBytes } from 'node:crypto';
import { anonymiseSettingsSchema, type AnonymiseSettings } from '../dicom/options';
import type { PipelineStep, ResourceLevel } from '../vocabulary';
import type { EventSource } from './messages';
import type { RoundTrip } from './roundTrip';

export type JobStatus = 'queued' | 'running' | 'succeeded' | 'failed';
export type StepStatus = 'pending' | 'running' | 'waiting' | 'succeeded' | 'failed' | 'skipped';

export interface StepRecord {
  name: PipelineStep;
  status: StepStatus;
  attempts: number;
  startedAt?: string;
  /** Refreshed while the step runs; a stale heartbeat means its host died and the step may be taken over. */
  heartbeatAt?: string;
  endedAt?: string;
  durationMs?: number;
  instances?: number;
  bytes?: number;
  /** Progress of a running step, e.g. instances done / total. */
  progress?: { done: number; total: number };
  detail?: Record<string, unknown>;
  error?: string;
  /** The function app instance that ran the latest attempt (several share the work when scaled out). */
  instance?: string;
}

/** What a job needs of its rule, frozen when the job is created: editing the rule later changes nothing. */
export interface RuleSnapshot {
  id: string;
  checkOn: ResourceLevel;
  steps: PipelineStep[];
  destinations: string[];
  /** As the rule schema parsed it (defaults filled in), so a step reads it as it is. */
  anonymise?: AnonymiseSettings;
  zip?: { level: number; keepFolder: boolean };
  outputName?: string;
  /** `Publish.Blob` of the rule: where the publish step uploads the zip. */
  publish?: { blob?: { container: string; prefix: string } };
  /** `OnNewInstances` of the rule (absent: 'replace'): what a job for a resource handled before publishes. */
  onNewInstances?: 'replace' | 'ignore' | 'new-version';
  /** `ExpectResults` of the rule: results from this AE title are due `withinSeconds` after the forward. */
  expectResults?: { from: string; withinSeconds: number };
}

/**
 * The Anonymise settings a job runs with. The snapshot holds them as the rule schema parsed them
 * (defaults filled in), so they are used as stored; only a snapshot without any gets the defaults.
 */
export function anonymiseSettingsOf(rule: Pick<RuleSnapshot, 'anonymise'>): AnonymiseSettings {
  return rule.anonymise ?? anonymiseSettingsSchema.parse({});
}

export interface NewJob {
  rule: RuleSnapshot;
  level: ResourceLevel;
  resourceId: string;
  studyInstanceUid?: string;
  lastUpdate: string;
  source: EventSource;
  forced: boolean;
}

export interface Job extends NewJob {
  id: string;
  ruleId: string;
  status: JobStatus;
  currentStep: PipelineStep;
  steps: StepRecord[];
  /** Absolute path of the published result (folder or zip) once known. */
  outputPath?: string;
  /** The rule's Completion conditions as evaluation found them when it made the job (see shared/rules/completion.ts). */
  completion?: CompletionRecord;
  /** A job whose rule expects results back: when they are due and what came (see ./roundTrip.ts). */
  roundTrip?: RoundTrip;
  /** A job of a `CheckOn: Result` rule: the id of the job whose forward this result answers. */
  resultOf?: string;
  error?: string;
  /** The first warnings (the ledger keeps at most a few dozen on the record, each bounded in length). */
  warnings: string[];
  /** Warnings beyond those on the record, kept in blobs (Table storage caps a record at 64 KiB). */
  warningsOverflow?: WarningsOverflow;
  attempts: number;
  createdAt: string;
  updatedAt: string;
  finishedAt?: string;
}

export interface WarningsOverflow {
  /** Warnings not on the record. */
  count: number;
  /** Blob container and blob names (JSON arrays of strings), in the order the warnings came. */
  container: string;
  blobs: string[];
  /** Counted but not kept, once a job has had very many overflowing updates. */
  dropped?: number;
}

/** What the job index knows of a job: enough to filter and count without reading the job (never PHI). */
export interface JobSummary {
  jobId: string;
  ruleId: string;
  status: JobStatus;
  step: string;
  level: string;
  resourceId: string;
  studyInstanceUid?: string;
  createdAt: string;
  finishedAt?: string;
  instances?: number;
  bytes?: number;
}

export function summaryOf(job: Job): JobSummary {
  const counted = job.steps.filter((s) => s.instances !== undefined);
  return {
    jobId: job.id,
    ruleId: job.ruleId,
    status: job.status,
    step: job.currentStep,
    level: job.level,
    resourceId: job.resourceId,
    studyInstanceUid: job.studyInstanceUid,
    createdAt: job.createdAt,
    finishedAt: job.finishedAt,
    instances: counted.length ? Math.max(...counted.map((s) => s.instances ?? 0)) : undefined,
    bytes: counted.length ? Math.max(...job.steps.map((s) => s.bytes ?? 0)) : undefined,
  };
}

/** Which completeness conditions a job waited for, and how they stood when it was made. */
export interface CompletionRecord {
  /** 'complete': every condition met; 'timeout': ForceAfter passed first (OnTimeout proceed or fail); 'manual': an operator's run. */
  outcome: 'complete' | 'timeout' | 'manual';
  conditions: Array<{ condition: string; required: string; observed: string; met: boolean }>;
  /** Conditions not met at an earlier evaluation of this resource, which the job therefore waited for. */
  waitedFor: string[];
  firstArrival?: string;
  decidedAt: string;
}

/** Same rule + resource + LastUpdate → same id, so duplicate events collapse onto one job. */
export function jobIdFor(
  job: Pick<NewJob, 'rule' | 'level' | 'resourceId' | 'lastUpdate' | 'forced'>,
  nonce?: string,
): string {
  const parts = [job.rule.id, job.level, job.resourceId, job.lastUpdate];
  if (job.forced) parts.push(nonce ?? `${Date.now()}-${randomBytes(6).toString('hex')}`);
  return createHash('sha256').update(parts.join('\u0000')).digest('hex').slice(0, 32);
}

/** The ordered steps of a rule's pipeline; a pipeline that writes files ends with publish. */
export function pipelineOf(rule: Pick<RuleSnapshot, 'steps'>): PipelineStep[] {
  const steps = rule.steps.filter((s) => s !== 'publish');
  return steps.includes('download') ? [...steps, 'publish'] : steps;
}

export function newJob(input: NewJob, id: string, now = new Date()): Job {
  const steps = pipelineOf(input.rule);
  if (steps.length === 0) throw new Error(`Rule '${input.rule.id}' has no steps`);
  const at = now.toISOString();
  return {
    id,
    ruleId: input.rule.id,
    level: input.level,
    resourceId: input.resourceId,
    studyInstanceUid: input.studyInstanceUid,
    lastUpdate: input.lastUpdate,
    source: input.source,
    forced: input.forced,
    status: 'queued',
    currentStep: steps[0],
    steps: steps.map((name) => ({ name, status: 'pending', attempts: 0 })),
    rule: input.rule,
    warnings: [],
    attempts: 0,
    createdAt: at,
    updatedAt: at,
  };
}

export function isTerminal(job: Job): boolean {
  return job.status === 'succeeded' || job.status === 'failed';
}

export function stepRecord(job: Job, step: PipelineStep): StepRecord {
  const record = job.steps.find((s) => s.name === step);
  if (!record) throw new Error(`Job ${job.id} (rule '${job.ruleId}') has no step '${step}'`);
  return record;
}

export function nextStepOf(job: Job, step: PipelineStep): PipelineStep | undefined {
  const index = job.steps.findIndex((s) => s.name === step);
  return index >= 0 ? job.steps[index + 1]?.name : undefined;
}

/** What the runner should do with a step message, given the job as stored. */
export type StepDecision =
  | { kind: 'run' }
  | { kind: 'ignore'; reason: string }
  /** The step already succeeded (a crash came before its follow-up message was sent): send it again. */
  | { kind: 'resend-next'; next: PipelineStep };

export function decideStep(job: Job, step: PipelineStep): StepDecision {
  if (isTerminal(job)) return { kind: 'ignore', reason: `job is ${job.status}` };
  const record = job.steps.find((s) => s.name === step);
  if (!record) return { kind: 'ignore', reason: `job has no step '${step}'` };
  if (job.currentStep === step) return { kind: 'run' };
  if (record.status === 'succeeded') {
    const next = nextStepOf(job, step);
    if (next !== undefined && job.currentStep === next && stepRecord(job, next).status === 'pending')
      return { kind: 'resend-next', next };
    return { kind: 'ignore', reason: `step '${step}' already done; job is at '${job.currentStep}'` };
  }
  return { kind: 'ignore', reason: `job is at step '${job.currentStep}', not '${step}'` };
}

/** A step begins an attempt; its heartbeat starts with it. */
export function startStep(job: Job, step: PipelineStep, now = new Date()): void {
  const record = stepRecord(job, step);
  record.status = 'running';
  record.attempts += 1;
  record.startedAt = now.toISOString();
  record.endedAt = undefined;
  record.durationMs = undefined;
  record.error = undefined;
  record.progress = undefined;
  job.status = 'running';
  job.attempts += 1;
  job.error = undefined;
  job.updatedAt = now.toISOString();
  record.heartbeatAt = now.toISOString();
}

/** A running step is alive; a step that ended in the meantime is left as it is. */
export function heartbeat(job: Job, step: PipelineStep, now = new Date()): void {
  const record = stepRecord(job, step);
  if (record.status === 'running') record.heartbeatAt = now.toISOString();
}

/** Progress of a running step (e.g. instances done / total), which is a heartbeat too. */
export function recordProgress(job: Job, step: PipelineStep, done: number, total: number, now = new Date()): void {
  const record = stepRecord(job, step);
  record.progress = { done, total };
  record.heartbeatAt = now.toISOString();
}

export interface StepResult {
  instances?: number;
  bytes?: number;
  detail?: Record<string, unknown>;
  warnings?: string[];
  outputPath?: string;
  /** Remaining steps to skip (e.g. nothing left to forward after every instance was excluded). */
  skipRest?: boolean;
}

/**
 * A step succeeded: its counts and warnings are recorded and the job moves to the next step, which is
 * returned (undefined once the job has ended). `skipRest` ends the job here, the remaining steps skipped.
 */
export function finishStep(
  job: Job,
  step: PipelineStep,
  result: StepResult,
  now = new Date(),
): PipelineStep | undefined {
  const record = stepRecord(job, step);
  record.status = 'succeeded';
  record.endedAt = now.toISOString();
  record.durationMs = record.startedAt ? now.getTime() - Date.parse(record.startedAt) : undefined;
  if (result.instances !== undefined) record.instances = result.instances;
  if (result.bytes !== undefined) record.bytes = result.bytes;
  if (result.detail !== undefined) record.detail = result.detail;
  record.progress = undefined;
  if (result.warnings?.length) job.warnings.push(...result.warnings.map((w) => `${step}: ${w}`));
  if (result.outputPath !== undefined) job.outputPath = result.outputPath;
  job.updatedAt = now.toISOString();
  const next = nextStepOf(job, step);
  if (next === undefined) {
    job.status = 'succeeded';
    job.finishedAt = now.toISOString();
    return undefined;
  }
  job.currentStep = next;
  if (result.skipRest) {
    for (const r of job.steps) if (r.status === 'pending') r.status = 'skipped';
    job.status = 'succeeded';
    job.finishedAt = now.toISOString();
    return undefined;
  }
  job.status = 'queued';
  return next;
}

/** A step that hands work to someone else (e.g. an Orthanc job) and checks back later. */
export function waitStep(
  job: Job,
  step: PipelineStep,
  detail: Record<string, unknown>,
  progress?: { done: number; total: number },
  now = new Date(),
): void {
  const record = stepRecord(job, step);
  record.status = 'waiting';
  record.detail = detail;
  record.progress = progress;
  job.status = 'running';
  job.updatedAt = now.toISOString();
}

/** A failed attempt: the message is retried by the host, so the job stays open. */
export function recordAttemptFailure(job: Job, step: PipelineStep, error: string, now = new Date()): void {
  const record = stepRecord(job, step);
  record.status = 'failed';
  record.error = error;
  record.endedAt = now.toISOString();
  job.error = `${step}: ${error}`;
  job.updatedAt = now.toISOString();
}

/** A permanent failure: the attempt is recorded and the job gives up at once with its reason. */
export function failStep(job: Job, step: PipelineStep, reason: string, now = new Date()): void {
  recordAttemptFailure(job, step, reason, now);
  failJob(job, `${step}: ${reason}`, now);
}

/**
 * A step found running with a stale heartbeat: its host stopped. That counts as a failed attempt and
 * the job stays open for a fresh message, unless the step has been started `maxStarts` times (one that
 * keeps killing its host, e.g. by exhausting memory). A step no longer running is left as it is.
 */
export function recordHostStopped(job: Job, step: PipelineStep, maxStarts: number, now = new Date()): void {
  const record = stepRecord(job, step);
  if (record.status !== 'running') return;
  recordAttemptFailure(job, step, `the host stopped while this step ran (attempt ${record.attempts})`, now);
  if (record.attempts >= maxStarts)
    failJob(job, `${step}: the host stopped ${record.attempts} times while this step ran`, now);
}

/** A step message exhausted its deliveries: the job fails with the last reason its step recorded. */
export function failPoisoned(job: Job, queue: string, now = new Date()): void {
  if (isTerminal(job)) return;
  const last = job.steps.find((s) => s.name === job.currentStep)?.error;
  failJob(job, `${job.currentStep}: ${last ?? 'gave up after repeated failures'} (moved to ${queue}-poison)`, now);
}

/** A warning for the operator, beside the job (the store bounds how many the record itself keeps). */
export function addWarning(job: Job, warning: string): void {
  job.warnings.push(warning);
}

/** The job gives up: the step's last error becomes the job's reason. */
export function failJob(job: Job, reason: string, now = new Date()): void {
  const record = job.steps.find((s) => s.name === job.currentStep);
  if (record && record.status !== 'succeeded') {
    record.status = 'failed';
    record.error ??= reason;
    record.endedAt ??= now.toISOString();
  }
  job.status = 'failed';
  job.error = reason;
  job.finishedAt = now.toISOString();
  job.updatedAt = now.toISOString();
}

/**
 * Operator retry of a failed job, with fresh attempt counts. By default it resumes at the step that
 * failed; `restart` runs the whole pipeline again from its first step (the operator API does this
 * for pipelines that write files, so a half-rewritten working folder is never resumed). The job's
 * source becomes 'retry'.
 */
export function resetForRetry(job: Job, now = new Date(), options: { restart?: boolean } = {}): PipelineStep {
  if (job.status !== 'failed') throw new Error(`Job ${job.id} is ${job.status}; only failed jobs can be retried`);
  for (const record of job.steps) {
    if (options.restart || (record.status !== 'succeeded' && record.status !== 'skipped')) {
      record.status = 'pending';
      record.attempts = 0;
      record.error = undefined;
      record.progress = undefined;
      record.detail = undefined; // e.g. forward's per-destination attempts: a retry starts afresh
    }
  }
  const step = job.steps.find((s) => s.status === 'pending')?.name ?? job.currentStep;
  job.currentStep = step;
  job.status = 'queued';
  job.source = 'retry';
  job.error = undefined;
  job.finishedAt = undefined;
  job.updatedAt = now.toISOString();
  return step;
}
