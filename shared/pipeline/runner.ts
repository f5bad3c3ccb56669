/**
 * Runs one pipeline step for one queue message, with the rules every step shares:
 * - the job record decides whether the message is current, stale or a duplicate;
 * - a step already running elsewhere (fresh heartbeat) is not run twice;
 * - success records the step and only then sends the next step's message; a crash in between is
 *   repaired when the host redelivers this message (`resend-next`);
 * - a transient failure is recorded and rethrown, so the host retries and finally poisons it;
 *   a permanent failure fails the job at once with its reason;
 * - an error's text is redacted (shared/pipeline/redact.ts) before it reaches the job record, the log,
 *   telemetry or the host: this is where errors leave a step.
 * A message goes decide → start → run → record; the job changes only through job.ts's transitions.
 */
import {
  addWarning,
  decideStep,
  failPoisoned,
  failStep,
  finishStep,
  heartbeat,
  isTerminal,
  recordAttemptFailure,
  recordHostStopped,
  recordProgress,
  startStep,
  stepRecord,
  waitStep,
  type Job,
  type StepResult,
} from './job';
import { QUEUES, parseMessage, stepMessageSchema, type StepMessage } from './messages';
import type { JobStore } from './ports';
import { redactError, redactedLogger, type Redact, type Redaction } from './redact';
import type { QueueSender } from '../storage/queues';
import { describeIssues } from '../util/issues';
import type { StepTelemetry, Telemetry } from '../telemetry';
import { PermanentError, describe, type Logger, type PipelineStep } from '../vocabulary';

/** A step asks to be called again later (waiting for Orthanc, or for another job's output). */
export interface StepWait {
  wait: { delaySeconds: number; detail: Record<string, unknown>; progress?: { done: number; total: number } };
}

export interface StepContext {
  job: Job;
  log: Logger;
  /** Records progress and keeps the step's heartbeat fresh; cheap to call often. */
  progress: (done: number, total: number) => Promise<void>;
}

/** A step that hands its work to one message per destination (forward): see shared/pipeline/destinationRunner.ts. */
export interface StepFanOut {
  fanOut: { destinations: string[] };
}

export type StepHandler = (context: StepContext) => Promise<StepResult | StepWait>;
/** The step's own message of a step that fans out: it may finish or wait, as any step, or fan out. */
export type FanOutStartHandler = (context: StepContext) => Promise<StepResult | StepWait | StepFanOut>;

/**
 * A step whose work is split into one message per destination, each run and retried on its own, so one
 * destination that is down never holds the others. `start` runs for the step's own message and returns
 * the fan-out; `fanOut` records it and sends the messages; `destination` runs one destination's message.
 */
export interface FanOutStep {
  start: FanOutStartHandler;
  fanOut(deps: RunnerDeps, job: Job, step: PipelineStep, destinations: string[]): Promise<string>;
  destination(deps: RunnerDeps, job: Job, message: StepMessage): Promise<string>;
}

export interface RunnerDeps {
  jobs: Pick<JobStore, 'get' | 'update'>;
  queues: QueueSender;
  log: Logger;
  /**
   * Hands a message on without delay through the function's queue output binding, so the host
   * writes it after success and polls the target at once; without it the message is sent directly.
   */
  handOn?: (queue: string, message: unknown) => void;
  /** Releases what a job holds when it ends (its output lock). */
  onJobEnded?: (job: Job) => Promise<void>;
  /** Each step's duration and outcome, by job id (Application Insights when configured). */
  telemetry?: Telemetry;
  /** This function app instance, recorded on the steps it starts (shared/azure-functions/instance.ts). */
  instance?: string;
  /** Overrides STALE_HEARTBEAT_MS (AUTOMATION_STALE_HEARTBEAT_SECONDS). */
  staleHeartbeatMs?: number;
  /** Rewrites PHI out of errors and log lines (none when AUTOMATION_LOG_PHI=true); without it text passes unchanged. */
  redaction?: Redaction;
  now?: () => Date;
}

