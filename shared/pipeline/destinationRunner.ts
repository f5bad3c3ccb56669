/**
 * Runs a step that fans out to its destinations (forward): the step's own message records one record
 * per destination and sends one message per destination; each of those makes one attempt at one
 * destination and schedules its own retry by a delayed message, so a destination that is down never
 * delays the others. The step completes when the last destination is sent and fails when one has used
 * up its attempts; the JobStore's optimistic concurrency makes exactly one message do either, however
 * many finish at once. The records and their transitions are in ./destinations.ts.
 */
import { decideStep, finishStep, type Job } from './job';
import {
  claimDestination,
  destinationAttemptFailed,
  destinationPolling,
  destinationProgress,
  destinationSent,
  planFanOut,
  type AttemptFailure,
  type Claim,
  type DestinationRecord,
  type DestinationRecords,
  type TransferState,
} from './destinations';
import { QUEUES, type StepMessage } from './messages';
import { redactedLogger } from './redact';
import {
  PROGRESS_INTERVAL_MS,
  STALE_HEARTBEAT_MS,
  afterStepFinished,
  now,
  sendTelemetry,
  type FanOutStartHandler,
  type FanOutStep,
  type RunnerDeps,
} from './runner';
import { PermanentError, describe, type Logger, type PipelineStep } from '../vocabulary';

/** What one attempt at one destination is given. */
export interface DestinationContext {
  job: Job;
  destination: string;
  attempt: number;
  /** The transfer's own state (instances sent, the Orthanc job, STOW-RS ranges): kept across attempts. */
  transfer: TransferState;
  log: Logger;
  /** Records progress and keeps the destination's heartbeat fresh; cheap to call often. */
  progress: (done: number, total: number) => Promise<void>;
}

/** Sent, or handed to someone (an Orthanc job) to be looked at again after `pollSeconds`. Throwing fails the attempt. */
export type DestinationOutcome = { sent: true } | { pollSeconds: number };

export interface DestinationPolicy {
  send: (context: DestinationContext) => Promise<DestinationOutcome>;
  maxAttempts: number;
  /** The delay before the next attempt, after `attempts` have failed. */
  retryDelaySeconds: (attempts: number) => number;
  /** A destination still waiting this long after it was queued is stuck (AUTOMATION_DESTINATION_STUCK_MINUTES). */
  stuckAfterMs: number;
  /** The step's instance count once every destination is sent. */
  stepInstances?: (records: DestinationRecords) => number | undefined;
  /** A destination just became stuck (an alert); never allowed to fail the attempt. */
  onStuck?: (job: Job, destination: string, record: DestinationRecord) => Promise<void>;
}

/** A duplicate message seen while another worker sends the destination looks again this much later. */
export const DESTINATION_BUSY_RECHECK_SECONDS = 15;

class NoClaim extends Error {
  constructor(readonly claim: Exclude<Claim, { kind: 'run' }>) {
    super('destination not claimed');
  }
}

function destinationMessage(jobId: string, step: PipelineStep, destination: string, attempt: number): StepMessage {
  return { jobId, step, destination, attempt };
}

export function fanOutStep(start: FanOutStartHandler, policy: DestinationPolicy): FanOutStep {
  return {
    start,
    fanOut: (deps, job, step, names) => fanOut(deps, policy, job, step, names),
    destination: (deps, job, message) => runDestination(deps, policy, job, message),
  };
}

