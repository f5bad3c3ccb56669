/**
 * One factory per kind of trigger, so each file in functions/ reads as a declaration:
 * a step is its queue, its handler and its poison queue; adding a step is a new file there
 * and its handler in shared/pipeline/steps, nothing else.
 */
import { app, type InvocationContext } from '@azure/functions';
import type { Job, PipelineStep } from '../pipeline/job';
import { QUEUES } from '../pipeline/messages';
import { failPoisonedStep, runStep, type StepHandler } from '../pipeline/runner';
import { loggerFor } from './logging';
import { getServices, type Services } from './services';

export const STORAGE_CONNECTION = 'AzureWebJobsStorage';

function runnerDeps(services: Services, context: InvocationContext) {
  return {
    ledger: services.ledger,
    queues: services.queues,
    log: loggerFor(context),
    // The download step claimed the output folder for this job; whoever ends the job gives it back.
    onJobEnded: async (job: Job) => {
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