/** A step whose heartbeat is older than this is presumed dead (its host crashed) and may be taken over. */
export const STALE_HEARTBEAT_MS = 120_000;
/** A finished step's follow-up is re-sent only when it should have started long ago. */
const RESEND_AFTER_MS = 30_000;
const BUSY_RECHECK_SECONDS = 15;
/** A step whose host died this many times while running it fails the job with that reason. */
const MAX_STARTS_AFTER_CRASHES = 10;
/** Progress is written at most this often (a destination's too). */
export const PROGRESS_INTERVAL_MS = 2_000;

/** What a step message calls for, given the job as stored. */
type Action =
  | { kind: 'run' }
  | { kind: 'ignore'; reason: string }
  | { kind: 'resend-next'; next: PipelineStep }
  | { kind: 'recheck'; delaySeconds: number }
  | { kind: 'busy' }
  | { kind: 'take-over' };

/** One attempt at a step, once started: the job as it started, and what its log lines and warnings pass through. */
interface Attempt {
  step: PipelineStep;
  job: Job;
  message: StepMessage;
  log: Logger;
  redactPaths: Redact;
  startedAt: number;
}

type Ran = { ok: true; outcome: StepResult | StepWait } | { ok: false; error: unknown };
type RanAny = { ok: true; outcome: StepResult | StepWait | StepFanOut } | { ok: false; error: unknown };

class NotRunnable extends Error {
  constructor(readonly busy: boolean) {
    super(busy ? 'started by another message' : 'not runnable');
  }
}

export async function runStep(
  deps: RunnerDeps,
  step: PipelineStep,
  handler: StepHandler | FanOutStep,
  rawMessage: unknown,
): Promise<string> {
  const message: StepMessage = parseMessage(stepMessageSchema, QUEUES.step(step), rawMessage);
  if (message.step !== step)
    throw new Error(`Message for step '${message.step}' arrived on queue '${QUEUES.step(step)}'`);
  const stored = await deps.jobs.get(message.jobId);
  if (!stored) {
    deps.log.warn(`Job ${message.jobId} is not in the ledger; message on '${QUEUES.step(step)}' dropped`);
    return 'unknown-job';
  }
  const action = decide(stored, step, now(deps), deps.staleHeartbeatMs ?? STALE_HEARTBEAT_MS);
  // A destination's message: the job being at this step is all that matters here; the destination's
  // own record decides the rest (whether the step's own message runs elsewhere does not).
  if (
    message.destination !== undefined &&
    (action.kind === 'run' || action.kind === 'busy' || action.kind === 'take-over')
  ) {
    if (typeof handler === 'function') throw new Error(`Step '${step}' takes no per-destination messages`);
    return handler.destination(deps, stored, message);
  }
  switch (action.kind) {
    case 'ignore':
      deps.log.info(`Job ${stored.id} (${stored.ruleId}) ${step}: nothing to do (${action.reason})`);
      return 'ignored';
    case 'resend-next':
      await handOn(deps, QUEUES.step(action.next), { jobId: stored.id, step: action.next });
      deps.log.warn(`Job ${stored.id} (${stored.ruleId}): re-sent '${action.next}', whose message was never sent`);
      return 'resent-next';
    case 'recheck':
      await deps.queues.send(QUEUES.step(step), message, { delaySeconds: action.delaySeconds });
      return 'recheck';
    case 'busy':
      return recheckLater(deps, message);
    case 'take-over':
      return takeOver(deps, step, stored, message);
    case 'run': {
      const attempt = await start(deps, step, stored.id, message);
      if (attempt === 'busy') return recheckLater(deps, message);
      if (attempt === 'not-runnable') return 'ignored';
      const ran = await run(deps, attempt, typeof handler === 'function' ? handler : handler.start);
      if (ran.ok && 'fanOut' in ran.outcome) {
        if (typeof handler === 'function') throw new Error(`Step '${step}' fanned out without a fan-out runner`);
        report(deps, attempt, 'waiting');
        return handler.fanOut(deps, attempt.job, step, ran.outcome.fanOut.destinations);
      }
      return record(deps, attempt, ran as Ran);
    }
  }
}

