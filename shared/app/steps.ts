/**
 * One factory per kind of trigger, so each file in functions/ reads as a declaration:
 * a step is its queue, its handler and its poison queue; adding a step is a new file there
 * and its handler in shared/pipeline/steps, nothing else.
 */
import { app, output, type InvocationContext, type StorageQueueOutput } from '@azure/functions';
import { PIPELINE_STEPS, type Job, type PipelineStep } from '../pipeline/job';
import { QUEUES } from '../pipeline/messages';
import { createRedaction, studyPhiLookup } from '../pipeline/redact';
import { failPoisonedStep, runStep, type StepHandler } from '../pipeline/runner';
import { cleanUpEndedJob } from '../pipeline/staging';
import { loggerFor } from './logging';
import { getServices, type Services } from './services';

export const STORAGE_CONNECTION = 'AzureWebJobsStorage';

/** One queue output binding per step queue: a function hands on to whichever step comes next. */
export const stepOutputs: Record<string, StorageQueueOutput> = Object.fromEntries(
  PIPELINE_STEPS.map((step) => [QUEUES.step(step), output.storageQueue({ queueName: QUEUES.step(step), connection: STORAGE_CONNECTION })]),
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

function runnerDeps(services: Services, context: InvocationContext) {
  const redaction = createRedaction({
    storagePath: services.config.storagePath,
    logPhi: services.config.logPhi,
    knownPhi: studyPhiLookup(services.orthanc, services.naming),
  });
  return {
    handOn: handOnVia(context),
    ledger: services.ledger,
    queues: services.queues,
    log: loggerFor(context, redaction.anywhere),
    redaction,
    staleHeartbeatMs: services.config.staleHeartbeatMs,
    telemetry: services.telemetry,
    // The download step claimed the output folder for this job; whoever ends the job gives it back,
    // after deleting what an anonymising job leaves (its staged originals; all of it if it failed).
    onJobEnded: async (job: Job) => {
      await cleanUpEndedJob({ stagingPath: services.config.stagingPath, ledger: services.ledger }, job);
      if (job.outputPath) await services.ledger.releaseOutput(job.outputPath, job.id);
    },
  };
}

/** Steps whose functions this app registered: a job needing another step fails at once with a reason. */
export const registeredSteps = new Set<PipelineStep>();

/** Registers `step<Name>` on queue `step-<name>` and `step<Name>Poison` on its poison queue. */
export function registerStep(step: PipelineStep, makeHandler: (services: Services) => StepHandler): void {
  const name = `step${step[0].toUpperCase()}${step.slice(1)}`;
  const queueName = QUEUES.step(step);
  registeredSteps.add(step);
  app.storageQueue(name, {
    queueName,
    connection: STORAGE_CONNECTION,
    extraOutputs: Object.values(stepOutputs),
    handler: async (message: unknown, context: InvocationContext) => {
      const services = await getServices();
      await runStep(runnerDeps(services, context), step, makeHandler(services), message);
    },
  });
  app.storageQueue(`${name}Poison`, {
    queueName: QUEUES.poison(queueName),
    connection: STORAGE_CONNECTION,
    handler: async (message: unknown, context: InvocationContext) => {
      const services = await getServices();
      await failPoisonedStep(runnerDeps(services, context), queueName, message);
    },
  });
}
