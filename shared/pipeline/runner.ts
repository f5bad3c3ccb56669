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
 */
import type { Ledger } from './ledger';
import {
  decideStep,
  failJob,
  finishStep,
  isTerminal,
  recordAttemptFailure,
  startStep,
  stepRecord,
  waitStep,
  type Job,
  type StepResult,
} from './job';
import { QUEUES, parseMessage, stepMessageSchema, type StepMessage } from './messages';
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

export type StepHandler = (context: StepContext) => Promise<StepResult | StepWait>;

export interface RunnerDeps {
  ledger: Ledger;
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
const PROGRESS_INTERVAL_MS = 2_000;

class NotRunnable extends Error {
  constructor(readonly busy: boolean) {
    super(busy ? 'started by another message' : 'not runnable');
  }
}

export async function runStep(
  deps: RunnerDeps,
  step: PipelineStep,
  handler: StepHandler,
  rawMessage: unknown,
): Promise<string> {
  const now = deps.now ?? (() => new Date());
  const message: StepMessage = parseMessage(stepMessageSchema, QUEUES.step(step), rawMessage);
  if (message.step !== step)
    throw new Error(`Message for step '${message.step}' arrived on queue '${QUEUES.step(step)}'`);

  const stored = await deps.ledger.getJob(message.jobId);
  if (!stored) {
    deps.log.warn(`Job ${message.jobId} is not in the ledger; message on '${QUEUES.step(step)}' dropped`);
    return 'unknown-job';
  }
  const decision = decideStep(stored, step);
  if (decision.kind === 'ignore') {
    deps.log.info(`Job ${stored.id} (${stored.ruleId}) ${step}: nothing to do (${decision.reason})`);
    return 'ignored';
  }
  if (decision.kind === 'resend-next') {
    const ended = Date.parse(stepRecord(stored, step).endedAt ?? '') || 0;
    const waited = now().getTime() - ended;
    if (waited >= RESEND_AFTER_MS) {
      await handOn(deps, QUEUES.step(decision.next), { jobId: stored.id, step: decision.next });
      deps.log.warn(`Job ${stored.id} (${stored.ruleId}): re-sent '${decision.next}', whose message was never sent`);
      return 'resent-next';
    }
    // Too early to tell a lost follow-up (the host died, or the output binding failed, after the step
    // was recorded) from one still on its way. This may be the only message that can repair the job,
    // so it comes back once the follow-up is overdue instead of being dropped.
    await deps.queues.send(QUEUES.step(step), message, { delaySeconds: Math.ceil((RESEND_AFTER_MS - waited) / 1000) });
    return 'recheck';
  }
  const record = stepRecord(stored, step);
  const staleMs = deps.staleHeartbeatMs ?? STALE_HEARTBEAT_MS;
  const recheckLater = async () => {
    await deps.queues.send(QUEUES.step(step), message, { delaySeconds: BUSY_RECHECK_SECONDS });
    return 'busy';
  };
  if (
    record.status === 'running' &&
    now().getTime() - Date.parse(record.heartbeatAt ?? record.startedAt ?? '0') < staleMs
  )
    return recheckLater();
  if (record.status === 'running') {
    // Stale heartbeat: the host died while running this step. Every redelivery of a message counts
    // towards its poison limit, so a few host crashes would fail a healthy job; instead the crash is
    // recorded on the step and a fresh message takes over. The job's own count of starts bounds
    // a step that keeps killing its host (e.g. one that exhausts memory).
    const crashed = await deps.ledger.updateJob(stored.id, (j) => {
      const r = stepRecord(j, step);
      if (r.status !== 'running') return;
      recordAttemptFailure(j, step, `the host stopped while this step ran (attempt ${r.attempts})`, now());
      if (r.attempts >= MAX_STARTS_AFTER_CRASHES)
        failJob(j, `${step}: the host stopped ${r.attempts} times while this step ran`, now());
    });
    if (isTerminal(crashed)) {
      deps.log.error(`Job ${crashed.id} (${crashed.ruleId}) failed: ${crashed.error}`);
      await deps.onJobEnded?.(crashed);
      return 'failed';
    }
    await deps.queues.send(QUEUES.step(step), message);
    deps.log.warn(`Job ${stored.id} (${stored.ruleId}) ${step}: its host stopped while running it; taken over`);
    return 'taken-over';
  }

  let job: Job;
  try {
    job = await deps.ledger.updateJob(stored.id, (j) => {
      if (decideStep(j, step).kind !== 'run') throw new NotRunnable(false);
      // A duplicate message that read the job before another one started the step: the ETag
      // retry shows it running now, and two runs would share one working folder.
      if (stepRecord(j, step).status === 'running') throw new NotRunnable(true);
      startStep(j, step, now());
      stepRecord(j, step).heartbeatAt = now().toISOString();
    });
  } catch (error) {
    if (error instanceof NotRunnable) return error.busy ? recheckLater() : 'ignored';
    throw error;
  }

  // The step's own log lines (e.g. a forward retry's reason) pass the job's path redaction too.
  const redactPaths: Redact = deps.redaction?.paths(job) ?? ((text) => text);
  const log = redactedLogger(deps.log, redactPaths);
  let lastProgress = 0;
  const context: StepContext = {
    job,
    log,
    async progress(done, total) {
      const at = now();
      if (at.getTime() - lastProgress < PROGRESS_INTERVAL_MS && done < total) return;
      lastProgress = at.getTime();
      await deps.ledger.updateJob(job.id, (j) => {
        const r = stepRecord(j, step);
        r.progress = { done, total };
        r.heartbeatAt = at.toISOString();
      });
    },
  };

  // The heartbeat also beats on its own, so a live step that reports no progress for a while (a long
  // rename, chown or zip entry) is never presumed dead, however short the stale threshold.
  const beat = setInterval(
    () => {
      void deps.ledger
        .updateJob(job.id, (j) => {
          const r = stepRecord(j, step);
          if (r.status === 'running') r.heartbeatAt = now().toISOString();
        })
        .catch(() => undefined);
    },
    Math.max(500, Math.floor(staleMs / 4)),
  );
  const startedAt = Date.now();
  const report = (
    outcome: StepTelemetry['outcome'],
    extra: Pick<StepTelemetry, 'instances' | 'bytes' | 'error'> = {},
  ) =>
    sendTelemetry(deps, {
      jobId: job.id,
      ruleId: job.ruleId,
      step,
      outcome,
      durationMs: Date.now() - startedAt,
      ...extra,
    });
  let outcome: StepResult | StepWait;
  try {
    outcome = await handler(context);
  } catch (error) {
    clearInterval(beat);
    const redact = deps.redaction ? await deps.redaction.forJob(job) : (text: string) => text;
    const reason = redact(describe(error));
    // What leaves: the host logs a rethrown error's stack, telemetry sends it as an exception.
    const leaving = deps.redaction?.enabled
      ? redactError(error, redact)
      : error instanceof Error
        ? error
        : new Error(reason);
    report(error instanceof PermanentError ? 'failed' : 'retrying', { error: leaving });
    if (error instanceof PermanentError) {
      const failed = await deps.ledger.updateJob(job.id, (j) => {
        recordAttemptFailure(j, step, reason, now());
        failJob(j, `${step}: ${reason}`, now());
      });
      log.error(`Job ${job.id} (${job.ruleId}) failed at ${step}: ${reason}`);
      await deps.onJobEnded?.(failed);
      return 'failed';
    }
    await deps.ledger.updateJob(job.id, (j) => recordAttemptFailure(j, step, reason, now()));
    log.warn(`Job ${job.id} (${job.ruleId}) ${step} attempt failed, will retry: ${reason}`);
    throw leaving;
  }
  clearInterval(beat);

  if ('wait' in outcome) {
    report('waiting');
    const { delaySeconds, detail, progress } = outcome.wait;
    await deps.ledger.updateJob(job.id, (j) => waitStep(j, step, detail, progress, now()));
    await deps.queues.send(QUEUES.step(step), message, { delaySeconds });
    return 'waiting';
  }

  // Warnings enter the job record too (a file name, a path): the same path redaction as log lines.
  const result: StepResult = outcome.warnings ? { ...outcome, warnings: outcome.warnings.map(redactPaths) } : outcome;
  report('succeeded', { instances: result.instances, bytes: result.bytes });
  let next: PipelineStep | undefined;
  const finished = await deps.ledger.updateJob(job.id, (j) => {
    next = finishStep(j, step, result, now());
    if (result.skipRest && next !== undefined) {
      for (const r of j.steps) if (r.status === 'pending') r.status = 'skipped';
      j.status = 'succeeded';
      j.finishedAt = now().toISOString();
      next = undefined;
    }
  });
  if (next !== undefined) await handOn(deps, QUEUES.step(next), { jobId: job.id, step: next });
  if (isTerminal(finished)) {
    await deps.onJobEnded?.(finished);
    log.info(`Job ${job.id} (${job.ruleId}) succeeded`);
  }
  return 'done';
}

/** A message that exhausted its attempts: the job fails with the last reason it recorded. */
export async function failPoisonedStep(deps: RunnerDeps, queue: string, rawMessage: unknown): Promise<string> {
  const parsed = stepMessageSchema.safeParse(rawMessage);
  if (!parsed.success) {
    // A malformed message that still names a job (e.g. sent by an older or foreign writer) is noted on
    // that job, so an operator sees it beside the job; the job's own messages decide its state.
    const jobId =
      typeof rawMessage === 'object' && rawMessage !== null ? (rawMessage as { jobId?: unknown }).jobId : undefined;
    const reason = describeIssues(parsed.error, 'message');
    const stored =
      typeof jobId === 'string' && /^[0-9a-f]{32}$/.test(jobId) ? await deps.ledger.getJob(jobId) : undefined;
    if (!stored) {
      deps.log.error(`Undecodable or malformed message moved to '${queue}-poison'; no job can be marked (${reason})`);
      return 'unlinked';
    }
    await deps.ledger.updateJob(stored.id, (j) => {
      j.warnings.push(`a malformed message for this job was moved to ${queue}-poison (${reason})`);
    });
    deps.log.error(`Malformed message for job ${stored.id} (${stored.ruleId}) moved to '${queue}-poison': ${reason}`);
    return 'marked';
  }
  const stored = await deps.ledger.getJob(parsed.data.jobId);
  if (!stored || isTerminal(stored)) return 'nothing-to-do';
  const failed = await deps.ledger.updateJob(stored.id, (j) => {
    if (isTerminal(j)) return;
    const last = j.steps.find((s) => s.name === j.currentStep)?.error;
    failJob(j, `${j.currentStep}: ${last ?? 'gave up after repeated failures'} (moved to ${queue}-poison)`);
  });
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

async function handOn(deps: Pick<RunnerDeps, 'handOn' | 'queues'>, queue: string, message: unknown): Promise<void> {
  if (deps.handOn) deps.handOn(queue, message);
  else await deps.queues.send(queue, message);
}

/** Telemetry never fails a step: a broken exporter costs a log line, nothing else. */
function sendTelemetry(deps: Pick<RunnerDeps, 'telemetry' | 'log'>, step: StepTelemetry): void {
  try {
    deps.telemetry?.stepEnded(step);
  } catch (error) {
    deps.log.warn(`Telemetry for job ${step.jobId} ${step.step} not sent: ${describe(error)}`);
  }
}