/** Decide, from the job as read and without writing, what the message calls for. */
function decide(job: Job, step: PipelineStep, at: Date, staleMs: number): Action {
  const decision = decideStep(job, step);
  if (decision.kind === 'ignore') return decision;
  if (decision.kind === 'resend-next') {
    const waited = at.getTime() - (Date.parse(stepRecord(job, step).endedAt ?? '') || 0);
    // Too early to tell a lost follow-up (the host died, or the output binding failed, after the step
    // was recorded) from one still on its way. This may be the only message that can repair the job,
    // so it comes back once the follow-up is overdue instead of being dropped.
    if (waited < RESEND_AFTER_MS)
      return { kind: 'recheck', delaySeconds: Math.ceil((RESEND_AFTER_MS - waited) / 1000) };
    return decision;
  }
  const record = stepRecord(job, step);
  if (record.status !== 'running') return { kind: 'run' };
  const fresh = at.getTime() - Date.parse(record.heartbeatAt ?? record.startedAt ?? '0') < staleMs;
  return fresh ? { kind: 'busy' } : { kind: 'take-over' };
}

/** The step runs elsewhere: this message comes back later to see how it went. */
async function recheckLater(deps: RunnerDeps, message: StepMessage): Promise<'busy'> {
  await deps.queues.send(QUEUES.step(message.step), message, { delaySeconds: BUSY_RECHECK_SECONDS });
  return 'busy';
}

/**
 * Stale heartbeat: the host died while running this step. Every redelivery of a message counts
 * towards its poison limit, so a few host crashes would fail a healthy job; instead the crash is
 * recorded on the step and a fresh message takes over. The job's own count of starts bounds
 * a step that keeps killing its host (e.g. one that exhausts memory).
 */
async function takeOver(deps: RunnerDeps, step: PipelineStep, stored: Job, message: StepMessage): Promise<string> {
  const crashed = await deps.jobs.update(stored.id, (j) =>
    recordHostStopped(j, step, MAX_STARTS_AFTER_CRASHES, now(deps)),
  );
  if (isTerminal(crashed)) {
    deps.log.error(`Job ${crashed.id} (${crashed.ruleId}) failed: ${crashed.error}`);
    await deps.onJobEnded?.(crashed);
    return 'failed';
  }
  await deps.queues.send(QUEUES.step(step), message);
  deps.log.warn(`Job ${stored.id} (${stored.ruleId}) ${step}: its host stopped while running it; taken over`);
  return 'taken-over';
}

/** Start: the step is marked running, unless the job changed since it was read. */
async function start(
  deps: RunnerDeps,
  step: PipelineStep,
  jobId: string,
  message: StepMessage,
): Promise<Attempt | 'busy' | 'not-runnable'> {
  let job: Job;
  try {
    job = await deps.jobs.update(jobId, (j) => {
      if (decideStep(j, step).kind !== 'run') throw new NotRunnable(false);
      // A duplicate message that read the job before another one started the step: the ETag
      // retry shows it running now, and two runs would share one working folder.
      if (stepRecord(j, step).status === 'running') throw new NotRunnable(true);
      startStep(j, step, now(deps));
      if (deps.instance) stepRecord(j, step).instance = deps.instance;
    });
  } catch (error) {
    if (error instanceof NotRunnable) return error.busy ? 'busy' : 'not-runnable';
    throw error;
  }
  // The step's own log lines (e.g. a forward retry's reason) pass the job's path redaction too.
  const redactPaths: Redact = deps.redaction?.paths(job) ?? ((text) => text);
  return { step, job, message, log: redactedLogger(deps.log, redactPaths), redactPaths, startedAt: Date.now() };
}

