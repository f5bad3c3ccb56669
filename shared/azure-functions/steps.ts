/**
 * What every step function shares, so each file in functions/ reads as a declaration: a step is its
 * queue, its handler and its poison queue, spelled out there as literals; adding a step is a new file
 * there and its handler in shared/pipeline/steps, nothing else.
 */
import {
  output,
  type InvocationContext,
  type StorageQueueFunctionOptions,
  type StorageQueueOutput,
} from '@azure/functions';
import type { Job } from '../pipeline/job';
import { PIPELINE_STEPS, type PipelineStep } from '../vocabulary';
import { QUEUES } from '../pipeline/messages';
import { failPoisonedStep, runStep, type FanOutStep, type StepHandler } from '../pipeline/runner';
import { cleanUpEndedJob } from '../pipeline/staging';
import { recordPublished } from '../pipeline/versions';
import { labelProcessedStudy } from '../pipeline/studyLabels';
import { jobTelemetryOf } from '../operator/qi';
import { loggerFor } from './logging';
import { hostInstanceName } from './instance';
import { getServices, type Services } from '../composition/services';
import { jobFailedAlert, malformedMessageAlert } from '../alerts/events';

export const STORAGE_CONNECTION = 'AzureWebJobsStorage';

/** One queue output binding per step queue: a function hands on to whichever step comes next. */
export const stepOutputs: Record<string, StorageQueueOutput> = Object.fromEntries(
  PIPELINE_STEPS.map((step) => [
    QUEUES.step(step),
    output.storageQueue({ queueName: QUEUES.step(step), connection: STORAGE_CONNECTION }),
  ]),
);

/**
 * Adds a message to the output binding of `queue` on this invocation; the host writes them (one
 * message per element) after success, and polls the queue at once when it listens to it.
 */
export function handOnVia(context: InvocationContext): (queue: string, message: unknown) => void {
  const pending = new Map<string, unknown[]>();
  return (queue, message) => {
    const binding = stepOutputs[queue];
    if (!binding) throw new Error(`No output binding for queue '${queue}'`);
    const messages = [...(pending.get(queue) ?? []), message];
    pending.set(queue, messages);
    context.extraOutputs.set(binding, messages);
  };
}

/** `poisonQueue`: the step queue whose poison function runs (a job failing there is a poisoned message). */
function runnerDeps(services: Services, context: InvocationContext, poisonQueue?: string) {
  return {
    handOn: handOnVia(context),
    jobs: services.jobs,
    queues: services.queues,
    log: loggerFor(context, services.redaction.anywhere),
    redaction: services.redaction,
    staleHeartbeatMs: services.config.staleHeartbeatMs,
    instance: hostInstanceName(),
    telemetry: services.telemetry,
    // The download step claimed the output folder for this job; whoever ends the job gives it back,
    // after deleting what an anonymising job leaves (its staged originals; all of it if it failed).
    onJobEnded: async (job: Job) => {
      // The QI figures as metrics (shared/operator/qi.ts); telemetry never fails a job's clean-up.
      try {
        const ended = jobTelemetryOf(job);
        if (ended) services.telemetry.jobEnded?.(ended);
      } catch (error) {
        context.warn(`Telemetry for job ${job.id} not sent: ${(error as Error).message}`);
      }
      await cleanUpEndedJob({ stagingPath: services.config.stagingPath, outputLocks: services.outputLocks }, job);
      // Before the lock goes: the next job for this resource reads the version (OnNewInstances).
      if (job.status === 'succeeded' && !job.steps.some((s) => s.status === 'skipped'))
        await recordPublished(services.cursors, job);
      if (job.outputPath) await services.outputLocks.release(job.outputPath, job.id);
      // After the lock is given back, as it waits on Orthanc; on 1.10 (no labels) nothing is sent. Never throws.
      if (job.status === 'succeeded' && !job.steps.some((s) => s.status === 'skipped'))
        await labelProcessedStudy(
          { orthanc: services.orthanc, log: loggerFor(context, services.redaction.anywhere) },
          job,
        );
      // Last, and it never throws: a webhook that is down must not fail or delay the job's clean-up.
      if (job.status === 'failed')
        await services.alerts.notify(jobFailedAlert(job, { poisonQueue, redact: services.redaction.paths(job) }));
    },
  };
}

/** Steps whose functions this app registered: a job needing another step fails at once with a reason. */
export const registeredSteps = new Set<PipelineStep>();

/** A queue function's options without its queue, which the file in functions/ names as a literal. */
export type StepFunctionOptions = Omit<StorageQueueFunctionOptions, 'queueName'>;

/**
 * The options of `step<Name>` on queue `step-<name>`: the runner runs the step's handler, and every
 * step queue is an output binding so the function can hand on to whichever step comes next.
 */
export function stepFunction(
  step: PipelineStep,
  makeHandler: (services: Services) => StepHandler | FanOutStep,
): StepFunctionOptions {
  registeredSteps.add(step);
  return {
    connection: STORAGE_CONNECTION,
    extraOutputs: Object.values(stepOutputs),
    handler: async (message: unknown, context: InvocationContext) => {
      const services = await getServices();
      await runStep(runnerDeps(services, context), step, makeHandler(services), message);
    },
  };
}

/** The options of `step<Name>Poison` on queue `step-<name>-poison`: the job fails with its last reason. */
export function stepPoisonFunction(step: PipelineStep): StepFunctionOptions {
  return {
    connection: STORAGE_CONNECTION,
    handler: async (message: unknown, context: InvocationContext) => {
      const services = await getServices();
      const queue = QUEUES.step(step);
      const outcome = await failPoisonedStep(runnerDeps(services, context, queue), queue, message);
      // A message naming no job ends no job, so no job alert covers it.
      if (outcome === 'unlinked' || outcome === 'marked') await services.alerts.notify(malformedMessageAlert(queue));
    },
  };
}
