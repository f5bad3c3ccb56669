/** Queue `evaluate`: one stable study or series against every active rule; matches become jobs. */
import { app, type InvocationContext } from '@azure/functions';
import { loggerFor } from '../shared/azure-functions/logging';
import { getServices } from '../shared/composition/services';
import { STORAGE_CONNECTION, handOnVia, registeredSteps, stepOutputs } from '../shared/azure-functions/steps';
import { evaluateResource } from '../shared/pipeline/evaluate';
import { QUEUES, evaluateMessageSchema, parseMessage } from '../shared/pipeline/messages';
import { linkArrival } from '../shared/worklist/arrival';

export async function evaluate(message: unknown, context: InvocationContext): Promise<void> {
  const services = await getServices();
  const parsed = parseMessage(evaluateMessageSchema, QUEUES.evaluate, message);
  await evaluateResource(
    {
      ...services,
      log: loggerFor(context, services.redaction.anywhere),
      availableSteps: registeredSteps,
      handOn: handOnVia(context),
      roundTrips: { awaited: services.awaitedResults, jobs: services.jobs, orthanc: services.orthanc },
      onEvaluated: services.config.worklist
        ? (study, jobIds) => linkArrival(services.bookings, study, jobIds).then(() => undefined)
        : undefined,
    },
    parsed,
  );
}

app.storageQueue('evaluate', {
  queueName: 'evaluate',
  connection: STORAGE_CONNECTION,
  extraOutputs: Object.values(stepOutputs),
  handler: evaluate,
});

app.storageQueue('evaluatePoison', {
  queueName: 'evaluate-poison',
  connection: STORAGE_CONNECTION,
  handler: (message: unknown, context: InvocationContext) => {
    // No job exists yet for a failed evaluation; the resource id (never PHI) tells operators what to re-run.
    const parsed = evaluateMessageSchema.safeParse(message);
    context.error(
      parsed.success
        ? `Evaluation of ${parsed.data.level} ${parsed.data.resourceId} failed repeatedly; re-run it with POST /api/${parsed.data.level === 'Study' ? 'studies' : 'series'}/${parsed.data.resourceId}/run`
        : 'A malformed message reached evaluate-poison and was dropped',
    );
  },
});