/** Run: the handler, with its heartbeat beating; what it returned or threw. */
async function run(deps: RunnerDeps, attempt: Attempt, handler: FanOutStartHandler): Promise<RanAny> {
  const stopBeating = keepBeating(deps, attempt);
  try {
    return { ok: true, outcome: await handler(stepContext(deps, attempt)) };
  } catch (error) {
    return { ok: false, error };
  } finally {
    stopBeating();
  }
}

function stepContext(deps: RunnerDeps, { step, job, log }: Attempt): StepContext {
  let lastProgress = 0;
  return {
    job,
    log,
    async progress(done, total) {
      const at = now(deps);
      if (at.getTime() - lastProgress < PROGRESS_INTERVAL_MS && done < total) return;
      lastProgress = at.getTime();
      await deps.jobs.update(job.id, (j) => recordProgress(j, step, done, total, at));
    },
  };
}

/**
 * The heartbeat also beats on its own, so a live step that reports no progress for a while (a long
 * rename, chown or zip entry) is never presumed dead, however short the stale threshold.
 */
function keepBeating(deps: RunnerDeps, { step, job }: Attempt): () => void {
  const staleMs = deps.staleHeartbeatMs ?? STALE_HEARTBEAT_MS;
  const beat = setInterval(
    () => void deps.jobs.update(job.id, (j) => heartbeat(j, step, now(deps))).catch(() => undefined),
    Math.max(500, Math.floor(staleMs / 4)),
  );
  return () => clearInterval(beat);
}

/** Record: what the attempt came to, then the message it leads to. */
function record(deps: RunnerDeps, attempt: Attempt, ran: Ran): Promise<string> {
  if (!ran.ok) return recordFailure(deps, attempt, ran.error);
  if ('wait' in ran.outcome) return recordWait(deps, attempt, ran.outcome);
  return recordSuccess(deps, attempt, ran.outcome);
}

async function recordFailure(deps: RunnerDeps, attempt: Attempt, error: unknown): Promise<string> {
  const { step, job, log } = attempt;
  const redact = deps.redaction ? await deps.redaction.forJob(job) : (text: string) => text;
  const reason = redact(describe(error));
  // What leaves: the host logs a rethrown error's stack, telemetry sends it as an exception.
  const leaving = deps.redaction?.enabled
    ? redactError(error, redact)
    : error instanceof Error
      ? error
      : new Error(reason);
  const permanent = error instanceof PermanentError;
  report(deps, attempt, permanent ? 'failed' : 'retrying', { error: leaving });
  if (permanent) {
    const failed = await deps.jobs.update(job.id, (j) => failStep(j, step, reason, now(deps)));
    log.error(`Job ${job.id} (${job.ruleId}) failed at ${step}: ${reason}`);
    await deps.onJobEnded?.(failed);
    return 'failed';
  }
  await deps.jobs.update(job.id, (j) => recordAttemptFailure(j, step, reason, now(deps)));
  log.warn(`Job ${job.id} (${job.ruleId}) ${step} attempt failed, will retry: ${reason}`);
  throw leaving;
}

async function recordWait(deps: RunnerDeps, attempt: Attempt, { wait }: StepWait): Promise<string> {
  const { step, job, message } = attempt;
  report(deps, attempt, 'waiting');
  await deps.jobs.update(job.id, (j) => waitStep(j, step, wait.detail, wait.progress, now(deps)));
  await deps.queues.send(QUEUES.step(step), message, { delaySeconds: wait.delaySeconds });
  return 'waiting';
}

async function recordSuccess(deps: RunnerDeps, attempt: Attempt, outcome: StepResult): Promise<string> {
  const { step, job, log } = attempt;
  // Warnings enter the job record too (a file name, a path): the same path redaction as log lines.
  const result: StepResult = outcome.warnings
    ? { ...outcome, warnings: outcome.warnings.map(attempt.redactPaths) }
    : outcome;
  report(deps, attempt, 'succeeded', { instances: result.instances, bytes: result.bytes });
  const finished = await deps.jobs.update(job.id, (j) => void finishStep(j, step, result, now(deps)));
  return afterStepFinished(deps, finished, log);
}