async function fanOut(
  deps: RunnerDeps,
  policy: DestinationPolicy,
  job: Job,
  step: PipelineStep,
  names: string[],
): Promise<string> {
  let planned: ReturnType<typeof planFanOut> = { attempts: [], complete: false };
  let finished = false;
  const updated = await deps.jobs.update(job.id, (j) => {
    planned = planFanOut(j, step, names, now(deps));
    finished = false;
    // Every destination was sent before (a redelivered step message): nothing to send, the step is done.
    if (planned.complete && decideStep(j, step).kind === 'run') {
      const records = (j.steps.find((s) => s.name === step)?.detail?.destinations ?? {}) as DestinationRecords;
      finishStep(j, step, { instances: policy.stepInstances?.(records) }, now(deps));
      finished = true;
    }
  });
  if (finished) return afterStepFinished(deps, updated, deps.log);
  for (const { destination, attempt, delaySeconds } of planned.attempts) {
    const message = destinationMessage(job.id, step, destination, attempt);
    // At once through the output binding (the host polls it at once); a retry still due waits in the queue.
    if (delaySeconds === 0 && deps.handOn) deps.handOn(QUEUES.step(step), message);
    else await deps.queues.send(QUEUES.step(step), message, { delaySeconds });
  }
  deps.log.info(
    `Job ${job.id} (${job.ruleId}) ${step}: ${planned.attempts.length} of ${names.length} destination(s) queued`,
  );
  return 'fanned-out';
}

async function runDestination(
  deps: RunnerDeps,
  policy: DestinationPolicy,
  job: Job,
  message: StepMessage,
): Promise<string> {
  const step = message.step as PipelineStep;
  const name = message.destination as string;
  const attempt = message.attempt ?? 1;
  const staleMs = deps.staleHeartbeatMs ?? STALE_HEARTBEAT_MS;
  let claim: Claim | undefined;
  let claimed: Job;
  try {
    claimed = await deps.jobs.update(job.id, (j) => {
      claim = claimDestination(j, step, name, attempt, now(deps), staleMs);
      if (claim.kind !== 'run') throw new NoClaim(claim);
    });
  } catch (error) {
    if (!(error instanceof NoClaim)) throw error;
    return notClaimed(deps, job, message, error.claim);
  }
  const { record, takenOver } = claim as Extract<Claim, { kind: 'run' }>;
  const log = redactedLogger(deps.log, deps.redaction?.paths(claimed) ?? ((text) => text));
  const label = `Job ${job.id} (${job.ruleId}) ${step} to ${name}`;
  if (takenOver) log.warn(`${label}: the host stopped while sending (attempt ${record.attempts}); sending again`);

  const transfer: TransferState = {
    sent: record.sent,
    total: record.total,
    orthancJob: record.orthancJob,
    retry: record.retry,
    failed: record.failed,
  };
  const beat = setInterval(
    () =>
      void deps.jobs
        .update(job.id, (j) => destinationProgress(j, step, name, { ...transfer }, now(deps)))
        .catch(() => undefined),
    Math.max(500, Math.floor(staleMs / 4)),
  );
  let lastProgress = 0;
  const context: DestinationContext = {
    job: claimed,
    destination: name,
    attempt: record.attempts,
    transfer,
    log,
    async progress(done, total) {
      transfer.sent = done;
      transfer.total = total;
      const at = now(deps).getTime();
      if (at - lastProgress < PROGRESS_INTERVAL_MS && done < total) return;
      lastProgress = at;
      await deps.jobs.update(job.id, (j) => destinationProgress(j, step, name, { ...transfer }, now(deps)));
    },
  };
  let outcome: DestinationOutcome | undefined;
  let failure: unknown;
  try {
    outcome = await policy.send(context);
  } catch (error) {
    failure = error;
  } finally {
    clearInterval(beat);
  }

  if (outcome && 'pollSeconds' in outcome) {
    await deps.jobs.update(job.id, (j) => destinationPolling(j, step, name, { ...transfer }, now(deps)));
    await deps.queues.send(QUEUES.step(step), destinationMessage(job.id, step, name, record.attempts), {
      delaySeconds: outcome.pollSeconds,
    });
    return 'polling';
  }
  if (outcome) {
    let completed = false;
    const updated = await deps.jobs.update(job.id, (j) => {
      completed = destinationSent(j, step, name, { ...transfer }, now(deps), policy.stepInstances);
    });
    log.info(`${label}: sent (attempt ${record.attempts})`);
    if (!completed) return 'sent';
    report(deps, updated, step, 'succeeded');
    return afterStepFinished(deps, updated, log);
  }
  return attemptFailed(deps, policy, { job: claimed, step, name, label, log, transfer }, failure);
}