/** A step was recorded as succeeded: the job ends, or the next step's message goes. */
export async function afterStepFinished(
  deps: Pick<RunnerDeps, 'handOn' | 'queues' | 'onJobEnded'>,
  finished: Job,
  log: Logger,
): Promise<'done'> {
  if (isTerminal(finished)) {
    await deps.onJobEnded?.(finished);
    log.info(`Job ${finished.id} (${finished.ruleId}) succeeded`);
  } else {
    await handOn(deps, QUEUES.step(finished.currentStep), { jobId: finished.id, step: finished.currentStep });
  }
  return 'done';
}

/** A message that exhausted its attempts: the job fails with the last reason it recorded. */
export async function failPoisonedStep(deps: RunnerDeps, queue: string, rawMessage: unknown): Promise<string> {
  const parsed = stepMessageSchema.safeParse(rawMessage);
  if (!parsed.success) return noteMalformed(deps, queue, rawMessage, describeIssues(parsed.error, 'message'));
  const stored = await deps.jobs.get(parsed.data.jobId);
  if (!stored || isTerminal(stored)) return 'nothing-to-do';
  const failed = await deps.jobs.update(stored.id, (j) => failPoisoned(j, queue, now(deps)));
  deps.log.error(`Job ${stored.id} (${stored.ruleId}) failed: ${failed.error}`);
  sendTelemetry(deps, {
    jobId: stored.id,
    ruleId: stored.ruleId,
    step: stored.currentStep,
    outcome: 'failed',
    durationMs: 0,
    error: new Error(failed.error ?? 'moved to poison'),
  });
  await deps.onJobEnded?.(failed);
  return 'failed';
}

/**
 * A malformed message that still names a job (e.g. sent by an older or foreign writer) is noted on
 * that job, so an operator sees it beside the job; the job's own messages decide its state.
 */
async function noteMalformed(deps: RunnerDeps, queue: string, rawMessage: unknown, reason: string): Promise<string> {
  const jobId =
    typeof rawMessage === 'object' && rawMessage !== null ? (rawMessage as { jobId?: unknown }).jobId : undefined;
  const stored = typeof jobId === 'string' && /^[0-9a-f]{32}$/.test(jobId) ? await deps.jobs.get(jobId) : undefined;
  if (!stored) {
    deps.log.error(`Undecodable or malformed message moved to '${queue}-poison'; no job can be marked (${reason})`);
    return 'unlinked';
  }
  await deps.jobs.update(stored.id, (j) =>
    addWarning(j, `a malformed message for this job was moved to ${queue}-poison (${reason})`),
  );
  deps.log.error(`Malformed message for job ${stored.id} (${stored.ruleId}) moved to '${queue}-poison': ${reason}`);
  return 'marked';
}

export function now(deps: Pick<RunnerDeps, 'now'>): Date {
  return deps.now ? deps.now() : new Date();
}

async function handOn(deps: Pick<RunnerDeps, 'handOn' | 'queues'>, queue: string, message: unknown): Promise<void> {
  if (deps.handOn) deps.handOn(queue, message);
  else await deps.queues.send(queue, message);
}

/** The attempt's duration and outcome. */
function report(
  deps: RunnerDeps,
  { step, job, startedAt }: Attempt,
  outcome: StepTelemetry['outcome'],
  extra: Pick<StepTelemetry, 'instances' | 'bytes' | 'error'> = {},
): void {
  sendTelemetry(deps, {
    jobId: job.id,
    ruleId: job.ruleId,
    step,
    outcome,
    durationMs: Date.now() - startedAt,
    ...extra,
  });
}

/** Telemetry never fails a step: a broken exporter costs a log line, nothing else. */
export function sendTelemetry(deps: Pick<RunnerDeps, 'telemetry' | 'log'>, step: StepTelemetry): void {
  try {
    deps.telemetry?.stepEnded(step);
  } catch (error) {
    deps.log.warn(`Telemetry for job ${step.jobId} ${step.step} not sent: ${describe(error)}`);
  }
}