/** What a message that claimed nothing does: nothing, or look again later. */
async function notClaimed(
  deps: RunnerDeps,
  job: Job,
  message: StepMessage,
  claim: Exclude<Claim, { kind: 'run' }>,
): Promise<string> {
  const label = `Job ${job.id} (${job.ruleId}) ${message.step} to ${message.destination}`;
  switch (claim.kind) {
    case 'ignore':
      deps.log.info(`${label}: nothing to do (${claim.reason})`);
      return 'ignored';
    case 'busy':
      // Its sender may have died without a trace but a fresh heartbeat: this message looks again.
      await deps.queues.send(QUEUES.step(message.step), message, { delaySeconds: DESTINATION_BUSY_RECHECK_SECONDS });
      return 'busy';
    case 'later':
      await deps.queues.send(QUEUES.step(message.step), message, { delaySeconds: claim.delaySeconds });
      return 'recheck';
  }
}

async function attemptFailed(
  deps: RunnerDeps,
  policy: DestinationPolicy,
  at: { job: Job; step: PipelineStep; name: string; label: string; log: Logger; transfer: TransferState },
  error: unknown,
): Promise<string> {
  const { job, step, name, label, log, transfer } = at;
  const redact = deps.redaction ? await deps.redaction.forJob(job) : (text: string) => text;
  const reason = redact(describe(error));
  let failure: AttemptFailure | undefined;
  const updated = await deps.jobs.update(job.id, (j) => {
    failure = destinationAttemptFailed(
      j,
      step,
      name,
      { reason, transfer: { ...transfer }, permanent: error instanceof PermanentError },
      { maxAttempts: policy.maxAttempts, delaySeconds: policy.retryDelaySeconds, stuckAfterMs: policy.stuckAfterMs },
      now(deps),
    );
  });
  if (!failure) return 'ignored';
  if (failure.kind === 'retry') {
    await deps.queues.send(QUEUES.step(step), destinationMessage(job.id, step, name, failure.attempt), {
      delaySeconds: failure.delaySeconds,
    });
    const stuck = failure.record.status === 'stuck' ? ' (stuck)' : '';
    log.warn(
      `${label} failed (attempt ${failure.attempt - 1} of ${policy.maxAttempts}), retrying in ${failure.delaySeconds} s${stuck}: ${reason}`,
    );
    if (failure.becameStuck) await notifyStuck(deps, policy, updated, name, failure.record);
    return 'retrying';
  }
  if (!failure.endedJob) {
    log.warn(`${label} failed after the job ended: ${reason}`);
    return 'failed';
  }
  log.error(`Job ${job.id} (${job.ruleId}) failed at ${step}: ${updated.error}`);
  report(deps, updated, step, 'failed', new Error(updated.error ?? reason));
  await deps.onJobEnded?.(updated);
  return 'failed';
}

async function notifyStuck(
  deps: RunnerDeps,
  policy: DestinationPolicy,
  job: Job,
  name: string,
  record: DestinationRecord,
): Promise<void> {
  try {
    await policy.onStuck?.(job, name, record);
  } catch (error) {
    deps.log.warn(`Job ${job.id} (${job.ruleId}): the stuck alert for ${name} was not sent: ${describe(error)}`);
  }
}

/** The step's duration and outcome once it completed or failed (attempts of destinations are on the record). */
function report(deps: RunnerDeps, job: Job, step: PipelineStep, outcome: 'succeeded' | 'failed', error?: Error): void {
  const record = job.steps.find((s) => s.name === step);
  sendTelemetry(deps, {
    jobId: job.id,
    ruleId: job.ruleId,
    step,
    outcome,
    durationMs: record?.durationMs ?? 0,
    instances: record?.instances,
    ...(error ? { error } : {}),
  });
}
